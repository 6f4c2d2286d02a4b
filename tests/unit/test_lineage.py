"""OpenLineage events of the batch job and the load: what they say, that they are valid
OpenLineage, and that they reach a file and an HTTP endpoint.

Validity: every event is checked against `RUN_EVENT_SCHEMA`, the OpenLineage 2-0-2 RunEvent's
rules and those of the facets we send, written out here; with OPENLINEAGE_SPEC_DIR pointing at
a copy of the spec (the OpenLineage repository's spec/ folder: OpenLineage.json and facets/),
each event and each facet is also validated against the official JSON schemas.
"""

from __future__ import annotations

import argparse
import json
import os
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
from jsonschema import Draft202012Validator, FormatChecker
from openlineage.client.serde import Serde

from retail_pipeline import lineage, observe
from retail_pipeline.config import BatchSettings
from retail_pipeline.quality import ExpectationOutcome, QualityGateError, QualityResult
from retail_pipeline.warehouse.files import RunSummary
from retail_pipeline.warehouse.loader import LoadResult
from tests.unit.test_observability import run_report

FACET = {
    "type": "object",
    "required": ["_producer", "_schemaURL"],
    "properties": {
        "_producer": {"type": "string", "format": "uri"},
        "_schemaURL": {"type": "string", "format": "uri"},
    },
}
DATASET = {
    "type": "object",
    "required": ["namespace", "name"],
    "properties": {
        "namespace": {"type": "string", "minLength": 1},
        "name": {"type": "string", "minLength": 1},
        "facets": {"type": "object", "additionalProperties": FACET},
    },
}
# The RunEvent of OpenLineage 2-0-2 (eventTime, producer, schemaURL; eventType; run with a UUID
# runId; job; inputs and outputs), with the fields the facets we send require.
RUN_EVENT_SCHEMA = {
    "type": "object",
    "required": ["eventTime", "producer", "schemaURL", "eventType", "run", "job"],
    "properties": {
        "eventTime": {"type": "string", "format": "date-time"},
        "producer": {"type": "string", "format": "uri"},
        "schemaURL": {"const": "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent"},
        "eventType": {"enum": ["START", "RUNNING", "COMPLETE", "ABORT", "FAIL", "OTHER"]},
        "run": {
            "type": "object",
            "required": ["runId"],
            "properties": {
                "runId": {"type": "string", "format": "uuid"},
                "facets": {
                    "type": "object",
                    "additionalProperties": FACET,
                    "properties": {
                        "errorMessage": {"required": ["message", "programmingLanguage"]},
                        "parent": {
                            "required": ["run", "job"],
                            "properties": {
                                "run": {"required": ["runId"], "properties": {"runId": {"format": "uuid"}}},
                                "job": {"required": ["namespace", "name"]},
                            },
                        },
                        "processing_engine": {"required": ["version"]},
                    },
                },
            },
        },
        "job": {
            "type": "object",
            "required": ["namespace", "name"],
            "properties": {
                "facets": {
                    "type": "object",
                    "additionalProperties": FACET,
                    "properties": {"jobType": {"required": ["processingType", "integration", "jobType"]}},
                }
            },
        },
        "inputs": {
            "type": "array",
            "items": {
                "allOf": [DATASET],
                "properties": {"inputFacets": {"type": "object", "additionalProperties": FACET}},
            },
        },
        "outputs": {
            "type": "array",
            "items": {
                "allOf": [DATASET],
                "properties": {"outputFacets": {"type": "object", "additionalProperties": FACET}},
            },
        },
    },
}


def official_validators() -> tuple[Any, Any] | None:
    spec = os.environ.get("OPENLINEAGE_SPEC_DIR")
    if not spec:
        return None
    from referencing import Registry, Resource

    root = Path(spec)
    documents = [
        json.loads(p.read_text())
        for p in [root / "OpenLineage.json", *sorted((root / "facets").glob("*.json"))]
    ]
    registry = Registry().with_resources((d["$id"], Resource.from_contents(d)) for d in documents)
    run_event = Draft202012Validator({"$ref": f"{documents[0]['$id']}#/$defs/RunEvent"}, registry=registry)
    return run_event, registry


