"""Daily operation: the source file is the unit of replacement.

Any sequence of runs over any split of the input into files ends with the curated rows of one
run over all of it; a re-delivered file replaces exactly its own lines; an incremental run
processes only what is new; a kill at any stage leaves data and ledger agreeing; one writer.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from retail_pipeline import batch, rules
from retail_pipeline.ledger import Ledger, canonical_uri
from retail_pipeline.publish import JOURNAL
from retail_pipeline.storage import HadoopFileSystem
from tests.conftest import writable_copy
from tests.integration.daily_chain import (
    SMALL_DAY,
    DailyRuns,
    assert_ledger_agrees,
    batch_settings,
    curated,
    sample_days,
    write_csv,
)
from tests.integration.job_process import environment, job, job_config, kill_at

pytestmark = pytest.mark.integration

BUSINESS_COLUMNS = [c for c in rules.CURATED_COLUMNS if c not in rules.LINEAGE_COLUMNS]


def lines(frame: DataFrame, columns: list[str]) -> Counter[tuple[object, ...]]:
    """The rows as a multiset of the given columns."""
    return Counter(tuple(row) for row in frame.select(*columns).collect())


def test_day_by_day_runs_end_where_one_full_run_does(
    spark: SparkSession, tmp_path: Path, daily_runs: DailyRuns
) -> None:
    """`daily_runs` (daily_chain.py): an incremental run after each day's file arrived in one
    folder, then one with nothing new (each output as it was right after its run), and one
    run over the four files. Here each day's file is also run alone into one output."""
    assert len(daily_runs.day_rows) == len(daily_runs.days) == 4
    full_report, full_output = daily_runs.full.run
    expected = lines(curated(spark, full_output), BUSINESS_COLUMNS)
    one_file_each, growing = tmp_path / "one_file_each", daily_runs.days[-1].output
    for index, (day, rows) in enumerate(daily_runs.day_rows.items()):
        path = write_csv(tmp_path / "incoming" / f"{day}.csv", rows)
        alone = batch.run(spark, batch_settings(path, one_file_each))
        daily = daily_runs.days[index].report
        assert alone.sources == [canonical_uri(path.as_uri())]
        assert daily.sources == [canonical_uri(daily_runs.day_files[day])]
        assert daily.curated_partitions == ["invoice_year=2010/invoice_month=12"]
        assert len(daily.skipped_inputs) == len(alone.skipped_inputs) + index
    for output in (one_file_each, growing):
        assert lines(curated(spark, output), BUSINESS_COLUMNS) == expected
        ledger = assert_ledger_agrees(spark, output)
        assert sum(entry.read for entry in ledger.sources.values()) == full_report.read
        assert sum(entry.published for entry in ledger.sources.values()) == full_report.published

    # Nothing new: nothing read, no data written; only the run's report says so.
    def data_files(output: Path) -> dict[Path, int]:
        found = [p for p in output.rglob("*") if "reports" not in p.parts]
        return {p.relative_to(output): p.stat().st_mtime_ns for p in found}

    again, after = daily_runs.nothing_new.report, daily_runs.nothing_new.output
    assert again.status == "nothing_new" and again.read == 0 and len(again.skipped_inputs) == 4
    assert data_files(after) == data_files(growing)
    latest = json.loads((after / "reports" / "run_report.json").read_text())
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
    batch.run(spark, batch_settings(incoming, output))
    kept = curated(spark, output).where(F.col("source_file") != canonical_uri(second_path.as_uri()))
    kept_before = lines(kept, [*BUSINESS_COLUMNS, "source_file", "run_id"])
    assert len({row[-2] for row in kept_before}) == 2  # both day1.csv files

    # Corrected: 100 lines fewer, one line's date moved to January 2011, the bad line gone.
    corrected = second[100:]
    corrected[0] = [*corrected[0][:4], "1/5/2011 10:00", *corrected[0][5:]]
    time.sleep(0.01)
    write_csv(second_path, corrected)
    report = batch.run(spark, batch_settings(incoming, output, incremental=True))
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
    fresh = batch.run(spark, batch_settings(incoming, tmp_path / "fresh"))
    assert fresh.published == curated(spark, output).count()
    assert lines(curated(spark, output), [*BUSINESS_COLUMNS, "source_file"]) == lines(
        curated(spark, tmp_path / "fresh"), [*BUSINESS_COLUMNS, "source_file"]
    )

    # Re-delivered as first sent: January is empty again and removed.
    time.sleep(0.01)
    write_csv(second_path, second)
    report = batch.run(spark, batch_settings(incoming, output, incremental=True))
    assert report.removed_partitions == ["invoice_year=2011/invoice_month=1"]
    assert not (output / "curated" / "invoice_year=2011").exists() or not any(
        (output / "curated" / "invoice_year=2011").iterdir()
    )
    assert_ledger_agrees(spark, output)


