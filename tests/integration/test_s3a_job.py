"""The batch job on an S3 API (one moto server process for the module, reset before each test):
`spark-submit --py-files retail_pipeline.zip jobs/batch_etl.py` with Glue's own arguments, its
config read from s3://, reading and writing s3a://; and daily runs on s3a://, in the suite's
Spark session, whose months are new versions under curated_versions/<run_id>/ that the Glue
table's partitions switch to (moto's Glue API), the next run rewriting a month from where the
catalog points and old versions removed.

pyspark ships no S3A file system: the jars come from sagemaker-pyspark (hadoop-aws 3.3.1 and the
AWS SDK bundle it was built with), a test-only arrangement on Spark's Hadoop 3.3.4 client. On
EMR (EMRFS) and Glue, s3:// is the platform's own file system and needs no jars.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import urllib.request
from decimal import Decimal
from pathlib import Path
from typing import Any

import boto3
import pyarrow.parquet as pq
import pytest
import yaml
from pyspark.sql import SparkSession

from retail_pipeline import cli
from retail_pipeline.config import ConfigError, load_config
from retail_pipeline.packaging import build_py_files_zip
from retail_pipeline.warehouse import load_run
from retail_pipeline.warehouse.files import CURATED_SCHEMA
from retail_pipeline_dev.stream_local.moto import MotoServer
from tests.conftest import REPO_ROOT, SAMPLE_CSV, s3a_jar_paths
from tests.integration.daily_chain import sample_days, write_csv

pytestmark = pytest.mark.integration

INSTALL_HINT = "pip install --no-deps sagemaker-pyspark==1.4.5 (it carries hadoop-aws and the AWS SDK bundle)"
SIMPLE_CREDENTIALS = "org.apache.hadoop.fs.s3a.SimpleAWSCredentialsProvider"
KEYS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}
RAW, LAKE, ARTIFACTS = "retail-raw", "retail-lake", "retail-artifacts"
DATABASE, TABLE = "retail", "curated_invoice_lines"
GLUE_TYPES = {"string": "string", "int32": "int", "timestamp[us]": "timestamp"}


def s3a_jars() -> list[str]:
    """The S3A jars from sagemaker-pyspark; the test is skipped (failed under CI) without them."""
    jars = s3a_jar_paths()
    if len(jars) < 2:
        message = f"no S3A jars: {INSTALL_HINT}"
        if os.environ.get("CI"):
            pytest.fail(message)  # CI installs it: a missing jar must not pass as a skip
        pytest.skip(message)
    return jars


@pytest.fixture
def aws_env(moto: MotoServer, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """boto3 in this process (and the job's) pointed at moto, with test keys; moto emptied."""
    urllib.request.urlopen(urllib.request.Request(f"{moto.url}/moto-api/reset", method="POST"), timeout=30)
    env = {**KEYS, "AWS_ENDPOINT_URL": moto.url}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


@pytest.fixture
def s3(aws_env: dict[str, str]) -> Any:
    client = boto3.client("s3")
    for bucket in (RAW, LAKE, ARTIFACTS):
        if bucket not in {b["Name"] for b in client.list_buckets()["Buckets"]}:
            client.create_bucket(Bucket=bucket)
    return client


def test_a_config_loads_from_an_s3_uri_as_from_a_file(s3: Any) -> None:
    s3.upload_file(str(REPO_ROOT / "configs" / "glue.yaml"), ARTIFACTS, "configs/glue.yaml")

    loaded = load_config(f"s3://{ARTIFACTS}/configs/glue.yaml")

    assert loaded.source == f"s3://{ARTIFACTS}/configs/glue.yaml"
    expected = load_config(REPO_ROOT / "configs" / "glue.yaml")
    assert (loaded.env, loaded.spark, loaded.batch, loaded.quality) == (
        expected.env,
        expected.spark,
        expected.batch,
        expected.quality,
    )
    with pytest.raises(ConfigError, match=f"s3://{ARTIFACTS}/configs/missing.yaml"):
        load_config(f"s3://{ARTIFACTS}/configs/missing.yaml")


def s3a_config(moto_url: str, jars: list[str]) -> str:
    """configs/local.yaml with s3a:// locations and the S3A connector aimed at moto."""
    config = yaml.safe_load((REPO_ROOT / "configs" / "local.yaml").read_text())
    config["env"] = "s3a-moto"
    config["spark"]["master"] = "local[2]"
    config["spark"]["conf"] = {
        "spark.ui.enabled": False,
        "spark.ui.showConsoleProgress": False,
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.shuffle.partitions": 4,
        "spark.jars": ",".join(jars),
        "spark.hadoop.fs.s3a.endpoint": moto_url,
        "spark.hadoop.fs.s3a.path.style.access": True,
        "spark.hadoop.fs.s3a.connection.ssl.enabled": False,
        "spark.hadoop.fs.s3a.aws.credentials.provider": SIMPLE_CREDENTIALS,
        "spark.hadoop.fs.s3a.access.key": KEYS["AWS_ACCESS_KEY_ID"],
        "spark.hadoop.fs.s3a.secret.key": KEYS["AWS_SECRET_ACCESS_KEY"],
    }
    config["batch"]["input"] = f"s3a://{RAW}/incoming/"
    config["batch"]["output"] = f"s3a://{LAKE}/batch"
    return yaml.safe_dump(config, sort_keys=False)


def keys(s3: Any, bucket: str, prefix: str) -> list[str]:
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return sorted(item["Key"] for page in pages for item in page.get("Contents", []))


def test_the_batch_job_runs_end_to_end_on_s3a(
    s3: Any, moto: MotoServer, aws_env: dict, tmp_path: Path
) -> None:
    jars = s3a_jars()
    s3.upload_file(str(SAMPLE_CSV), RAW, f"incoming/{SAMPLE_CSV.name}")
    s3.put_object(Bucket=ARTIFACTS, Key="configs/s3a.yaml", Body=s3a_config(moto.url, jars).encode())
    py_files = build_py_files_zip(REPO_ROOT / "lib", tmp_path / "retail_pipeline.zip")
    glue_arguments = [
        *("--JOB_ID", "j_0123", "--JOB_RUN_ID", "jr_0123", "--JOB_NAME", "retail-pipeline-batch"),
        *("--TempDir", f"s3://{ARTIFACTS}/glue-temp/", "--job-bookmark-option", "job-bookmark-disable"),
        *("--enable-metrics", "true"),
    ]
    command = [
        str(Path(sys.executable).with_name("spark-submit")),
        *("--master", "local[2]", "--jars", ",".join(jars), "--py-files", str(py_files)),
        str(REPO_ROOT / "jobs" / "batch_etl.py"),
        *glue_arguments,
        *("--config", f"s3://{ARTIFACTS}/configs/s3a.yaml", "--run-id", "s3a-run-1"),
    ]
    # No PYTHONPATH: the package must come from the --py-files zip, as on EMR.
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    env.update(aws_env, SPARK_LOCAL_IP="127.0.0.1", PYSPARK_PYTHON=sys.executable)
    result = subprocess.run(
        command, check=False, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300
    )

    # spark-submit's PythonRunner sends the Python driver's stderr (our log) to its stdout.
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-5000:]
    assert "Ignoring arguments this job does not use: --JOB_ID j_0123 --JOB_RUN_ID jr_0123" in output
    report = json.loads(s3.get_object(Bucket=LAKE, Key="batch/reports/run_report.json")["Body"].read())
    assert report["run_id"] == "s3a-run-1"
    assert report["status"] == "succeeded"
    assert report["inputs"] == [f"s3a://{RAW}/incoming/{SAMPLE_CSV.name}"]
    assert (report["read"], report["published"], report["quarantined"]) == (9999, 9853, {})
    assert report["quality"]["success"] is True
    assert report["curated_partitions"] == ["invoice_year=2010/invoice_month=12"]
    curated = [key for key in keys(s3, LAKE, "batch/curated/") if key.endswith(".parquet")]
    assert curated and all(
        key.startswith("batch/curated/invoice_year=2010/invoice_month=12/") for key in curated
    )
    tables = [
        pq.read_table(io.BytesIO(s3.get_object(Bucket=LAKE, Key=key)["Body"].read())) for key in curated
    ]
    assert sum(table.num_rows for table in tables) == 9853
    revenue = sum((value for table in tables for value in table.column("revenue").to_pylist()), Decimal(0))
    assert revenue == Decimal(report["published_revenue"]) == Decimal("184239.83")
    assert keys(s3, LAKE, "batch/reports/runs/") == ["batch/reports/runs/s3a-run-1.json"]
    assert "batch/reports/data_docs/index.html" in keys(s3, LAKE, "batch/reports/data_docs/")
    assert keys(s3, LAKE, "batch/_staging/") == []


