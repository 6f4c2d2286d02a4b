"""`python -m retail_pipeline load` as a user runs it: defaults, exit codes, one-line errors."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from retail_pipeline.report import RunReport
from retail_pipeline.warehouse import main
from tests.conftest import REPO_ROOT
from tests.integration.daily_chain import DailyRuns
from tests.integration.pg_server import PostgresServer, free_port

from .expected import query

pytestmark = pytest.mark.integration


def error_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("error:")]


@pytest.fixture(autouse=True)
def no_warehouse_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("RETAIL_WAREHOUSE_URL", "REDSHIFT_IAM_ROLE"):
        monkeypatch.delenv(name, raising=False)


def test_load_defaults_to_a_duckdb_file_in_the_output_folder(
    sample_run: tuple[RunReport, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report, sample_output = sample_run
    output = tmp_path / "output"
    shutil.copytree(sample_output, output)

    # Glue adds arguments of its own: they must not stop the job.
    assert main(["--output", str(output), "--JOB_NAME", "warehouse-load"]) == 0

    url = f"duckdb:///{output}/warehouse.duckdb"
    assert query(url, "SELECT COUNT(*), SUM(revenue) FROM fact_sales") == [
        (report.published, Decimal(report.published_revenue))
    ]
    printed = capsys.readouterr().out
    assert f"{report.published:,}" in printed and report.run_id in printed


def test_load_into_postgresql_by_url(sample_run: tuple[RunReport, Path], pg_server: PostgresServer) -> None:
    report, output = sample_run
    url = pg_server.create_database()
    assert main(["--warehouse", url, "--output", str(output)]) == 0
    assert query(url, "SELECT COUNT(*) FROM fact_sales") == [(report.published,)]


def test_load_all_loads_every_line_the_output_holds_and_nothing_new_loads_nothing(
    daily_runs: DailyRuns, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"duckdb:///{tmp_path}/warehouse.duckdb"
    output = daily_runs.corrected.output
    assert main(["--warehouse", url, "--output", str(output), "--all"]) == 0
    runs = [*(day.report for day in daily_runs.days), daily_runs.corrected.report]
    by_run = {r.run_id: r.published for r in runs}
    loaded = dict(query(url, "SELECT batch_id, COUNT(*) FROM fact_sales GROUP BY batch_id"))
    assert loaded == {run_id: by_run[run_id] for run_id in loaded}  # each source's latest run
    assert sum(loaded.values()) == daily_runs.corrected_full.report.published
    capsys.readouterr()

    nothing_new = daily_runs.nothing_new.report
    report_file = tmp_path / "nothing_new.json"
    report_file.write_text(nothing_new.to_json(), encoding="utf-8")
    assert main(["--warehouse", url, "--output", str(output), "--run-report", str(report_file)]) == 0
    assert capsys.readouterr().out.strip() == (
        f"Nothing to load into {url}: run {nothing_new.run_id} found no new input"
    )


@pytest.mark.parametrize(
    "case",
    [
        (
            ["--warehouse", "mysql://host/db"],
            2,
            "must start with one of duckdb://, postgresql://, redshift://",
        ),
        (["--warehouse", "redshift://loader@example.invalid/dev"], 2, "lacks iam_role"),
        (["--warehouse", "duckdb:///{tmp}/w.duckdb", "--output", "{tmp}/nothing"], 2, "cannot read"),
        (
            ["--warehouse", "postgresql://loader:s3cret@127.0.0.1:{port}/db"],
            1,
            "cannot connect to PostgreSQL",
        ),
    ],
    ids=["bad-scheme", "redshift-without-role", "no-run-report", "server-unreachable"],
)
def test_errors_exit_non_zero_with_one_line_and_no_secret(
    case: tuple[list[str], int, str],
    sample_run: tuple[RunReport, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    arguments, exit_code, message = case
    values = {"tmp": str(tmp_path), "port": str(free_port())}
    argv = [a.format(**values) for a in arguments]
    if "--output" not in argv:
        argv += ["--output", str(sample_run[1])]
    assert main(argv) == exit_code
    errors = error_lines(capsys.readouterr().err)
    assert len(errors) == 1 and message in errors[0], errors
    assert "s3cret" not in errors[0]


def test_the_module_entry_point_prints_no_traceback(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "retail_pipeline.warehouse",
            "--warehouse",
            "oracle://x",
            "--output",
            str(tmp_path),
        ],
        check=False,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT / "lib")},
        timeout=60,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert error_lines(result.stderr) == [
        "error: warehouse URL 'oracle://x' must start with one of duckdb://, postgresql://, redshift://"
    ]
