"""The batch job end to end on real files with local Spark."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest
from chispa import assert_df_equality
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from retail_pipeline import batch, rules, transforms
from retail_pipeline.config import BatchSettings
from retail_pipeline.inputs import InputError, select_inputs
from retail_pipeline.ledger import Ledger, canonical_uri, source_id
from retail_pipeline.report import RunReport
from retail_pipeline.storage import HadoopFileSystem
from tests.conftest import BAD_INPUT_CSV, SAMPLE_CSV, writable_copy

pytestmark = pytest.mark.integration


def settings(input_path: Path | str, output: Path, **changes: object) -> BatchSettings:
    values: dict[str, object] = {
        "input": str(input_path),
        "output": str(output),
        "encoding": "utf-8",
        "quarantine_unterminated_last_line": True,
    }
    values.update(changes)
    return BatchSettings(**values)  # type: ignore[arg-type]


def curated(spark: SparkSession, output: Path) -> DataFrame:
    return spark.read.parquet(str(output / "curated"))


def quarantine(spark: SparkSession, output: Path) -> DataFrame:
    return spark.read.parquet(str(output / "quarantine"))


def stored_report(output: Path) -> RunReport:
    return RunReport.from_json((output / "reports" / "run_report.json").read_text())


def test_the_real_sample_is_accounted_for(sample_run: tuple[RunReport, Path]) -> None:
    report, output = sample_run
    assert report.read == 9_999
    assert report.published == 9_853
    assert report.filtered == {
        "cancellation": 100,
        "bad_debt": 0,
        "non_positive_quantity": 30,
        "non_positive_price": 16,
    }
    assert report.quarantined == {}
    assert report.header_lines == 1
    stored = stored_report(output)
    assert (stored.read, stored.published) == (9_999, 9_853)
    assert stored.curated_partitions == ["invoice_year=2010/invoice_month=12"]


def test_curated_output_matches_the_report(spark: SparkSession, sample_run: tuple[RunReport, Path]) -> None:
    report, output = sample_run
    published = curated(spark, output)
    totals = published.agg(F.count(F.lit(1)).alias("rows"), F.sum("revenue").alias("revenue")).first()
    assert totals is not None
    assert totals["rows"] == report.published
    assert totals["revenue"] == Decimal(report.published_revenue)
    assert dict(published.dtypes) == {
        "invoice_no": "string",
        "stock_code": "string",
        "description": "string",
        "quantity": "int",
        "unit_price": "decimal(12,4)",
        "revenue": "decimal(23,4)",
        "invoice_ts": "timestamp_ntz",
        "customer_id": "string",
        "country": "string",
        "source_file": "string",
        "run_id": "string",
        "invoice_year": "int",
        "invoice_month": "int",
    }
    lineage = published.select("source_file", "run_id").distinct().collect()
    assert [tuple(row) for row in lineage] == [(canonical_uri(SAMPLE_CSV.as_uri()), report.run_id)]
    assert sorted(p.name for p in (output / "curated").iterdir() if p.is_dir()) == ["invoice_year=2010"]
    unknown = published.where(F.col("customer_id") == "Unknown").count()
    assert unknown > 0
    assert published.where(F.col("customer_id").isNull() | (F.col("customer_id") == "")).count() == 0
    assert published.where(F.col("invoice_no").startswith("C")).count() == 0


def test_the_bad_input_file_is_quarantined_with_reasons(spark: SparkSession, tmp_path: Path) -> None:
    report = batch.run(spark, settings(BAD_INPUT_CSV, tmp_path))
    assert report.filtered == {
        "cancellation": 1,
        "bad_debt": 3,
        "non_positive_quantity": 1,
        "non_positive_price": 1,
    }
    assert report.quarantined == {
        "empty_line": 1,
        "truncated_last_line": 1,
        "unclosed_quote": 1,
        "wrong_field_count": 2,
        "missing_invoice_no": 1,
        "missing_stock_code": 1,
        "invalid_quantity": 2,
        "invalid_unit_price": 2,
        "invalid_invoice_date": 3,
        "missing_country": 1,
    }
    assert report.published == 4
    assert (
        report.read
        == 25
        == report.published + sum(report.filtered.values()) + sum(report.quarantined.values())
    )

    stored = {row["raw_line"]: row["reason"] for row in quarantine(spark, tmp_path).collect()}
    assert stored[""] == "empty_line"
    assert stored["536390,22941,CHRISTMAS LIGHTS 10 REINDEER,2,2010-12-01,8.5,17511,United Kingdom"] == (
        "invalid_invoice_date"
    )
    assert stored["536391,22942,CHRISTMAS LIGHTS 10 REINDEER,1,12/1/2010 10:20,8.5,17511,United Kingd"] == (
        "truncated_last_line"
    )
    assert len(stored) == 15
    sources = {(row["source_file"], row["source_id"]) for row in quarantine(spark, tmp_path).collect()}
    uri = canonical_uri(BAD_INPUT_CSV.as_uri())
    assert sources == {(uri, source_id(uri))}

    published = {(r["invoice_no"], r["customer_id"]) for r in curated(spark, tmp_path).collect()}
    assert published == {("536365", "17850"), ("536367", "13047"), ("536381", "Unknown"), ("536477", "16210")}
    description = curated(spark, tmp_path).where(F.col("invoice_no") == "536477").first()
    assert description is not None and description["description"] == 'RECORD FRAME 7" SINGLE SIZE'


def test_running_twice_gives_identical_rows(spark: SparkSession, tmp_path: Path) -> None:
    """The same lines, no duplicates; only the lineage's run id names the second run."""
    batch.run(spark, settings(BAD_INPUT_CSV, tmp_path))
    first_curated = curated(spark, tmp_path).drop("run_id").localCheckpoint()
    first_quarantine = quarantine(spark, tmp_path).drop("run_id").localCheckpoint()
    second = batch.run(spark, settings(BAD_INPUT_CSV, tmp_path))
    assert_df_equality(curated(spark, tmp_path).drop("run_id"), first_curated, ignore_row_order=True)
    assert_df_equality(quarantine(spark, tmp_path).drop("run_id"), first_quarantine, ignore_row_order=True)
    for output in (curated(spark, tmp_path), quarantine(spark, tmp_path)):
        assert [row["run_id"] for row in output.select("run_id").distinct().collect()] == [second.run_id]
    assert not (tmp_path / "_staging").exists()


