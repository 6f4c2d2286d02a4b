"""The Redshift load without a Redshift: the manifest, the COPY, and the statements and
transaction a (recording) redshift_connector receives. The merge statements it gets are the
ones the integration tests run on PostgreSQL and DuckDB."""

from __future__ import annotations

import json
import sys
import types
from decimal import Decimal
from typing import Any

import pytest

from retail_pipeline.warehouse import (
    WarehouseError,
    WarehouseInputError,
    files,
    load_parquet_files,
    load_run,
    merge,
    redshift,
)
from retail_pipeline.warehouse.dialects import column_check
from retail_pipeline.warehouse.files import DataFile, RunSummary, copy_manifest
from retail_pipeline.warehouse.model import FACT_SALES, TABLES

ROLE = "arn:aws:iam::123456789012:role/retail-copy"
URL = f"redshift://loader:pw@cluster.example:5439/dev?iam_role={ROLE}"
CURATED = "s3://retail-bucket/output/curated/invoice_year=2010/invoice_month=12"
FILES = [
    DataFile(f"{CURATED}/part-00000-a.c000.snappy.parquet", 1234, 6000),
    DataFile(f"{CURATED}/part-00001-b.c000.snappy.parquet", 987, 3853),
]
SOURCES = ("s3://retail-bucket/incoming/2010-12-01.csv", "s3://retail-bucket/incoming/2010-12-02.csv")
# An existing warehouse: each table with the model's columns.
TABLE_COLUMNS = {column_check(table): (len(table.columns), len(table.columns)) for table in TABLES}


class FakeRedshiftError(Exception):
    pass


class FakeConnection:
    """Records every statement; answers the loader's few queries like a loaded cluster."""

    def __init__(self, fail_on: str | None, columns: dict[str, tuple[int, int]]) -> None:
        self.log: list[str] = []
        self.fail_on = fail_on
        self.columns = columns
        self.autocommit = True
        self._row: tuple[Any, ...] | None = None

    def cursor(self) -> Any:
        return types.SimpleNamespace(execute=self.execute, fetchone=self.fetchone, close=lambda: None)

    def execute(self, sql: str) -> None:
        self.log.append(sql)
        if self.fail_on and sql.startswith(self.fail_on):
            raise FakeRedshiftError(f"{self.fail_on} failed\nDETAIL: injected")
        self._row = self.columns.get(sql)
        if sql.startswith("SELECT COUNT(*), MAX("):  # staged rows, longest text of each column
            self._row = (9853, 6, 12, 35, 7, 14, 43, 25)
        elif sql == merge.SALES_SUMMARY:
            self._row = (9853, Decimal("184239.83"))
        elif sql.startswith("SELECT COUNT(*) FROM"):
            self._row = (0,)
        elif sql == merge.DATE_KEY_RANGES[0]:
            self._row = (20101201, 20101209)
        elif sql == merge.DATE_KEY_RANGES[1]:
            self._row = (None, None)

    def fetchone(self) -> tuple[Any, ...] | None:
        return self._row

    def close(self) -> None:
        self.log.append("<close>")

    def commit(self) -> None:
        self.log.append("<commit>")

    def rollback(self) -> None:
        self.log.append("<rollback>")


