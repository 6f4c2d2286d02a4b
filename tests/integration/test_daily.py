"""Daily operation: the source file is the unit of replacement.

Any sequence of runs over any split of the input into files ends with the curated rows of one
run over all of it; a re-delivered file replaces exactly its own lines; an incremental run
processes only what is new; a kill at any stage leaves data and ledger agreeing; one writer.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from retail_pipeline import batch, rules
from retail_pipeline.config import BatchSettings
from retail_pipeline.ledger import Ledger, canonical_uri, month_key, source_id
from retail_pipeline.report import RunReport
from retail_pipeline.storage import HadoopFileSystem
from tests.conftest import REPO_ROOT, SAMPLE_CSV

pytestmark = pytest.mark.integration

BUSINESS_COLUMNS = [c for c in rules.CURATED_COLUMNS if c not in rules.LINEAGE_COLUMNS]


def settings(input_path: Path | str, output: Path, *, incremental: bool = False) -> BatchSettings:
    return BatchSettings(str(input_path), str(output), "utf-8", True, incremental=incremental)


def sample_days() -> dict[str, list[list[str]]]:
    """The sample's data rows by invoice day (4 days of December 2010), in file order."""
    with SAMPLE_CSV.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))[1:]
    days: dict[str, list[list[str]]] = {}
    for row in rows:
        month, day, year = row[4].split(" ")[0].split("/")
        days.setdefault(f"{year}-{int(month):02d}-{int(day):02d}", []).append(row)
    return days


