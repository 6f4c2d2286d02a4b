"""Daily operation on this machine (`make daily-demo`).

Splits the committed sample into one CSV per invoice day, drops them into an incoming folder
one at a time, and after each drop runs the batch job with --incremental and the warehouse
load, printing the warehouse's totals. Then re-delivers one day corrected, runs again, and
ends by checking that the output and the warehouse equal one full run over the final files.
Exits 1 when they differ.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import logging
import shutil
import sys
import time
from collections import Counter
from pathlib import Path

from pyspark.sql import SparkSession

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT / "lib"))  # runs from a checkout without installing too

from retail_pipeline import batch, metrics, rules  # noqa: E402
from retail_pipeline.config import PipelineConfig, load_config  # noqa: E402
from retail_pipeline.logs import configure_logging  # noqa: E402
from retail_pipeline.session import spark_session  # noqa: E402
from retail_pipeline.warehouse import load_run  # noqa: E402

SAMPLE = REPO_ROOT / "data" / "raw" / "online_retail_first_9999.csv"
TABLES = ("fact_sales", "dim_product", "dim_customer", "sales_daily", "dim_date")


def split_by_day(sample: Path, folder: Path) -> list[Path]:
    """One CSV per invoice day, named by the day, with the sample's header."""
    with sample.open(newline="", encoding="utf-8") as handle:
        header, *rows = list(csv.reader(handle))
    days: dict[str, list[list[str]]] = {}
    for row in rows:
        month, day, year = row[4].split(" ")[0].split("/")
        days.setdefault(f"{year}-{int(month):02d}-{int(day):02d}", []).append(row)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for day, day_rows in sorted(days.items()):
        path = folder / f"{day}.csv"
        write_csv(path, header, day_rows)
        paths.append(path)
    return paths


def write_csv(path: Path, header: list[str], rows: list[list[str]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\r\n")
        writer.writerow(header)
        writer.writerows(rows)


def warehouse_rows(url: str) -> dict[str, Counter[tuple[object, ...]]]:
    """Every warehouse table as a multiset of rows (the load batch id aside)."""
    import duckdb

    with duckdb.connect(url.removeprefix("duckdb:///")) as db:
        tables = {}
        for table in TABLES:
            columns = [
                c[0] for c in db.execute(f"DESCRIBE {table}").fetchall() if c[0] not in ("batch_id", "run_id")
            ]
            rows = db.execute(f"SELECT {', '.join(columns)} FROM {table}").fetchall()
            tables[table] = Counter(rows)
        return tables


def totals(url: str) -> str:
    import duckdb

    with duckdb.connect(url.removeprefix("duckdb:///"), read_only=True) as db:
        lines, revenue, sources = db.execute(
            "SELECT COUNT(*), SUM(revenue), COUNT(DISTINCT source_file) FROM fact_sales"
        ).fetchone() or (0, 0, 0)
    return f"warehouse: {lines:,} lines, revenue {revenue}, from {sources} file(s)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", default="data/daily_demo", help="folder for the demo's files (replaced)")
    args = parser.parse_args(argv)
    configure_logging(logging.WARNING)  # the demo prints its own lines
    work = Path(args.work).resolve()
    shutil.rmtree(work, ignore_errors=True)
    days = split_by_day(SAMPLE, work / "days")
    config = load_config()
    with spark_session(config.spark) as spark:
        spark.sparkContext.setLogLevel("ERROR")
        return run_days(spark, config, days, work)


def run_days(spark: SparkSession, config: PipelineConfig, days: list[Path], work: Path) -> int:
    """Each day's file dropped in turn, a run and a load after each, then one run over all of
    it: 0 when the two end states are equal."""
    incoming, output = work / "incoming", work / "output"
    incoming.mkdir(parents=True)
    warehouse = f"duckdb:///{work}/warehouse.duckdb"
    daily = dataclasses.replace(config.batch, input=str(incoming), output=str(output), incremental=True)
    recorded: list[metrics.Metric] = []

    def run_and_load(label: str) -> None:
        started = time.perf_counter()
        report = batch.run(spark, daily, quality=config.quality)
        loaded = load_run(warehouse, str(output))
        recorded.extend(
            metrics.batch_metrics(report, job="daily-demo") + metrics.load_metrics(loaded, job="daily-demo")
        )
        files = f"{len(report.inputs)} file(s) read, {len(report.skipped_inputs)} skipped"
        seconds = time.perf_counter() - started
        print(
            f"{label}: {report.status}, {files}, {report.published:,} lines published,"
            f" months rewritten {report.curated_partitions}, {loaded.rows:,} loaded, {seconds:.1f} s"
        )
        print(f"    {totals(warehouse)}")

    for day in days:
        shutil.copy(day, incoming / day.name)
        run_and_load(f"drop {day.name}")
    run_and_load("nothing new")

    # A corrected re-delivery of the second day under the same name: 50 lines fewer.
    with days[1].open(newline="", encoding="utf-8") as handle:
        header, *rows = list(csv.reader(handle))
    write_csv(incoming / days[1].name, header, rows[50:])
    run_and_load(f"re-delivered {days[1].name} (corrected)")

    # One run over everything, into a fresh output and warehouse: the end state must be equal.
    full_warehouse = f"duckdb:///{work}/full_warehouse.duckdb"
    full = dataclasses.replace(daily, output=str(work / "full_output"), incremental=False)
    batch.run(spark, full, quality=config.quality)
    load_run(full_warehouse, full.output)
    columns = [c for c in rules.CURATED_COLUMNS if c != "run_id"]
    same_curated = Counter(
        map(tuple, spark.read.parquet(f"{output}/curated").select(*columns).collect())
    ) == Counter(map(tuple, spark.read.parquet(f"{full.output}/curated").select(*columns).collect()))
    same_warehouse = warehouse_rows(warehouse) == warehouse_rows(full_warehouse)
    print(f"one full run: {totals(full_warehouse)}")
    print(f"daily runs equal one full run: curated {same_curated}, warehouse {same_warehouse}")
    print(metrics.render_summary(metrics.totals(recorded), title="Metrics over the daily runs and loads"))
    return 0 if same_curated and same_warehouse else 1


if __name__ == "__main__":
    raise SystemExit(main())
