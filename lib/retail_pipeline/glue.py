"""How the batch job is defined on AWS Glue 5.0 and as an EMR step: the request bodies that
`make package` writes (dist/glue-job.json, dist/emr-add-steps.json) and infra/template.yaml
mirrors.

No getResolvedOptions is needed: Glue hands a job run its arguments in sys.argv as
`--name value` pairs, its own (--JOB_ID, --JOB_RUN_ID, --JOB_NAME, --TempDir,
--job-bookmark-option, ...) and the job's (--config, --input, --output, --run-id, ...). The
job's argparse reads its own; of the rest only Glue's documented job parameters
(`GLUE_OWN_ARGUMENTS`) are tolerated, anything else stops the job with exit code 2
(`cli.split_platform_arguments`). An EMR step hands the script exactly the arguments the step
lists (spark-submit keeps its own), so EMR adds none. Job argument names here are plain
words, so getResolvedOptions could read them too.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

GLUE_VERSION = "5.0"  # Spark 3.5, Python 3.11, Java 17
GLUE_JOB_NAME = "retail-pipeline-batch"
PLACEHOLDER_ROLE = "arn:aws:iam::123456789012:role/retail-pipeline-glue"
PLACEHOLDER_CLUSTER = "j-REPLACE_WITH_CLUSTER_ID"
PLACEHOLDER_SPARK_EVENTS = "s3://example-retail-reports/spark-events/"
# The interpreter the EMR bootstrap (infra/emr/bootstrap.sh) installs: EMR 7's own python3 is 3.9.
EMR_PYTHON = "/usr/bin/python3.11"

# The job parameters Glue documents ("AWS Glue job parameters") and those it adds to each run:
# the job must tolerate them in its sys.argv, never define them. Each takes a value.
GLUE_OWN_ARGUMENTS = frozenset(
    {
        # Added by Glue to every run.
        "--JOB_ID",
        "--JOB_RUN_ID",
        "--JOB_NAME",
        "--SECURITY_CONFIGURATION",
        "--encryption-type",
        "--job-bookmark-from",
        "--job-bookmark-to",
        "--RedshiftTempDir",
        # Documented job parameters.
        "--TempDir",
        "--additional-python-modules",
        "--auto-scale-within-microbatch",
        "--class",
        "--conf",
        "--continuous-log-conversionPattern",
        "--continuous-log-logGroup",
        "--continuous-log-logStreamPrefix",
        "--customer-driver-env-vars",
        "--customer-executor-env-vars",
        "--datalake-formats",
        "--disable-proxy-v2",
        "--enable-auto-scaling",
        "--enable-continuous-cloudwatch-log",
        "--enable-continuous-log-filter",
        "--enable-glue-datacatalog",
        "--enable-job-insights",
        "--enable-lakeformation-fine-grained-access",
        "--enable-metrics",
        "--enable-observability-metrics",
        "--enable-rename-algorithm-v2",
        "--enable-s3-parquet-optimized-committer",
        "--enable-spark-ui",
        "--executor-cores",
        "--extra-files",
        "--extra-jars",
        "--extra-py-files",
        "--job-bookmark-option",
        "--job-language",
        "--python-modules-installer-option",
        "--scriptLocation",
        "--spark-event-logs-path",
        "--use-postgres-driver",
        "--user-jars-first",
    }
)


def additional_python_modules(wheel_uri: str, pins: Sequence[str]) -> str:
    """Glue's --additional-python-modules value: our wheel on S3, then the third-party pins
    its `batch` extra needs (pip installs the wheel's core dependencies itself). Glue splits the
    value on commas, so a pin may not hold one."""
    entries = [wheel_uri, *pins]
    bad = [entry for entry in entries if "," in entry or not entry.strip()]
    if bad:
        raise ValueError(f"cannot pass {bad!r} in --additional-python-modules (comma-separated)")
    return ",".join(entries)


def glue_job(
    artifacts_uri: str,
    modules: str,
    *,
    version: str,
    input_uri: str,
    output_uri: str,
    temp_dir: str,
    role: str = PLACEHOLDER_ROLE,
    spark_event_logs: str = PLACEHOLDER_SPARK_EVENTS,
) -> dict[str, Any]:
    """The CreateJob request (`aws glue create-job --cli-input-json`) for the batch job."""
    return {
        "Name": GLUE_JOB_NAME,
        "Description": f"retail-pipeline {version}: raw CSV -> curated Parquet, quarantine, reports",
        "Role": role,
        "GlueVersion": GLUE_VERSION,
        "Command": {
            "Name": "glueetl",
            "ScriptLocation": f"{artifacts_uri}/jobs/batch_etl.py",
            "PythonVersion": "3",
        },
        "DefaultArguments": glue_default_arguments(
            artifacts_uri,
            modules,
            input_uri=input_uri,
            output_uri=output_uri,
            temp_dir=temp_dir,
            spark_event_logs=spark_event_logs,
        ),
        # One run at a time per output folder (the publish step's rule).
        "ExecutionProperty": {"MaxConcurrentRuns": 1},
        "MaxRetries": 0,
        "Timeout": 60,
        "WorkerType": "G.1X",
        "NumberOfWorkers": 2,
    }


def glue_default_arguments(
    artifacts_uri: str,
    modules: str,
    *,
    input_uri: str,
    output_uri: str,
    temp_dir: str,
    spark_event_logs: str = PLACEHOLDER_SPARK_EVENTS,
) -> dict[str, str]:
    return {
        "--job-language": "python",
        # The wheel and every third-party distribution its batch extra needs, each pinned to
        # the version the tests ran with (dist/constraints.txt): nothing resolved afresh.
        "--additional-python-modules": modules,
        "--config": f"{artifacts_uri}/configs/glue.yaml",
        "--input": input_uri,
        "--output": output_uri,
        "--TempDir": temp_dir,
        "--job-bookmark-option": "job-bookmark-disable",  # the job tracks its own runs
        "--enable-metrics": "true",
        "--enable-continuous-cloudwatch-log": "true",
        # The Spark UI's event logs, for the Spark history server.
        "--enable-spark-ui": "true",
        "--spark-event-logs-path": spark_event_logs,
        # JSON log lines and CloudWatch embedded-metric-format records on stdout.
        "--log-format": "json",
        "--metrics-to": "stdout",
    }


def emr_add_steps(
    artifacts_uri: str, *, input_uri: str, output_uri: str, cluster_id: str = PLACEHOLDER_CLUSTER
) -> dict[str, Any]:
    """The AddJobFlowSteps request (`aws emr add-steps --cli-input-json`, boto3's
    add_job_flow_steps, Step Functions): spark-submit of jobs/batch_etl.py with the package
    as --py-files, on a cluster bootstrapped with infra/emr/bootstrap.sh."""
    spark_submit = [
        *("spark-submit", "--deploy-mode", "cluster"),
        *("--conf", f"spark.yarn.appMasterEnv.PYSPARK_PYTHON={EMR_PYTHON}"),
        *("--conf", f"spark.executorEnv.PYSPARK_PYTHON={EMR_PYTHON}"),
        *("--py-files", f"{artifacts_uri}/retail_pipeline.zip"),
        f"{artifacts_uri}/jobs/batch_etl.py",
        *("--config", f"{artifacts_uri}/configs/emr.yaml"),
        *("--input", input_uri, "--output", output_uri),
        *("--log-format", "json"),
    ]
    return {
        "JobFlowId": cluster_id,
        "Steps": [
            {
                "Name": "retail-pipeline batch",
                "ActionOnFailure": "CONTINUE",
                "HadoopJarStep": {"Jar": "command-runner.jar", "Args": spark_submit},
            }
        ],
    }
