"""The benchmark's reference implementations (benchmarks/references/) apply the job's rules.

The expected figures are the Spark job's on the same files (its run reports). Each engine is
skipped when its package is not installed; the whole file runs in a few seconds.
"""

from __future__ import annotations

import importlib
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from types import ModuleType

import pytest

from benchmarks.references import common, line_scan
from retail_pipeline import rules
from tests.conftest import BAD_INPUT_CSV, SAMPLE_CSV

REPO_ROOT = Path(__file__).resolve().parents[2]
ENGINES = {"duckdb": "duckdb", "pandas": "pandas", "polars": "polars"}


@pytest.fixture(params=sorted(ENGINES))
def reference(request: pytest.FixtureRequest) -> ModuleType:
    """One reference implementation's module (skipped when its engine is not installed)."""
    pytest.importorskip(ENGINES[request.param])
    pytest.importorskip("pyarrow")
    return importlib.import_module(f"benchmarks.references.{request.param}_reference")


def written_rows(curated: str) -> int:
    import pyarrow.dataset as ds

    return ds.dataset(curated, format="parquet", partitioning="hive").count_rows()


def test_the_sample_gives_the_jobs_figures(reference: ModuleType, tmp_path: Path) -> None:
    result = reference.run(SAMPLE_CSV, tmp_path / "out")

    assert (result.read, result.published, result.quarantined_total) == (9_999, 9_853, 0)
    assert result.filtered == {
        "cancellation": 100,
        "bad_debt": 0,
        "non_positive_quantity": 30,
        "non_positive_price": 16,
    }
    assert result.published_revenue == Decimal("184239.8300")
    assert written_rows(result.output) == 9_853


def test_bad_input_is_quarantined_as_the_job_does(reference: ModuleType, tmp_path: Path) -> None:
    result = reference.run(BAD_INPUT_CSV, tmp_path / "out")

    assert (result.read, result.published, result.quarantined_total) == (25, 4, 15)
    assert result.filtered == {
        "cancellation": 1,
        "bad_debt": 3,
        "non_positive_quantity": 1,
        "non_positive_price": 1,
    }
    # The file has no final line break and its last line is cut ("United Kingd").
    assert result.quarantined["truncated_last_line"] == 1
    assert result.published_revenue == Decimal("174.3800")


def test_an_unclosed_quote_spoils_only_its_own_line(reference: ModuleType, tmp_path: Path) -> None:
    good = "536500,22941,CHRISTMAS LIGHTS 10 REINDEER,2,12/1/2010 10:19,8.5,17511,United Kingdom"
    quoted = '536501,22942,"LIGHTS ""XMAS"", 10",3,12/1/2010 10:19,1.25,17511.0,United Kingdom'
    lines = [
        rules.RAW_HEADER,
        '536390,22941,"CHRISTMAS LIGHTS, 10 REINDEER,2,12/1/2010 10:19,8.5,17511,United Kingdom',
        good,
        quoted,  # a CSV reader would close the quote above here, swallowing two good lines
        good + ",",  # a trailing comma: a 9th field
        rules.RAW_HEADER,  # a repeated header is no data line
        "",
        good,
    ]
    source = tmp_path / "unclosed.csv"
    source.write_text("\r\n".join(lines) + "\r\n")

    result = reference.run(source, tmp_path / "out")

    # The Spark job: read 6, published 3 (17.00 + 3.75 + 17.00), quarantined 3.
    assert (result.read, result.published, result.quarantined_total) == (6, 3, 3)
    assert result.published_revenue == Decimal("37.7500")
    assert result.quarantined.get("unclosed_quote") == 1


def test_the_scan_sets_aside_what_a_csv_reader_misreads(tmp_path: Path) -> None:
    good = "536500,22941,LIGHTS,2,12/1/2010 10:19,8.5,17511,United Kingdom"
    source = tmp_path / "input.csv"
    cut_last_line = "536502,1,X,1,12/1/2010 10:19,1,,United Kingd"
    lines = [
        "\ufeff" + rules.RAW_HEADER,
        good,
        '536501,1,"OPEN,1,12/1/2010 10:19,1,,UK',
        good + ",",
        cut_last_line,
    ]
    source.write_text("\n".join(lines))  # no final line break

    scan = line_scan.scan_input(source)

    assert scan.read == 4
    assert scan.set_aside_reasons == {"unclosed_quote": 1, "wrong_field_count": 1}
    assert scan.truncated_last_line == cut_last_line
    # An 8-field cut line reaches the engines, which quarantine it by its fields.
    assert scan.truncated_last_fields == tuple(cut_last_line.split(","))
    copy = line_scan.input_for_reader(scan, tmp_path / "work")
    assert copy.read_bytes().count(b"\n") == 2  # header, the good line; the cut last line stays


def test_a_file_that_is_not_the_data_set_is_refused(tmp_path: Path) -> None:
    source = tmp_path / "other.csv"
    source.write_text("a,b,c\n1,2,3\n")

    with pytest.raises(line_scan.InputError, match="first line"):
        line_scan.scan_input(source)


def test_date_patterns_translate_to_strptime() -> None:
    formats = {f.name: common.strptime_format(f.spark_pattern) for f in rules.INVOICE_DATE_FORMATS}

    assert formats == {"month_day_year": "%m/%d/%Y %H:%M", "iso": "%Y-%m-%d %H:%M:%S"}


def test_the_spark_floor_publishes_what_the_job_does_on_clean_input(spark, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from benchmarks import spark_floor

    rows = spark_floor.run(spark, str(SAMPLE_CSV), str(tmp_path / "floor"))

    written = spark.read.parquet(str(tmp_path / "floor"))
    assert rows == written.count() == 9_853
    assert written.agg({"revenue": "sum"}).first()[0] == Decimal("184239.8300")
    assert sorted(written.columns) == sorted(rules.CURATED_COLUMNS)


SHOW_DUCKDB_MEMORY = """
import resource, sys
from pathlib import Path
cap = int(sys.argv[2])
if cap:  # as the bench's cap (harness.cap_memory) does in the reference's process
    resource.setrlimit(resource.RLIMIT_DATA, (cap, cap))
import duckdb
from benchmarks.references import duckdb_reference
connection = duckdb.connect()
limit = duckdb_reference.limit_memory(connection, Path(sys.argv[1]))
setting = "current_setting('memory_limit'), current_setting('temp_directory')"
print(limit, *connection.execute(f"SELECT {setting}").fetchone(), sep="|")
"""


def test_duckdb_spills_under_the_bench_memory_cap(tmp_path: Path) -> None:
    pytest.importorskip("duckdb")

    def show(cap: int) -> list[str]:
        command = [sys.executable, "-c", SHOW_DUCKDB_MEMORY, str(tmp_path / "spill"), str(cap)]
        done = subprocess.run(command, capture_output=True, text=True, check=True, cwd=REPO_ROOT)
        return done.stdout.strip().split("|")

    limit, memory_limit, temp_directory = show(2 * 2**30)
    assert (limit, memory_limit) == ("1024MiB", "1.0 GiB")  # half the cap: the rest is Python's
    assert temp_directory == str(tmp_path / "spill")  # not DuckDB's default .tmp in the repo
    assert show(0)[0] == "None"
