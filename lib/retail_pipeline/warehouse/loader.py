"""Loading curated Parquet into the warehouse: idempotent and all-or-nothing.

    create the model's tables when missing; check existing ones are the model's (own transaction)
    BEGIN; lock; create staging; stage the files; stage_sales    (one transaction ...)
    check: staged rows = the files' rows, text fits; a run's lines = its report's, revenue too
    merge: replace the load's lines, refresh touched dims, mart, calendar
    COMMIT                                                       (... or ROLLBACK on any error)

A batch run's load replaces exactly what the run replaced: the lines of its sources (input
files). Loading the same run again replaces its lines with themselves: the tables end identical.
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
from retail_pipeline.warehouse.dialects import column_check, schema_ddl
from retail_pipeline.warehouse.errors import WarehouseError, WarehouseInputError, first_line
from retail_pipeline.warehouse.model import STAGE_LINES, TABLES
from retail_pipeline.warehouse.urls import WarehouseTarget, parse_warehouse_url

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoadResult:
    batch_id: str
    warehouse: str  # the URL, password masked
    files: int
    rows: int  # lines inserted into fact_sales
    revenue: Decimal  # their revenue
    replaced_rows: int  # fact lines deleted (the earlier versions of the load's sources/invoices)
    table_rows: Mapping[str, int] = field(default_factory=dict)  # every table, after the load
    durations_s: Mapping[str, float] = field(default_factory=dict)  # stage, merge, total
    status: str = "loaded"  # or files.NOTHING_NEW: the run had nothing new, nothing was loaded

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.durations_s["total"] if self.durations_s.get("total") else 0.0


@dataclass(frozen=True)
class LoadPlan:
    """What one load stages, inserts and replaces."""

    batch_id: str  # the load's id: in logs, errors and the Redshift manifest's name
    replaces: merge.Replaces
    line_batch_id: str | None  # every inserted line's batch_id; None: each line's own run_id
    run: files.RunSummary | None = None  # a run's load: only its lines, checked against its report

    def sources(self) -> list[str]:
        """Statements that fill stage_sources once the files are staged."""
        if self.run is not None:
            return merge.stage_sources(self.run.sources)
        return [merge.SOURCES_OF_STAGE] if self.replaces.sources else []


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
    """Load one batch run as its report describes it: replace every fact line of the run's
    sources with the lines the run published (the rows of its curated partitions that carry its
    run_id; the partitions also hold other sources' lines, which stay as they are loaded).
    Reads <output_dir>/reports/run_report.json by default. A run that found nothing new loads
    nothing and succeeds. A `redshift-data://` URL loads through the Redshift Data API."""
    if warehouse_url.startswith("redshift-data://"):
        from retail_pipeline.warehouse import data_api

        return data_api.load_run(warehouse_url, output_dir, run_report=run_report)
    target = parse_warehouse_url(warehouse_url)
    planned = plan_run_load(output_dir, run_report, display=target.display)
    if isinstance(planned, LoadResult):
        return planned
    described, plan = planned
    return _load(target, described, plan, manifest_dir=files.join(output_dir, files.MANIFEST_FOLDER))


def plan_run_load(
    output_dir: str, run_report: str | None, *, display: str
) -> LoadResult | tuple[list[files.DataFile], LoadPlan]:
    """What loading a run means, for any backend: its files and plan, or (a run that found
    nothing new) the empty result. Refuses a run that published nothing, and one whose
    partitions a later run replaced."""
    report = files.read_run_report(output_dir, run_report)
    set_run_id(report.run_id)
    if report.status == files.NOTHING_NEW:
        logger.info("Run %s found nothing new: nothing to load into %s", report.run_id, display)
        return LoadResult(report.run_id, display, 0, 0, Decimal(0), 0, status=files.NOTHING_NEW)
    if report.status != files.SUCCEEDED:
        raise WarehouseInputError(
            f"run {report.run_id} published nothing (status {report.status}): nothing to load"
        )
    try:
        merge.check_batch_id(report.run_id)
        merge.stage_sources(report.sources)
    except ValueError as error:
        raise WarehouseInputError(f"run report {report.source}: {error}") from None
    partition_files = files.partition_files(output_dir, report.curated_partitions, root=report.curated_root)
    described = files.describe_files(partition_files)
    rows = sum(f.rows for f in described)
    if rows < report.published:
        raise WarehouseInputError(
            f"the curated partitions of run {report.run_id} hold {rows:,} rows, fewer than the"
            f" {report.published:,} it published: a later run replaced some; load the later run's report"
        )
    return described, LoadPlan(
        report.run_id, merge.Replaces(sources=True), line_batch_id=report.run_id, run=report
    )


def load_output(warehouse_url: str, output_dir: str) -> LoadResult:
    """Load every line the output's curated folder holds, each source file replacing its lines:
    a new warehouse's first load, or a rebuild. A line's batch_id is the run that published it,
    so the tables end as loading each run's report in turn would have left them. (A source no
    line is left of, in the output, keeps the lines it has in the warehouse.)"""
    target = parse_warehouse_url(warehouse_url)
    described = files.describe_files(files.partition_files(output_dir, files.curated_partitions(output_dir)))
    plan = LoadPlan("all", merge.Replaces(sources=True), line_batch_id=None)
    return _load(target, described, plan, manifest_dir=files.join(output_dir, files.MANIFEST_FOLDER))


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
    if warehouse_url.startswith("redshift-data://"):
        from retail_pipeline.warehouse import data_api

        return data_api.load_parquet_files(warehouse_url, parquet_files, batch_id=batch_id)
    target = parse_warehouse_url(warehouse_url)
    try:
        merge.check_batch_id(batch_id)
    except ValueError as error:
        raise WarehouseInputError(str(error)) from None
    plan = LoadPlan(
        batch_id, merge.Replaces(invoices=True, months=tuple(replace_months)), line_batch_id=batch_id
    )
    return _load(target, files.describe_files(parquet_files), plan)


def _load(
    target: WarehouseTarget,
    data_files: Sequence[files.DataFile],
    plan: LoadPlan,
    *,
    manifest_dir: str | None = None,
) -> LoadResult:
    started = time.perf_counter()
    batch_id = plan.batch_id
    logger.info("Loading batch %s (%d files) into %s", batch_id, len(data_files), target.display)
    check_files_reachable(target, data_files)
    warehouse = connect(target, manifest_dir=manifest_dir)
    try:
        warehouse.begin()
        for statement in schema_ddl(warehouse.dialect):
            warehouse.execute(statement)
        _check_tables(warehouse)
        warehouse.commit()
        result = _load_in_transaction(warehouse, data_files, plan)
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


def _check_tables(warehouse: Warehouse) -> None:
    """Tables made by an older model (CREATE TABLE IF NOT EXISTS leaves them) stop the load."""
    for table in TABLES:
        present, known = (int(n or 0) for n in warehouse.query_one(column_check(table)))
        if present != len(table.columns) or known != len(table.columns):
            raise WarehouseInputError(
                f"the warehouse's {table.name} has {present} columns, {known} of the {len(table.columns)}"
                f" the model has ({', '.join(table.column_names)}): an older version made it;"
                " drop the warehouse's tables and load the whole output (load --all)"
            )


def _load_in_transaction(
    warehouse: Warehouse, data_files: Sequence[files.DataFile], plan: LoadPlan
) -> LoadResult:
    started = time.perf_counter()
    warehouse.begin()
    if warehouse.dialect.lock:
        warehouse.execute(warehouse.dialect.lock)
    for statement in merge.create_staging(warehouse.dialect):
        warehouse.execute(statement)
    warehouse.stage(data_files, batch_id=plan.batch_id)
    for statement in plan.sources():
        warehouse.execute(statement)
    run_id = plan.run.run_id if plan.run else None
    warehouse.execute(merge.prepare_sales(plan.line_batch_id, run_id=run_id))
    rows, revenue = _check_stage(warehouse, data_files, run=plan.run)
    staged = time.perf_counter()
    fact_before = int(warehouse.query_one("SELECT COUNT(*) FROM fact_sales")[0])
    for statement in merge.merge_statements(plan.replaces):
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
        batch_id=plan.batch_id,
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
    warehouse: Warehouse, data_files: Sequence[files.DataFile], *, run: files.RunSummary | None
) -> tuple[int, Decimal]:
    """What was staged is what the files hold and fits the tables; for a run, the lines it
    inserts are the run's: as many as it published, of its sources, with its revenue. Any
    failure rolls the load back. Returns the lines to insert and their revenue."""
    count, *lengths = warehouse.query_one(merge.stage_summary(warehouse.dialect))
    expected_rows = sum(f.rows for f in data_files)
    if int(count) != expected_rows:
        raise WarehouseError(f"staged {int(count):,} rows but the files hold {expected_rows:,}: rolled back")
    text_columns = [c for c in STAGE_LINES.columns if c.max_bytes is not None]
    for col, longest in zip(text_columns, lengths, strict=True):
        if longest is not None and col.max_bytes is not None and int(longest) > col.max_bytes:
            raise WarehouseError(
                f"a {col.name} of {int(longest)} bytes does not fit the warehouse's {col.type}: rolled back"
            )
    lines, revenue_sum = warehouse.query_one(merge.SALES_SUMMARY)
    rows, revenue = int(lines), Decimal(revenue_sum or 0)
    if run is None:
        return rows, revenue
    if rows != run.published:
        raise WarehouseInputError(
            f"the curated partitions hold {rows:,} lines of run {run.run_id}, not the {run.published:,}"
            " it published: a later run replaced some of its sources; load the later run's report"
            " instead (rolled back)"
        )
    outside = int(warehouse.query_one(merge.SALES_OUTSIDE_SOURCES)[0])
    if outside:
        raise WarehouseError(
            f"{outside:,} lines of run {run.run_id} come from sources its report does not list: rolled back"
        )
    if revenue != run.published_revenue:
        raise WarehouseError(
            f"the run's staged revenue {revenue} differs from its published revenue {run.published_revenue}:"
            " rolled back"
        )
    return rows, revenue
