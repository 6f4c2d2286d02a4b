"""Loading a batch of curated Parquet into the warehouse: idempotent and all-or-nothing.

    create the model's tables when missing                       (own transaction)
    BEGIN; lock; create staging; stage the files; stage_sales    (one transaction ...)
    check: staged rows = the files' rows, text fits, revenue = the run report's
    merge: replace the batch's lines, refresh touched dims, mart, calendar
    COMMIT                                                       (... or ROLLBACK on any error)

Loading the same batch again replaces its lines with themselves: the tables end identical.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal

import pyarrow as pa

from retail_pipeline.logs import set_run_id
from retail_pipeline.warehouse import dates, files, merge
from retail_pipeline.warehouse.backends import DuckDBWarehouse, PostgresWarehouse, Warehouse
from retail_pipeline.warehouse.dialects import schema_ddl
from retail_pipeline.warehouse.errors import WarehouseError, WarehouseInputError, first_line
from retail_pipeline.warehouse.model import STAGE_LINES, TABLES
from retail_pipeline.warehouse.urls import WarehouseTarget, parse_warehouse_url

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoadResult:
    batch_id: str
    warehouse: str  # the URL, password masked
    files: int
    rows: int  # lines staged and inserted into fact_sales
    revenue: Decimal  # their revenue
    replaced_rows: int  # fact lines deleted (the earlier versions of the batch's invoices/months)
    table_rows: Mapping[str, int] = field(default_factory=dict)  # every table, after the load
    durations_s: Mapping[str, float] = field(default_factory=dict)  # stage, merge, total

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.durations_s["total"] if self.durations_s.get("total") else 0.0


def connect(target: WarehouseTarget, *, manifest_dir: str | None = None) -> Warehouse:
    if target.scheme == "duckdb":
        return DuckDBWarehouse(target)
    if target.scheme == "postgresql":
        return PostgresWarehouse(target)
    from retail_pipeline.warehouse.redshift import RedshiftWarehouse

    return RedshiftWarehouse(target, manifest_dir=manifest_dir)


def check_files_reachable(target: WarehouseTarget, data_files: Sequence[files.DataFile]) -> None:
    """Refuse, before connecting, files the warehouse cannot read (Redshift reads S3 only)."""
    if target.scheme == "redshift":
        from retail_pipeline.warehouse.redshift import require_s3

        require_s3(data_files)


def load_run(warehouse_url: str, output_dir: str, *, run_report: str | None = None) -> LoadResult:
    """Load one batch run: the curated partitions its report lists, as `load_parquet_files`,
    replacing those months whole. Reads <output_dir>/reports/run_report.json by default."""
    target = parse_warehouse_url(warehouse_url)
    report = files.read_run_report(output_dir, run_report)
    set_run_id(report.run_id)
    described = files.describe_files(files.partition_files(output_dir, report.curated_partitions))
    rows = sum(f.rows for f in described)
    if rows != report.published:
        raise WarehouseInputError(
            f"the curated partitions of run {report.run_id} hold {rows:,} rows, not the {report.published:,}"
            " it published: a later run replaced some; load that run's report instead"
        )
    return _load(
        target,
        described,
        batch_id=report.run_id,
        replace_months=files.partition_months(report.curated_partitions),
        expected_revenue=report.published_revenue,
        manifest_dir=files.join(output_dir, "_warehouse_manifests"),
    )


def load_parquet_files(
    warehouse_url: str,
    parquet_files: Sequence[str],
    *,
    batch_id: str,
    replace_months: Sequence[tuple[int, int]] = (),
) -> LoadResult:
    """Load curated-schema Parquet files: every invoice in them replaces that invoice's lines
    (so a batch must hold all of each invoice's lines), and each (year, month) of
    `replace_months` is replaced whole."""
    target = parse_warehouse_url(warehouse_url)
    try:
        merge.check_batch_id(batch_id)
    except ValueError as error:
        raise WarehouseInputError(str(error)) from None
    return _load(
        target, files.describe_files(parquet_files), batch_id=batch_id, replace_months=replace_months
    )


def _load(
    target: WarehouseTarget,
    data_files: Sequence[files.DataFile],
    *,
    batch_id: str,
    replace_months: Sequence[tuple[int, int]],
    expected_revenue: Decimal | None = None,
    manifest_dir: str | None = None,
) -> LoadResult:
    started = time.perf_counter()
    logger.info("Loading batch %s (%d files) into %s", batch_id, len(data_files), target.display)
    check_files_reachable(target, data_files)
    warehouse = connect(target, manifest_dir=manifest_dir)
    try:
        warehouse.begin()
        for statement in schema_ddl(warehouse.dialect):
            warehouse.execute(statement)
        warehouse.commit()
        result = _load_in_transaction(
            warehouse, data_files, batch_id=batch_id, replace_months=replace_months, expected=expected_revenue
        )
    except (*warehouse.errors, OSError, pa.ArrowException) as error:  # the driver's, or reading a file
        _rollback(warehouse)
        raise WarehouseError(
            f"load of batch {batch_id} into {target.display} failed and was rolled back: {first_line(error)}"
        ) from None
    except BaseException:
        _rollback(warehouse)
        raise
    finally:
        warehouse.close()
    durations = {**result.durations_s, "total": round(time.perf_counter() - started, 3)}
    result = dataclasses.replace(result, warehouse=target.display, durations_s=durations)
    logger.info(
        "Loaded %s lines (replacing %s) in %.1f s: %s",
        f"{result.rows:,}",
        f"{result.replaced_rows:,}",
        durations["total"],
        ", ".join(f"{name} {count:,}" for name, count in result.table_rows.items()),
    )
    return result


def _rollback(warehouse: Warehouse) -> None:
    with contextlib.suppress(Exception):  # a broken connection rolls back by closing
        warehouse.rollback()


def _load_in_transaction(
    warehouse: Warehouse,
    data_files: Sequence[files.DataFile],
    *,
    batch_id: str,
    replace_months: Sequence[tuple[int, int]],
    expected: Decimal | None,
) -> LoadResult:
    started = time.perf_counter()
    warehouse.begin()
    if warehouse.dialect.lock:
        warehouse.execute(warehouse.dialect.lock)
    for statement in merge.create_staging(warehouse.dialect):
        warehouse.execute(statement)
    warehouse.stage(data_files, batch_id=batch_id)
    warehouse.execute(merge.prepare_sales(batch_id))
    rows, revenue = _check_stage(warehouse, data_files, expected_revenue=expected)
    staged = time.perf_counter()
    fact_before = int(warehouse.query_one("SELECT COUNT(*) FROM fact_sales")[0])
    for statement in merge.merge_statements(replace_months):
        warehouse.execute(statement)
    ranges = [key for sql in merge.DATE_KEY_RANGES for key in warehouse.query_one(sql)]
    years = dates.years_to_cover(ranges)
    for statement in dates.calendar_statements(*years) if years else []:
        warehouse.execute(statement)
    table_rows = {t.name: int(warehouse.query_one(f"SELECT COUNT(*) FROM {t.name}")[0]) for t in TABLES}
    for statement in merge.drop_staging():
        warehouse.execute(statement)
    warehouse.commit()
    return LoadResult(
        batch_id=batch_id,
        warehouse="",
        files=len(data_files),
        rows=rows,
        revenue=revenue,
        replaced_rows=fact_before + rows - table_rows["fact_sales"],
        table_rows=table_rows,
        durations_s={
            "stage": round(staged - started, 3),
            "merge": round(time.perf_counter() - staged, 3),
        },
    )


def _check_stage(
    warehouse: Warehouse, data_files: Sequence[files.DataFile], *, expected_revenue: Decimal | None
) -> tuple[int, Decimal]:
    """What was staged is what the files hold, fits the tables, and (for a run) has the
    revenue the run reported. Any failure rolls the load back."""
    count, revenue, *lengths = warehouse.query_one(merge.stage_summary(warehouse.dialect))
    rows, revenue = int(count), Decimal(revenue or 0)
    expected_rows = sum(f.rows for f in data_files)
    if rows != expected_rows:
        raise WarehouseError(f"staged {rows:,} rows but the files hold {expected_rows:,}: rolled back")
    text_columns = [c for c in STAGE_LINES.columns if c.max_bytes is not None]
    for col, longest in zip(text_columns, lengths, strict=True):
        if longest is not None and col.max_bytes is not None and int(longest) > col.max_bytes:
            raise WarehouseError(
                f"a {col.name} of {int(longest)} bytes does not fit the warehouse's {col.type}: rolled back"
            )
    if expected_revenue is not None and revenue != expected_revenue:
        raise WarehouseError(
            f"staged revenue {revenue} differs from the run's published revenue {expected_revenue}:"
            " rolled back"
        )
    return rows, revenue
