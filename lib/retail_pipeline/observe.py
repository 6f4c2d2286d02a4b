"""What a run tells the outside world besides its report: one structured "Run finished" (or
"Run failed") log record with its counts and durations, CloudWatch EMF metrics (`metrics`)
and OpenLineage events (`lineage`), for the batch job and the warehouse load alike.

The CLI wraps `batch.run` and the loads with these (nothing in the job itself depends on
them); the Lambda handlers in `orchestration` use them too.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from retail_pipeline import contract, lineage, metrics

if TYPE_CHECKING:
    from retail_pipeline.config import BatchSettings
    from retail_pipeline.report import RunReport
    from retail_pipeline.warehouse.files import RunSummary
    from retail_pipeline.warehouse.loader import LoadResult

logger = logging.getLogger(__name__)

LAMBDA_NAME_VARIABLE = "AWS_LAMBDA_FUNCTION_NAME"


def job_name(platform_job: str | None = None, environ: Mapping[str, str] | None = None) -> str:
    """The metrics' Job dimension: Glue's --JOB_NAME, the Lambda function's name, or local."""
    env = os.environ if environ is None else environ
    return platform_job or env.get(LAMBDA_NAME_VARIABLE) or metrics.LOCAL_JOB


def run_record(report: RunReport) -> dict[str, Any]:
    """The counts and durations of a run, as the structured log record's extra keys."""
    return {
        "stage": "run",
        "status": report.status,
        "inputs": len(report.inputs),
        "skipped_inputs": len(report.skipped_inputs),
        "read": report.read,
        "published": report.published,
        "filtered": dict(report.filtered),
        "quarantined": dict(report.quarantined),
        "published_revenue": report.published_revenue,
        "curated_partitions": list(report.curated_partitions),
        "durations_s": dict(report.durations_s),
        "quality_critical_failures": len(report.quality.get("critical_failures", [])),
        "quality_warnings": len(report.quality.get("warnings", [])),
    }


def failure_status(error: BaseException) -> str:
    """A failed run's status for its metrics and lineage: locked (another run held the
    output), failed_quality_gate, or failed."""
    from retail_pipeline.lock import OutputLockedError
    from retail_pipeline.quality import QualityGateError

    if isinstance(error, OutputLockedError):
        return "locked"
    if isinstance(error, QualityGateError):
        return contract.STATUS_FAILED_QUALITY_GATE
    return "failed"


@dataclass
class BatchObserver:
    """Log record, metrics and lineage around one `batch.run`."""

    job: str
    run_id: str
    sink: metrics.MetricsSink
    events: lineage.RunLineage
    recorded: list[metrics.Metric]

    @classmethod
    def of(
        cls, args: argparse.Namespace, settings: BatchSettings, *, run_id: str, job: str | None = None
    ) -> BatchObserver:
        lineage_settings = lineage.LineageSettings.resolve(
            file=args.lineage_file, url=args.lineage_url, output=settings.output
        )
        destination = args.metrics_to or os.environ.get(metrics.DESTINATION_VARIABLE)
        events = lineage.RunLineage(
            lineage_settings, job=lineage.BATCH_JOB, run_id=run_id, integration="SPARK"
        )
        return cls(job_name(job), run_id, metrics.MetricsSink(destination), events, [])

    def started(self, *, spark_version: str) -> None:
        self.events.engine = ("spark", spark_version)
        self.events.start()

    def finished(self, report: RunReport) -> None:
        logger.info("Run finished", extra=run_record(report))
        self.recorded = metrics.batch_metrics(report, job=self.job)
        self.sink.emit(self.recorded, properties={"run_id": self.run_id})
        inputs, outputs = lineage.batch_datasets(report)
        self.events.complete(inputs, outputs, status=report.status)

    def failed(self, error: BaseException) -> None:
        from retail_pipeline.quality import QualityGateError

        status = failure_status(error)
        gate_failures = len(error.result.critical_failures) if isinstance(error, QualityGateError) else None
        logger.error(
            "Run failed",
            extra={"stage": "run", "status": status, "error": f"{type(error).__name__}: {error}"},
        )
        self.recorded = metrics.failure_metrics(job=self.job, status=status, quality_failures=gate_failures)
        self.sink.emit(self.recorded, properties={"run_id": self.run_id})
        if status == "locked":
            self.events.abort(status)
        else:
            self.events.fail(error, status=status)


