"""The committed sample as daily files, and one chain of real daily runs over them.

The chain is daily operation on the sample's four days: each day's file dropped into one input
folder and an incremental run after each, a run with nothing new, then day 2 re-delivered
corrected. Beside it, one run over all four files and one over the corrected set. Every run's
output is copied as it was right after the run, so a test can read or load the runs in any
order without running Spark again. The fixture (`daily_runs`) is in conftest.py.
"""

from __future__ import annotations

import csv
import shutil
from collections import Counter
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from pyspark.sql import DataFrame, SparkSession

from retail_pipeline import batch, rules
from retail_pipeline.config import BatchSettings
from retail_pipeline.ledger import Ledger, month_key, source_id
from retail_pipeline.report import RunReport
from retail_pipeline.storage import HadoopFileSystem
from tests.conftest import SAMPLE_CSV

CORRECTED_DAY = "2010-12-02"
# Lines of each day in the chain: every outcome and reason of the sample's days is among a
# day's first lines, and a run's cost beyond them is Spark's per-run work, not the lines.
CHAIN_DAY = 250
# Lines per day file of the runs in a subprocess: any line reaches every stage, and a JVM's
# start and first queries, not the lines, are what such a run costs.
SMALL_DAY = 200


def sample_rows() -> list[list[str]]:
    """The sample's data rows, in file order."""
    with SAMPLE_CSV.open(encoding="utf-8-sig", newline="") as handle:
        return list(csv.reader(handle))[1:]


def sample_days() -> dict[str, list[list[str]]]:
    """The sample's data rows by invoice day (4 days of December 2010), in file order."""
    days: dict[str, list[list[str]]] = {}
    for row in sample_rows():
        month, day, year = row[4].split(" ")[0].split("/")
        days.setdefault(f"{year}-{int(month):02d}-{int(day):02d}", []).append(row)
    return days


def write_csv(path: Path, rows: list[list[str]]) -> Path:
    """`rows` under the raw header, as the exports are written (CRLF)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\r\n")
        writer.writerow(rules.RAW_COLUMNS)
        writer.writerows(rows)
    return path


def batch_settings(input_path: Path | str, output: Path, *, incremental: bool = False) -> BatchSettings:
    return BatchSettings(
        input=str(input_path),
        output=str(output),
        encoding="utf-8",
        quarantine_unterminated_last_line=True,
        incremental=incremental,
    )


def invoices_by_size(rows: list[list[str]]) -> list[str]:
    """Invoices all of whose lines are published (no C/A prefix, positive quantity and price),
    largest first (ties in file order)."""
    counts = Counter(row[0] for row in rows)
    filtered = {row[0] for row in rows if not row[0][0].isdigit() or int(row[3]) <= 0 or Decimal(row[5]) <= 0}
    return [invoice for invoice, _ in counts.most_common() if invoice not in filtered]


def corrected(rows: list[list[str]]) -> tuple[list[list[str]], dict[str, str]]:
    """A corrected version of a day: the largest invoice has a changed line and loses another,
    the next one is gone, the third moves to the first one's customer and to France. Returns
    the rows and which invoice got which correction."""
    largest, dropped, moved = invoices_by_size(rows)[:3]
    largest_lines = [row for row in rows if row[0] == largest]
    first_customer = largest_lines[0][6]

    def corrected_row(row: list[str]) -> list[str]:
        if row is largest_lines[0]:
            return [*row[:3], str(int(row[3]) + 10), *row[4:]]
        if row[0] == moved:
            return [*row[:6], first_customer, "France"]
        return row

    kept = [corrected_row(row) for row in rows if row[0] != dropped and row is not largest_lines[-1]]
    return kept, {"changed": largest, "dropped": dropped, "moved": moved}


@dataclass(frozen=True)
class Run:
    report: RunReport
    output: Path  # a copy of the output folder as the run left it

    @property
    def run(self) -> tuple[RunReport, Path]:
        return self.report, self.output


@dataclass(frozen=True)
class DailyRuns:
    days: list[Run]  # one incremental run after each day's file arrived, in order
    nothing_new: Run  # one more incremental run, with no new file
    corrected: Run  # an incremental run after CORRECTED_DAY's file was re-delivered corrected
    full: Run  # one run over the four original day files
    corrected_full: Run  # one run over the four files, CORRECTED_DAY's corrected
    corrections: dict[str, str]  # which invoice of CORRECTED_DAY got which correction
    day_files: dict[str, str]  # day -> its source_file URI
    day_rows: dict[str, list[list[str]]]  # day -> the rows of its original file


def build_daily_runs(spark: SparkSession, root: Path) -> DailyRuns:
    incoming, daily_output, copies = root / "incoming", root / "output", root / "runs"
    by_day = {day: rows[:CHAIN_DAY] for day, rows in sample_days().items()}

    def run(name: str, *, output: Path, incremental: bool) -> Run:
        report = batch.run(spark, batch_settings(incoming, output, incremental=incremental))
        copy = copies / name
        shutil.copytree(output, copy)
        return Run(report, copy)

    days = []
    for day, rows in sorted(by_day.items()):
        write_csv(incoming / f"{day}.csv", rows)
        days.append(run(f"day-{day}", output=daily_output, incremental=True))
    nothing_new = run("nothing-new", output=daily_output, incremental=True)
    full = run("full", output=root / "full", incremental=False)
    corrected_rows, corrections = corrected(by_day[CORRECTED_DAY])
    write_csv(incoming / f"{CORRECTED_DAY}.csv", corrected_rows)
    return DailyRuns(
        days=days,
        nothing_new=nothing_new,
        corrected=run("corrected", output=daily_output, incremental=True),
        full=full,
        corrected_full=run("corrected-full", output=root / "corrected_full", incremental=False),
        corrections=corrections,
        day_files={day: (incoming / f"{day}.csv").as_uri() for day in by_day},
        day_rows=by_day,
    )


def curated(spark: SparkSession, output: Path) -> DataFrame:
    return spark.read.parquet(str(output / "curated"))


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