def test_a_run_that_fails_midway_leaves_the_earlier_output(
    spark: SparkSession, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sample_run: tuple[RunReport, Path]
) -> None:
    output = writable_copy(sample_run[1], tmp_path / "out")  # the sample's output, as its run left it
    before_curated = curated(spark, output).localCheckpoint()
    before_report = (output / "reports" / "run_report.json").read_text()

    def fail_after_curated(*_: object, **__: object) -> None:
        raise RuntimeError("disk full (injected)")

    # The second run stages its lines, then fails before its quarantine is written.
    monkeypatch.setattr(batch, "write_quarantine", fail_after_curated)
    with pytest.raises(RuntimeError, match="injected"):
        batch.run(spark, settings(BAD_INPUT_CSV, output))

    assert_df_equality(curated(spark, output), before_curated, ignore_row_order=True)
    assert (output / "reports" / "run_report.json").read_text() == before_report
    assert not (output / "_staging").exists()


def test_a_wrong_header_stops_the_run_before_reading(spark: SparkSession, tmp_path: Path) -> None:
    swapped = tmp_path / "swapped.csv"
    swapped.write_text("StockCode,InvoiceNo,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country\n")
    with pytest.raises(InputError, match="first line should be the header"):
        batch.run(spark, settings(swapped, tmp_path / "out"))
    with pytest.raises(InputError, match="no input files match"):
        batch.run(spark, settings(tmp_path / "missing-*.csv", tmp_path / "out"))
    assert not (tmp_path / "out" / "curated").exists()


def test_a_folder_of_latin1_files_is_read(spark: SparkSession, tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    for name, description in (("a.csv", "CAFÉ AU LAIT MUG"), ("b.csv", "CRÈME BRÛLÉE SET")):
        text = f"{rules.RAW_HEADER}\n536365,85123A,{description},6,12/1/2010 8:26,2.55,17850,France\n"
        (folder / name).write_bytes(text.encode("latin-1"))
    report = batch.run(spark, settings(folder, tmp_path / "out", encoding="latin-1"))
    assert report.read == 2 and report.published == 2 and report.header_lines == 2
    descriptions = {r["description"] for r in curated(spark, tmp_path / "out").collect()}
    assert descriptions == {"CAFÉ AU LAIT MUG", "CRÈME BRÛLÉE SET"}
    report_json = json.loads((tmp_path / "out" / "reports" / "run_report.json").read_text())
    assert len(report_json["inputs"]) == 2


def optimized_plan(frame: DataFrame) -> str:
    return frame._jdf.queryExecution().optimizedPlan().toString()


def test_the_staged_write_parses_each_line_once(spark: SparkSession, tmp_path: Path) -> None:
    """The plan the job writes holds one CSV parse. With the header filter under the
    observation instead, the optimizer inlines the parse into the filter: from_csv 28 times,
    the write 4-5x slower. A plan check, not a timing."""
    fs = HadoopFileSystem(spark)
    inputs = select_inputs(fs, str(SAMPLE_CSV), Ledger(), incremental=False, encoding="utf-8").inputs
    job = settings(SAMPLE_CSV, tmp_path)
    scope = batch.LineScope("run-1")
    lines, _ = batch.data_lines(spark, inputs, job, scope=scope)
    assert optimized_plan(lines).count("from_csv(") == 1
    # Without the observation between them, the same filter parses each line many times.
    unobserved = batch.classify_inputs(spark, inputs, job, scope=scope).where(
        F.col("outcome") != transforms.OUTCOME_HEADER
    )
    assert optimized_plan(unobserved).count("from_csv(") > 1
