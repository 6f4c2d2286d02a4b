"""The job as a user runs it: a separate process, exit codes, messages, a kill mid-run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from chispa import assert_df_equality
from pyspark.sql import SparkSession

from retail_pipeline import batch
from retail_pipeline.config import BatchSettings
from tests.conftest import BAD_INPUT_CSV, REPO_ROOT, SAMPLE_CSV

pytestmark = pytest.mark.integration


def job(*args: str) -> list[str]:
    return [sys.executable, "-m", "retail_pipeline", "batch", *args]


def environment() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO_ROOT / "lib"), "SPARK_LOCAL_IP": "127.0.0.1"}


def test_a_bad_config_exits_2_with_a_message_not_a_traceback(tmp_path: Path) -> None:
    config = tmp_path / "broken.yaml"
    config.write_text((REPO_ROOT / "configs" / "local.yaml").read_text().replace("encoding:", "encodig:"))
    result = subprocess.run(
        job("--config", str(config)),
        check=False,
        capture_output=True,
        text=True,
        env=environment(),
        timeout=60,
    )
    assert result.returncode == 2
    assert f"error: {config}: unknown key 'batch.encodig'" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_killed_run_leaves_the_previous_output_readable(spark: SparkSession, tmp_path: Path) -> None:
    settings = BatchSettings(str(BAD_INPUT_CSV), str(tmp_path), "utf-8", True)
    first = batch.run(spark, settings)
    before = spark.read.parquet(str(tmp_path / "curated")).localCheckpoint()
    report_before = (tmp_path / "reports" / "run_report.json").read_text()

    # Glue-style arguments are tolerated; the run is killed (SIGKILL, JVM included) mid-write.
    process = subprocess.Popen(
        job(
            "--input", str(SAMPLE_CSV), "--output", str(tmp_path), "--JOB_NAME", "retail", "--TempDir", "/tmp"
        ),
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        env=environment(),
        start_new_session=True,
    )
    assert process.stderr is not None
    deadline = time.monotonic() + 120
    seen = []
    for line in process.stderr:
        seen.append(line)
        if "Stage write_staging: started" in line or time.monotonic() > deadline:
            break
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=30)
    assert any(
        "Ignoring arguments this job does not use: --JOB_NAME retail --TempDir /tmp" in s for s in seen
    )
    assert any("Stage write_staging: started" in s for s in seen)

    assert_df_equality(spark.read.parquet(str(tmp_path / "curated")), before, ignore_row_order=True)
    assert (tmp_path / "reports" / "run_report.json").read_text() == report_before

    # The next run (its lock taken over from the dead one) discards what the killed one left
    # behind and publishes normally, beside the first file's lines.
    report = batch.run(spark, BatchSettings(str(SAMPLE_CSV), str(tmp_path), "utf-8", True))
    assert report.published + first.published == spark.read.parquet(str(tmp_path / "curated")).count()
    assert not (tmp_path / "_staging").exists()


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A 64 KB file system (tmpfs, as root), which the job's first write fills."""
    disk = tmp_path / "tiny"
    disk.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(disk)], capture_output=True, check=False
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield disk
    finally:
        subprocess.run(["umount", str(disk)], check=False)


def test_a_full_disk_is_one_line_and_exit_1(tiny_disk: Path) -> None:
    result = subprocess.run(
        job("--input", str(SAMPLE_CSV), "--output", str(tiny_disk / "out")),
        check=False,
        capture_output=True,
        text=True,
        env=environment(),
        timeout=300,
    )
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert errors == [
        f"error: writing {tiny_disk / 'out'} failed: No space left on device: free space there"
        " (the previous output is unchanged) and run again"
    ]
    assert "Traceback" not in result.stderr
    assert not (tiny_disk / "out" / "curated").exists()
