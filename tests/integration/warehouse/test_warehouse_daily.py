"""Daily operation on real PostgreSQL and DuckDB: a load after each incremental run ends where
one run over all the input and one load do, re-delivered files replace their lines, a run with
nothing new changes nothing. The runs are the session's chain (conftest.daily_runs); the
tests that start from the four days loaded start from a copy of one such warehouse per kind."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from retail_pipeline.report import RunReport
from retail_pipeline.warehouse import WarehouseInputError, load_output, load_run
from retail_pipeline.warehouse.files import CURATED_SCHEMA, NOTHING_NEW
from tests.integration.daily_chain import CORRECTED_DAY, DailyRuns, Run

from .expected import TABLES, curated_lines, differences, execute, expected_tables, fetch, query, snapshot

pytestmark = pytest.mark.integration


def assert_same_tables(url: str, reference_url: str) -> None:
    """Every table holds the same rows in both warehouses (every column but batch_id)."""
    for table in TABLES:
        problems = differences(fetch(url, table), fetch(reference_url, table))
        assert not problems, f"{table}: {problems}"


def assert_matches_curated(url: str, output: Path) -> None:
    expected = expected_tables(curated_lines(output))
    for table in TABLES:
        problems = differences(fetch(url, table), expected[table])
        assert not problems, f"{table}: {problems}"


def lines_by_source(url: str) -> dict[str, tuple[str, int]]:
    """source_file -> (the batch that loaded its lines, how many)."""
    rows = query(
        url, "SELECT source_file, MIN(batch_id), MAX(batch_id), COUNT(*) FROM fact_sales GROUP BY source_file"
    )
    assert all(first == last for _, first, last, _ in rows), rows  # one batch per source
    return {source: (batch_id, count) for source, batch_id, _, count in rows}


def load_days(url: str, days: list[Run]) -> None:
    for day in days:
        load_run(url, str(day.output))


@pytest.fixture(scope="module")
def days_loaded_once() -> dict[str, str]:
    """By warehouse kind, a warehouse that loaded each day's run in turn: loaded once, then
    copied for each test that starts there (never changed itself)."""
    return {}


def copy_warehouse(source: str, target: str) -> None:
    """Make the (new, empty) warehouse `target` hold what `source` holds, byte for byte."""
    if source.startswith("duckdb:"):
        source_file = Path(source.removeprefix("duckdb:///"))
        assert not source_file.with_name(source_file.name + ".wal").exists()  # all checkpointed
        shutil.copyfile(source_file, target.removeprefix("duckdb:///"))
        return
    import psycopg

    server, name = source.rsplit("/", 1)
    copy = target.rsplit("/", 1)[1]
    with psycopg.connect(f"{server}/postgres", autocommit=True) as connection:
        connection.execute(f"DROP DATABASE {copy}".encode())
        connection.execute(f"CREATE DATABASE {copy} TEMPLATE {name}".encode())


@pytest.fixture
def days_loaded(
    new_warehouse: Callable[[], str], daily_runs: DailyRuns, days_loaded_once: dict[str, str]
) -> Callable[[], str]:
    """Makes new warehouses of the test's kind holding what loading each day's run in turn
    leaves (the first test checks that content day by day)."""

    def make() -> str:
        target = new_warehouse()
        kind = target.split(":", 1)[0]
        if kind not in days_loaded_once:
            days_loaded_once[kind] = target
            load_days(target, daily_runs.days)
            target = new_warehouse()
        copy_warehouse(days_loaded_once[kind], target)
        return target

    return make


def test_a_load_after_each_days_run_ends_where_one_run_and_one_load_do(
    new_warehouse: Callable[[], str], daily_runs: DailyRuns
) -> None:
    daily, full = new_warehouse(), new_warehouse()
    for number, day in enumerate(daily_runs.days):
        result = load_run(daily, str(day.output))

        (source,) = day.report.sources  # the day's new file, and only it
        assert (result.rows, result.replaced_rows) == (day.report.published, 0)
        assert result.revenue == Decimal(day.report.published_revenue)
        # The warehouse holds what the output holds, day after day; earlier days stay as loaded.
        assert_matches_curated(daily, day.output)
        by_source = lines_by_source(daily)
        assert len(by_source) == number + 1
        assert by_source[source] == (day.report.run_id, day.report.published)
    load_run(full, str(daily_runs.full.output))

    assert_same_tables(daily, full)
    assert {source: count for source, (_, count) in lines_by_source(daily).items()} == {
        source: count for source, (_, count) in lines_by_source(full).items()
    }


def test_a_redelivered_corrected_file_then_a_load_equals_one_run_over_the_corrected_set(
    new_warehouse: Callable[[], str], days_loaded: Callable[[], str], daily_runs: DailyRuns
) -> None:
    daily, full = days_loaded(), new_warehouse()
    before = lines_by_source(daily)
    corrected = daily_runs.corrected.report
    assert corrected.sources == [daily_runs.day_files[CORRECTED_DAY]]  # the batch re-read that file only

    result = load_run(daily, str(daily_runs.corrected.output))
    load_run(full, str(daily_runs.corrected_full.output))

    assert_same_tables(daily, full)
    assert_matches_curated(daily, daily_runs.corrected.output)
    after = lines_by_source(daily)
    source = daily_runs.day_files[CORRECTED_DAY]
    assert result.replaced_rows == before[source][1]
    assert after[source] == (corrected.run_id, corrected.published)
    # The other days' lines were not touched: still those their own runs loaded.
    assert {s: v for s, v in after.items() if s != source} == {s: v for s, v in before.items() if s != source}
    dropped = daily_runs.corrections["dropped"]
    assert query(daily, f"SELECT COUNT(*) FROM fact_sales WHERE invoice_no = '{dropped}'") == [(0,)]


def test_a_run_with_nothing_new_loads_nothing_and_changes_nothing(
    days_loaded: Callable[[], str], daily_runs: DailyRuns, tmp_path: Path
) -> None:
    report, output = daily_runs.nothing_new.run
    assert (report.status, report.sources, report.published) == (NOTHING_NEW, [], 0)
    warehouse_url = days_loaded()
    before = snapshot(warehouse_url)
    report_file = tmp_path / f"{report.run_id}.json"
    report_file.write_text(report.to_json(), encoding="utf-8")

    result = load_run(warehouse_url, str(output), run_report=str(report_file))
    # The daily schedule's load after it: the output's latest report, loaded again.
    again = load_run(warehouse_url, str(output))

    assert (result.status, result.rows, result.replaced_rows, result.files) == (NOTHING_NEW, 0, 0, 0)
    assert again.rows == again.replaced_rows
    assert snapshot(warehouse_url) == before  # batch_id included


def test_a_superseded_run_report_is_refused_and_changes_nothing(
    days_loaded: Callable[[], str], daily_runs: DailyRuns
) -> None:
    warehouse_url = days_loaded()
    load_run(warehouse_url, str(daily_runs.corrected.output))
    before = snapshot(warehouse_url)
    original = next(d for d in daily_runs.days if d.report.sources == [daily_runs.day_files[CORRECTED_DAY]])
    # The original run's report, as the output keeps it; its file's lines are now another run's.
    archived = daily_runs.corrected.output / "reports" / "runs" / f"{original.report.run_id}.json"
    assert json.loads(archived.read_text(encoding="utf-8"))["run_id"] == original.report.run_id

    with pytest.raises(WarehouseInputError, match="a later run replaced some"):
        load_run(warehouse_url, str(daily_runs.corrected.output), run_report=str(archived))
    assert snapshot(warehouse_url) == before


def test_a_missed_load_is_caught_up_from_the_runs_archived_report(
    new_warehouse: Callable[[], str], days_loaded: Callable[[], str], daily_runs: DailyRuns
) -> None:
    caught_up, reference = new_warehouse(), days_loaded()
    first, missed, *rest = daily_runs.days
    load_run(caught_up, str(first.output))
    for day in rest:
        load_run(caught_up, str(day.output))
    latest = rest[-1].output
    load_run(
        caught_up, str(latest), run_report=str(latest / "reports" / "runs" / f"{missed.report.run_id}.json")
    )

    assert snapshot(caught_up) == snapshot(reference)  # batch_id included: each day by its run


def curated_output(root: Path, *, run_id: str, sources: list[str], lines: list[dict[str, Any]]) -> Path:
    """A batch output as a run leaves it, written by hand: one December 2010 partition holding
    `lines` (of any runs), and the report of run `run_id`, which replaced `sources`."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    partition = "invoice_year=2010/invoice_month=12"
    (root / "curated" / partition).mkdir(parents=True)
    pq.write_table(
        pa.Table.from_pylist(lines, schema=CURATED_SCHEMA), root / "curated" / partition / "part-0.parquet"
    )
    mine = [line for line in lines if line["run_id"] == run_id]
    report = RunReport(
        run_id=run_id, status="succeeded", inputs=sources, output=str(root), read=len(mine),
        published=len(mine), filtered={}, quarantined={},
        published_revenue=str(sum((line["revenue"] for line in mine), Decimal(0))), header_lines=len(sources),
        durations_s={}, sources=sources, curated_partitions=[partition],
    )  # fmt: skip
    (root / "reports").mkdir()
    (root / "reports" / "run_report.json").write_text(report.to_json(), encoding="utf-8")
    return root


