"""The batch job: raw Online Retail CSV -> curated Parquet, quarantine and a run report.

One pass over the input does the work: read lines -> classify (transforms) -> count outcomes
(an Observation on the same pass) -> write every data line to staging, partitioned by
outcome, reason and month. Then, only on what was written:
  quarantine (a second pass, only when lines were quarantined: it needs their raw text)
  -> verify the written counts -> quality gate on the staged Parquet
  -> report -> publish (replace the curated months and the quarantined files' records).

Nothing is cached: the staged Parquet is the fork between the outputs, the counts and the
quality gate, and reading it back is cheaper than building an in-memory cache of the lines.
"""

from __future__ import annotations

import functools
import logging
import math
import shutil
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from pyspark.sql import DataFrame, Observation, SparkSession
from pyspark.sql import functions as F

from retail_pipeline import publish, transforms
from retail_pipeline.config import BatchSettings, QualitySettings
from retail_pipeline.inputs import InputFile, inspect_inputs, jvm_charset
from retail_pipeline.quality import QualityGateError
from retail_pipeline.report import OutcomeCounts, RunReport, check_accounting
from retail_pipeline.storage import HadoopFileSystem

logger = logging.getLogger(__name__)

# Staging layout: <staging>/lines/outcome=.../reason=.../invoice_year=.../invoice_month=...
# holds every data line in the curated columns; the published lines' folder becomes
# <staging>/curated once the gate has passed. Spark names a null partition value so.
LINES = "lines"
NULL_PARTITION = "__HIVE_DEFAULT_PARTITION__"
PUBLISHED_LINES = f"outcome={transforms.OUTCOME_PUBLISHED}/reason={NULL_PARTITION}"


def published_lines(staging: str) -> str:
    """The staged folder of the published lines (partitioned by month)."""
    return f"{staging}/{LINES}/{PUBLISHED_LINES}"


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


def balanced_split_bytes(total_bytes: int, *, slots: int, max_split_bytes: int) -> int:
    """A split size that cuts the input into a multiple of the task slots, in equal splits
    of at most `max_split_bytes`.

    Spark's own choice (splits of spark.sql.files.maxPartitionBytes, the last one shorter)
    leaves cores idle at the end of the read: a 456 MB file on 2 cores was read as 128 + 128
    + 128 + 72 MB, so one core waited for the last 128 MB split alone.
    """
    splits = slots * max(1, math.ceil(total_bytes / (slots * max_split_bytes)))
    return max(1, math.ceil(total_bytes / splits))


@contextmanager
def balanced_splits(spark: SparkSession, inputs: list[InputFile]) -> Iterator[None]:
    """Read `inputs` in balanced splits (see `balanced_split_bytes`) within this block."""
    key = "spark.sql.files.maxPartitionBytes"
    conf = spark._jsparkSession.sessionState().conf()  # noqa: SLF001 - the sizes in bytes
    before = int(conf.filesMaxPartitionBytes())
    # Each file also costs spark.sql.files.openCostInBytes in Spark's packing of splits.
    total = sum(f.size + conf.filesOpenCostInBytes() for f in inputs)
    size = balanced_split_bytes(total, slots=spark.sparkContext.defaultParallelism, max_split_bytes=before)
    spark.conf.set(key, str(size))
    try:
        yield
    finally:
        spark.conf.set(key, str(before))


def read_lines(spark: SparkSession, inputs: list[InputFile], *, encoding: str) -> DataFrame:
    """One row per text line: (source_file, line)."""
    raw = spark.read.text([f.path for f in inputs])
    # Spark's text source keeps the bytes as they are, so other encodings decode losslessly.
    # (For UTF-8, Hadoop's line reader already drops a leading byte-order mark.)
    text = F.col("value")
    charset = jvm_charset(encoding)
    if charset != "UTF-8":
        text = F.decode(F.col("value").cast("binary"), charset)
    return raw.select(F.col("_metadata.file_path").alias(transforms.SOURCE_FILE), text.alias(transforms.LINE))


def outcome_counts(observation: Observation) -> OutcomeCounts:
    """The counts an observed pass collected (see `transforms.outcome_metrics`)."""
    return OutcomeCounts.from_groups(transforms.outcome_groups(observation.get))