@pytest.mark.usefixtures("job_archive")
def test_a_kill_at_any_stage_leaves_data_and_ledger_agreeing(
    spark: SparkSession, tmp_path: Path, daily_runs: DailyRuns
) -> None:
    """One chain on a copy of the first daily run's output, a day file added before each run:
    a run killed at validate, the next killed at rewrite_curated (its start discards the
    first's staging), the next killed while publishing, then one that finishes. The kill at
    write_staging is test_cli's killed run."""
    output = writable_copy(daily_runs.days[0].output, tmp_path / "out")
    incoming, killed = tmp_path / "incoming", []
    new_days = list(sample_days().items())[1:]
    # The gate runs only in the validate case: the others are about publishing.
    for (day, rows), stage, gate in zip(
        new_days, ["validate", "rewrite_curated", "publish"], [True, False, False], strict=True
    ):
        before = lines(curated(spark, output), [*BUSINESS_COLUMNS, "source_file", "run_id"])
        sources_before = len(Ledger.read(HadoopFileSystem(spark), str(output)).sources)
        write_csv(incoming / f"{day}.csv", rows[:SMALL_DAY])
        marker = f"Stage {stage}: started" if stage != "publish" else "Publishing run"
        config = job_config(tmp_path, gate=gate)
        seen = kill_at(
            marker, "--config", str(config), "--input", str(incoming), "--output", str(output),
            "--incremental", "--run-id", f"killed-at-{stage}",
        )  # fmt: skip
        assert any(marker in line for line in seen), (stage, seen[-5:])
        # Each run's start discarded what the one killed before it had staged.
        assert [run for run in killed if (output / "_staging" / run).exists()] == []
        killed.append(f"killed-at-{stage}")

        journals = list(output.glob(f"_staging/*/{JOURNAL}"))
        if journals:
            # Killed while publishing: the journal names what moves and every unit is staged
            # or in place, for the next run to finish (a reader may find a month between moves).
            journal = json.loads(journals[0].read_text())
            assert journal["units"]
            for unit in journal["units"]:
                assert (journals[0].parent / unit).exists() or (output / unit).exists(), unit
        else:
            ledger = assert_ledger_agrees(spark, output, settled=False)
            after_kill = lines(curated(spark, output), [*BUSINESS_COLUMNS, "source_file", "run_id"])
            assert after_kill == before or len(ledger.sources) > sources_before  # old, or published

    # The next run finishes or discards the killed one, then completes.
    report = batch.run(spark, batch_settings(incoming, output, incremental=True))
    ledger = assert_ledger_agrees(spark, output)
    assert len(ledger.sources) == 4 and report.status in ("succeeded", "nothing_new")
    first = daily_runs.days[0].report.read
    assert sum(entry.read for entry in ledger.sources.values()) == first + 3 * SMALL_DAY


@pytest.mark.usefixtures("job_archive")
def test_two_runs_on_one_output_one_runs_the_other_is_refused(spark: SparkSession, tmp_path: Path) -> None:
    days = list(sample_days().items())
    incoming, output = tmp_path / "incoming", tmp_path / "out"
    for day, rows in days[:2]:
        write_csv(incoming / f"{day}.csv", rows[:SMALL_DAY])
    config = job_config(tmp_path, gate=False)
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
    assert sum(entry.read for entry in ledger.sources.values()) == 2 * SMALL_DAY
    assert json.loads((output / "reports" / "run_report.json").read_text())["status"] == "succeeded"