def line(source: str, run_id: str, invoice_no: str, stock_code: str, quantity: int) -> dict[str, Any]:
    price = Decimal("2.5500")
    return {
        "invoice_no": invoice_no, "stock_code": stock_code, "description": f"ITEM {stock_code}",
        "quantity": quantity, "unit_price": price, "revenue": price * quantity,
        "invoice_ts": dt.datetime(2010, 12, 1, 8, 26), "customer_id": "17850", "country": "United Kingdom",
        "source_file": source, "run_id": run_id,
    }  # fmt: skip


def test_an_invoice_split_over_two_files_keeps_the_lines_of_the_file_not_replaced(
    warehouse_url: str, tmp_path: Path
) -> None:
    first, second = "file:///in/part-1.csv", "file:///in/part-2.csv"
    part_1 = [line(first, "run-1", "536365", code, 6) for code in ("A", "B", "C")]
    part_2 = [line(second, "run-1", "536365", code, 2) for code in ("A", "D")]
    part_2.append(line(second, "run-1", "536366", "E", 1))
    load_run(warehouse_url, str(curated_output(tmp_path / "1", run_id="run-1", sources=[first, second],
                                               lines=part_1 + part_2)))  # fmt: skip
    # part-2 re-delivered: its invoice 536365 keeps one line, changed; 536366 is gone.
    redelivered = [line(second, "run-2", "536365", "D", 3)]
    output = curated_output(tmp_path / "2", run_id="run-2", sources=[second], lines=part_1 + redelivered)

    result = load_run(warehouse_url, str(output))

    assert (result.rows, result.replaced_rows) == (1, 3)
    assert_matches_curated(warehouse_url, output)  # line numbers counted within each file
    assert lines_by_source(warehouse_url) == {first: ("run-1", 3), second: ("run-2", 1)}
    assert query(warehouse_url, "SELECT orders, lines FROM sales_daily") == [(1, 4)]


