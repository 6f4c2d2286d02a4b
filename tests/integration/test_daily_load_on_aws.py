"""The daily flow's load step (retail_pipeline.orchestration) on a moto server: a batch run's
report and curated version on S3 loaded through the Redshift Data API, and the streamed output
registered in the Glue catalog and loaded month by month. The Data API is `FakeDataApi`, whose
sessions run the loader's statements on DuckDB."""

from __future__ import annotations

import io
import json
from datetime import datetime
from decimal import Decimal
from typing import Any

import boto3
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from retail_pipeline import orchestration
from retail_pipeline.warehouse import data_api
from retail_pipeline.warehouse.files import CURATED_SCHEMA
from retail_pipeline_dev.stream_local.moto import MotoServer
from tests.data_api_fake import FakeDataApi

pytestmark = pytest.mark.integration

BUCKET = "retail-curated"
RUN_ID = "jr_0123456789abcdef"
SOURCE = "s3://retail-raw/incoming/2010-12-01.csv"
ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
    "BATCH_OUTPUT": f"s3://{BUCKET}/batch",
    "STREAMED_CURATED": f"s3://{BUCKET}/streamed/curated",
    "STREAMED_LOADS": f"s3://{BUCKET}/streamed/_loads",
    "CATALOG_DATABASE": "retail_dev",
    "STREAMED_TABLE": "streamed_invoice_lines",
    "REDSHIFT_WORKGROUP": "retail-dev",
    "REDSHIFT_DATABASE": "retail",
    "REDSHIFT_IAM_ROLE": "arn:aws:iam::123456789012:role/retail-copy",
    "RETAIL_LOG_FORMAT": "json",
    "RETAIL_METRICS_TO": "stdout",
}


def lines(invoice: str, count: int, *, source_file: str, run_id: str) -> pa.Table:
    rows = [
        {
            "invoice_no": invoice,
            "stock_code": f"8512{n}A",
            "description": "WHITE HANGING HEART T-LIGHT HOLDER",
            "quantity": 6,
            "unit_price": Decimal("2.5500"),
            "revenue": Decimal("15.3000"),
            "invoice_ts": datetime(2010, 12, 1, 8, 26),
            "customer_id": "17850",
            "country": "United Kingdom",
            "source_file": source_file,
            "run_id": run_id,
        }
        for n in range(count)
    ]
    return pa.Table.from_pylist(rows, schema=CURATED_SCHEMA)


def put_parquet(s3: Any, key: str, table: pa.Table) -> str:
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    s3.put_object(Bucket=BUCKET, Key=key, Body=buffer.getvalue())
    return f"s3://{BUCKET}/{key}"