def write_csv(path: Path, rows: list[list[str]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\r\n")
        writer.writerow(rules.RAW_COLUMNS)
        writer.writerows(rows)
    return path


def curated(spark: SparkSession, output: Path) -> DataFrame:
    return spark.read.parquet(str(output / "curated"))


def lines(frame: DataFrame, columns: list[str]) -> Counter[tuple[object, ...]]:
    """The rows as a multiset of the given columns."""
    return Counter(tuple(row) for row in frame.select(*columns).collect())


def assert_ledger_agrees(spark: SparkSession, output: Path, *, settled: bool = True) -> Ledger:
    """The ledger's per-source months and quarantine counts are what the output holds (and,
    `settled`, no run is staged or half-published)."""
    ledger = Ledger.read(HadoopFileSystem(spark), str(output))
    held = Counter(
        {
            (row["source_file"], month_key((row["invoice_year"], row["invoice_month"]))): row["count"]
            for row in curated(spark, output)
            .groupBy("source_file", "invoice_year", "invoice_month")
            .count()
            .collect()
        }
    )
    listed = Counter(
        {(s, month): n for s, entry in ledger.sources.items() for month, n in entry.months.items()}
    )
    assert held == listed
    quarantine = output / "quarantine"
    for source, entry in ledger.sources.items():
        folder = quarantine / f"source_id={source_id(source)}"
        written = spark.read.parquet(str(folder)).count() if folder.exists() else 0
        assert written == entry.quarantined, source
    if settled:
        assert not (output / "_staging").exists() and not (output / "_trash").exists()
    return ledger


def test_day_by_day_runs_end_where_one_full_run_does(
    spark: SparkSession, tmp_path: Path, sample_run: tuple[RunReport, Path]
) -> None:
    """`sample_run` is one run over the whole sample."""
    days = sample_days()
    assert len(days) == 4
    expected = lines(curated(spark, sample_run[1]), BUSINESS_COLUMNS)
    one_file_each, growing = tmp_path / "one_file_each", tmp_path / "growing"
    incoming = tmp_path / "incoming"
    for day, rows in days.items():
        path = write_csv(incoming / f"{day}.csv", rows)
        alone = batch.run(spark, settings(path, one_file_each))
        daily = batch.run(spark, settings(incoming, growing, incremental=True))
        assert alone.sources == daily.sources == [canonical_uri(path.as_uri())]
        assert daily.curated_partitions == ["invoice_year=2010/invoice_month=12"]
        assert len(daily.skipped_inputs) == len(alone.skipped_inputs) + list(days).index(day)
    for output in (one_file_each, growing):
        assert lines(curated(spark, output), BUSINESS_COLUMNS) == expected
        ledger = assert_ledger_agrees(spark, output)
        assert sum(entry.read for entry in ledger.sources.values()) == sample_run[0].read
        assert sum(entry.published for entry in ledger.sources.values()) == sample_run[0].published

    # Nothing new: nothing read, no data written; only the run's report says so.
    def data_files() -> dict[Path, int]:
        return {p: p.stat().st_mtime_ns for p in growing.rglob("*") if "reports" not in p.parts}

    before = data_files()
    again = batch.run(spark, settings(incoming, growing, incremental=True))
    assert again.status == "nothing_new" and again.read == 0 and len(again.skipped_inputs) == 4
    assert data_files() == before
    latest = json.loads((growing / "reports" / "run_report.json").read_text())
    assert (latest["run_id"], latest["status"], latest["sources"]) == (again.run_id, "nothing_new", [])


def test_a_corrected_file_replaces_exactly_its_own_lines(spark: SparkSession, tmp_path: Path) -> None:
    days = list(sample_days().values())
    first, second = days[0][:300], days[1][:300]
    incoming, output = tmp_path / "incoming", tmp_path / "out"
    write_csv(incoming / "day1.csv", first)
    second_path = write_csv(incoming / "day2.csv", second)
    # The same name in another folder is another source.
    write_csv(incoming / "resent" / "day1.csv", days[2][:50])
    bad_line = ["536999", "85123A", "HEART", "six", "12/2/2010 9:00", "2.55", "17850", "United Kingdom"]
    second_with_bad = [*second, bad_line]
    write_csv(second_path, second_with_bad)
    batch.run(spark, settings(incoming, output))
    kept = curated(spark, output).where(F.col("source_file") != canonical_uri(second_path.as_uri()))
    kept_before = lines(kept, [*BUSINESS_COLUMNS, "source_file", "run_id"])
    assert len({row[-2] for row in kept_before}) == 2  # both day1.csv files

    # Corrected: 100 lines fewer, one line's date moved to January 2011, the bad line gone.
    corrected = second[100:]
    corrected[0] = [*corrected[0][:4], "1/5/2011 10:00", *corrected[0][5:]]
    time.sleep(0.01)
    write_csv(second_path, corrected)
    report = batch.run(spark, settings(incoming, output, incremental=True))
    assert report.sources == [canonical_uri(second_path.as_uri())]
    assert report.quarantined == {}
    assert report.curated_partitions == [
        "invoice_year=2010/invoice_month=12",
        "invoice_year=2011/invoice_month=1",
    ]
    kept = curated(spark, output).where(F.col("source_file") != canonical_uri(second_path.as_uri()))
    assert lines(kept, [*BUSINESS_COLUMNS, "source_file", "run_id"]) == kept_before  # untouched
    assert_ledger_agrees(spark, output)
    assert not (output / "quarantine").exists() or not any((output / "quarantine").iterdir())

    # The end state is that of one run over the files as they are now.
    fresh = batch.run(spark, settings(incoming, tmp_path / "fresh"))
    assert fresh.published == curated(spark, output).count()
    assert lines(curated(spark, output), [*BUSINESS_COLUMNS, "source_file"]) == lines(
        curated(spark, tmp_path / "fresh"), [*BUSINESS_COLUMNS, "source_file"]
    )

    # Re-delivered as first sent: January is empty again and removed.
    time.sleep(0.01)
    write_csv(second_path, second)
    report = batch.run(spark, settings(incoming, output, incremental=True))
    assert report.removed_partitions == ["invoice_year=2011/invoice_month=1"]
    assert not (output / "curated" / "invoice_year=2011").exists() or not any(
        (output / "curated" / "invoice_year=2011").iterdir()
    )
    assert_ledger_agrees(spark, output)


def job(*args: str) -> list[str]:
    return [sys.executable, "-m", "retail_pipeline", "batch", *args]


def environment() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO_ROOT / "lib"), "SPARK_LOCAL_IP": "127.0.0.1"}