def write_lines(lines: DataFrame, path: str) -> None:
    """Every data line in the curated columns, partitioned by where it ends; the published
    lines by month too (the others only feed the raw-input checks: one file per task and
    reason instead of one per month as well, 8 files instead of ~100 on a SCALE=1 input).

    No sort: with `spark.sql.optimizer.plannedWrite.enabled` false (session.py) each task
    keeps one Parquet writer open per partition it meets (up to
    `spark.sql.maxConcurrentOutputFileWriters`, then it falls back to sorting), instead of
    sorting all its lines by partition first.
    """
    month_if_published = [
        F.when(transforms.is_published(), F.col(c)).alias(c) for c in transforms.PARTITION_COLUMNS
    ]
    columns = [c for c in transforms.CURATED_COLUMNS if c not in transforms.PARTITION_COLUMNS]
    (
        lines.select(*columns, *month_if_published, "outcome", "reason")
        .write.mode("overwrite")
        .partitionBy("outcome", "reason", *transforms.PARTITION_COLUMNS)
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
    spark: SparkSession,
    fs: HadoopFileSystem,
    *,
    quality: QualitySettings,
    counts: OutcomeCounts,
    staging: str,
    run_id: str,
) -> dict[str, Any]:
    """Run the quality gate on the staged Parquet: every data line for the raw suite, the
    published lines for the curated one. Its JSON result and Data Docs go to staging.
    Raises QualityGateError (after staging the reports) when a critical expectation fails."""
    from retail_pipeline import quality as gate  # Great Expectations loads only when used

    lines = spark.read.parquet(f"{staging}/{LINES}")
    published = published_lines(staging)
    curated = spark.read.parquet(published) if fs.exists(published) else lines.where(F.lit(False))
    result, docs_dir = gate.validate(
        transforms.to_raw_input(lines),
        curated.select(*transforms.CURATED_COLUMNS),
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
    inputs: list[InputFile],
    settings: BatchSettings,
    *,
    staging: str,
    timer: StageTimer,
) -> OutcomeCounts:
    """Classify and write every data line to staging in one pass, the quarantine in a second
    one when there is any; check that what was written is what was counted."""
    with timer.stage("write_staging"), balanced_splits(spark, inputs):
        lines, observation = data_lines(spark, inputs, settings)
        write_lines(lines, f"{staging}/{LINES}")
        counts = outcome_counts(observation)
    if counts.quarantined_total:
        # Quarantine records keep each line's raw text, which the staged lines do not carry:
        # read again, only when some line was quarantined (real exports have none).
        with timer.stage("write_quarantine"), balanced_splits(spark, inputs):
            classified, again = observed_lines(spark, inputs, settings)
            write_quarantine(transforms.to_quarantine(classified), f"{staging}/quarantine")
            if outcome_counts(again) != counts:
                raise RuntimeError(
                    "the input changed while the job read it: two reads counted different lines"
                )
    with timer.stage("verify"):
        check_accounting(
            counts,
            written_published=count_parquet_rows(spark, fs, published_lines(staging)),
            written_quarantined=count_parquet_rows(spark, fs, f"{staging}/quarantine"),
        )
    return counts


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

    gate_on = quality is not None and quality.enabled
    quality_summary: dict[str, Any] = {"enabled": gate_on}
    if not gate_on:
        logger.warning("The data-quality gate is off: publishing unvalidated data")
    counts: OutcomeCounts | None = None
    make_report = functools.partial(build_report, spark, fs, run_id=run_id, inputs=inputs, output=output)
    try:
        counts = write_staging(spark, fs, inputs, settings, staging=staging, timer=timer)
        if quality is not None and quality.enabled:
            with timer.stage("validate"):
                quality_summary |= validate_run(
                    spark, fs, quality=quality, counts=counts, staging=staging, run_id=run_id
                )
        with timer.stage("publish"):
            if fs.exists(published_lines(staging)):
                fs.rename(published_lines(staging), f"{staging}/curated")
            fs.delete(f"{staging}/{LINES}")
            report = make_report(
                counts=counts, status="succeeded", durations=timer.durations, quality=quality_summary
            )
            fs.write_text(f"{staging}/reports/run_report.json", report.to_json())
            fs.write_text(f"{staging}/reports/runs/{run_id}.json", report.to_json())
            publish.publish(fs, output, run_id)
        return report
    except QualityGateError as failure:
        # Publish the reports (validation result, Data Docs, this run's report) but no data;
        # reports/run_report.json keeps describing the data that is published.
        assert counts is not None
        fs.delete(f"{staging}/{LINES}")
        fs.delete(f"{staging}/quarantine")
        quality_summary |= {"success": False, "critical_failures": failure.describe_failures()}
        report = make_report(
            counts=counts, status="failed_quality_gate", durations=timer.durations, quality=quality_summary
        )
        fs.write_text(f"{staging}/reports/runs/{run_id}.json", report.to_json())
        publish.publish(fs, output, run_id)
        raise
    except BaseException:
        # Nothing of this run becomes visible; the previous output stays as it was.
        fs.delete(staging)
        fs.delete_if_empty(f"{output}/{publish.STAGING}")
        raise


def data_lines(
    spark: SparkSession, inputs: list[InputFile], settings: BatchSettings
) -> tuple[DataFrame, Observation]:
    """The classified lines but the header lines, which the observation still counts.

    The filter has to stay above the observation for a second reason: Spark's optimizer would
    otherwise push it under the classification and inline the parsed fields into it, parsing
    each line again for every field the outcome reads (from_csv 28 times in the optimized
    plan instead of once; the write took 92-95 s instead of 20 s at SCALE=10, warm).
    """
    classified, observation = observed_lines(spark, inputs, settings)
    return classified.where(F.col("outcome") != transforms.OUTCOME_HEADER), observation


def observed_lines(
    spark: SparkSession, inputs: list[InputFile], settings: BatchSettings
) -> tuple[DataFrame, Observation]:
    """The classified lines, counted by the action that consumes them (`outcome_counts`)."""
    observation = Observation()
    return classify_inputs(spark, inputs, settings).observe(
        observation, *transforms.outcome_metrics()
    ), observation


def classify_inputs(spark: SparkSession, inputs: list[InputFile], settings: BatchSettings) -> DataFrame:
    """The input files read and classified, one row per line (header lines included)."""
    truncated = {
        f.uri: f.unterminated_last_line
        for f in inputs
        if f.unterminated_last_line is not None and settings.quarantine_unterminated_last_line
    }
    return read_lines(spark, inputs, encoding=settings.encoding).transform(
        transforms.classify_lines,
        header_lines={f.header_line for f in inputs},
        truncated_last_lines=truncated,
    )
