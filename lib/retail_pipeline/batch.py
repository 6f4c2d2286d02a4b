"""The batch job: raw Online Retail CSV -> curated Parquet, quarantine and a run report.

inspect inputs (driver) -> read lines once -> classify (transforms) -> cache
  -> count outcomes (one aggregation) -> write curated + quarantine to staging
  -> verify the written counts -> write the report -> publish (replace partitions)
"""

from __future__ import annotations

import functools
import logging
import shutil
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from retail_pipeline import publish, transforms
from retail_pipeline.config import BatchSettings, QualitySettings
from retail_pipeline.inputs import InputFile, inspect_inputs, jvm_charset
from retail_pipeline.quality import QualityGateError
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
    return raw.select(F.col("_metadata.file_path").alias(transforms.SOURCE_FILE), text.alias(transforms.LINE))


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


def validate_run(
    fs: HadoopFileSystem,
    classified: DataFrame,
    *,
    quality: QualitySettings,
    counts: OutcomeCounts,
    staging: str,
    run_id: str,
) -> dict[str, Any]:
    """Run the quality gate on the cached lines; its JSON result and Data Docs go to staging.
    Raises QualityGateError (after staging the reports) when a critical expectation fails."""
    from retail_pipeline import quality as gate  # Great Expectations loads only when used

    result, docs_dir = gate.validate(
        transforms.to_raw_input(classified),
        transforms.to_curated(classified),
        settings=quality,
        published_rows=counts.published,
    )
    try:
        fs.copy_from_local(docs_dir, f"{staging}/reports/data_docs")
    finally:
        shutil.rmtree(docs_dir, ignore_errors=True)
    fs.write_text(f"{staging}/reports/validation/{run_id}.json", result.to_json())
    summary = {
        "success": result.success,
        "seconds": round(result.seconds, 3),
        "critical_failures": [o.describe() for o in result.critical_failures],
        "warnings": [o.describe() for o in result.warnings],
        "result": f"reports/validation/{run_id}.json",
        "data_docs": "reports/data_docs/index.html",
    }
    if not result.success:
        raise gate.QualityGateError(result)
    return summary


def build_report(
    spark: SparkSession,
    fs: HadoopFileSystem,
    *,
    run_id: str,
    status: str,
    inputs: list[InputFile],
    output: str,
    counts: OutcomeCounts,
    durations: dict[str, float],
    quality: dict[str, Any],
) -> RunReport:
    staging = publish.staging_dir(output, run_id)
    return RunReport(
        run_id=run_id,
        status=status,
        inputs=[f.path for f in inputs],
        output=output,
        read=counts.read,
        published=counts.published if status == "succeeded" else 0,
        filtered=counts.filtered,
        quarantined=counts.quarantined,
        published_revenue=str(counts.published_revenue) if status == "succeeded" else "0",
        header_lines=counts.header_lines,
        durations_s=dict(durations),
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
        quality=quality,
        spark_version=spark.version,
    )


def write_staging(
    spark: SparkSession,
    fs: HadoopFileSystem,
    classified: DataFrame,
    *,
    counts: OutcomeCounts,
    staging: str,
    timer: StageTimer,
) -> None:
    """Write curated and quarantined lines where readers never look, then check the counts."""
    with timer.stage("write_staging"):
        write_curated(transforms.to_curated(classified), f"{staging}/curated")
        write_quarantine(transforms.to_quarantine(classified), f"{staging}/quarantine")
    with timer.stage("verify"):
        check_accounting(
            counts,
            written_published=count_parquet_rows(spark, fs, f"{staging}/curated"),
            written_quarantined=count_parquet_rows(spark, fs, f"{staging}/quarantine"),
        )


def run(
    spark: SparkSession,
    settings: BatchSettings,
    *,
    quality: QualitySettings | None = None,
    run_id: str | None = None,
) -> RunReport:
    """Run the batch job once; returns the published run report. Without `quality` (or with
    it disabled) nothing checks the data before it is published: the CLI always passes the
    config's settings."""
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
        classified = classify_inputs(spark, inputs, settings).persist(StorageLevel.MEMORY_AND_DISK)
        counts = count_outcomes(classified)

    make_report = functools.partial(
        build_report, spark, fs, run_id=run_id, inputs=inputs, output=output, counts=counts
    )
    gate_on = quality is not None and quality.enabled
    quality_summary: dict[str, Any] = {"enabled": gate_on}
    if not gate_on:
        logger.warning("The data-quality gate is off: publishing unvalidated data")
    try:
        # The gate validates the cached lines while this thread writes them to staging: nothing
        # is published before it passes, and its GX overhead (mostly Python on the driver)
        # overlaps the write's work in the executors.
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="quality-gate") as pool:
            gate = None
            if quality is not None and quality.enabled:
                gate = pool.submit(
                    validate_run,
                    fs,
                    classified,
                    quality=quality,
                    counts=counts,
                    staging=staging,
                    run_id=run_id,
                )
            write_staging(spark, fs, classified, counts=counts, staging=staging, timer=timer)
            if gate is not None:
                with timer.stage("validate_wait"):
                    quality_summary |= gate.result()
                timer.durations["validate_concurrent"] = quality_summary["seconds"]
    except QualityGateError as failure:
        # Publish the reports (validation result, Data Docs, this run's report) but no data;
        # reports/run_report.json keeps describing the data that is published.
        fs.delete(f"{staging}/curated")
        fs.delete(f"{staging}/quarantine")
        quality_summary |= {"success": False, "critical_failures": failure.describe_failures()}
        report = make_report(status="failed_quality_gate", durations=timer.durations, quality=quality_summary)
        fs.write_text(f"{staging}/reports/runs/{run_id}.json", report.to_json())
        publish.publish(fs, output, run_id)
        raise
    except BaseException:
        # Nothing of this run becomes visible; the previous output stays as it was.
        fs.delete(staging)
        fs.delete_if_empty(f"{output}/{publish.STAGING}")
        raise
    finally:
        classified.unpersist()

    with timer.stage("publish"):
        report = make_report(status="succeeded", durations=timer.durations, quality=quality_summary)
        fs.write_text(f"{staging}/reports/run_report.json", report.to_json())
        fs.write_text(f"{staging}/reports/runs/{run_id}.json", report.to_json())
        publish.publish(fs, output, run_id)
    return report


def classify_inputs(spark: SparkSession, inputs: list[InputFile], settings: BatchSettings) -> DataFrame:
    """The input files read once and classified, one row per line, with what the outputs need."""
    truncated = {
        f.uri: f.unterminated_last_line
        for f in inputs
        if f.unterminated_last_line is not None and settings.quarantine_unterminated_last_line
    }
    return (
        read_lines(spark, inputs, encoding=settings.encoding)
        .transform(
            transforms.classify_lines,
            header_lines={f.header_line for f in inputs},
            truncated_last_lines=truncated,
        )
        .transform(transforms.keep_outcome_columns)
    )
