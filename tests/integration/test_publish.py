"""Staged publishing: interrupted runs are finished or discarded, never half-visible."""

from __future__ import annotations

import json
from pathlib import Path

from pyspark.sql import SparkSession

from retail_pipeline import publish
from retail_pipeline.storage import HadoopFileSystem


def make_partition(root: Path, unit: str, content: str) -> None:
    folder = root / unit
    folder.mkdir(parents=True)
    (folder / "part-0.parquet").write_text(content)


def test_publish_replaces_only_the_staged_partitions(spark: SparkSession, tmp_path: Path) -> None:
    fs = HadoopFileSystem(spark)
    make_partition(tmp_path, "curated/invoice_year=2010/invoice_month=12", "old december")
    make_partition(tmp_path, "curated/invoice_year=2011/invoice_month=1", "old january")
    staging = tmp_path / "_staging" / "run-2"
    make_partition(staging, "curated/invoice_year=2011/invoice_month=1", "new january")
    make_partition(staging, "quarantine/source_name=a.csv", "new quarantine")

    units = publish.publish(fs, str(tmp_path), "run-2")

    assert units == ["curated/invoice_year=2011/invoice_month=1", "quarantine/source_name=a.csv"]
    curated = tmp_path / "curated"
    assert (curated / "invoice_year=2010/invoice_month=12/part-0.parquet").read_text() == "old december"
    assert (curated / "invoice_year=2011/invoice_month=1/part-0.parquet").read_text() == "new january"
    assert not (tmp_path / "_staging" / "run-2").exists()
    assert not (tmp_path / "_trash").exists()


def test_recover_finishes_a_committed_publish(spark: SparkSession, tmp_path: Path) -> None:
    """A run killed after its journal was written, with one of two units already moved."""
    fs = HadoopFileSystem(spark)
    units = ["curated/invoice_year=2011/invoice_month=1", "curated/invoice_year=2011/invoice_month=2"]
    make_partition(tmp_path, units[0], "new january")  # already moved before the kill
    make_partition(tmp_path / "_trash" / "run-3", units[0], "old january")
    make_partition(tmp_path, units[1], "old february")
    staging = tmp_path / "_staging" / "run-3"
    make_partition(staging, units[1], "new february")
    (staging / publish.JOURNAL).write_text(json.dumps({"run_id": "run-3", "units": units}))

    publish.recover(fs, str(tmp_path))

    assert (tmp_path / units[0] / "part-0.parquet").read_text() == "new january"
    assert (tmp_path / units[1] / "part-0.parquet").read_text() == "new february"
    assert not (tmp_path / "_staging" / "run-3").exists()
    assert not (tmp_path / "_trash").exists()


def test_recover_discards_an_uncommitted_run(spark: SparkSession, tmp_path: Path) -> None:
    fs = HadoopFileSystem(spark)
    make_partition(tmp_path, "curated/invoice_year=2011/invoice_month=1", "old january")
    make_partition(tmp_path / "_staging" / "run-4", "curated/invoice_year=2011/invoice_month=1", "half")

    publish.recover(fs, str(tmp_path))

    assert (
        tmp_path / "curated/invoice_year=2011/invoice_month=1/part-0.parquet"
    ).read_text() == "old january"
    assert not (tmp_path / "_staging" / "run-4").exists()
