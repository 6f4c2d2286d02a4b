"""Replace by source: which curated months a run rewrites, and what each becomes.

A run replaces every line of its sources (input files), wherever those lines are. Each month
it touches becomes (that month's lines from other sources) + (the run's lines of that month):

    moved    only the run's sources have lines there: the staged month, moved as it is
    merged   other sources have lines there too: the published month less the run's sources'
             lines, plus the staged ones (one Spark job for all such months)
    removed  the run's sources had lines there and have none now, and nobody else has

The ledger says which months hold whose lines, so deciding reads no data, and a daily run
costs the day plus the months it rewrites, not the history. A corrected date moves a line:
its old month is rewritten without it, its new month with it.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Collection, Mapping
from dataclasses import dataclass

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from retail_pipeline import contract, rules
from retail_pipeline.ledger import Ledger, Month
from retail_pipeline.report import AccountingError
from retail_pipeline.storage import HadoopFileSystem

logger = logging.getLogger(__name__)


def month_folder(month: Month) -> str:
    return f"{rules.PARTITION_COLUMNS[0]}={month[0]}/{rules.PARTITION_COLUMNS[1]}={month[1]}"


@dataclass(frozen=True)
class MonthPlan:
    moved: tuple[Month, ...]
    merged: tuple[Month, ...]
    removed: tuple[Month, ...]
    kept_lines: Mapping[Month, int]  # per merged month, the other sources' lines it keeps

    @property
    def written(self) -> tuple[Month, ...]:
        return tuple(sorted(self.moved + self.merged))


def plan_months(ledger: Ledger, *, sources: Collection[str], staged: Collection[Month]) -> MonthPlan:
    """What each month the run touches becomes; `staged` are the months of its new lines."""
    moved, merged, removed, kept_lines = [], [], [], {}
    for month in sorted(set(staged) | ledger.months_of(sources)):
        kept = ledger.lines_kept(month, replaced=sources)
        if kept:
            merged.append(month)
            kept_lines[month] = kept
        elif month in staged:
            moved.append(month)
        else:
            removed.append(month)
    return MonthPlan(tuple(moved), tuple(merged), tuple(removed), kept_lines)


def write_months(
    spark: SparkSession,
    fs: HadoopFileSystem,
    plan: MonthPlan,
    *,
    published: Mapping[Month, str],
    staged: str,
    target: str,
    sources: Collection[str],
    staged_lines: Mapping[Month, int],
) -> None:
    """Build every month the plan writes under `target` (month folders), from `published`
    (each merged month's current folder) and `staged` (the run's published lines, by month);
    checks that each merged month holds exactly the lines it kept plus the run's."""
    for month in plan.moved:
        fs.rename(f"{staged}/{month_folder(month)}", f"{target}/{month_folder(month)}")
    if not plan.merged:
        return
    merging = f"{target}/_merging"
    # Each month read on its own (its folder may be any run's version), its partition values
    # added back as the folder names give them.
    months = [
        spark.read.parquet(published[m]).withColumns(
            {rules.PARTITION_COLUMNS[0]: F.lit(m[0]), rules.PARTITION_COLUMNS[1]: F.lit(m[1])}
        )
        for m in plan.merged
    ]
    kept = functools.reduce(DataFrame.unionByName, months).where(
        ~F.col(contract.SOURCE_FILE).isin(list(sources))
    )
    new_months = [f"{staged}/{month_folder(m)}" for m in plan.merged if staged_lines.get(m)]
    lines = kept
    if new_months:
        lines = kept.unionByName(spark.read.option("basePath", staged).parquet(*new_months))
    lines.write.mode("overwrite").partitionBy(*rules.PARTITION_COLUMNS).parquet(merging)
    for month in plan.merged:
        written = count_rows(spark, fs, f"{merging}/{month_folder(month)}")
        expected = plan.kept_lines[month] + staged_lines.get(month, 0)
        if written != expected:
            raise AccountingError(
                f"rewriting curated month {month_folder(month)}: kept {plan.kept_lines[month]:,} lines of"
                f" other sources and added {staged_lines.get(month, 0):,}, but wrote {written:,}"
            )
        fs.rename(f"{merging}/{month_folder(month)}", f"{target}/{month_folder(month)}")
    fs.delete(merging)
    logger.info("Rewrote %d curated month(s) that other sources share", len(plan.merged))


def count_rows(spark: SparkSession, fs: HadoopFileSystem, path: str) -> int:
    """Rows written under `path` (0 when nothing was), read back from the files' footers."""
    if not fs.exists(path):
        return 0
    return spark.read.parquet(path).count()
