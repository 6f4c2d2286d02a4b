"""Metrics as CloudWatch embedded-metric-format (EMF) records: JSON log lines that CloudWatch
Logs turns into metrics, so nothing calls PutMetricData.

    {"_aws": {"Timestamp": 1765076400000, "CloudWatchMetrics": [{"Namespace": "RetailPipeline",
      "Dimensions": [["Job", "Reason"]], "Metrics": [{"Name": "LinesQuarantined", "Unit": "Count"}]}]},
     "Job": "retail-pipeline-batch-prod", "Reason": "bad_quantity", "LinesQuarantined": 12,
     "run_id": "jr_..."}

One record per dimension set (a metric's value is a top-level key, so the same metric by two
reasons needs two records). The `Job` dimension is the Glue job's name (its --JOB_NAME), the
Lambda function's name, or "local"; the alarms in infra/template.yaml select on it.

- batch (`batch_metrics`): LinesRead, LinesPublished, LinesFiltered and LinesQuarantined (in
  total and by Reason), InputFilesProcessed, InputFilesSkipped, StageDuration by Stage,
  QualityCriticalFailures, QualityWarnings, and Runs by Status;
- warehouse load (`load_metrics`): LinesLoaded, LinesReplaced, LoadDuration, Runs by Status;
- streaming (`stream_metrics`): RecordsAccepted and RecordsRejected (the ingest API, rejected
  by Reason), RecordsPublished and RecordsDeadLettered (the consumer, by Reason).

Where they go (`MetricsSink`): "stdout" on Glue and Lambda, whose output CloudWatch Logs
collects; a file path (EMF JSON Lines) locally; nowhere by default. `render_summary` prints
them as a table at the end of the demos.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:  # imported for types only: report.py brings Spark's transforms
    from retail_pipeline.report import RunReport
    from retail_pipeline.warehouse.loader import LoadResult

NAMESPACE = "RetailPipeline"
JOB = "Job"
LOCAL_JOB = "local"
COUNT = "Count"
SECONDS = "Seconds"
STDOUT = "stdout"
DESTINATION_VARIABLE = "RETAIL_METRICS_TO"
# EMF allows at most 100 metrics in one directive.
MAX_METRICS_PER_RECORD = 100


@dataclass(frozen=True)
class Metric:
    name: str
    value: float
    unit: str = COUNT
    # Beyond Job: e.g. {"Reason": "bad_quantity"} or {"Stage": "validate"}.
    dimensions: Mapping[str, str] = field(default_factory=dict)


def batch_metrics(report: RunReport, *, job: str) -> list[Metric]:
    """What a finished batch run did (succeeded, nothing new, or stopped by the quality gate
    after counting its lines)."""
    metrics = [
        Metric("Runs", 1, dimensions={"Status": report.status}),
        Metric("InputFilesProcessed", len(report.inputs)),
        Metric("InputFilesSkipped", len(report.skipped_inputs)),
        Metric("LinesRead", report.read),
        Metric("LinesPublished", report.published),
        Metric("LinesFiltered", sum(report.filtered.values())),
        Metric("LinesQuarantined", sum(report.quarantined.values())),
        *(Metric("LinesFiltered", n, dimensions={"Reason": r}) for r, n in report.filtered.items()),
        *(Metric("LinesQuarantined", n, dimensions={"Reason": r}) for r, n in report.quarantined.items()),
        *(
            Metric("StageDuration", seconds, SECONDS, {"Stage": stage})
            for stage, seconds in report.durations_s.items()
        ),
    ]
    if report.quality.get("enabled"):
        metrics += [
            Metric("QualityCriticalFailures", len(report.quality.get("critical_failures", []))),
            Metric("QualityWarnings", len(report.quality.get("warnings", []))),
        ]
    return [_with_job(metric, job) for metric in metrics]


def failure_metrics(*, job: str, status: str, quality_failures: int | None = None) -> list[Metric]:
    """A run that raised before it had a report: counted by status (`failed`, `locked`,
    `failed_quality_gate`), with the gate's critical failures when it was the gate."""
    metrics = [Metric("Runs", 1, dimensions={"Status": status})]
    if quality_failures is not None:
        metrics.append(Metric("QualityCriticalFailures", quality_failures))
    return [_with_job(metric, job) for metric in metrics]


