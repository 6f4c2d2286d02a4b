"""The catalog switch and the version store against a moto server process (Glue and S3 over
HTTP): partitions created, moved and deleted at their version folders, re-runs that change
nothing, failures named, and only old versions no partition points to removed."""

from __future__ import annotations

import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from retail_pipeline.catalog import (
    CatalogError,
    CatalogTable,
    current_locations,
    expired_versions,
    month_location,
    remove_versions,
    run_ids_in,
    switch_partitions,
)
from retail_pipeline_dev.stream_local.moto import MotoServer

pytestmark = pytest.mark.integration

KEYS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing", "region_name": "us-east-1"}
OUTPUT = "s3://retail-lake/batch"
DELETE_OBJECTS_LIMIT = 1000  # keys per S3 DeleteObjects call (moto does not enforce it)
PARQUET = {
    "InputFormat": "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat",
    "OutputFormat": "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat",
    "SerdeInfo": {"SerializationLibrary": "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"},
}
COLUMNS = [
    {"Name": "invoice_no", "Type": "string"},
    {"Name": "quantity", "Type": "int"},
    {"Name": "revenue", "Type": "decimal(23,4)"},
    {"Name": "invoice_ts", "Type": "timestamp"},
]


@pytest.fixture
def glue(moto: MotoServer) -> Any:
    return boto3.client("glue", endpoint_url=moto.url, **KEYS)


@pytest.fixture
def s3(moto: MotoServer) -> Any:
    return boto3.client("s3", endpoint_url=moto.url, **KEYS)


@pytest.fixture
def table(glue: Any) -> CatalogTable:
    """A fresh database with the template's curated table: Parquet, invoice_year/invoice_month."""
    database = f"retail_{uuid.uuid4().hex[:8]}"
    glue.create_database(DatabaseInput={"Name": database})
    glue.create_table(
        DatabaseName=database,
        TableInput={
            "Name": "curated_invoice_lines",
            "TableType": "EXTERNAL_TABLE",
            "Parameters": {"classification": "parquet", "EXTERNAL": "TRUE"},
            "PartitionKeys": [
                {"Name": "invoice_year", "Type": "int"},
                {"Name": "invoice_month", "Type": "int"},
            ],
            "StorageDescriptor": {"Location": f"{OUTPUT}/curated/", "Columns": COLUMNS, **PARQUET},
        },
    )
    return CatalogTable(database, "curated_invoice_lines")


def calls_of(client: Any) -> list[tuple[str, dict[str, Any]]]:
    """Every operation the client sends from now on, with its parameters (as sent to moto)."""
    sent: list[tuple[str, dict[str, Any]]] = []
    client.meta.events.register(
        "provide-client-params.*.*", lambda params, model, **_: sent.append((model.name, params))
    )
    return sent


def partition(glue: Any, table: CatalogTable, year: int, month: int) -> dict[str, Any]:
    found = glue.get_partition(
        DatabaseName=table.database, TableName=table.table, PartitionValues=[str(year), str(month)]
    )
    return dict(found["Partition"])


def test_a_first_switch_registers_each_month_at_its_version_with_the_table_s_format(
    glue: Any, table: CatalogTable
) -> None:
    locations = {(2011, month): month_location(OUTPUT, "run-1", 2011, month) for month in (1, 2, 12)}

    switch_partitions(glue, table, locations)

    assert current_locations(glue, table) == locations
    assert locations[(2011, 1)] == f"{OUTPUT}/curated_versions/run-1/invoice_year=2011/invoice_month=1/"
    registered = partition(glue, table, 2011, 12)
    assert registered["Values"] == ["2011", "12"]  # as Spark names the folders: no zero padding
    storage = registered["StorageDescriptor"]
    assert storage["Columns"] == COLUMNS
    assert {key: storage[key] for key in PARQUET} == PARQUET