@pytest.fixture
def cluster(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """A fake redshift_connector and S3: what was connected to, sent, and written."""
    state: dict[str, Any] = {"fail_on": None, "written": {}, "columns": dict(TABLE_COLUMNS)}

    def connect(**settings: Any) -> FakeConnection:
        state["settings"] = settings
        state["connection"] = FakeConnection(state["fail_on"], state["columns"])
        return state["connection"]

    module = types.SimpleNamespace(connect=connect, Error=FakeRedshiftError)
    monkeypatch.setitem(sys.modules, "redshift_connector", module)
    monkeypatch.setattr(files, "describe_files", lambda paths: [f for f in FILES if f.path in paths])
    monkeypatch.setattr(redshift, "write_text", lambda path, text: state["written"].update({path: text}))
    return state


def test_the_manifest_names_exactly_the_batch_files_with_their_sizes() -> None:
    manifest = json.loads(copy_manifest(FILES))
    assert manifest == {
        "entries": [
            {
                "url": f"{CURATED}/part-00000-a.c000.snappy.parquet",
                "mandatory": True,
                "meta": {"content_length": 1234},
            },
            {
                "url": f"{CURATED}/part-00001-b.c000.snappy.parquet",
                "mandatory": True,
                "meta": {"content_length": 987},
            },
        ]
    }


def test_the_copy_reads_parquet_through_the_manifest_and_the_role() -> None:
    url = redshift.manifest_url(FILES, batch_id="run-1", manifest_dir=None)
    assert url == f"{CURATED}/_warehouse_manifests/run-1.manifest"
    assert (
        redshift.manifest_url(FILES, batch_id="run-1", manifest_dir="s3://ops/m/")
        == "s3://ops/m/run-1.manifest"
    )
    assert redshift.copy_statement("s3://ops/m/run-1.manifest", "arn:aws:iam::1:role/o'brien") == (
        "COPY stage_lines\n"
        "FROM 's3://ops/m/run-1.manifest'\n"
        "IAM_ROLE 'arn:aws:iam::1:role/o''brien'\n"
        "FORMAT AS PARQUET\n"
        "MANIFEST"
    )
    with pytest.raises(WarehouseInputError, match="must be on s3://"):
        redshift.manifest_url(FILES, batch_id="run-1", manifest_dir="/tmp/manifests")


def test_a_redshift_load_is_one_transaction_of_copy_and_the_shared_merge(cluster: dict[str, Any]) -> None:
    result = load_parquet_files(URL, [f.path for f in FILES], batch_id="run-1")

    log = cluster["connection"].log
    assert cluster["settings"] == {
        "host": "cluster.example", "port": 5439, "database": "dev", "user": "loader", "password": "pw"
    }  # fmt: skip
    manifest_url = f"{CURATED}/_warehouse_manifests/run-1.manifest"
    assert json.loads(cluster["written"][manifest_url]) == json.loads(copy_manifest(FILES))
    assert log.count("<commit>") == 2 and log[-2:] == ["<commit>", "<close>"]
    load = log[log.index("<commit>") + 1 : -2]  # the second transaction: the load itself
    assert load[0] == "LOCK fact_sales"
    copy = load.index(redshift.copy_statement(manifest_url, ROLE))
    assert all(s.startswith("CREATE TEMPORARY TABLE") for s in load[1:copy])
    assert load[copy + 1] == merge.prepare_sales("run-1")
    merge_sql = merge.merge_statements(merge.Replaces(invoices=True))
    first = load.index(merge_sql[0])
    assert load[first : first + len(merge_sql)] == merge_sql
    assert all(s.startswith("DROP TABLE IF EXISTS stage_") for s in load[-len(merge.STAGING_TABLES) :])
    assert (result.rows, result.files) == (9853, 2)


def test_a_redshift_run_load_replaces_the_runs_sources_with_the_lines_it_published(
    cluster: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    report = RunSummary(
        run_id="20101202T060000Z-0a1b2c3d",
        status=files.SUCCEEDED,
        published=9853,
        published_revenue=Decimal("184239.83"),
        sources=SOURCES,
        curated_partitions=("invoice_year=2010/invoice_month=12",),
        curated_root="curated",
        source="s3://retail-bucket/output/reports/run_report.json",
    )
    monkeypatch.setattr(files, "read_run_report", lambda output, path: report)
    monkeypatch.setattr(files, "partition_files", lambda output, partitions, root: [f.path for f in FILES])

    result = load_run(URL, "s3://retail-bucket/output")

    log = cluster["connection"].log
    load = log[log.index("<commit>") + 1 : -2]
    manifest_url = f"s3://retail-bucket/output/_warehouse_manifests/{report.run_id}.manifest"
    copy = load.index(redshift.copy_statement(manifest_url, ROLE))
    # The run's sources are staged beside the files; only the run's lines go on from them.
    assert load[copy + 1 : copy + 3] == [
        *merge.stage_sources(SOURCES),
        merge.prepare_sales(report.run_id, run_id=report.run_id),
    ]
    assert merge.SALES_OUTSIDE_SOURCES in load[copy + 1 :]
    merge_sql = merge.merge_statements(merge.Replaces(sources=True))
    first = load.index(merge_sql[0])
    assert load[first : first + len(merge_sql)] == merge_sql
    assert not any("invoice_no IN" in s or "date_key BETWEEN" in s for s in load if s.startswith("DELETE"))
    assert (result.rows, result.revenue, result.files) == (9853, Decimal("184239.83"), 2)


def test_a_warehouse_made_by_an_older_model_is_refused_before_anything_is_staged(
    cluster: dict[str, Any],
) -> None:
    cluster["columns"][column_check(FACT_SALES)] = (12, 12)  # fact_sales without source_file
    with pytest.raises(WarehouseInputError, match="fact_sales has 12 columns, 12 of the 13"):
        load_parquet_files(URL, [f.path for f in FILES], batch_id="run-1")
    log = cluster["connection"].log
    assert "<commit>" not in log and not any(s.startswith("COPY") for s in log)


def test_a_failed_copy_rolls_back_and_commits_nothing(cluster: dict[str, Any]) -> None:
    cluster["fail_on"] = "COPY"
    with pytest.raises(WarehouseError, match=r"rolled back: COPY failed$"):
        load_parquet_files(URL, [f.path for f in FILES], batch_id="run-1")
    log = cluster["connection"].log
    assert log[-3:] == [log[-3], "<rollback>", "<close>"] and log[-3].startswith("COPY")
    assert log.count("<commit>") == 1  # only the CREATE TABLE IF NOT EXISTS transaction


def test_redshift_loads_only_s3_files_and_needs_its_driver(
    cluster: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    local = DataFile("/data/output/curated/part-0.parquet", 10, 1)
    monkeypatch.setattr(files, "describe_files", lambda paths: [local])
    with pytest.raises(WarehouseInputError, match="S3 only"):
        load_parquet_files(URL, [local.path], batch_id="run-1")
    assert "connection" not in cluster  # refused before connecting
    monkeypatch.setattr(files, "describe_files", lambda paths: FILES)
    monkeypatch.setitem(sys.modules, "redshift_connector", None)
    with pytest.raises(WarehouseInputError, match="pip install 'retail-pipeline\\[redshift\\]'"):
        load_parquet_files(URL, [f.path for f in FILES], batch_id="run-1")
