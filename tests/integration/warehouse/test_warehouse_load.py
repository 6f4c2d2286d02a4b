"""Loading real batch runs into real PostgreSQL and DuckDB: the star schema's contents, re-runs,
corrections and failures. Every test runs on both (the `warehouse_url` fixture). Daily
operation (runs over a growing folder, re-deliveries) is in test_warehouse_daily."""

from __future__ import annotations

from collections import Counter
from decimal import Decimal
from pathlib import Path

import pytest

from retail_pipeline.report import RunReport
from retail_pipeline.warehouse import WarehouseError, load_parquet_files, load_run, merge
from tests.integration.daily_chain import DailyRuns

from .expected import COLUMNS, TABLES, curated_lines, differences, expected_tables, fetch, query, snapshot

pytestmark = pytest.mark.integration


def assert_star_schema_matches(url: str, output: Path) -> None:
    expected = expected_tables(curated_lines(output))
    for table in TABLES:
        problems = differences(fetch(url, table), expected[table])
        assert not problems, f"{table}: {problems}"


def total_revenue(url: str) -> Decimal:
    return Decimal(query(url, "SELECT SUM(revenue) FROM fact_sales")[0][0])


def test_a_run_loads_as_the_star_schema_its_curated_lines_imply(
    warehouse_url: str, sample_run: tuple[RunReport, Path]
) -> None:
    report, output = sample_run
    result = load_run(warehouse_url, str(output))

    assert result.rows == report.published == 9_853
    assert total_revenue(warehouse_url) == Decimal(report.published_revenue)
    assert_star_schema_matches(warehouse_url, output)
    assert query(warehouse_url, "SELECT DISTINCT batch_id FROM fact_sales") == [(report.run_id,)]
    assert sorted(row[0] for row in query(warehouse_url, "SELECT DISTINCT source_file FROM fact_sales")) == (
        sorted(report.sources)
    )
    # The data repeats (invoice_no, stock_code) within invoices: the line key tells them apart.
    repeated = query(
        warehouse_url,
        "SELECT COUNT(*) FROM (SELECT invoice_no, stock_code FROM fact_sales"
        " GROUP BY invoice_no, stock_code HAVING COUNT(*) > 1) AS pairs",
    )[0][0]
    keys = query(
        warehouse_url,
        "SELECT COUNT(DISTINCT source_file || '/' || invoice_no || '/' || CAST(line_no AS VARCHAR))"
        " FROM fact_sales",
    )
    assert repeated > 0
    assert keys[0][0] == report.published


def test_loading_the_same_run_twice_leaves_identical_tables(
    warehouse_url: str, sample_run: tuple[RunReport, Path]
) -> None:
    report, output = sample_run
    load_run(warehouse_url, str(output))
    first = snapshot(warehouse_url)
    again = load_run(warehouse_url, str(output))

    assert snapshot(warehouse_url) == first
    assert first["fact_sales"][0] == report.published
    assert again.replaced_rows == report.published  # it did replace every line, with itself


def test_a_corrected_file_replaces_its_lines_and_the_dimensions_follow(
    warehouse_url: str, daily_runs: DailyRuns
) -> None:
    _, full_output = daily_runs.full.run
    report, output = daily_runs.corrected.run
    invoices = daily_runs.corrections
    load_run(warehouse_url, str(full_output))
    customer_of_dropped = query(
        warehouse_url,
        f"SELECT DISTINCT customer_id FROM fact_sales WHERE invoice_no = '{invoices['dropped']}'",
    )[0][0]
    orders_before = query(
        warehouse_url, f"SELECT orders FROM dim_customer WHERE customer_id = '{customer_of_dropped}'"
    )

    load_run(warehouse_url, str(output))  # the run that read only the re-delivered file

    assert_star_schema_matches(warehouse_url, output)
    assert total_revenue(warehouse_url) == sum(
        (line["revenue"] for line in curated_lines(output)), Decimal(0)
    )
    lines: dict[str, int] = dict(
        query(warehouse_url, "SELECT invoice_no, COUNT(*) FROM fact_sales GROUP BY invoice_no")
    )
    full_lines = Counter(line["invoice_no"] for line in curated_lines(full_output))
    assert invoices["dropped"] not in lines  # gone with the file's old version
    assert lines[invoices["changed"]] == full_lines[invoices["changed"]] - 1
    moved = query(
        warehouse_url, f"SELECT DISTINCT country FROM fact_sales WHERE invoice_no = '{invoices['moved']}'"
    )
    assert moved == [("France",)]
    orders_after = query(
        warehouse_url, f"SELECT orders FROM dim_customer WHERE customer_id = '{customer_of_dropped}'"
    )
    assert orders_after == ([(orders_before[0][0] - 1,)] if orders_before[0][0] > 1 else [])
    (source,) = report.sources
    assert query(
        warehouse_url, "SELECT DISTINCT batch_id FROM fact_sales WHERE source_file = " + f"'{source}'"
    ) == [(report.run_id,)]


