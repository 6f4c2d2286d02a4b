"""The job as EMR and Glue start it: the step and job definitions, the arguments a Glue run
hands the script, and the per-platform configs."""

from __future__ import annotations

import pytest
from cfnlint.decode import decode

from retail_pipeline import cli, packaging
from retail_pipeline.config import load_config
from retail_pipeline.glue import (
    GLUE_OWN_ARGUMENTS,
    additional_python_modules,
    emr_add_steps,
    glue_default_arguments,
    glue_job,
)
from tests.conftest import REPO_ROOT

ARTIFACTS = "s3://artifacts/retail-pipeline/0.1.0"
WHEEL = f"{ARTIFACTS}/retail_pipeline-0.1.0-py3-none-any.whl"
RAW, OUTPUT, TEMP = "s3://raw/incoming/", "s3://curated/batch", "s3://reports/tmp/glue/"
# The stack's job runs incrementally and switches the partitions of the catalog table the stack
# creates; dist/glue-job.json may name no table (glue_default_arguments may add these or not).
STACK_CATALOG_ARGUMENTS = {"--incremental", "--catalog-database", "--catalog-table", "--lineage-url"}


def glue_run_argv(default_arguments: dict[str, str], run_arguments: dict[str, str]) -> list[str]:
    """sys.argv[1:] of a Glue job run: Glue's own run arguments, then the job's defaults with
    the run's arguments over them, each as `--name value`."""
    own = {"--JOB_ID": "j_1", "--JOB_RUN_ID": "jr_1", "--JOB_NAME": "retail-pipeline-batch"}
    merged = {**own, **default_arguments, **run_arguments}
    return [token for name, value in merged.items() for token in (name, value)]


def test_a_glue_run_passes_the_job_its_arguments_and_glue_s_are_ignored() -> None:
    defaults = glue_default_arguments(
        ARTIFACTS, additional_python_modules(WHEEL, []), input_uri=RAW, output_uri=OUTPUT, temp_dir=TEMP
    )
    argv = glue_run_argv(defaults, {"--input": "s3://raw/incoming/2011-12/", "--run-id": "rerun-1"})

    args, unknown = cli.build_parser().parse_known_args(["batch", *argv])

    assert (args.command, args.config) == ("batch", f"{ARTIFACTS}/configs/glue.yaml")
    assert (args.input, args.output, args.run_id) == ("s3://raw/incoming/2011-12/", OUTPUT, "rerun-1")
    ignored = {token for token in unknown if token.startswith("--")}
    assert ignored == {name for name in defaults if name in GLUE_OWN_ARGUMENTS} | {
        "--JOB_ID",
        "--JOB_RUN_ID",
        "--JOB_NAME",
    }


def test_the_emr_step_spark_submits_the_entry_point_with_the_package_as_py_files() -> None:
    (step,) = emr_add_steps(ARTIFACTS, input_uri=RAW, output_uri=OUTPUT)["Steps"]
    assert step["HadoopJarStep"]["Jar"] == "command-runner.jar"
    command = step["HadoopJarStep"]["Args"]
    script = command.index(f"{ARTIFACTS}/jobs/batch_etl.py")
    submit_options = command[:script]
    assert submit_options[0] == "spark-submit"
    assert submit_options[submit_options.index("--py-files") + 1] == f"{ARTIFACTS}/retail_pipeline.zip"
    assert "spark.executorEnv.PYSPARK_PYTHON=/usr/bin/python3.11" in submit_options

    args, unknown = cli.build_parser().parse_known_args(["batch", *command[script + 1 :]])

    assert (args.config, args.input, args.output, unknown) == (
        f"{ARTIFACTS}/configs/emr.yaml",
        RAW,
        OUTPUT,
        [],
    )


def test_the_glue_job_definition_and_the_template_pass_the_same_arguments() -> None:
    job = glue_job(ARTIFACTS, "modules", version="0.1.0", input_uri=RAW, output_uri=OUTPUT, temp_dir=TEMP)
    assert (job["GlueVersion"], job["Command"]["Name"], job["ExecutionProperty"]) == (
        "5.0",
        "glueetl",
        {"MaxConcurrentRuns": 1},
    )
    template, _ = decode(str(REPO_ROOT / "infra" / "template.yaml"))
    stack_job = template["Resources"]["BatchJob"]["Properties"]
    stack_arguments = set(stack_job["DefaultArguments"])
    assert stack_arguments >= STACK_CATALOG_ARGUMENTS
    assert stack_arguments - STACK_CATALOG_ARGUMENTS == set(job["DefaultArguments"]) - STACK_CATALOG_ARGUMENTS
    for key in ("GlueVersion", "WorkerType", "NumberOfWorkers", "MaxRetries", "ExecutionProperty"):
        assert stack_job[key] == job[key], key


@pytest.mark.parametrize("pin", ["PyYAML>=6.0,<7", " "])
def test_a_module_glue_cannot_pass_is_refused(pin: str) -> None:
    with pytest.raises(ValueError, match="additional-python-modules"):
        additional_python_modules(WHEEL, ["great-expectations==1.24.1", pin])


@pytest.mark.parametrize("platform", ["emr", "glue"])
def test_the_platform_configs_leave_the_master_to_the_platform_and_check_like_local(platform: str) -> None:
    config = load_config(REPO_ROOT / "configs" / f"{platform}.yaml")
    local = load_config(REPO_ROOT / "configs" / "local.yaml")
    assert (config.env, config.spark.master) == (platform, None)
    assert config.spark.conf["spark.sql.session.timeZone"] == "UTC"
    assert not any(key.startswith(("spark.driver.", "spark.executor.")) for key in config.spark.conf)
    assert config.batch.input.startswith("s3://") and config.batch.output.startswith("s3://")
    assert config.quality == local.quality


def test_the_stack_s_glue_job_installs_the_tested_version_of_every_distribution_it_needs() -> None:
    """The template lists the wheel, then the batch closure pinned (packaging.glue_pins of
    this environment, the tested one): after a dependency changes, put the new list there."""
    template, _ = decode(str(REPO_ROOT / "infra" / "template.yaml"))
    modules = template["Resources"]["BatchJob"]["Properties"]["DefaultArguments"][
        "--additional-python-modules"
    ]
    separator, (wheel, *pins) = modules["Fn::Join"]
    assert separator == "," and wheel["Fn::Sub"].endswith(
        "/retail_pipeline-${PackageVersion}-py3-none-any.whl"
    )
    expected = packaging.glue_pins(packaging.installed_requirements(["batch"]))
    assert pins == expected, "\n".join(expected)
    names = {pin.split("==")[0] for pin in pins}
    assert {"great-expectations", "openlineage-python", "pyyaml", "numpy"} <= names
    assert not names & {"pyspark", "py4j"}  # Glue's own Spark