def quiet_config(tmp_path: Path) -> Path:
    """The local config with the gate off: these tests are about publishing, not the checks."""
    config = tmp_path / "quiet.yaml"
    text = (REPO_ROOT / "configs" / "local.yaml").read_text()
    config.write_text(text.replace("quality:\n  enabled: true", "quality:\n  enabled: false"))
    return config


@pytest.mark.parametrize("stage", ["write_staging", "validate", "rewrite_curated", "publish"])
def test_a_kill_at_any_stage_leaves_data_and_ledger_agreeing(
    spark: SparkSession, tmp_path: Path, stage: str
) -> None:
    days = list(sample_days().items())
    incoming, output = tmp_path / "incoming", tmp_path / "out"
    write_csv(incoming / f"{days[0][0]}.csv", days[0][1])
    batch.run(spark, settings(incoming, output, incremental=True))
    before = lines(curated(spark, output), [*BUSINESS_COLUMNS, "source_file", "run_id"])
    write_csv(incoming / f"{days[1][0]}.csv", days[1][1])

    marker = f"Stage {stage}: started" if stage != "publish" else "Publishing run"
    # The gate runs only in the validate case: the others are about publishing.
    config = REPO_ROOT / "configs" / "local.yaml" if stage == "validate" else quiet_config(tmp_path)
    process = subprocess.Popen(
        job("--config", str(config), "--input", str(incoming), "--output", str(output), "--incremental"),
        stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=environment(),
        start_new_session=True,
    )  # fmt: skip
    assert process.stderr is not None
    deadline = time.monotonic() + 120
    for line in process.stderr:
        if marker in line or time.monotonic() > deadline:
            break
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=30)

    ledger = assert_ledger_agrees_or_pending(spark, output)
    after_kill = lines(curated(spark, output), [*BUSINESS_COLUMNS, "source_file", "run_id"])
    assert after_kill == before or len(ledger.sources) == 2  # old, or (rolled forward) new

    # The next run finishes or discards the killed one, then completes.
    report = batch.run(spark, settings(incoming, output, incremental=True))
    ledger = assert_ledger_agrees(spark, output)
    assert len(ledger.sources) == 2 and report.status in ("succeeded", "nothing_new")
    merged = sum(len(rows) for _, rows in days[:2])
    assert sum(entry.read for entry in ledger.sources.values()) == merged


def assert_ledger_agrees_or_pending(spark: SparkSession, output: Path) -> Ledger:
    """After a kill: the output agrees with its ledger, or a committed publish is pending
    (journal written), which the next run finishes before reading either."""
    if list(output.glob("_staging/*/_PUBLISH_JOURNAL.json")):
        return Ledger.read(HadoopFileSystem(spark), str(output))
    return assert_ledger_agrees(spark, output, settled=False)


def test_two_runs_on_one_output_one_runs_the_other_is_refused(spark: SparkSession, tmp_path: Path) -> None:
    days = list(sample_days().items())
    incoming, output = tmp_path / "incoming", tmp_path / "out"
    for day, rows in days[:2]:
        write_csv(incoming / f"{day}.csv", rows)
    config = quiet_config(tmp_path)
    runs = [
        subprocess.Popen(
            job("--config", str(config), "--input", str(incoming), "--output", str(output), "--incremental"),
            stderr=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            text=True,
            env=environment(),
        )
        for _ in range(2)
    ]
    errors = [run.communicate(timeout=300)[1] for run in runs]
    results = [(run.returncode, err) for run, err in zip(runs, errors, strict=True)]
    codes = sorted(code for code, _ in results)
    assert codes == [0, 3], results
    refused = next(err for code, err in results if code == 3)
    assert f"error: output {output} is locked by run" in refused and "Traceback" not in refused
    ledger = assert_ledger_agrees(spark, output)
    assert sum(entry.read for entry in ledger.sources.values()) == sum(len(rows) for _, rows in days[:2])
    assert json.loads((output / "reports" / "run_report.json").read_text())["status"] == "succeeded"
