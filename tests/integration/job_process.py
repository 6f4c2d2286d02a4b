"""The batch job as a user or a scheduler runs it: in a process of its own (its command line,
environment and config, a kill mid-run, the JVM archive those runs start from), or the CLI
in this process on the suite's session, with what it prints."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from retail_pipeline import cli
from retail_pipeline.jvm_tuning import class_data_sharing_options
from tests.conftest import REPO_ROOT
from tests.integration.daily_chain import sample_rows, write_csv


def job(*args: str) -> list[str]:
    return [sys.executable, "-m", "retail_pipeline", "batch", *args]


def environment() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO_ROOT / "lib"), "SPARK_LOCAL_IP": "127.0.0.1"}


def local_config() -> dict:
    """configs/local.yaml, with its class-data-sharing folder made absolute (it is relative to
    the working directory)."""
    config = yaml.safe_load((REPO_ROOT / "configs" / "local.yaml").read_text())
    spark = config["spark"]
    if spark.get("class_data_sharing"):
        spark["class_data_sharing"] = str(REPO_ROOT / spark["class_data_sharing"])
    return config


def job_config(folder: Path, *, gate: bool) -> Path:
    """The local config for a job of seconds in a subprocess: the gate on only where the test
    needs it (Great Expectations takes seconds to import), 1 GB, and C1 alone (such a job
    never earns C2's compile time back)."""
    config = local_config()
    spark = config["spark"]
    options = spark["conf"].get("spark.driver.extraJavaOptions", "")
    spark["conf"]["spark.driver.extraJavaOptions"] = f"{options} -XX:TieredStopAtLevel=1".strip()
    spark["conf"]["spark.driver.memory"] = "1g"
    config["quality"]["enabled"] = gate
    path = folder / ("gate.yaml" if gate else "no_gate.yaml")
    path.write_text(yaml.safe_dump(config))
    return path


def write_job_archive(folder: Path) -> bool:
    """Run one small job when the local config's class-data-sharing archive is missing, so that
    it exists before the tests that start job processes: a killed JVM never writes it, and
    concurrent first runs each write their own, so without it those tests run several times
    slower on a fresh clone. Returns whether it ran one."""
    folder.mkdir(parents=True, exist_ok=True)
    archive_folder = local_config()["spark"].get("class_data_sharing")
    if not archive_folder or class_data_sharing_options(archive_folder)[1] is None:
        return False
    source = write_csv(folder / "input.csv", sample_rows()[:50])
    config = job_config(folder, gate=False)
    subprocess.run(
        job("--config", str(config), "--input", str(source), "--output", str(folder / "out")),
        check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=environment(), timeout=300,
    )  # fmt: skip
    return True


def kill_at(marker: str, *args: str) -> list[str]:
    """Run the job with `args`, kill it (SIGKILL, JVM included) at the first stderr line with
    `marker`; returns the lines it wrote."""
    process = subprocess.Popen(
        job(*args), stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=environment(),
        start_new_session=True,
    )  # fmt: skip
    assert process.stderr is not None
    deadline = time.monotonic() + 120
    seen = []
    for line in process.stderr:
        seen.append(line)
        if marker in line or time.monotonic() > deadline:
            break
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=30)
    return seen


def cli_main(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """`retail-pipeline batch` in this process (cli.main takes the suite's session): its exit
    code, stdout and stderr."""
    try:
        code = cli.main(["batch", *args])
    finally:
        cli.configure_logging()  # a handler on the real stderr again, not on this test's capture
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def suite_config(folder: Path, *, gate: bool) -> Path:
    """configs/local.yaml with the suite session's shuffle width (so a run in this process
    leaves the shared session's settings as they were) and the gate on or off."""
    config = local_config()
    assert config["quality"]["enabled"] is True
    config["spark"]["conf"]["spark.sql.shuffle.partitions"] = 4
    config["quality"]["enabled"] = gate
    path = folder / f"gate_{'on' if gate else 'off'}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def assert_one_error_line(stderr: str) -> str:
    """The one `error:` line, last on stderr, and no Python traceback (Spark's own ERROR log
    lines, Java traces included, may come before it)."""
    errors = [line for line in stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, stderr
    assert "Traceback" not in stderr, stderr
    assert stderr.rstrip().splitlines()[-1] == errors[0]
    return errors[0]