def test_a_whole_output_load_builds_what_loading_every_run_built(
    new_warehouse: Callable[[], str], days_loaded: Callable[[], str], daily_runs: DailyRuns
) -> None:
    daily, rebuilt = days_loaded(), new_warehouse()
    load_run(daily, str(daily_runs.corrected.output))

    result = load_output(rebuilt, str(daily_runs.corrected.output))

    assert snapshot(rebuilt) == snapshot(daily)  # batch_id included: each line its run's
    assert (result.rows, result.replaced_rows) == (sum(c for _, c in lines_by_source(daily).values()), 0)
    again = load_output(rebuilt, str(daily_runs.corrected.output))
    assert again.replaced_rows == again.rows and snapshot(rebuilt) == snapshot(daily)


# fact_sales as the load made it before lines carried their source file.
FACT_SALES_BEFORE_SOURCE_FILE = """CREATE TABLE fact_sales (
    invoice_no VARCHAR(20) NOT NULL, line_no INTEGER NOT NULL, stock_code VARCHAR(32) NOT NULL,
    description VARCHAR(256), customer_id VARCHAR(20) NOT NULL, country VARCHAR(64) NOT NULL,
    invoice_ts TIMESTAMP NOT NULL, date_key INTEGER NOT NULL, quantity INTEGER NOT NULL,
    unit_price DECIMAL(12,4) NOT NULL, revenue DECIMAL(23,4) NOT NULL, batch_id VARCHAR(64) NOT NULL,
    PRIMARY KEY (invoice_no, line_no)
)"""


def test_a_warehouse_made_before_source_file_is_refused_until_rebuilt(
    warehouse_url: str, daily_runs: DailyRuns
) -> None:
    execute(warehouse_url, FACT_SALES_BEFORE_SOURCE_FILE)

    with pytest.raises(WarehouseInputError, match=r"fact_sales has 12 columns, 12 of the 13.*load --all"):
        load_run(warehouse_url, str(daily_runs.full.output))
    assert query(warehouse_url, "SELECT COUNT(*) FROM fact_sales") == [(0,)]

    execute(warehouse_url, "DROP TABLE fact_sales")
    load_output(warehouse_url, str(daily_runs.full.output))
    assert_matches_curated(warehouse_url, daily_runs.full.output)