def load_metrics(result: LoadResult, *, job: str) -> list[Metric]:
    metrics = [
        Metric("Runs", 1, dimensions={"Status": result.status}),
        Metric("LinesLoaded", result.rows),
        Metric("LinesReplaced", result.replaced_rows),
        *(
            Metric("LoadDuration", seconds, SECONDS, {"Stage": stage})
            for stage, seconds in result.durations_s.items()
        ),
    ]
    return [_with_job(metric, job) for metric in metrics]


def stream_metrics(
    *,
    job: str,
    accepted: int | None = None,
    rejected: Mapping[str, int] | None = None,
    published: int | None = None,
    dead_lettered: Mapping[str, int] | None = None,
) -> list[Metric]:
    """The streaming path's counts: the ingest API's accepted records and rejected ones by
    reason, or the consumer's published records and dead-lettered ones by reason (a handler
    passes what it knows; absent counts are not emitted)."""
    metrics: list[Metric] = []
    if accepted is not None:
        metrics.append(Metric("RecordsAccepted", accepted))
    if rejected is not None:
        metrics.append(Metric("RecordsRejected", sum(rejected.values())))
        metrics += [
            Metric("RecordsRejected", n, dimensions={"Reason": r}) for r, n in sorted(rejected.items())
        ]
    if published is not None:
        metrics.append(Metric("RecordsPublished", published))
    if dead_lettered is not None:
        metrics.append(Metric("RecordsDeadLettered", sum(dead_lettered.values())))
        metrics += [
            Metric("RecordsDeadLettered", n, dimensions={"Reason": r})
            for r, n in sorted(dead_lettered.items())
        ]
    return [_with_job(metric, job) for metric in metrics]


def _by_reason(name: str, reason: str, count: int) -> Metric:
    return Metric(name, count, dimensions={"Reason": reason})


def _with_job(metric: Metric, job: str) -> Metric:
    return Metric(metric.name, metric.value, metric.unit, {JOB: job, **metric.dimensions})


def emf_records(
    metrics: Iterable[Metric],
    *,
    properties: Mapping[str, Any] | None = None,
    timestamp_ms: int | None = None,
    namespace: str = NAMESPACE,
) -> list[dict[str, Any]]:
    """The metrics as EMF records: one per dimension set, each with `properties` (the run
    id, ...) as extra keys that Logs Insights can search but that are not dimensions."""
    stamp = int(time.time() * 1000) if timestamp_ms is None else timestamp_ms
    groups: dict[tuple[tuple[str, str], ...], list[Metric]] = {}
    for metric in metrics:
        groups.setdefault(tuple(metric.dimensions.items()), []).append(metric)
    records = []
    for dimensions, members in groups.items():
        for start in range(0, len(members), MAX_METRICS_PER_RECORD):
            chunk = members[start : start + MAX_METRICS_PER_RECORD]
            names = [m.name for m in chunk]
            if len(set(names)) != len(names):
                raise ValueError(f"metric {names} given twice for dimensions {dict(dimensions)}")
            directive = {
                "Namespace": namespace,
                "Dimensions": [[name for name, _ in dimensions]],
                "Metrics": [{"Name": m.name, "Unit": m.unit} for m in chunk],
            }
            record: dict[str, Any] = {"_aws": {"Timestamp": stamp, "CloudWatchMetrics": [directive]}}
            record |= dict(properties or {})
            record |= dict(dimensions)
            record |= {m.name: m.value for m in chunk}
            records.append(record)
    return records


