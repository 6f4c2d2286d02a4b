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
    merge,
    redshift,
)
from retail_pipeline.warehouse.files import DataFile, copy_manifest

ROLE = "arn:aws:iam::123456789012:role/retail-copy"
URL = f"redshift://loader:pw@cluster.example:5439/dev?iam_role={ROLE}"
CURATED = "s3://retail-bucket/output/curated/invoice_year=2010/invoice_month=12"
FILES = [
    DataFile(f"{CURATED}/part-00000-a.c000.snappy.parquet", 1234, 6000),
    DataFile(f"{CURATED}/part-00001-b.c000.snappy.parquet", 987, 3853),
]


class FakeRedshiftError(Exception):
    pass


class FakeConnection:
    """Records every statement; answers the loader's few queries like a loaded cluster."""

    def __init__(self, fail_on: str | None) -> None:
        self.log: list[str] = []
        self.fail_on = fail_on
        self.autocommit = True
        self._row: tuple[Any, ...] | None = None

    def cursor(self) -> Any:
        return types.SimpleNamespace(execute=self.execute, fetchone=self.fetchone, close=lambda: None)

    def execute(self, sql: str) -> None:
        self.log.append(sql)
        if self.fail_on and sql.startswith(self.fail_on):
            raise FakeRedshiftError(f"{self.fail_on} failed\nDETAIL: injected")
        self._row = None
        if sql.startswith("SELECT COUNT(*), SUM(revenue)"):
            self._row = (9853, Decimal("184239.83"), 6, 12, 35, 7, 14)
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
    state: dict[str, Any] = {"fail_on": None, "written": {}}

    def connect(**settings: Any) -> FakeConnection:
        state["settings"] = settings
        state["connection"] = FakeConnection(state["fail_on"])
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
    merge_sql = merge.merge_statements(())
    first = load.index(merge_sql[0])
    assert load[first : first + len(merge_sql)] == merge_sql
    assert all(s.startswith("DROP TABLE IF EXISTS stage_") for s in load[-4:])
    assert (result.rows, result.files) == (9853, 2)


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
