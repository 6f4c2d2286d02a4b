"""The job as a user runs it: a separate process, exit codes, messages, a kill mid-run."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from chispa import assert_df_equality
from pyspark.sql import SparkSession

from retail_pipeline import batch
from retail_pipeline.ledger import canonical_uri
from retail_pipeline.report import RunReport
from tests.conftest import REPO_ROOT, SAMPLE_CSV, writable_copy
from tests.integration.daily_chain import (
    SMALL_DAY,
    assert_ledger_agrees,
    batch_settings,
    sample_days,
    write_csv,
)
from tests.integration.job_process import (
    assert_one_error_line,
    cli_main,
    environment,
    job,
    job_config,
    kill_at,
    suite_config,
)

pytestmark = pytest.mark.integration


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


@pytest.mark.usefixtures("job_archive")
def test_a_killed_run_leaves_the_previous_output_readable(
    spark: SparkSession, tmp_path: Path, sample_run: tuple[RunReport, Path]
) -> None:
    """Also test_daily's kill at the first stage, write_staging, of an incremental run."""
    first, output = sample_run[0], writable_copy(sample_run[1], tmp_path / "out")
    before = spark.read.parquet(str(output / "curated")).localCheckpoint()
    report_before = (output / "reports" / "run_report.json").read_text()
    day, rows = list(sample_days().items())[1]
    new_file = write_csv(tmp_path / "incoming" / f"{day}.csv", rows[:SMALL_DAY])

    # Glue-style arguments are tolerated; the run is killed (SIGKILL, JVM included) mid-write.
    config = job_config(tmp_path, gate=False)
    seen = kill_at(
        "Stage write_staging: started",
        "--config", str(config), "--input", str(new_file), "--output", str(output), "--incremental",
        "--JOB_NAME", "retail", "--TempDir", "/tmp",
    )  # fmt: skip
    assert any(
        "Ignoring arguments this job does not use: --JOB_NAME retail --TempDir /tmp" in s for s in seen
    )
    assert any("Stage write_staging: started" in s for s in seen)

    assert_df_equality(spark.read.parquet(str(output / "curated")), before, ignore_row_order=True)
    assert (output / "reports" / "run_report.json").read_text() == report_before
    assert len(assert_ledger_agrees(spark, output, settled=False).sources) == 1

    # The next run (its lock taken over from the dead one) discards what the killed one left
    # behind and publishes normally, beside the first file's lines.
    report = batch.run(spark, batch_settings(new_file, output, incremental=True))
    assert report.sources == [canonical_uri(new_file.as_uri())]
    assert report.published + first.published == spark.read.parquet(str(output / "curated")).count()
    ledger = assert_ledger_agrees(spark, output)  # nothing staged is left either
    assert sum(entry.read for entry in ledger.sources.values()) == first.read + SMALL_DAY


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
        # Lazily: the suite's JVM may still hold a file of the failed write there.
        subprocess.run(["umount", "-l", str(disk)], check=False)


def test_a_full_disk_is_one_line_and_exit_1(
    spark: SparkSession, tiny_disk: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The gate would check the data after the write that fails: off, it saves its import.
    config = suite_config(tmp_path, gate=False)
    code, _, stderr = cli_main(
        capsys, "--config", str(config), "--input", str(SAMPLE_CSV), "--output", str(tiny_disk / "out")
    )
    assert code == 1
    assert assert_one_error_line(stderr) == (
        f"error: writing {tiny_disk / 'out'} failed: No space left on device: free space there"
        " (the previous output is unchanged) and run again"
    )
    assert not (tiny_disk / "out" / "curated").exists()
