"""The shapes operators read: JSON log lines like the Lambdas' (Powertools), and CloudWatch
embedded-metric-format records, checked against the EMF specification's rules and against
what Powertools' own Metrics writes for the same metric."""

from __future__ import annotations

import io
import json
import logging
import uuid
from decimal import Decimal
from typing import Any

import pytest
from aws_lambda_powertools import Logger
from aws_lambda_powertools import Metrics as PowertoolsMetrics
from aws_lambda_powertools.metrics import MetricUnit
from jsonschema import Draft202012Validator

from retail_pipeline import logs, metrics
from retail_pipeline.report import RunReport
from retail_pipeline.warehouse.loader import LoadResult

# The EMF specification (CloudWatch User Guide, "Specification: Embedded metric format"), as a
# schema: the root's _aws with an integer Timestamp and its metric directives; each directive a
# namespace, dimension sets of at most 30 names, and at most 100 metric definitions.
EMF_SCHEMA = {
    "type": "object",
    "required": ["_aws"],
    "properties": {
        "_aws": {
            "type": "object",
            "required": ["Timestamp", "CloudWatchMetrics"],
            "properties": {
                "Timestamp": {"type": "integer", "minimum": 0},
                "CloudWatchMetrics": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["Namespace", "Dimensions", "Metrics"],
                        "properties": {
                            "Namespace": {"type": "string", "minLength": 1, "maxLength": 1024},
                            "Dimensions": {
                                "type": "array",
                                "items": {
                                    "type": "array",
                                    "items": {"type": "string", "minLength": 1, "maxLength": 250},
                                    "maxItems": 30,
                                },
                            },
                            "Metrics": {
                                "type": "array",
                                "maxItems": 100,
                                "items": {
                                    "type": "object",
                                    "required": ["Name"],
                                    "properties": {
                                        "Name": {"type": "string", "minLength": 1, "maxLength": 1024},
                                        "Unit": {
                                            "enum": ["Seconds", "Count", "Milliseconds", "Percent", "None"]
                                        },
                                    },
                                },
                            },
                        },
                    },
                },
            },
        }
    },
}


def check_emf(record: dict[str, Any]) -> None:
    """The schema, and the rules it cannot say: every dimension is a string member of the
    root, every metric a number (or a list of numbers) there."""
    Draft202012Validator(EMF_SCHEMA).validate(record)
    for directive in record["_aws"]["CloudWatchMetrics"]:
        for dimension_set in directive["Dimensions"]:
            assert all(isinstance(record[name], str) for name in dimension_set), dimension_set
        for definition in directive["Metrics"]:
            values = record[definition["Name"]]
            for value in values if isinstance(values, list) else [values]:
                assert isinstance(value, int | float) and not isinstance(value, bool), definition


def run_report(**changes: Any) -> RunReport:
    values: dict[str, Any] = {
        "run_id": "jr_1",
        "status": "succeeded",
        "inputs": ["s3://raw/incoming/2010-12-01.csv", "s3://raw/incoming/2010-12-02.csv"],
        "output": "s3://curated/batch",
        "read": 1000,
        "published": 960,
        "filtered": {"cancelled": 20, "bad_debt": 0},
        "quarantined": {"bad_quantity": 15, "bad_date": 5},
        "published_revenue": "12345.67",
        "header_lines": 2,
        "durations_s": {"write_staging": 3.2, "validate": 1.5},
        "skipped_inputs": ["s3://raw/incoming/2010-11-30.csv"],
        "quality": {"enabled": True, "critical_failures": [], "warnings": ["country not known"]},
    }
    return RunReport(**{**values, **changes})