def new_load_id() -> str:
    return f"load-{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"


@dataclass
class LoadObserver:
    """Log record, metrics and lineage around one warehouse load."""

    job: str
    sink: metrics.MetricsSink
    events: lineage.RunLineage
    source: str  # what the load reads (lineage's input)
    warehouse: str

    @classmethod
    def of(
        cls,
        *,
        output: str,
        warehouse: str,
        run: RunSummary | None,
        source: str | None = None,
        job: str | None = None,
        metrics_to: str | None = None,
        lineage_file: str | None = None,
        lineage_url: str | None = None,
        load_id: str | None = None,
    ) -> LoadObserver:
        settings = lineage.LineageSettings.resolve(file=lineage_file, url=lineage_url, output=output)
        parent = (lineage.BATCH_JOB, run.run_id) if run is not None else None
        events = lineage.RunLineage(
            settings, job=lineage.LOAD_JOB, run_id=load_id or new_load_id(), parent=parent
        )
        sink = metrics.MetricsSink(metrics_to or os.environ.get(metrics.DESTINATION_VARIABLE))
        return cls(job_name(job), sink, events, source or lineage.load_source(output, run), warehouse)

    def started(self) -> None:
        inputs, _ = lineage.load_datasets(self.source, self.warehouse)
        self.events.start(inputs)

    def finished(self, result: LoadResult) -> list[metrics.Metric]:
        batch_id = result.batch_id
        logger.info(
            "Load finished",
            extra={
                "stage": "load",
                "status": result.status,
                "batch_id": batch_id,
                "files": result.files,
                "rows": result.rows,
                "replaced_rows": result.replaced_rows,
                "revenue": str(result.revenue),
                "table_rows": dict(result.table_rows),
                "durations_s": dict(result.durations_s),
            },
        )
        recorded = metrics.load_metrics(result, job=self.job)
        self.sink.emit(recorded, properties={"run_id": batch_id})
        inputs, outputs = lineage.load_datasets(self.source, self.warehouse, result)
        self.events.complete(inputs, outputs, status=result.status)
        return recorded

    def failed(self, error: BaseException) -> None:
        logger.error("Load failed", extra={"stage": "load", "status": "failed", "error": str(error)})
        self.sink.emit(metrics.failure_metrics(job=self.job, status="failed"))
        inputs, outputs = lineage.load_datasets(self.source, self.warehouse)
        self.events.fail(error, inputs, outputs)


def run_observed_load(argv: Sequence[str], *, job: str | None = None) -> int:
    """`retail-pipeline load ...`: the warehouse CLI (`warehouse.cli`), its arguments parsed
    strictly (exit 2 naming an unknown one), with the load's log record, metrics and lineage."""
    from retail_pipeline.cli import add_observability_arguments
    from retail_pipeline.warehouse import cli as warehouse_cli
    from retail_pipeline.warehouse import files, load_output, load_run
    from retail_pipeline.warehouse.errors import WarehouseError
    from retail_pipeline.warehouse.urls import parse_warehouse_url

    parser = warehouse_cli.build_parser()
    add_observability_arguments(parser)
    args = parser.parse_args(list(argv))
    try:
        output = args.output or warehouse_cli.default_output(args.config)
        url = args.warehouse or warehouse_cli.default_warehouse(output)
        if not url.startswith("redshift-data://"):
            parse_warehouse_url(url)  # a bad URL is named before anything is read
        run = None if args.all else files.read_run_report(output, args.run_report)
    except WarehouseError as error:
        logger.error("%s", error)
        print(f"error: {error}", file=sys.stderr)
        return error.exit_code
    observer = LoadObserver.of(
        output=output,
        warehouse=url,
        run=run,
        job=job,
        metrics_to=args.metrics_to,
        lineage_file=args.lineage_file,
        lineage_url=args.lineage_url,
    )
    observer.started()
    try:
        result = load_output(url, output) if args.all else load_run(url, output, run_report=args.run_report)
    except WarehouseError as error:
        observer.failed(error)
        print(f"error: {error}", file=sys.stderr)
        return error.exit_code
    print(warehouse_cli.render_summary(result))
    observer.finished(result)
    return 0
