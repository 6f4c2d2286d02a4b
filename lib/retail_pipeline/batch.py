"""The batch job: raw Online Retail CSV -> curated Parquet, quarantine, ledger and run report.

The source file is the unit of replacement: a run replaces every line of the files it reads,
wherever they are, and nothing else, so any sequence of runs over any split of the input ends
where one run over all of it would. `run` is the list of stages:

    lock the output (one writer) -> finish or discard an interrupted run (publish.recover)
    -> select the inputs (all, or with --incremental those the ledger has not seen)
    -> write_staging: one pass reads and classifies every line and writes it to staging by
       outcome, reason and month (an Observation counts what staging cannot hold: header
       lines, revenue); a second pass only when some line was quarantined (it needs their
       raw text); the lines of each outcome, reason, source and month counted from staging
    -> validate: the quality gate on the staged Parquet (a critical failure publishes nothing)
    -> rewrite_curated: each month the run touches, rebuilt as other sources' lines + the run's
    -> publish: months, quarantine, ledger and reports in one journaled step

Nothing is cached: the staged Parquet is the fork between the outputs, the counts and the
quality gate, and reading it back is cheaper than building an in-memory cache of the lines.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import shutil
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from pyspark.sql import DataFrame, Observation, SparkSession
from pyspark.sql import functions as F

from retail_pipeline import contract, multiline, publish, rewrite, transforms
from retail_pipeline.catalog import VERSIONS_DIR, CatalogTable
from retail_pipeline.config import BatchSettings, QualitySettings
from retail_pipeline.inputs import (
    READ_CHUNK,
    InputError,
    InputFile,
    Intake,
    jvm_charset,
    select_inputs,
    text_chunks,
)
from retail_pipeline.ledger import Ledger, Month, SourceEntry, month_key
from retail_pipeline.lock import LockInfo, output_lock
from retail_pipeline.logs import set_run_id
from retail_pipeline.publish import CatalogSwitch
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
# An (outcome, reason) of the staged lines (reason None for published lines).
Group = tuple[str | None, str | None]
# Staging folder of the inputs copied with their multi-line records joined (`multiline`).
MULTILINE = "multiline"


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
        logger.info("Stage %s: started", name, extra={"stage": name})
        try:
            yield
        finally:
            self.durations[name] = round(time.perf_counter() - started, 3)
            seconds = self.durations[name]
            logger.info("Stage %s: %.1f s", name, seconds, extra={"stage": name, "duration_s": seconds})


def balanced_split_bytes(total_bytes: int, *, slots: int, max_split_bytes: int) -> int:
    """A split size that cuts the input into a multiple of the task slots, in equal splits
    of at most `max_split_bytes`.

    Spark's own choice (splits of spark.sql.files.maxPartitionBytes, the last one shorter)
    leaves cores idle at the end of the read, one core reading the last full split alone.
    """
    splits = slots * max(1, math.ceil(total_bytes / (slots * max_split_bytes)))
    return max(1, math.ceil(total_bytes / splits))


@contextmanager
def storage_errors(output: str) -> Iterator[None]:
    """A full disk or a refused write, said in one line (naming the output) instead of a
    Java stack trace; the run's staged output is discarded, the published one unchanged."""
    try:
        yield
    except Exception as error:
        text = str(error)
        for cause, advice in STORAGE_FAILURES.items():
            if cause in text:
                raise StorageError(f"writing {output} failed: {cause}: {advice}") from None
        raise


# Messages of the JVM's and the OS's I/O errors, and what to do about each.
STORAGE_FAILURES = {
    "No space left on device": "free space there (the previous output is unchanged) and run again",
    "Disk quota exceeded": "raise the quota or free space (the previous output is unchanged) and run again",
    "Read-only file system": "write the output to a writable folder",
    "Permission denied": "give the job's user write access to the output folder",
}


class StorageError(RuntimeError):
    """The output could not be written; the message says why and what to do."""


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


