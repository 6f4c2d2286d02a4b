"""Daily runs on S3 (s3a:// on a moto server process): each run's months are new versions under
curated_versions/<run_id>/, the Glue table's partitions switch to them (moto's Glue API), the
next run rewrites a month from where the catalog points, and old versions are removed."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import boto3
import pyarrow.parquet as pq
import pytest
import yaml

from retail_pipeline.warehouse import load_run
from retail_pipeline.warehouse.files import CURATED_SCHEMA
from retail_pipeline_dev.stream_local.moto import MotoServer
from tests.conftest import REPO_ROOT
from tests.integration.test_daily import sample_days, write_csv
from tests.integration.test_s3a_job import KEYS, LAKE, RAW, keys, s3a_config, s3a_jars

pytestmark = pytest.mark.integration

DATABASE, TABLE = "retail", "curated_invoice_lines"
GLUE_TYPES = {"string": "string", "int32": "int", "timestamp[us]": "timestamp"}


@pytest.fixture(scope="module")
def moto() -> Any:
    with MotoServer() as server:
        yield server


@pytest.fixture
def aws(moto: MotoServer, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    env = {**KEYS, "AWS_ENDPOINT_URL": moto.url}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    s3 = boto3.client("s3")
    for bucket in (RAW, LAKE):
        s3.create_bucket(Bucket=bucket)
    glue = boto3.client("glue")
    glue.create_database(DatabaseInput={"Name": DATABASE})
    columns = [
        {"Name": f.name, "Type": GLUE_TYPES.get(str(f.type), str(f.type).replace("128", ""))}
        for f in CURATED_SCHEMA
    ]
    glue.create_table(
        DatabaseName=DATABASE,
        TableInput={
            "Name": TABLE,
            "PartitionKeys": [
                {"Name": "invoice_year", "Type": "int"},
                {"Name": "invoice_month", "Type": "int"},
            ],
            "StorageDescriptor": {
                "Columns": columns,
                "Location": f"s3://{LAKE}/batch/curated/",
                "InputFormat": "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat",
                "OutputFormat": "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat",
                "SerdeInfo": {
                    "SerializationLibrary": "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"
                },
            },
        },
    )
    return env


def run_job(config: Path, env: dict[str, str], run_id: str) -> str:
    command = [
        sys.executable, "-m", "retail_pipeline", "batch", "--config", str(config), "--incremental",
        "--catalog-database", DATABASE, "--catalog-table", TABLE, "--run-id", run_id,
    ]  # fmt: skip
    full_env = {**os.environ, **env, "PYTHONPATH": str(REPO_ROOT / "lib"), "SPARK_LOCAL_IP": "127.0.0.1"}
    result = subprocess.run(command, check=False, capture_output=True, text=True, env=full_env, timeout=300)
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    return result.stderr


def rows_at(s3: Any, location: str) -> int:
    bucket, prefix = location.split("://", 1)[1].split("/", 1)
    return sum(
        pq.read_metadata(io.BytesIO(s3.get_object(Bucket=bucket, Key=key)["Body"].read())).num_rows
        for key in keys(s3, bucket, prefix)
        if key.endswith(".parquet")
    )


def test_daily_runs_on_s3_switch_catalog_partitions_to_new_versions(
    aws: dict[str, str], tmp_path: Path
) -> None:
    jars = s3a_jars()
    config = yaml.safe_load(s3a_config(aws["AWS_ENDPOINT_URL"], jars))
    config["quality"]["enabled"] = False  # about publishing; the gate runs in test_s3a_job
    config["batch"]["version_grace_hours"] = 0
    config_path = tmp_path / "s3a.yaml"
    config_path.write_text(yaml.safe_dump(config))
    s3, glue = boto3.client("s3"), boto3.client("glue")
    days = list(sample_days().items())

    def drop(index: int) -> None:
        day, rows = days[index]
        s3.upload_file(str(write_csv(tmp_path / f"{day}.csv", rows)), RAW, f"incoming/{day}.csv")

    def partition_location() -> str:
        partition = glue.get_partition(DatabaseName=DATABASE, TableName=TABLE, PartitionValues=["2010", "12"])
        return str(partition["Partition"]["StorageDescriptor"]["Location"])

    drop(0)
    run_job(config_path, aws, "s3-day-1")
    first = f"s3a://{LAKE}/batch/curated_versions/s3-day-1/invoice_year=2010/invoice_month=12/"
    assert partition_location() == first
    report = json.loads(s3.get_object(Bucket=LAKE, Key="batch/reports/run_report.json")["Body"].read())
    assert report["curated_root"] == "curated_versions/s3-day-1"
    assert rows_at(s3, first) == report["published"] > 0
    assert keys(s3, LAKE, "batch/curated/") == []  # nothing a reader of raw paths half-sees
    day_one = report["published"]

    drop(1)
    run_job(config_path, aws, "s3-day-2")
    second = f"s3a://{LAKE}/batch/curated_versions/s3-day-2/invoice_year=2010/invoice_month=12/"
    assert partition_location() == second
    report = json.loads(s3.get_object(Bucket=LAKE, Key="batch/reports/run_report.json")["Body"].read())
    assert report["skipped_inputs"] == [f"s3a://{RAW}/incoming/{days[0][0]}.csv"]
    # The month was rebuilt from the version the catalog pointed at: day one's lines kept.
    assert rows_at(s3, second) == day_one + report["published"]
    ledger = json.loads(s3.get_object(Bucket=LAKE, Key="batch/_ledger.json")["Body"].read())
    assert ledger["locations"] == {"2010-12": second.rstrip("/")}
    # Grace 0: the version no partition points to is gone; the current one stays.
    assert keys(s3, LAKE, "batch/curated_versions/s3-day-1/") == []
    assert keys(s3, LAKE, "batch/_staging/") == [] and keys(s3, LAKE, "batch/_LOCK") == []

    # The warehouse load reads the run's version folder.
    loaded = load_run(f"duckdb:///{tmp_path}/warehouse.duckdb", f"s3://{LAKE}/batch")
    assert loaded.rows == report["published"]