@pytest.fixture
def aws(moto: MotoServer, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    for name, value in {**ENV, "AWS_ENDPOINT_URL": moto.url}.items():
        monkeypatch.setenv(name, value)
    s3, glue = boto3.client("s3"), boto3.client("glue")
    for bucket in [b["Name"] for b in s3.list_buckets().get("Buckets", [])]:  # a fresh lake per test
        for item in s3.list_objects_v2(Bucket=bucket).get("Contents", []):
            s3.delete_object(Bucket=bucket, Key=item["Key"])
        s3.delete_bucket(Bucket=bucket)
    for database in glue.get_databases()["DatabaseList"]:
        glue.delete_database(Name=database["Name"])
    s3.create_bucket(Bucket=BUCKET)
    glue.create_database(DatabaseInput={"Name": "retail_dev"})
    columns = [{"Name": f.name, "Type": "string"} for f in CURATED_SCHEMA]
    glue.create_table(
        DatabaseName="retail_dev",
        TableInput={
            "Name": "streamed_invoice_lines",
            "PartitionKeys": [
                {"Name": "invoice_year", "Type": "int"},
                {"Name": "invoice_month", "Type": "int"},
            ],
            "StorageDescriptor": {"Columns": columns, "Location": f"s3://{BUCKET}/streamed/curated/"},
        },
    )
    fake = FakeDataApi()
    monkeypatch.setattr(data_api, "data_api_client", lambda target: fake)
    return {"s3": s3, "glue": glue, "data_api": fake}


def publish_batch_run(s3: Any) -> None:
    """What a batch run on S3 leaves: its month version and its own report."""
    root = f"curated_versions/{RUN_ID}"
    put_parquet(
        s3,
        f"batch/{root}/invoice_year=2010/invoice_month=12/part-00000.snappy.parquet",
        lines("536365", 3, source_file=SOURCE, run_id=RUN_ID),
    )
    report = {
        "run_id": RUN_ID,
        "status": "succeeded",
        "published": 3,
        "published_revenue": "45.9000",
        "sources": [SOURCE],
        "curated_partitions": ["invoice_year=2010/invoice_month=12"],
        "curated_root": root,
    }
    s3.put_object(Bucket=BUCKET, Key=f"batch/reports/runs/{RUN_ID}.json", Body=json.dumps(report).encode())


def fact_sales(fake: FakeDataApi) -> list[tuple[Any, ...]]:
    return fake.database.execute(
        "SELECT invoice_no, COUNT(*), SUM(revenue) FROM fact_sales GROUP BY invoice_no ORDER BY invoice_no"
    ).fetchall()


def test_the_handler_loads_the_batch_run_it_is_given_through_one_data_api_session(
    aws: dict[str, Any], capsys: pytest.CaptureFixture
) -> None:
    publish_batch_run(aws["s3"])
    answer = orchestration.handler({"action": "batch", "run_id": RUN_ID}, None)
    assert (answer["status"], answer["batch_id"], answer["rows"], answer["revenue"]) == (
        "loaded",
        RUN_ID,
        3,
        "45.9000",
    )
    fake: FakeDataApi = aws["data_api"]
    assert fact_sales(fake) == [("536365", 3, Decimal("45.9000"))]
    first, *rest = fake.requests
    assert (first["WorkgroupName"], first["Database"], first["SessionKeepAliveSeconds"]) == (
        "retail-dev",
        "retail",
        600,
    )
    assert "SecretArn" not in first  # IAM: the function's role is the database user
    assert {r["SessionId"] for r in rest} == set(fake.sessions) and len(fake.sessions) == 1
    sql = [r["Sql"] for r in fake.requests]
    assert sql.count("BEGIN") == 2 and sql.count("COMMIT") == 2 and "ROLLBACK" not in sql
    manifest = f"s3://{BUCKET}/batch/_warehouse_manifests/{RUN_ID}.manifest"
    assert any(s.startswith(f"COPY stage_lines\nFROM '{manifest}'") for s in sql)
    # Metrics on stdout (EMF), JSON log lines on stderr with the batch run's id.
    captured = capsys.readouterr()
    records = [json.loads(line) for line in captured.out.splitlines()]
    assert {r.get("LinesLoaded") for r in records} >= {3}
    logged = [json.loads(line) for line in captured.err.splitlines() if line.startswith("{")]
    (finished,) = [entry for entry in logged if entry["message"] == "Load finished"]
    assert (finished["run_id"], finished["rows"], finished["service"]) == (RUN_ID, 3, "retail-load")


def test_a_failed_statement_rolls_the_load_back_and_the_error_reaches_the_state_machine(
    aws: dict[str, Any],
) -> None:
    publish_batch_run(aws["s3"])
    fake: FakeDataApi = aws["data_api"]
    fake.fail_on = "INSERT INTO fact_sales"
    with pytest.raises(
        data_api.WarehouseError, match="rolled back: failed: ERROR: INSERT INTO fact_sales failed"
    ):
        orchestration.handler({"action": "batch", "run_id": RUN_ID}, None)
    assert [r["Sql"] for r in fake.requests][-1] == "ROLLBACK"
    assert fake.database.execute("SELECT COUNT(*) FROM fact_sales").fetchone() == (0,)


def test_streamed_months_are_registered_and_loaded_once_and_a_late_object_reloads_its_month(
    aws: dict[str, Any],
) -> None:
    s3, glue, fake = aws["s3"], aws["glue"], aws["data_api"]
    month = "streamed/curated/invoice_year=2010/invoice_month=12"
    first = f"{month}/batch-shardId-000000000000-1.parquet"
    put_parquet(s3, first, lines("536366", 2, source_file=f"s3://{BUCKET}/{first}", run_id="batch-1"))
    settings = orchestration.LoadSettings.from_env(ENV)

    loaded = orchestration.load_streamed(settings, s3=s3, glue=glue)
    assert (loaded["status"], loaded["objects"], loaded["months"], loaded["rows"]) == (
        "loaded",
        1,
        ["2010-12"],
        2,
    )
    (partition,) = glue.get_partitions(DatabaseName="retail_dev", TableName="streamed_invoice_lines")[
        "Partitions"
    ]
    assert partition["Values"] == ["2010", "12"]
    assert partition["StorageDescriptor"]["Location"] == f"s3://{BUCKET}/{month}/"
    assert fact_sales(fake) == [("536366", 2, Decimal("30.6000"))]

    again = orchestration.load_streamed(settings, s3=s3, glue=glue)
    assert again["status"] == "nothing_new" and fact_sales(fake) == [("536366", 2, Decimal("30.6000"))]

    # A later batch of the stream with more lines of the same invoice: the month loads again,
    # both objects together, so the invoice ends with all of its lines.
    second = f"{month}/batch-shardId-000000000000-9.parquet"
    put_parquet(s3, second, lines("536366", 1, source_file=f"s3://{BUCKET}/{second}", run_id="batch-9"))
    later = orchestration.load_streamed(settings, s3=s3, glue=glue)
    assert (later["objects"], later["rows"]) == (2, 3)
    assert fact_sales(fake) == [("536366", 3, Decimal("45.9000"))]
    ledger = json.loads(s3.get_object(Bucket=BUCKET, Key="streamed/_loads/loaded.json")["Body"].read())
    assert sorted(ledger["objects"]) == [f"s3://{BUCKET}/{first}", f"s3://{BUCKET}/{second}"]


def test_an_event_without_a_run_id_or_with_an_unknown_action_is_refused(aws: dict[str, Any]) -> None:
    with pytest.raises(orchestration.OrchestrationError, match=r"batch run's id"):
        orchestration.handler({"action": "batch"}, None)
    with pytest.raises(orchestration.OrchestrationError, match="unknown action"):
        orchestration.handler({"action": "vacuum"}, None)