def facets_of(event: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield from event["run"].get("facets", {}).values()
    yield from event["job"].get("facets", {}).values()
    for dataset in event.get("inputs", []) + event.get("outputs", []):
        for key in ("facets", "inputFacets", "outputFacets"):
            yield from dataset.get(key, {}).values()


def check_event(event: dict[str, Any]) -> None:
    Draft202012Validator(RUN_EVENT_SCHEMA, format_checker=FormatChecker()).validate(event)
    official = official_validators()
    if official is None:
        return
    run_event, registry = official
    run_event.validate(event)
    for facet in facets_of(event):
        if facet["_schemaURL"].startswith("https://openlineage.io/"):
            Draft202012Validator({"$ref": facet["_schemaURL"]}, registry=registry).validate(facet)


def events_in(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_a_batch_run_s_events_are_valid_and_name_its_files_outputs_counts_and_schema(tmp_path: Path) -> None:
    settings = lineage.LineageSettings.resolve(output=str(tmp_path / "output"), environ={})
    assert settings.file == str(tmp_path / "output" / "lineage" / "openlineage.jsonl")
    events = lineage.RunLineage(settings, job=lineage.BATCH_JOB, run_id="jr_1", engine=("spark", "3.5.9"))
    report = run_report()
    events.start()
    events.complete(*lineage.batch_datasets(report), status=report.status)
    start, complete = events_in(Path(str(settings.file)))
    for event in (start, complete):
        check_event(event)
    assert (start["eventType"], complete["eventType"]) == ("START", "COMPLETE")
    assert start["run"]["runId"] == complete["run"]["runId"] == lineage.openlineage_run_id("batch", "jr_1")
    assert complete["run"]["facets"]["retail_run"]["run_id"] == "jr_1"
    assert complete["run"]["facets"]["processing_engine"]["version"] == "3.5.9"
    assert complete["job"] == {**complete["job"], "namespace": "retail-pipeline", "name": "batch"}
    inputs = [(d["namespace"], d["name"]) for d in complete["inputs"]]
    assert inputs == [("s3://raw", "incoming/2010-12-01.csv"), ("s3://raw", "incoming/2010-12-02.csv")]
    curated, quarantine = complete["outputs"]
    assert (curated["namespace"], curated["name"]) == ("s3://curated", "batch/curated")
    assert curated["outputFacets"]["outputStatistics"]["rowCount"] == 960
    assert quarantine["outputFacets"]["outputStatistics"]["rowCount"] == 20
    columns = [field["name"] for field in curated["facets"]["schema"]["fields"]]
    assert columns[:3] == ["invoice_no", "stock_code", "description"] and "run_id" in columns


def test_a_failed_run_sends_fail_with_the_error_and_a_refused_one_abort(tmp_path: Path) -> None:
    settings = lineage.LineageSettings(file=str(tmp_path / "events.jsonl"))
    events = lineage.RunLineage(settings, job=lineage.BATCH_JOB, run_id="jr_2")
    try:
        raise RuntimeError("row accounting failed")
    except RuntimeError as error:
        events.fail(error)
    events.abort("locked")
    fail, abort = events_in(tmp_path / "events.jsonl")
    for event in (fail, abort):
        check_event(event)
    assert fail["eventType"] == "FAIL" and abort["eventType"] == "ABORT"
    facet = fail["run"]["facets"]["errorMessage"]
    assert (
        facet["message"] == "RuntimeError: row accounting failed" and facet["programmingLanguage"] == "python"
    )
    assert "Traceback" in facet["stackTrace"]
    assert abort["run"]["facets"]["retail_run"]["status"] == "locked"


def test_a_load_names_the_batch_run_it_loads_as_its_parent(tmp_path: Path) -> None:
    settings = lineage.LineageSettings(file=str(tmp_path / "events.jsonl"))
    run = RunSummary(
        "jr_1", "succeeded", 960, 0, (), (), "curated_versions/jr_1", "s3://c/batch/reports/run_report.json"
    )  # type: ignore[arg-type]
    observer = observe.LoadObserver.of(
        output="s3://c/batch", warehouse="redshift-data://wg/retail", run=run, lineage_file=settings.file
    )
    observer.started()
    observer.finished(LoadResult("jr_1", "redshift-data://wg/retail", 2, 960, 0, 12))  # type: ignore[arg-type]
    start, complete = events_in(tmp_path / "events.jsonl")
    for event in (start, complete):
        check_event(event)
    parent = complete["run"]["facets"]["parent"]
    assert parent["run"]["runId"] == lineage.openlineage_run_id("batch", "jr_1")
    assert (parent["job"]["namespace"], parent["job"]["name"]) == ("retail-pipeline", "batch")
    (source,) = complete["inputs"]
    assert (source["namespace"], source["name"]) == ("s3://c", "batch/curated_versions/jr_1")
    (table,) = complete["outputs"]
    assert (table["namespace"], table["name"]) == ("redshift://wg", "retail.public.fact_sales")
    assert table["outputFacets"]["outputStatistics"]["rowCount"] == 960


class Collector(BaseHTTPRequestHandler):
    received: ClassVar[list[tuple[str, dict[str, str], Any]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        Collector.received.append((self.path, dict(self.headers), json.loads(body)))
        self.send_response(201)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def endpoint() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Collector)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    Collector.received = []
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


def test_events_go_over_http_when_a_url_is_configured_and_to_the_file_as_well(
    endpoint: str, tmp_path: Path
) -> None:
    environ = {"OPENLINEAGE_URL": endpoint, "OPENLINEAGE_API_KEY": "secret-key"}
    settings = lineage.LineageSettings.resolve(output=str(tmp_path), environ=environ)
    events = lineage.RunLineage(settings, job=lineage.BATCH_JOB, run_id="jr_3")
    events.start()
    ((path, headers, event),) = Collector.received
    assert path == "/api/v1/lineage" and headers["Authorization"] == "Bearer secret-key"
    check_event(event)
    assert events_in(tmp_path / "lineage" / "openlineage.jsonl") == [event]


def test_an_unreachable_endpoint_never_fails_the_run(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = lineage.LineageSettings(url="http://127.0.0.1:9")
    events = lineage.RunLineage(settings, job=lineage.BATCH_JOB, run_id="jr_4")
    events.start()  # no exception
    assert not events.sent


def test_nothing_is_sent_when_nothing_is_configured_for_a_remote_output() -> None:
    settings = lineage.LineageSettings.resolve(output="s3://curated/batch", environ={})
    assert not settings.enabled
    events = lineage.RunLineage(settings, job=lineage.BATCH_JOB, run_id="jr_5")
    events.start()
    assert events.sent == []


def test_the_batch_observer_logs_counts_emits_metrics_and_lineage_and_reports_a_failed_gate(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    args = argparse.Namespace(metrics_to=str(tmp_path / "metrics.jsonl"), lineage_file=None, lineage_url=None)
    settings = BatchSettings(
        input="in.csv", output=str(tmp_path / "out"), encoding="utf-8", quarantine_unterminated_last_line=True
    )
    observer = observe.BatchObserver.of(args, settings, run_id="jr_6", job="retail-pipeline-batch-dev")
    caplog.set_level("INFO", logger="retail_pipeline")
    observer.started(spark_version="3.5.9")
    observer.finished(run_report(run_id="jr_6"))
    (finished,) = [r for r in caplog.records if r.getMessage() == "Run finished"]
    assert (finished.stage, finished.status, finished.published, finished.quarantined) == (  # type: ignore[attr-defined]
        "run",
        "succeeded",
        960,
        {"bad_quantity": 15, "bad_date": 5},
    )
    outcome = ExpectationOutcome(
        "curated", "expect_column_values_to_not_be_null", {"column": "x"}, "critical", False, 3
    )
    observer.failed(QualityGateError(QualityResult([outcome], 1.0)))
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    statuses = [r["Status"] for r in records if "Status" in r]
    assert statuses == ["succeeded", "failed_quality_gate"]
    assert [r["QualityCriticalFailures"] for r in records if "QualityCriticalFailures" in r] == [0, 1]
    events = events_in(tmp_path / "out" / "lineage" / "openlineage.jsonl")
    assert [e["eventType"] for e in events] == ["START", "COMPLETE", "FAIL"]
    for event in events:
        check_event(event)
    assert uuid.UUID(events[0]["run"]["runId"])


def test_the_client_serialises_what_we_validate() -> None:
    events = lineage.RunLineage(lineage.LineageSettings(), job=lineage.LOAD_JOB, run_id="load-1")
    event = json.loads(Serde.to_json(events.event(lineage.RunState.START, [], [])))
    check_event(event)