def test_a_second_switch_moves_one_month_deletes_another_and_leaves_the_third(
    glue: Any, table: CatalogTable
) -> None:
    first = {(2011, month): month_location(OUTPUT, "run-1", 2011, month) for month in (1, 2, 3)}
    switch_partitions(glue, table, first)
    untouched = partition(glue, table, 2011, 3)
    sent = calls_of(glue)

    switch_partitions(glue, table, {(2011, 1): month_location(OUTPUT, "run-2", 2011, 1), (2011, 2): None})

    assert partition(glue, table, 2011, 1)["StorageDescriptor"]["Location"] == month_location(
        OUTPUT, "run-2", 2011, 1
    )
    with pytest.raises(ClientError, match="EntityNotFoundException"):
        partition(glue, table, 2011, 2)
    assert partition(glue, table, 2011, 3) == untouched
    assert current_locations(glue, table) == {
        (2011, 1): month_location(OUTPUT, "run-2", 2011, 1),
        (2011, 3): first[(2011, 3)],
    }
    batch_calls = [name for name, _ in sent if name.startswith("Batch")]
    assert batch_calls == ["BatchUpdatePartition", "BatchDeletePartition"]  # one call each, no create


def test_switching_to_the_same_locations_again_sends_no_change(glue: Any, table: CatalogTable) -> None:
    locations = {(2010, 12): month_location(OUTPUT, "run-1", 2010, 12), (2011, 1): None}
    switch_partitions(glue, table, locations)
    before = current_locations(glue, table)
    sent = calls_of(glue)

    # The re-run names the folder without its trailing slash: still the same location.
    switch_partitions(glue, table, {(2010, 12): locations[(2010, 12)].rstrip("/"), (2011, 1): None})

    assert [name for name, _ in sent] == ["GetTable", "GetPartitions"]
    assert current_locations(glue, table) == before == {(2010, 12): locations[(2010, 12)]}


def test_many_months_go_in_batches_within_the_glue_api_limits(glue: Any, table: CatalogTable) -> None:
    months = [(year, month) for year in range(2001, 2011) for month in range(1, 13)]  # 120
    sent = calls_of(glue)

    switch_partitions(glue, table, {m: month_location(OUTPUT, "run-1", *m) for m in months})
    switch_partitions(glue, table, dict.fromkeys(months))

    sizes = [
        (name, len(next(v for v in params.values() if isinstance(v, list))))
        for name, params in sent
        if name.startswith("Batch")
    ]
    # The Glue API reference's limits (moto does not enforce them): 100 per create, 25 per delete.
    assert sizes == [("BatchCreatePartition", 100), ("BatchCreatePartition", 20)] + [
        ("BatchDeletePartition", 25)
    ] * 4 + [("BatchDeletePartition", 20)]
    assert current_locations(glue, table) == {}


def test_a_table_that_does_not_exist_raises_a_catalog_error_naming_it(glue: Any, table: CatalogTable) -> None:
    missing = CatalogTable(table.database, "no_such_table")

    with pytest.raises(CatalogError, match=rf"{table.database}\.no_such_table.*EntityNotFoundException"):
        switch_partitions(glue, missing, {(2011, 1): month_location(OUTPUT, "run-1", 2011, 1)})