def read_lines(
    spark: SparkSession,
    inputs: list[InputFile],
    *,
    encoding: str,
    run_id: str,
    copies: Mapping[str, str] | None = None,
) -> DataFrame:
    """One row per text line: (source_file, line, run_id). `copies` maps a source's URI to a
    copy to read instead (`join_multiline_files`); source_file still names the source."""
    copies = copies or {}
    raw = spark.read.text([copies.get(f.uri, f.path) for f in inputs if not f.empty])
    source = transforms.canonical_source(F.col("_metadata.file_path"))
    read_key = F.regexp_replace(F.col("_metadata.file_path"), transforms.FILE_URI_SLASHES, "$1:/")
    for uri, copy in copies.items():
        source = F.when(read_key == transforms.file_key(copy), F.lit(uri)).otherwise(source)
    # Spark's text source keeps the bytes as they are, so other encodings decode losslessly.
    # (For UTF-8, Hadoop's line reader already drops a leading byte-order mark.)
    text = F.col("value")
    charset = jvm_charset(encoding)
    # Bytes invalid in the encoding become U+FFFD, which quarantines the line (invalid_encoding):
    # Spark keeps a UTF-8 line's bytes as they are, so every line is decoded again by the JVM's
    # replacing decoder (a character count cannot tell: Spark counts a stray byte as one).
    text = F.decode(F.col("value").cast("binary"), charset)
    return raw.select(
        source.alias(transforms.SOURCE_FILE),
        text.alias(transforms.LINE),
        F.lit(run_id).alias(transforms.RUN_ID),
    )


@dataclass(frozen=True)
class ObservedLines:
    """What the staging pass counted as it read (`transforms.outcome_metrics`)."""

    lines: int  # every line read, header lines included
    header_lines: int
    quarantined: int
    published_revenue: Decimal
    unclosed_quote_files: frozenset[str]

    @classmethod
    def of(cls, observation: Observation) -> ObservedLines:
        metrics = observation.get
        return cls(
            lines=metrics[transforms.ALL_LINES],
            header_lines=metrics[transforms.HEADER_LINES],
            quarantined=metrics[transforms.QUARANTINED_LINES],
            published_revenue=metrics[transforms.REVENUE] or Decimal(0),
            unclosed_quote_files=frozenset(transforms.unclosed_quote_files(metrics)),
        )

    def counts(self, staged: Mapping[Group, int], copies: JoinedCopies) -> OutcomeCounts:
        """The run's counts: the staged lines of each (outcome, reason) with what was observed,
        and the records read whole across lines (from the copies)."""
        published = transforms.OUTCOME_PUBLISHED
        counts = OutcomeCounts.from_groups(
            (outcome, reason, n, self.published_revenue if outcome == published else None)
            for (outcome, reason), n in staged.items()
        )
        return dataclasses.replace(
            counts,
            header_lines=self.header_lines,
            multiline_records=copies.records,
            multiline_lines=copies.lines,
        )


