"""Strict arguments: the job's own are parsed, Glue's documented job parameters are tolerated,
anything else exits 2 naming it; Glue's --JOB_RUN_ID is the run id."""

from __future__ import annotations

import argparse
import io
import json
import logging
import subprocess
import sys
from contextlib import redirect_stderr
from pathlib import Path
from typing import Any

import pytest

from retail_pipeline import cli
from retail_pipeline.glue import GLUE_OWN_ARGUMENTS, additional_python_modules, glue_default_arguments
from tests.conftest import REPO_ROOT

ARTIFACTS = "s3://artifacts/retail-pipeline/0.1.0"
GLUE_RUN = ["--JOB_ID", "j_1", "--JOB_RUN_ID", "jr_abc", "--JOB_NAME", "retail-pipeline-batch-dev"]


def parse(argv: list[str]) -> tuple[argparse.Namespace, dict[str, str]]:
    tokens, platform = cli.split_platform_arguments(argv)
    return cli.build_parser().parse_args(tokens), platform


def exit_code_and_error(argv: list[str], monkeypatch: pytest.MonkeyPatch) -> tuple[int, str]:
    """cli.main as a process runs it, stopping before any job runs."""

    def refuse(*args: Any, **kwargs: Any) -> int:
        raise AssertionError("the job must not run")

    monkeypatch.setattr(cli, "run_command", refuse)
    monkeypatch.setattr("retail_pipeline.warehouse.load_run", refuse)
    monkeypatch.setattr("retail_pipeline.warehouse.load_output", refuse)
    stderr = io.StringIO()
    with redirect_stderr(stderr), pytest.raises(SystemExit) as stopped:
        cli.main(argv)
    return int(str(stopped.value.code)), stderr.getvalue()


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["batch", "--ouptut", "s3://elsewhere/"], "--ouptut"),
        (["batch", *GLUE_RUN, "--catalog-databse", "retail"], "--catalog-databse"),
        (["batch", "--input", "a.csv", "stray"], "stray"),
        (["batch", "--JOB_NAMES", "x"], "--JOB_NAMES"),  # close to Glue's, not Glue's
        (["load", "--warehouse", "duckdb:///w.duckdb", "--run-reprot", "r.json"], "--run-reprot"),
    ],
)
def test_an_unknown_argument_exits_2_naming_it(
    argv: list[str], named: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    code, error = exit_code_and_error(argv, monkeypatch)
    assert code == 2
    assert "unrecognized arguments" in error and named in error


def test_glue_s_own_arguments_are_tolerated_and_the_job_s_are_read() -> None:
    defaults = glue_default_arguments(
        ARTIFACTS,
        additional_python_modules(f"{ARTIFACTS}/retail_pipeline-0.1.0-py3-none-any.whl", []),
        input_uri="s3://raw/incoming/",
        output_uri="s3://curated/batch",
        temp_dir="s3://reports/tmp/",
    )
    run = {**defaults, "--incremental": "true", "--catalog-database": "retail_dev", "--catalog-table": "t"}
    argv = ["batch", *GLUE_RUN, *(token for pair in run.items() for token in pair)]
    args, platform = parse(argv)
    assert (args.input, args.output, args.incremental) == ("s3://raw/incoming/", "s3://curated/batch", "true")
    assert (args.catalog_database, args.catalog_table, args.metrics_to) == ("retail_dev", "t", "stdout")
    assert platform["--JOB_RUN_ID"] == "jr_abc" and platform["--TempDir"] == "s3://reports/tmp/"
    assert set(platform) <= GLUE_OWN_ARGUMENTS


def test_glue_arguments_are_taken_as_name_value_or_name_equals_value_and_may_have_no_value() -> None:
    tokens, platform = cli.split_platform_arguments(
        ["--JOB_RUN_ID=jr_1", "--enable-glue-datacatalog", "--input", "x", "--conf", "spark.a=b"]
    )
    assert tokens == ["--input", "x"]
    assert platform == {"--JOB_RUN_ID": "jr_1", "--enable-glue-datacatalog": "", "--conf": "spark.a=b"}


@pytest.mark.parametrize(
    ("given", "expected"), [([], None), (["--incremental"], "true"), (["--incremental", "false"], "false")]
)
def test_incremental_takes_an_optional_true_or_false(given: list[str], expected: str | None) -> None:
    args, _ = parse(["batch", *given])
    assert args.incremental == expected


def test_the_run_id_is_glue_s_job_run_id_unless_one_is_given(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[str] = []

    def run_batch(args: argparse.Namespace, platform: dict[str, str]) -> int:
        seen.append(args.run_id or platform.get(cli.GLUE_RUN_ID) or "generated")
        return 0

    monkeypatch.setattr(cli, "run_batch", run_batch)
    assert cli.main(["batch", *GLUE_RUN]) == 0
    assert cli.main(["batch", *GLUE_RUN, "--run-id", "rerun-1"]) == 0
    assert cli.main(["batch"]) == 0
    assert seen == ["jr_abc", "rerun-1", "generated"]


def test_a_bad_log_format_exits_2() -> None:
    assert cli.main(["batch", "--log-format", "yaml"]) == 2


def test_the_job_scripts_reject_a_mistyped_flag_in_a_process_with_the_message_on_stderr() -> None:
    for script in ("batch_etl.py", "warehouse_load.py"):
        result = subprocess.run(
            [sys.executable, str(REPO_ROOT / "jobs" / script), "--JOB_NAME", "j", "--ouptut", "x"],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            env={"PYTHONPATH": str(REPO_ROOT / "lib"), "PATH": "/usr/bin:/bin"},
        )
        assert result.returncode == 2, (script, result.stderr)
        assert "unrecognized arguments: --ouptut x" in result.stderr
        assert "Traceback" not in result.stderr


def test_a_program_ends_with_its_code_its_output_its_files_and_its_exit_handlers(tmp_path: Path) -> None:
    """`exit_program` skips only the interpreter's collections at exit."""
    written = tmp_path / "written.txt"
    program = (
        "import atexit\n"
        "from retail_pipeline.cli import exit_program\n"
        "atexit.register(lambda: print('exit handler ran'))\n"
        f"kept_open = open({str(written)!r}, 'w')\n"
        "kept_open.write('never flushed by hand')\n"
        "print('printed', end=' ')\n"
        "exit_program(3)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", program],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={"PYTHONPATH": str(REPO_ROOT / "lib"), "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 3, result.stderr
    assert result.stdout == "printed exit handler ran\n"
    assert written.read_text() == "never flushed by hand"


def test_json_logs_from_the_command_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.setattr(cli, "run_command", lambda parser, args, platform: 0)
    assert cli.main(["--log-format", "json", "batch", *GLUE_RUN]) == 0
    logging.getLogger("retail_pipeline.cli").info("probe", extra={"stage": "test"})
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert lines[0]["message"].startswith("Ignoring arguments this job does not use: --JOB_ID j_1")
    assert lines[-1]["stage"] == "test" and lines[-1]["service"] == "retail-batch"
    cli.configure_logging()  # back to text for the rest of the run