def test_an_error_mid_load_leaves_every_table_as_it_was(
    warehouse_url: str, daily_runs: DailyRuns, monkeypatch: pytest.MonkeyPatch
) -> None:
    load_run(warehouse_url, str(daily_runs.full.output))
    before = snapshot(warehouse_url)
    original = merge.merge_statements
    executed: list[str] = []

    def failing_after_the_fact_and_products(*args: object, **kwargs: object) -> list[str]:
        statements = original(*args, **kwargs)  # type: ignore[arg-type]
        at = statements.index(merge.REFRESH_PRODUCTS) + 1
        executed.extend(statements[:at])
        return [*statements[:at], "SELECT CAST('injected failure' AS INTEGER)", *statements[at:]]

    monkeypatch.setattr(merge, "merge_statements", failing_after_the_fact_and_products)
    with pytest.raises(WarehouseError, match="rolled back"):
        load_run(warehouse_url, str(daily_runs.corrected.output))

    assert any(s.startswith("DELETE FROM fact_sales") for s in executed)  # it failed mid-merge
    assert snapshot(warehouse_url) == before


def test_a_value_too_long_for_its_column_fails_the_load_and_changes_nothing(
    warehouse_url: str, sample_run: tuple[RunReport, Path], tmp_path: Path
) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    _, output = sample_run
    load_run(warehouse_url, str(output))
    before = snapshot(warehouse_url)
    source = next(p for p in (output / "curated").rglob("*.parquet") if not p.name.startswith("."))
    table = pq.ParquetFile(source).read()
    lines = table.to_pylist()
    lines[0]["description"] = "É" * 200  # 200 characters, 400 bytes
    bad = tmp_path / "too_long.parquet"
    pq.write_table(pa.Table.from_pylist(lines, schema=table.schema), bad)

    with pytest.raises(WarehouseError, match="rolled back"):
        load_parquet_files(warehouse_url, [str(bad)], batch_id="too-long")
    assert snapshot(warehouse_url) == before


def test_a_stream_batch_replaces_only_its_own_invoices(
    warehouse_url: str, sample_run: tuple[RunReport, Path], tmp_path: Path
) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    _, output = sample_run
    load_run(warehouse_url, str(output))
    lines = curated_lines(output)
    invoice = Counter(line["invoice_no"] for line in lines).most_common(1)[0][0]
    corrected = [
        dict(line, quantity=1, revenue=line["unit_price"]) for line in lines if line["invoice_no"] == invoice
    ]
    corrected = corrected[:2]
    source = next(p for p in (output / "curated").rglob("*.parquet") if not p.name.startswith("."))
    batch_file = tmp_path / "stream-batch.parquet"
    pq.write_table(pa.Table.from_pylist(corrected, schema=pq.read_schema(source)), batch_file)

    result = load_parquet_files(warehouse_url, [str(batch_file)], batch_id="stream-0001")

    expected_lines = [line for line in lines if line["invoice_no"] != invoice] + corrected
    assert result.rows == 2
    assert result.replaced_rows == sum(1 for line in lines if line["invoice_no"] == invoice)
    expected = expected_tables(expected_lines)
    for table in TABLES:
        assert not differences(fetch(warehouse_url, table), expected[table]), table
    batches: dict[str, int] = dict(
        query(warehouse_url, "SELECT batch_id, COUNT(*) FROM fact_sales GROUP BY batch_id")
    )
    assert batches["stream-0001"] == 2


def test_the_redshift_staging_table_matches_the_batch_files_column_for_column(
    sample_run: tuple[RunReport, Path],
) -> None:
    import pyarrow.parquet as pq

    from retail_pipeline.warehouse.model import STAGE_LINES

    # Redshift's COPY of Parquet fills columns by position: names, order and types must agree.
    spark_to_sql = {
        "string": "VARCHAR",
        "int32": "INTEGER",
        "decimal128(12, 4)": "DECIMAL(12,4)",
        "decimal128(23, 4)": "DECIMAL(23,4)",
        "timestamp[us]": "TIMESTAMP",
    }
    _, output = sample_run
    source = next(p for p in (output / "curated").rglob("*.parquet") if not p.name.startswith("."))
    written = [(f.name, spark_to_sql[str(f.type)]) for f in pq.read_schema(source)]
    staged = [
        (c.name, c.type.split("(")[0] if c.type.startswith("VARCHAR") else c.type)
        for c in STAGE_LINES.columns
    ]
    assert staged == written
    # Every line column reaches the fact; the run that published a line is its batch_id there.
    fact_columns = set(COLUMNS["fact_sales"].replace(" ", "").split(","))
    assert fact_columns >= {name for name, _ in written} - {"run_id"}