def test_the_batch_metrics_are_valid_emf_records_with_the_report_s_counts() -> None:
    recorded = metrics.batch_metrics(run_report(), job="retail-pipeline-batch-dev")
    records = metrics.emf_records(recorded, properties={"run_id": "jr_1"}, timestamp_ms=1765076400000)
    for record in records:
        check_emf(record)
        assert record["Job"] == "retail-pipeline-batch-dev" and record["run_id"] == "jr_1"
    by_dimensions = {tuple(r["_aws"]["CloudWatchMetrics"][0]["Dimensions"][0]): r for r in records}
    totals = by_dimensions[("Job",)]
    assert (totals["LinesRead"], totals["LinesPublished"], totals["LinesQuarantined"]) == (1000, 960, 20)
    assert (totals["LinesFiltered"], totals["InputFilesProcessed"], totals["InputFilesSkipped"]) == (20, 2, 1)
    assert (totals["QualityCriticalFailures"], totals["QualityWarnings"]) == (0, 1)
    reasons = {
        (r["Reason"], name): r[name]
        for r in records
        if "Reason" in r
        for name in ("LinesQuarantined", "LinesFiltered")
        if name in r
    }
    assert reasons == {
        ("bad_quantity", "LinesQuarantined"): 15,
        ("bad_date", "LinesQuarantined"): 5,
        ("cancelled", "LinesFiltered"): 20,
        ("bad_debt", "LinesFiltered"): 0,
    }
    stages = {r["Stage"]: r["StageDuration"] for r in records if "Stage" in r}
    assert stages == {"write_staging": 3.2, "validate": 1.5}
    (runs,) = [r for r in records if "Status" in r]
    assert (runs["Status"], runs["Runs"]) == ("succeeded", 1)


def test_our_records_have_the_structure_powertools_writes_for_the_same_metric() -> None:
    reference = PowertoolsMetrics(namespace=metrics.NAMESPACE)
    reference.add_dimension(name="Job", value="j")
    reference.add_metric(name="LinesRead", unit=MetricUnit.Count, value=5)
    theirs = reference.serialize_metric_set()
    (ours,) = metrics.emf_records([metrics.Metric("LinesRead", 5, dimensions={"Job": "j"})])
    check_emf(theirs)
    assert ours["_aws"]["CloudWatchMetrics"] == theirs["_aws"]["CloudWatchMetrics"]
    assert ours["Job"] == theirs["Job"] and ours["LinesRead"] == theirs["LinesRead"][0]


def test_stream_metrics_count_accepted_rejected_and_dead_lettered_by_reason() -> None:
    out = io.StringIO()
    metrics.emit_stream_metrics(job="retail-dev-ingest", stream=out, accepted=7, rejected={"bad_quantity": 2})
    metrics.emit_stream_metrics(
        job="retail-dev-process", stream=out, published=5, dead_lettered={"cancelled": 1, "duplicate": 1}
    )
    records = [json.loads(line) for line in out.getvalue().splitlines()]
    for record in records:
        check_emf(record)
    values = {(r["Job"], r.get("Reason"), n): r[n] for r in records for n in r if n.startswith("Records")}
    assert values == {
        ("retail-dev-ingest", None, "RecordsAccepted"): 7,
        ("retail-dev-ingest", None, "RecordsRejected"): 2,
        ("retail-dev-ingest", "bad_quantity", "RecordsRejected"): 2,
        ("retail-dev-process", None, "RecordsPublished"): 5,
        ("retail-dev-process", None, "RecordsDeadLettered"): 2,
        ("retail-dev-process", "cancelled", "RecordsDeadLettered"): 1,
        ("retail-dev-process", "duplicate", "RecordsDeadLettered"): 1,
    }


def test_load_and_failure_metrics_and_a_file_sink(tmp_path: Any) -> None:
    result = LoadResult(
        "jr_1", "duckdb:///w", 3, 960, Decimal("1"), 40, durations_s={"stage": 0.5, "total": 1.0}
    )
    sink = metrics.MetricsSink(str(tmp_path / "m" / "metrics.jsonl"))
    sink.emit(metrics.load_metrics(result, job="local"))
    sink.emit(metrics.failure_metrics(job="local", status="failed_quality_gate", quality_failures=2))
    records = [json.loads(line) for line in (tmp_path / "m" / "metrics.jsonl").read_text().splitlines()]
    for record in records:
        check_emf(record)
    merged = {k: v for r in records for k, v in r.items() if k not in ("_aws",)}
    assert (merged["LinesLoaded"], merged["LinesReplaced"], merged["QualityCriticalFailures"]) == (960, 40, 2)
    assert {r.get("Status") for r in records} >= {"loaded", "failed_quality_gate"}
    metrics.MetricsSink(None).emit(metrics.failure_metrics(job="x", status="failed"))  # nowhere: no error