def write_lines(lines: DataFrame, path: str) -> None:
    """Every data line in the curated columns, partitioned by where it ends; the published
    lines by month too (the others only feed each source's counts in the ledger: one file
    per task and reason, not one per month as well).

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
    quarantine.write.mode("overwrite").partitionBy(transforms.SOURCE_ID).parquet(path)


def staged_lines(
    spark: SparkSession, fs: HadoopFileSystem, staging: str, inputs: list[InputFile]
) -> tuple[dict[str, SourceLines], Counter[Group]]:
    """Where the staged lines went, counted from staging: each source's lines by outcome and
    published month (the ledger's counts), and the run's lines by (outcome, reason).

    Outcome, reason and month are partition folders: a run of one input file groups by them
    alone, and Spark counts each file's rows from its Parquet footer without reading a column.
    A run of several files reads the source_file column too."""
    by_source: dict[str, SourceLines] = {}
    groups: Counter[Group] = Counter()
    if not fs.list_dirs(f"{staging}/{LINES}"):
        return by_source, groups
    read = [f.uri for f in inputs if not f.empty]
    source_column = [] if len(read) == 1 else [transforms.SOURCE_FILE]
    grouped = (
        spark.read.parquet(f"{staging}/{LINES}")
        .groupBy(*source_column, "outcome", "reason", *transforms.PARTITION_COLUMNS)
        .count()
        .collect()
    )
    for row in grouped:
        *source, outcome, reason, year, month, count = row
        lines = by_source.setdefault(source[0] if source else read[0], SourceLines())
        lines.add(outcome, (year, month), count)
        groups[(outcome, reason)] += count
    return by_source, groups


def validate_run(
    spark: SparkSession,
    fs: HadoopFileSystem,
    *,
    quality: QualitySettings,
    counts: OutcomeCounts,
    staging: str,
    run_id: str,
) -> dict[str, Any]:
    """Run the quality gate on the staged published lines. Its JSON result and Data Docs go to
    staging. Raises QualityGateError (after staging the reports) when a critical expectation
    fails."""
    from retail_pipeline import quality as gate  # Great Expectations loads only when used

    published = published_lines(staging)
    if fs.exists(published):
        curated = spark.read.parquet(published)
    else:  # no line published: no rows, in the staged lines' columns
        curated = spark.read.parquet(f"{staging}/{LINES}").where(F.lit(False))
    result, docs_dir = gate.validate(
        curated.select(*transforms.CURATED_COLUMNS), settings=quality, published_rows=counts.published
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


class SourceLines:
    """Where one source's staged lines went: its ledger counts."""

    def __init__(self) -> None:
        self.outcomes: dict[str, int] = {}
        self.months: dict[Month, int] = {}

    def add(self, outcome: str, month: tuple[int | None, int | None], count: int) -> None:
        self.outcomes[outcome] = self.outcomes.get(outcome, 0) + count
        year, number = month
        if outcome == transforms.OUTCOME_PUBLISHED and year is not None and number is not None:
            self.months[(year, number)] = self.months.get((year, number), 0) + count

    def ledger_entry(self, source: InputFile, run_id: str) -> SourceEntry:
        return SourceEntry(
            source=source.uri,
            size=source.size,
            modified=source.modified,
            checksum=source.checksum,
            run_id=run_id,
            read=sum(self.outcomes.values()),
            published=self.outcomes.get(transforms.OUTCOME_PUBLISHED, 0),
            filtered=self.outcomes.get(transforms.OUTCOME_FILTERED, 0),
            quarantined=self.outcomes.get(transforms.OUTCOME_QUARANTINED, 0),
            months={month_key(m): n for m, n in sorted(self.months.items())},
        )


@dataclass(frozen=True)
class Staged:
    """What `write_staging` wrote: the run's counts and each source's lines."""

    counts: OutcomeCounts
    sources: Mapping[str, SourceLines]

    def published_by_month(self) -> dict[Month, int]:
        months: dict[Month, int] = {}
        for lines in self.sources.values():
            for month, count in lines.months.items():
                months[month] = months.get(month, 0) + count
        return months


def write_staging(
    spark: SparkSession,
    fs: HadoopFileSystem,
    inputs: list[InputFile],
    settings: BatchSettings,
    *,
    staging: str,
    scope: LineScope,
    timer: StageTimer,
) -> Staged:
    """Classify and write every data line to staging in one pass, the quarantine in a second
    one when there is any; check that what was written is what was counted."""
    with timer.stage("write_staging"), balanced_splits(spark, inputs):
        lines, observation = data_lines(spark, inputs, settings, scope=scope)
        write_lines(lines, f"{staging}/{LINES}")
        observed = ObservedLines.of(observation)
    opened = observed.unclosed_quote_files
    if opened:
        # Some quote was left open at a line's end: records whose quoted field spans lines are
        # read whole from joined copies of those files, and the lines staged again.
        with timer.stage("join_multiline"):
            copies = join_multiline_files(fs, [f for f in inputs if f.uri in opened], staging=staging)
        if copies.records:
            scope = dataclasses.replace(scope, copies=copies)
            with timer.stage("write_staging_whole_records"), balanced_splits(spark, inputs):
                lines, observation = data_lines(spark, inputs, settings, scope=scope)
                write_lines(lines, f"{staging}/{LINES}")
                observed = ObservedLines.of(observation)
    if observed.quarantined:
        # Quarantine records keep each line's raw text, which the staged lines do not carry:
        # read again, only when some line was quarantined (real exports have none).
        with timer.stage("write_quarantine"), balanced_splits(spark, inputs):
            classified, again = observed_lines(spark, inputs, settings, scope=scope)
            write_quarantine(transforms.to_quarantine(classified), f"{staging}/quarantine")
            if ObservedLines.of(again) != observed:
                raise RuntimeError(
                    "the input changed while the job read it: two reads counted different lines"
                )
    if opened:
        fs.delete(f"{staging}/{MULTILINE}")
    with timer.stage("verify"):
        sources, groups = staged_lines(spark, fs, staging, inputs)
        counts = observed.counts(groups, scope.copies)
        check_accounting(
            counts,
            lines_read=observed.lines - observed.header_lines,
            quarantined_read=observed.quarantined,
            quarantine_written=rewrite.count_rows(spark, fs, f"{staging}/quarantine"),
        )
    return Staged(counts, sources)


def join_multiline_files(fs: HadoopFileSystem, files: list[InputFile], *, staging: str) -> JoinedCopies:
    """Copies of `files` (into staging) with each record whose quoted field spans lines on one
    line (`multiline.join_records`, bounded); only files where some record was joined are kept.
    One pass over each file in chunks; its bytes pass through as they are (Latin-1 maps each
    byte to one character), compressed files decompressed."""
    paths: dict[str, str] = {}
    records = lines = 0
    for index, source in enumerate(files):
        copy = fs.qualify(f"{staging}/{MULTILINE}/{index}.txt")
        joined = Counter[str]()
        fs.write_chunks(copy, _joined_text(fs, source, joined))
        if joined["records"]:
            paths[source.uri] = copy
            records, lines = records + joined["records"], lines + joined["lines"]
            logger.info(
                "Input %s: %d record(s) over %d lines read whole (a quoted field spans lines)",
                source.path,
                joined["records"],
                joined["lines"],
            )
        else:
            fs.delete(copy)
    return JoinedCopies(paths, records, lines)


def _joined_text(fs: HadoopFileSystem, source: InputFile, joined: Counter[str]) -> Iterator[bytes]:
    """The source's bytes with each multi-line record joined, in chunks; counts the joins."""
    chunks = (chunk.decode("latin-1") for chunk in text_chunks(fs, source.path, source.size))
    pending: list[str] = []
    size = 0
    for record in multiline.join_records(multiline.stream_lines(chunks)):
        if record.lines > 1:
            joined["records"] += 1
            joined["lines"] += record.lines
        pending.append(record.text)
        size += len(record.text)
        if size >= READ_CHUNK:
            yield "".join(pending).encode("latin-1")
            pending, size = [], 0
    yield "".join(pending).encode("latin-1")


def rewrite_curated(
    spark: SparkSession,
    fs: HadoopFileSystem,
    ledger: Ledger,
    inputs: list[InputFile],
    staged: Staged,
    *,
    layout: CuratedLayout,
    staging: str,
) -> rewrite.MonthPlan:
    """The curated months the run touches, built in staging (see `rewrite`)."""
    sources = [f.uri for f in inputs]
    by_month = staged.published_by_month()
    plan = rewrite.plan_months(ledger, sources=sources, staged=by_month)
    rewrite.write_months(
        spark,
        fs,
        plan,
        published={month: layout.current(ledger, month) for month in plan.merged},
        staged=published_lines(staging),
        target=f"{staging}/{layout.root}",
        sources=sources,
        staged_lines=by_month,
    )
    fs.delete(f"{staging}/{LINES}")
    return plan


@dataclass(frozen=True)
class CuratedLayout:
    """Where a run publishes its curated months: renamed into <output>/curated/ (local disk,
    HDFS), or, with a catalog table, as new versions under <output>/curated_versions/<run_id>/
    that the table's partitions switch to (S3, where a rename is a copy)."""

    output: str
    run_id: str
    catalog: CatalogTable | None

    @classmethod
    def of(cls, settings: BatchSettings, *, output: str, run_id: str) -> CuratedLayout:
        table = None
        if settings.catalog_database and settings.catalog_table:
            table = CatalogTable(settings.catalog_database, settings.catalog_table)
        return cls(output, run_id, table)

    @property
    def root(self) -> str:
        """The run's month folders, relative to the output."""
        return "curated" if self.catalog is None else f"{VERSIONS_DIR}/{self.run_id}"

    def current(self, ledger: Ledger, month: Month) -> str:
        """The folder a month is read from now."""
        return ledger.location(month) or f"{self.output}/curated/{rewrite.month_folder(month)}"

    def locations(self, plan: rewrite.MonthPlan) -> dict[Month, str | None]:
        """Each month's folder after the run (None: gone); only versions are tracked."""
        if self.catalog is None:
            return {}
        written = {m: f"{self.output}/{self.root}/{rewrite.month_folder(m)}" for m in plan.written}
        return {**written, **dict.fromkeys(plan.removed)}

    def switch(self, plan: rewrite.MonthPlan) -> CatalogSwitch | None:
        return None if self.catalog is None else CatalogSwitch(self.catalog, self.locations(plan))


def gate_run(
    spark: SparkSession,
    fs: HadoopFileSystem,
    quality: QualitySettings,
    scope: LineScope,
    *,
    staged: Staged,
    staging: str,
) -> dict[str, Any]:
    """The quality gate on what the run staged, with the run's InvoiceDate bounds; a run of
    no data lines (header-only or empty inputs) has nothing to check."""
    if not staged.counts.read:
        logger.info("No data lines (header-only or empty inputs): nothing for the gate to check")
        return {"success": True, "skipped": "no data lines"}
    if scope.invoice_ts_range is not None:
        latest = f"{scope.invoice_ts_range[1]:%Y-%m-%d %H:%M:%S}"
        quality = dataclasses.replace(quality, invoice_ts_max=latest)
    return validate_run(
        spark, fs, quality=quality, counts=staged.counts, staging=staging, run_id=scope.run_id
    )


def build_report(
    spark: SparkSession,
    *,
    run_id: str,
    status: str,
    intake: Intake,
    output: str,
    counts: OutcomeCounts,
    durations: dict[str, float],
    quality: dict[str, Any],
    plan: rewrite.MonthPlan | None = None,
    layout: CuratedLayout | None = None,
) -> RunReport:
    published = status == contract.STATUS_SUCCEEDED
    root = layout.root if layout else "curated"
    return RunReport(
        run_id=run_id,
        status=status,
        inputs=[f.path for f in intake.inputs],
        output=output,
        read=counts.read,
        published=counts.published if published else 0,
        filtered=counts.filtered,
        quarantined=counts.quarantined,
        published_revenue=str(counts.published_revenue) if published else "0",
        header_lines=counts.header_lines,
        durations_s=dict(durations),
        outputs={
            "curated": f"{output}/{root}",
            "quarantine": f"{output}/quarantine",
            "report": f"{output}/reports/run_report.json",
        },
        sources=[f.uri for f in intake.inputs] if published else [],
        curated_root=root,
        skipped_inputs=[f.path for f in intake.skipped],
        curated_partitions=[rewrite.month_folder(m) for m in plan.written] if plan and published else [],
        removed_partitions=[rewrite.month_folder(m) for m in plan.removed] if plan and published else [],
        quality=quality,
        spark_version=spark.version,
        multiline_records=counts.multiline_records,
        multiline_lines=counts.multiline_lines,
    )


def run(
    spark: SparkSession,
    settings: BatchSettings,
    *,
    quality: QualitySettings | None = None,
    run_id: str | None = None,
) -> RunReport:
    """Run the batch job once; returns the run report. Without `quality` (or with it
    disabled) nothing checks the data before it is published: the CLI always passes the
    config's settings. One run at a time per output: a second one raises OutputLockedError."""
    run_id = run_id or new_run_id()
    set_run_id(run_id)
    output = settings.output.rstrip("/")
    fs = HadoopFileSystem(spark)
    if fs.exists(output) and not fs.is_dir(output):
        raise InputError(f"output {output} is a file, not a folder: give the job a folder to write to")
    with storage_errors(output), output_lock(output, run_id=run_id) as lock:
        return _run_locked(spark, settings, quality=quality, lock=lock, output=output)


def _run_locked(
    spark: SparkSession,
    settings: BatchSettings,
    *,
    quality: QualitySettings | None,
    lock: LockInfo,
    output: str,
) -> RunReport:
    """The stages of a run, in order, under the output's lock."""
    job = Job.start(spark, settings, quality=quality, lock=lock, output=output)
    if not job.intake.inputs:
        return job.nothing_new()
    staged: Staged | None = None
    try:
        staged = write_staging(
            spark, job.fs, job.intake.inputs, settings, staging=job.staging, scope=job.scope, timer=job.timer
        )
        checked = job.validate(staged)
        with job.timer.stage("rewrite_curated"):
            plan = rewrite_curated(
                spark, job.fs, job.ledger, job.intake.inputs, staged, layout=job.layout, staging=job.staging
            )
        with job.timer.stage("publish"):
            return job.publish(staged, plan, quality=checked)
    except QualityGateError as failure:
        assert staged is not None
        job.publish_failed_gate(staged, failure)
        raise
    except BaseException:
        publish.discard(job.fs, output, job.run_id)
        raise


@dataclass
class Job:
    """One run's context under the output's lock: what its stages share."""

    spark: SparkSession
    fs: HadoopFileSystem
    settings: BatchSettings
    quality: QualitySettings | None
    lock: LockInfo
    output: str
    timer: StageTimer
    scope: LineScope
    ledger: Ledger
    intake: Intake
    layout: CuratedLayout

    @classmethod
    def start(
        cls,
        spark: SparkSession,
        settings: BatchSettings,
        *,
        quality: QualitySettings | None,
        lock: LockInfo,
        output: str,
    ) -> Job:
        """Finish or discard an interrupted run, read the ledger and select the inputs."""
        fs, timer = HadoopFileSystem(spark), StageTimer()
        started = datetime.now(UTC).replace(tzinfo=None)
        bounds = quality.invoice_ts_bounds(started) if quality is not None else None
        with timer.stage("inspect_inputs"):
            publish.recover(fs, output)
            ledger = Ledger.read(fs, output)
            intake = select_inputs(
                fs, settings.input, ledger, incremental=settings.incremental, encoding=settings.encoding
            )
        layout = CuratedLayout.of(settings, output=output, run_id=lock.run_id)
        scope = LineScope(lock.run_id, bounds)
        return cls(spark, fs, settings, quality, lock, output, timer, scope, ledger, intake, layout)

    @property
    def run_id(self) -> str:
        return self.lock.run_id

    @property
    def staging(self) -> str:
        return publish.staging_dir(self.output, self.run_id)

    def report(self, status: str, counts: OutcomeCounts, **details: Any) -> RunReport:
        return build_report(
            self.spark,
            run_id=self.run_id,
            status=status,
            intake=self.intake,
            output=self.output,
            counts=counts,
            durations=self.timer.durations,
            layout=self.layout,
            **details,
        )

    def nothing_new(self) -> RunReport:
        """A run with no new input: its report is published (a load of it loads nothing), no
        data, quarantine or ledger changes."""
        logger.info("Nothing new: all %d input file(s) were processed before", len(self.intake.skipped))
        report = self.report(contract.STATUS_NOTHING_NEW, OutcomeCounts.from_groups([]), quality={})
        publish.publish_reports(self.fs, report, staging=self.staging)
        return report

    def validate(self, staged: Staged) -> dict[str, Any]:
        """The quality gate's summary; raises QualityGateError on a critical failure."""
        if self.quality is None or not self.quality.enabled:
            logger.warning("The data-quality gate is off: publishing unvalidated data")
            return {"enabled": False}
        with self.timer.stage("validate"):
            checked = gate_run(
                self.spark, self.fs, self.quality, self.scope, staged=staged, staging=self.staging
            )
        return {"enabled": True, **checked}

    def publish(self, staged: Staged, plan: rewrite.MonthPlan, *, quality: dict[str, Any]) -> RunReport:
        """Publish the run (data, quarantine, ledger, reports) in one journaled step."""
        self.lock.ensure_held()
        entries = [
            staged.sources.get(f.uri, SourceLines()).ledger_entry(f, self.run_id) for f in self.intake.inputs
        ]
        report = self.report(contract.STATUS_SUCCEEDED, staged.counts, quality=quality, plan=plan)
        after = self.ledger.with_run(entries, self.layout.locations(plan))
        publish.publish_run(
            self.fs,
            report,
            staging=self.staging,
            ledger=after,
            removed=plan.removed,
            catalog=self.layout.switch(plan),
        )
        if self.layout.catalog is not None:
            publish.expire_versions(self.output, after, grace_hours=self.settings.version_grace_hours)
        return report

    def publish_failed_gate(self, staged: Staged, failure: QualityGateError) -> None:
        """Publish the reports of a run the gate stopped, and no data."""
        summary = {"enabled": True, "success": False, "critical_failures": failure.describe_failures()}
        report = self.report(contract.STATUS_FAILED_QUALITY_GATE, staged.counts, quality=summary)
        publish.publish_failed_gate(self.fs, report, staging=self.staging)


def data_lines(
    spark: SparkSession, inputs: list[InputFile], settings: BatchSettings, *, scope: LineScope
) -> tuple[DataFrame, Observation]:
    """The classified lines but the header lines, which the observation still counts.

    The filter has to stay above the observation for a second reason: Spark's optimizer would
    otherwise push it under the classification and inline the parsed fields into it, parsing
    each line again for every field the outcome reads (from_csv 28 times in the optimized
    plan instead of once, the write several times slower).
    """
    classified, observation = observed_lines(spark, inputs, settings, scope=scope)
    return classified.where(F.col("outcome") != transforms.OUTCOME_HEADER), observation


def observed_lines(
    spark: SparkSession, inputs: list[InputFile], settings: BatchSettings, *, scope: LineScope
) -> tuple[DataFrame, Observation]:
    """The classified lines, counted by the action that consumes them (`ObservedLines`)."""
    observation = Observation()
    return classify_inputs(spark, inputs, settings, scope=scope).observe(
        observation, *transforms.outcome_metrics()
    ), observation


def classify_inputs(
    spark: SparkSession, inputs: list[InputFile], settings: BatchSettings, *, scope: LineScope
) -> DataFrame:
    """The input files read and classified, one row per line (header lines included)."""
    truncated = {
        f.uri: f.unterminated_last_line
        for f in inputs
        if f.unterminated_last_line is not None and settings.quarantine_unterminated_last_line
    }
    lines = read_lines(
        spark, inputs, encoding=settings.encoding, run_id=scope.run_id, copies=scope.copies.paths
    )
    return lines.transform(
        transforms.classify_lines,
        header_lines={f.header_line for f in inputs if not f.empty},
        truncated_last_lines=truncated,
        invoice_ts_range=scope.invoice_ts_range,
    )


@dataclass(frozen=True)
class JoinedCopies:
    """Input files copied with their multi-line records joined (`join_multiline_files`): each
    copy's path by its source's URI, the records joined and the lines they spanned."""

    paths: Mapping[str, str] = dataclasses.field(default_factory=dict)
    records: int = 0
    lines: int = 0


@dataclass(frozen=True)
class LineScope:
    """What a run's classification needs beyond the lines: its id (each line's lineage), the
    accepted InvoiceDate range (None: any real date) and the copies to read instead of inputs."""

    run_id: str
    invoice_ts_range: tuple[datetime, datetime] | None = None
    copies: JoinedCopies = dataclasses.field(default_factory=JoinedCopies)
