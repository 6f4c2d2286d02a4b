"""Fixtures of the warehouse tests: one PostgreSQL server and one batch run of the sample for
the session; a fresh, empty warehouse (DuckDB file or PostgreSQL database) per test."""

from __future__ import annotations

import atexit
import csv
import os
import shutil
from collections import Counter
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from pyspark.sql import SparkSession

from retail_pipeline import batch, rules
from retail_pipeline.config import BatchSettings
from retail_pipeline.report import RunReport
from tests.conftest import SAMPLE_CSV
from tests.integration.pg_server import INSTALL_HINT, PostgresServer, find_bin_dir


def batch_settings(input_path: Path, output: Path) -> BatchSettings:
    return BatchSettings(
        input=str(input_path), output=str(output), encoding="utf-8", quarantine_unterminated_last_line=True
    )


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresServer]:
    bin_dir = find_bin_dir()
    if bin_dir is None:
        message = f"PostgreSQL server binaries not found: {INSTALL_HINT}"
        if os.environ.get("CI"):
            pytest.fail(message)  # CI installs them: a missing server must not pass as a skip
        pytest.skip(message)
    server = PostgresServer(bin_dir)
    atexit.register(server.stop)  # also when the session dies before its teardown
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def sample_run(spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> tuple[RunReport, Path]:
    """The batch job's output for the committed sample (9,853 published lines, one month)."""
    output = tmp_path_factory.mktemp("warehouse_sample_run")
    return batch.run(spark, batch_settings(SAMPLE_CSV, output)), output


@pytest.fixture(params=["duckdb", "postgresql"])
def warehouse_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty warehouse of each kind the tests run on."""
    if request.param == "duckdb":
        return f"duckdb:///{tmp_path}/warehouse.duckdb"
    server: PostgresServer = request.getfixturevalue("pg_server")
    return server.create_database()


def sample_rows() -> list[list[str]]:
    with SAMPLE_CSV.open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.reader(handle)
        next(reader)
        return list(reader)


def invoices_by_size(rows: list[list[str]]) -> list[str]:
    """Invoices all of whose lines are published (no C/A prefix, positive quantity and price),
    largest first (ties in file order)."""
    counts = Counter(row[0] for row in rows)
    filtered = {row[0] for row in rows if not row[0][0].isdigit() or int(row[3]) <= 0 or Decimal(row[5]) <= 0}
    return [invoice for invoice, _ in counts.most_common() if invoice not in filtered]


@pytest.fixture(scope="module")
def corrected_run(
    spark: SparkSession, sample_run: tuple[RunReport, Path], tmp_path_factory: pytest.TempPathFactory
) -> tuple[RunReport, Path, dict[str, str]]:
    """A second batch run over the sample's output folder with corrected December data: one
    invoice has a changed line and loses another, one is gone, one moves to another customer
    and country. Returns the report, the output and which invoice got which correction."""
    _, sample_output = sample_run
    output = tmp_path_factory.mktemp("corrected") / "output"
    shutil.copytree(sample_output, output)
    rows = sample_rows()
    largest, dropped, moved = invoices_by_size(rows)[:3]
    largest_lines = [row for row in rows if row[0] == largest]
    first_customer = largest_lines[0][6]

    def corrected_row(row: list[str]) -> list[str]:
        if row is largest_lines[0]:
            return [*row[:3], str(int(row[3]) + 10), *row[4:]]
        if row[0] == moved:
            return [*row[:6], first_customer, "France"]
        return row

    corrected = [corrected_row(row) for row in rows if row[0] != dropped and row is not largest_lines[-1]]
    path = output.parent / "corrected.csv"
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\r\n")
        writer.writerow(rules.RAW_COLUMNS)
        writer.writerows(corrected)
    report = batch.run(spark, batch_settings(path, output))
    return report, output, {"changed": largest, "dropped": dropped, "moved": moved}