def test_the_summary_names_each_metric_and_its_reason() -> None:
    text = metrics.render_summary(metrics.batch_metrics(run_report(), job="local"))
    assert "LinesQuarantined (Reason=bad_quantity)" in text and "StageDuration (Stage=validate)" in text
    assert "1,000" in text and "1.500 s" in text


def powertools_line(message: str, **extra: Any) -> dict[str, Any]:
    stream = io.StringIO()
    # A service of its own: Powertools keeps the first handler of a service's logger, and the
    # stream modules' "retail-stream" logger may exist already, writing to stdout.
    logger = Logger(service=f"shape-probe-{uuid.uuid4().hex}", stream=stream)
    logger.info(message, extra=extra)
    return dict(json.loads(stream.getvalue()))


def json_line(message: str, **extra: Any) -> dict[str, Any]:
    formatter = logs.JsonFormatter("retail-batch")
    record = logging.LogRecord(
        "retail_pipeline.batch", logging.INFO, __file__, 42, message, None, None, "stage"
    )
    record.__dict__.update(extra)
    record.run_id = "jr_1"
    return dict(json.loads(formatter.format(record)))


def test_json_log_lines_have_the_lambdas_keys_in_their_order_then_the_run_id_and_extras() -> None:
    theirs = powertools_line("Batch processed", records=3)
    ours = json_line("Stage validate: 1.5 s", stage="validate", duration_s=1.5, counts={"published": 9853})
    shared = ["level", "location", "message", "timestamp", "service"]
    assert list(theirs)[: len(shared)] == shared == list(ours)[: len(shared)]
    # The same timestamp format: '2026-12-07 03:00:12,345+0000' (Powertools' default).
    assert len(ours["timestamp"]) == len(theirs["timestamp"]) and ours["timestamp"][-5:] == "+0000"
    assert ours["timestamp"][10] == " " and ours["timestamp"][19] == ","
    assert (ours["level"], ours["location"], ours["service"]) == ("INFO", "stage:42", "retail-batch")
    assert (ours["run_id"], ours["stage"], ours["duration_s"], ours["counts"]) == (
        "jr_1",
        "validate",
        1.5,
        {"published": 9853},
    )


def test_the_format_is_text_unless_asked_for_by_flag_or_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert logs.log_format(None, {}) == "text"
    assert logs.log_format(None, {"RETAIL_LOG_FORMAT": "json"}) == "json"
    assert logs.log_format("text", {"RETAIL_LOG_FORMAT": "json"}) == "text"
    with pytest.raises(ValueError, match="RETAIL_LOG_FORMAT"):
        logs.log_format(None, {"RETAIL_LOG_FORMAT": "xml"})


def test_a_demo_s_file_of_records_reads_back_and_sums_into_one_table(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "metrics.jsonl"
    monkeypatch.setenv("RETAIL_METRICS_TO", str(path))
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "retail-demo-process")
    assert metrics.stream_destination() == str(path)
    for _ in range(2):
        metrics.emit_stream_metrics(published=5, dead_lettered={"cancelled": 1})
    summed = metrics.totals(metrics.read_records(path))
    values = {(m.name, m.dimensions.get("Reason")): m.value for m in summed}
    assert values == {
        ("RecordsPublished", None): 10,
        ("RecordsDeadLettered", None): 2,
        ("RecordsDeadLettered", "cancelled"): 2,
    }
    assert "Job=retail-demo-process" in metrics.render_summary(summed)
    monkeypatch.delenv("RETAIL_METRICS_TO")
    assert metrics.stream_destination() == "stdout"  # in a Lambda function
    monkeypatch.delenv("AWS_LAMBDA_FUNCTION_NAME")
    assert metrics.stream_destination() is None  # locally, unless asked
