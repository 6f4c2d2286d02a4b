"""How the batch job is defined on AWS Glue 5.0 and as an EMR step: the request bodies that
`make package` writes (dist/glue-job.json, dist/emr-add-steps.json) and infra/template.yaml
mirrors.

No getResolvedOptions is needed: Glue hands a job run its arguments in sys.argv as
`--name value` pairs, its own (--JOB_ID, --JOB_RUN_ID, --JOB_NAME, --TempDir,
--job-bookmark-option, ...) and the job's (--config, --input, --output, --run-id), and the
job's argparse reads its own and ignores the rest (`cli.main`). Job argument names here are
plain words, so getResolvedOptions could read them too.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

GLUE_VERSION = "5.0"  # Spark 3.5, Python 3.11, Java 17
GLUE_JOB_NAME = "retail-pipeline-batch"
PLACEHOLDER_ROLE = "arn:aws:iam::123456789012:role/retail-pipeline-glue"
PLACEHOLDER_CLUSTER = "j-REPLACE_WITH_CLUSTER_ID"
# The interpreter the EMR bootstrap (infra/emr/bootstrap.sh) installs: EMR 7's own python3 is 3.9.
EMR_PYTHON = "/usr/bin/python3.11"

# Arguments Glue itself passes or acts on: the job must tolerate them, never define them.
GLUE_OWN_ARGUMENTS = frozenset(
    {
        "--JOB_ID",
        "--JOB_RUN_ID",
        "--JOB_NAME",
        "--TempDir",
        "--job-bookmark-option",
        "--job-language",
        "--enable-metrics",
        "--enable-continuous-cloudwatch-log",
        "--enable-spark-ui",
        "--spark-event-logs-path",
        "--additional-python-modules",
        "--extra-py-files",
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
            artifacts_uri, modules, input_uri=input_uri, output_uri=output_uri, temp_dir=temp_dir
        ),
        # One run at a time per output folder (the publish step's rule).
        "ExecutionProperty": {"MaxConcurrentRuns": 1},
        "MaxRetries": 0,
        "Timeout": 60,
        "WorkerType": "G.1X",
        "NumberOfWorkers": 2,
    }


def glue_default_arguments(
    artifacts_uri: str, modules: str, *, input_uri: str, output_uri: str, temp_dir: str
) -> dict[str, str]:
    return {
        "--job-language": "python",
        "--additional-python-modules": modules,
        "--config": f"{artifacts_uri}/configs/glue.yaml",
        "--input": input_uri,
        "--output": output_uri,
        "--TempDir": temp_dir,
        "--job-bookmark-option": "job-bookmark-disable",  # the job tracks its own runs
        "--enable-metrics": "true",
        "--enable-continuous-cloudwatch-log": "true",
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