@pytest.fixture
def aws(s3: Any, aws_env: dict[str, str]) -> dict[str, str]:
    """The buckets and the Glue table of the curated lines (partitioned by month)."""
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
    return aws_env


@pytest.fixture
def s3a_spark(spark: SparkSession, moto: MotoServer) -> SparkSession:
    """The suite's session (the S3A jars on its class path) with s3a:// aimed at moto: what the
    s3a config's spark.hadoop.* settings do in a session of the job's own."""
    s3a_jars()
    hadoop = spark._jsc.hadoopConfiguration()
    settings = {
        "fs.s3a.endpoint": moto.url,
        "fs.s3a.path.style.access": "true",
        "fs.s3a.connection.ssl.enabled": "false",
        "fs.s3a.aws.credentials.provider": SIMPLE_CREDENTIALS,
        "fs.s3a.access.key": KEYS["AWS_ACCESS_KEY_ID"],
        "fs.s3a.secret.key": KEYS["AWS_SECRET_ACCESS_KEY"],
    }
    for key, value in settings.items():
        hadoop.set(key, value)
    return spark


def run_job(config: Path, run_id: str, capsys: pytest.CaptureFixture[str]) -> None:
    """`retail-pipeline batch` in this process: cli.main takes the suite's session."""
    argv = ["batch", "--config", str(config), "--incremental", "--run-id", run_id]
    argv += ["--catalog-database", DATABASE, "--catalog-table", TABLE]
    try:
        code = cli.main(argv)
    finally:
        cli.configure_logging()  # text again for the rest of the suite
    assert code == 0, capsys.readouterr().err[-4000:]