class MetricsSink:
    """Where EMF records go: "stdout", a file (JSON Lines, appended), or nowhere (None)."""

    def __init__(self, destination: str | None, *, stream: TextIO | None = None) -> None:
        self.destination = destination or None
        self._stream = stream

    def emit(self, metrics: Sequence[Metric], *, properties: Mapping[str, Any] | None = None) -> None:
        if self.destination is None or not metrics:
            return
        lines = "".join(
            json.dumps(r, default=str) + "\n" for r in emf_records(metrics, properties=properties)
        )
        if self.destination == STDOUT:
            stream = self._stream or sys.stdout
            stream.write(lines)
            stream.flush()
            return
        path = Path(self.destination)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a", encoding="utf-8") as handle:
            handle.write(lines)


def stream_destination(environ: Mapping[str, str] | None = None) -> str | None:
    """Where a stream handler's records go: RETAIL_METRICS_TO if set, else stdout in a Lambda
    function (its log group, where CloudWatch extracts them), else nowhere."""
    env = os.environ if environ is None else environ
    if env.get(DESTINATION_VARIABLE):
        return env[DESTINATION_VARIABLE]
    return STDOUT if env.get("AWS_LAMBDA_FUNCTION_NAME") else None


def emit_stream_metrics(*, job: str | None = None, stream: TextIO | None = None, **counts: Any) -> None:
    """For the streaming Lambdas, once per invocation: `stream_metrics(**counts)` as EMF
    records (see `stream_destination`). `job` defaults to the function's name."""
    name = job or os.environ.get("AWS_LAMBDA_FUNCTION_NAME") or LOCAL_JOB
    destination = STDOUT if stream is not None else stream_destination()
    MetricsSink(destination, stream=stream).emit(stream_metrics(job=name, **counts))


def read_records(path: str | Path) -> list[Metric]:
    """The metrics in a file of EMF records (what a file sink wrote)."""
    found: list[Metric] = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        for directive in record["_aws"]["CloudWatchMetrics"]:
            dimensions = {name: str(record[name]) for names in directive["Dimensions"] for name in names}
            for definition in directive["Metrics"]:
                value = record[definition["Name"]]
                total = sum(value) if isinstance(value, list) else value
                found.append(Metric(definition["Name"], total, definition.get("Unit", COUNT), dimensions))
    return found


def totals(metrics: Iterable[Metric]) -> list[Metric]:
    """The metrics summed by name and dimensions, in the order they first appear (a demo's
    many runs or invocations as one table)."""
    summed: dict[tuple[str, str, tuple[tuple[str, str], ...]], float] = {}
    for metric in metrics:
        key = (metric.name, metric.unit, tuple(metric.dimensions.items()))
        summed[key] = summed.get(key, 0) + metric.value
    return [Metric(name, value, unit, dict(dimensions)) for (name, unit, dimensions), value in summed.items()]


def render_summary(metrics: Sequence[Metric], *, title: str = "Metrics") -> str:
    """The metrics as a plain-text table (the demos print it at the end)."""
    rows = []
    jobs = {metric.dimensions.get(JOB) for metric in metrics}
    for metric in metrics:
        shown = {k: v for k, v in metric.dimensions.items() if k != JOB or len(jobs) > 1}
        extra = ", ".join(f"{k}={v}" for k, v in shown.items())
        name = f"{metric.name} ({extra})" if extra else metric.name
        value = f"{metric.value:.3f} s" if metric.unit == SECONDS else f"{metric.value:,.0f}"
        rows.append((name, value))
    if not rows:
        return f"{title}: none"
    width = max(len(name) for name, _ in rows)
    value_width = max(len(value) for _, value in rows)
    job = f", {JOB}={next(iter(jobs))}" if len(jobs) == 1 else ""
    lines = [f"{title} ({NAMESPACE}{job})"]
    lines += [f"  {name.ljust(width)}   {value.rjust(value_width)}" for name, value in rows]
    return "\n".join(lines)
