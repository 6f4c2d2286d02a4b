"""The batch command as Glue runs it, in this process (the suite's Spark session): its run id is
Glue's --JOB_RUN_ID, and it logs JSON, writes EMF metrics and OpenLineage events that agree
with its run report; the load command after it does the same."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from pyspark.sql import SparkSession

from retail_pipeline import cli, lineage
from tests.conftest import BAD_INPUT_CSV, REPO_ROOT

pytestmark = pytest.mark.integration

RUN_ID = "jr_0f1e2d3c4b5a69788796a5b4c3d2e1f0"
JOB = "retail-pipeline-batch-dev"


def quick_config(folder: Path) -> Path:
    """The local config with the suite session's shuffle width and no quality gate (its own
    tests cover it): fast, and the shared session's settings stay as they were."""
    config = yaml.safe_load((REPO_ROOT / "configs" / "local.yaml").read_text())
    config["spark"]["conf"]["spark.sql.shuffle.partitions"] = 4
    config["quality"]["enabled"] = False
    path = folder / "quick.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def test_a_glue_style_run_then_its_load_agree_in_logs_metrics_and_lineage(
    spark: SparkSession, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    output, metrics_file = tmp_path / "out", tmp_path / "metrics.jsonl"
    glue = ["--JOB_ID", "j_1", "--JOB_RUN_ID", RUN_ID, "--JOB_NAME", JOB, "--TempDir", "s3://reports/tmp/"]
    argv = ["--log-format", "json", "batch", "--config", str(quick_config(tmp_path)), *glue]
    argv += ["--input", str(BAD_INPUT_CSV), "--output", str(output), "--metrics-to", str(metrics_file)]
    try:
        assert cli.main(argv) == 0
        report = json.loads((output / "reports" / "run_report.json").read_text())
        assert report["run_id"] == RUN_ID and report["status"] == "succeeded"
        logged = json_lines(capsys.readouterr().err)
        assert {
            entry["run_id"] for entry in logged if entry["logger"].startswith("retail_pipeline.batch")
        } == {RUN_ID}
        (finished,) = [entry for entry in logged if entry["message"] == "Run finished"]
        assert (finished["stage"], finished["read"], finished["published"]) == (
            "run",
            report["read"],
            report["published"],
        )
        assert finished["quarantined"] == report["quarantined"] and "total" in finished["durations_s"]

        records = json_lines(metrics_file.read_text())
        assert {record["Job"] for record in records} == {JOB} and {r["run_id"] for r in records} == {RUN_ID}
        totals = next(r for r in records if r["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["Job"]])
        quarantined = sum(report["quarantined"].values())
        assert (totals["LinesRead"], totals["LinesPublished"], totals["LinesQuarantined"]) == (
            report["read"],
            report["published"],
            quarantined,
        )

        # The load after it: same output, its lineage names the batch run as its parent.
        warehouse = f"duckdb:///{tmp_path}/warehouse.duckdb"
        load = ["--log-format", "json", "load", "--output", str(output), "--warehouse", warehouse]
        assert cli.main([*load, "--metrics-to", str(metrics_file), "--JOB_NAME", "retail-load"]) == 0
        loaded = [r for r in json_lines(metrics_file.read_text()) if r["Job"] == "retail-load"]
        assert next(r["LinesLoaded"] for r in loaded if "LinesLoaded" in r) == report["published"]

        events = json_lines((output / "lineage" / "openlineage.jsonl").read_text())
        assert [(e["job"]["name"], e["eventType"]) for e in events] == [
            ("batch", "START"),
            ("batch", "COMPLETE"),
            ("warehouse_load", "START"),
            ("warehouse_load", "COMPLETE"),
        ]
        batch_run = lineage.openlineage_run_id("batch", RUN_ID)
        assert events[1]["run"]["runId"] == batch_run == events[3]["run"]["facets"]["parent"]["run"]["runId"]
        curated = events[1]["outputs"][0]
        assert curated["outputFacets"]["outputStatistics"]["rowCount"] == report["published"]
        assert events[3]["outputs"][0]["outputFacets"]["outputStatistics"]["rowCount"] == report["published"]
    finally:
        cli.configure_logging()  # text again for the rest of the suite
