"""The batch job: raw Online Retail CSV -> curated Parquet, quarantine and a run report.

inspect inputs (driver) -> read lines once -> classify (transforms) -> cache
  -> count outcomes (one aggregation) -> write curated + quarantine to staging
  -> verify the written counts -> write the report -> publish (replace partitions)
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from retail_pipeline import publish, transforms
from retail_pipeline.config import BatchSettings
from retail_pipeline.inputs import InputFile, inspect_inputs, jvm_charset
from retail_pipeline.report import OutcomeCounts, RunReport, check_accounting
from retail_pipeline.storage import HadoopFileSystem

logger = logging.getLogger(__name__)


def new_run_id() -> str:
    return f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"


class StageTimer:
    """Wall-clock seconds per stage, in the order the stages ran."""

    def __init__(self) -> None:
        self.durations: dict[str, float] = {}

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        started = time.perf_counter()
        logger.info("Stage %s: started", name)
        try:
            yield
        finally:
            self.durations[name] = round(time.perf_counter() - started, 3)
            logger.info("Stage %s: %.1f s", name, self.durations[name])


def read_lines(spark: SparkSession, inputs: list[InputFile], *, encoding: str) -> DataFrame:
    """One row per text line: (source_file, line). The only read of the input."""
    raw = spark.read.text([f.path for f in inputs])
    # Spark's text source keeps the bytes as they are, so other encodings decode losslessly.
    # (For UTF-8, Hadoop's line reader already drops a leading byte-order mark.)
    text = F.col("value")
    charset = jvm_charset(encoding)
    if charset != "UTF-8":
        text = F.decode(F.col("value").cast("binary"), charset)
    return raw.select(F.input_file_name().alias(transforms.SOURCE_FILE), text.alias(transforms.LINE))


def count_outcomes(classified: DataFrame) -> OutcomeCounts:
    groups = (
        classified.groupBy("outcome", "reason")
        .agg(F.count(F.lit(1)).alias("lines"), F.sum("revenue").alias("revenue"))
        .collect()
    )
    return OutcomeCounts.from_groups((g["outcome"], g["reason"], g["lines"], g["revenue"]) for g in groups)


def write_curated(curated: DataFrame, path: str) -> None:
    # Sorting by the partition columns first satisfies the writer's own ordering, so this is
    # the only sort; ordering by time inside a month makes files deterministic and prunable.
    (
        curated.sortWithinPartitions(*transforms.PARTITION_COLUMNS, "invoice_ts", "invoice_no", "stock_code")
        .write.mode("overwrite")
        .partitionBy(*transforms.PARTITION_COLUMNS)
        .parquet(path)
    )


def write_quarantine(quarantine: DataFrame, path: str) -> None:
    quarantine.write.mode("overwrite").partitionBy("source_name").parquet(path)


def count_parquet_rows(spark: SparkSession, fs: HadoopFileSystem, path: str) -> int:
    """Rows written under `path` (0 when nothing was), read back from the files' footers."""
    if not fs.list_dirs(path):
        return 0
    return spark.read.parquet(path).count()


def run(spark: SparkSession, settings: BatchSettings, *, run_id: str | None = None) -> RunReport:
    """Run the batch job once; returns the published run report."""
    run_id = run_id or new_run_id()
    output = settings.output.rstrip("/")
    fs = HadoopFileSystem(spark)
    timer = StageTimer()
    staging = publish.staging_dir(output, run_id)
    with timer.stage("inspect_inputs"):
        publish.recover(fs, output)
        inputs = inspect_inputs(fs, settings.input, encoding=settings.encoding)
        logger.info("Reading %d input file(s), %s bytes", len(inputs), f"{sum(f.size for f in inputs):,}")

    with timer.stage("read_and_classify"):
        truncated = {
            f.path: f.unterminated_last_line
            for f in inputs
            if f.unterminated_last_line is not None and settings.quarantine_unterminated_last_line
        }
        classified = (
            read_lines(spark, inputs, encoding=settings.encoding)
            .transform(
                transforms.classify_lines,
                header_lines={f.header_line for f in inputs},
                truncated_last_lines=truncated,
            )
            .transform(transforms.keep_outcome_columns)
            .persist(StorageLevel.MEMORY_AND_DISK)
        )
        counts = count_outcomes(classified)

    try:
        with timer.stage("write_staging"):
            write_curated(transforms.to_curated(classified), f"{staging}/curated")
            write_quarantine(transforms.to_quarantine(classified), f"{staging}/quarantine")
        with timer.stage("verify"):
            check_accounting(
                counts,
                written_published=count_parquet_rows(spark, fs, f"{staging}/curated"),
                written_quarantined=count_parquet_rows(spark, fs, f"{staging}/quarantine"),
            )
    except BaseException:
        # Nothing of this run becomes visible; the previous output stays as it was.
        fs.delete(staging)
        fs.delete_if_empty(f"{output}/{publish.STAGING}")
        raise
    finally:
        classified.unpersist()

    with timer.stage("publish"):
        report = RunReport(
            run_id=run_id,
            status="succeeded",
            inputs=[f.path for f in inputs],
            output=output,
            read=counts.read,
            published=counts.published,
            filtered=counts.filtered,
            quarantined=counts.quarantined,
            published_revenue=str(counts.published_revenue),
            header_lines=counts.header_lines,
            durations_s=dict(timer.durations),
            outputs={
                "curated": f"{output}/curated",
                "quarantine": f"{output}/quarantine",
                "report": f"{output}/reports/run_report.json",
            },
            curated_partitions=[
                unit.removeprefix("curated/")
                for unit in publish.staged_units(fs, staging)
                if unit.startswith("curated/")
            ],
            spark_version=spark.version,
        )
        fs.write_text(f"{staging}/reports/run_report.json", report.to_json())
        fs.write_text(f"{staging}/reports/runs/{run_id}.json", report.to_json())
        publish.publish(fs, output, run_id)
    return report