def test_partitions_a_batch_refuses_are_named_in_the_catalog_error(
    glue: Any, moto: MotoServer, table: CatalogTable
) -> None:
    switch_partitions(glue, table, {(2011, 4): month_location(OUTPUT, "run-1", 2011, 4)})
    # Another writer acts between this switch's read and its batch calls: it registers
    # 2011/3 and drops 2011/4, so the create and the update come back in the Errors lists.
    other = boto3.client("glue", endpoint_url=moto.url, **KEYS)
    names = {"DatabaseName": table.database, "TableName": table.table}

    def race(**_: Any) -> None:
        other.create_partition(
            **names, PartitionInput={"Values": ["2011", "3"], "StorageDescriptor": {"Location": "s3://x/"}}
        )
        other.delete_partition(**names, PartitionValues=["2011", "4"])

    glue.meta.events.register_first("before-call.glue.BatchCreatePartition", race)
    new = {(2011, month): month_location(OUTPUT, "run-2", 2011, month) for month in (3, 4, 5)}

    with pytest.raises(CatalogError) as raised:
        switch_partitions(glue, table, new)

    message = str(raised.value)
    assert f"catalog table {table.database}.{table.table}" in message
    assert "create invoice_year=2011/invoice_month=3 (AlreadyExistsException" in message
    assert "update invoice_year=2011/invoice_month=4 (EntityNotFoundException" in message
    assert "invoice_month=5" not in message
    assert current_locations(glue, table)[(2011, 5)] == new[(2011, 5)]  # the rest of the batch went through


def put(s3: Any, key: str) -> None:
    s3.put_object(Bucket="retail-lake", Key=key, Body=b"PAR1")


def keys_under(s3: Any, prefix: str) -> set[str]:
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket="retail-lake", Prefix=prefix)
    return {item["Key"] for page in pages for item in page.get("Contents", [])}


def test_only_old_versions_no_partition_points_to_are_removed(
    s3: Any, glue: Any, table: CatalogTable
) -> None:
    s3.create_bucket(Bucket="retail-lake")
    version = "batch/curated_versions"
    old_files = [
        f"{version}/run-{run}/invoice_year=2011/invoice_month={m}/part-0.parquet"
        for run in (1, 2, 3)
        for m in (1, 2)
    ]
    # run-1 is big enough to need more than one DeleteObjects call.
    old_files += [
        f"{version}/run-1/invoice_year=2011/invoice_month=3/part-{n}.parquet"
        for n in range(DELETE_OBJECTS_LIMIT)
    ]
    old_files += [
        f"{version}/run-5/invoice_year=2011/invoice_month=1/part-0.parquet",
        "batch/curated/_manifest.json",
    ]
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda key: put(s3, key), old_files))
    time.sleep(1.1)
    cut = datetime.now(UTC)
    time.sleep(1.1)
    put(s3, f"{version}/run-4/invoice_year=2011/invoice_month=1/part-0.parquet")  # young, not yet due
    put(s3, f"{version}/run-5/invoice_year=2011/invoice_month=2/part-0.parquet")  # one young file keeps run-5
    switch_partitions(glue, table, {(2011, m): month_location(OUTPUT, "run-3", 2011, m) for m in (1, 2)})
    keep = run_ids_in(OUTPUT, current_locations(glue, table).values())
    assert keep == {"run-3"}

    expired = expired_versions(s3, OUTPUT, keep=keep, older_than=cut)
    sent = calls_of(s3)
    removed = remove_versions(s3, OUTPUT, expired)

    assert expired == ["run-1", "run-2"]
    assert removed == 2 + DELETE_OBJECTS_LIMIT + 2
    deletes = [len(params["Delete"]["Objects"]) for name, params in sent if name == "DeleteObjects"]
    assert deletes == [DELETE_OBJECTS_LIMIT, 2, 2]  # run-1 in two calls, run-2 in one
    assert keys_under(s3, f"{version}/run-1/") == keys_under(s3, f"{version}/run-2/") == set()
    left = {key.split("/")[2] for key in keys_under(s3, f"{version}/")}
    assert left == {"run-3", "run-4", "run-5"}
    assert keys_under(s3, "batch/curated/") == {"batch/curated/_manifest.json"}
    assert expired_versions(s3, OUTPUT, keep=keep, older_than=cut + timedelta(days=1)) == ["run-4", "run-5"]


@pytest.mark.parametrize("run_id", ["", "run-1/..", ".."])
def test_a_run_id_that_could_name_other_versions_is_refused(s3: Any, run_id: str) -> None:
    with pytest.raises(ValueError, match="not a run id"):
        remove_versions(s3, OUTPUT, [run_id])