def rows_at(s3: Any, location: str) -> int:
    bucket, prefix = location.split("://", 1)[1].split("/", 1)
    return sum(
        pq.read_metadata(io.BytesIO(s3.get_object(Bucket=bucket, Key=key)["Body"].read())).num_rows
        for key in keys(s3, bucket, prefix)
        if key.endswith(".parquet")
    )


def test_daily_runs_on_s3_switch_catalog_partitions_to_new_versions(
    aws: dict[str, str], s3a_spark: SparkSession, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = yaml.safe_load(s3a_config(aws["AWS_ENDPOINT_URL"], s3a_jars()))
    config["quality"]["enabled"] = False  # about publishing; the gate runs in the spark-submit test
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
    run_job(config_path, "s3-day-1", capsys)
    first = f"s3a://{LAKE}/batch/curated_versions/s3-day-1/invoice_year=2010/invoice_month=12/"
    assert partition_location() == first
    report = json.loads(s3.get_object(Bucket=LAKE, Key="batch/reports/run_report.json")["Body"].read())
    assert report["curated_root"] == "curated_versions/s3-day-1"
    assert rows_at(s3, first) == report["published"] > 0
    assert keys(s3, LAKE, "batch/curated/") == []  # nothing a reader of raw paths half-sees
    day_one = report["published"]

    drop(1)
    run_job(config_path, "s3-day-2", capsys)
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
