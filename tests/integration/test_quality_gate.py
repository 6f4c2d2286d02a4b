"""The data-quality gate: nothing unchecked is published; Data Docs and JSON results."""

from __future__ import annotations

import json
import re
import shutil
from decimal import Decimal
from pathlib import Path

import pytest
from chispa import assert_df_equality
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from retail_pipeline import batch, quality, rules, transforms
from retail_pipeline.config import BatchSettings, QualitySettings
from retail_pipeline.ledger import canonical_uri, source_id
from retail_pipeline.quality import QualityGateError
from tests.conftest import BAD_INPUT_CSV, SAMPLE_CSV

pytestmark = pytest.mark.integration


def settings(input_path: Path, output: Path) -> BatchSettings:
    return BatchSettings(str(input_path), str(output), "utf-8", True)


@pytest.fixture(scope="module")
def validated_run(
    spark: SparkSession, tmp_path_factory: pytest.TempPathFactory, quality_on: QualitySettings
) -> Path:
    """The bad-input file plus one line from a country outside the known list (a warning), run
    with the gate over an output that already holds the Atlantis line (published ungated: a
    second validation would cost seconds and show nothing more)."""
    folder = tmp_path_factory.mktemp("validated")
    atlantis = folder / "atlantis.csv"
    atlantis.write_text(
        f"{rules.RAW_HEADER}\n536999,22423,REGENCY CAKESTAND,2,12/2/2010 9:00,12.75,17850,Atlantis\n"
    )
    batch.run(spark, settings(folder / "*.csv", folder / "out"))
    (folder / "bad input.csv").write_bytes(BAD_INPUT_CSV.read_bytes())  # a space, on purpose
    batch.run(spark, settings(folder / "*.csv", folder / "out"), quality=quality_on)
    return folder / "out"


def latest_validation(output: Path) -> dict:
    report = json.loads((output / "reports" / "run_report.json").read_text())
    return json.loads((output / report["quality"]["result"]).read_text())


def test_a_warning_only_defect_publishes_and_reports_the_warning(validated_run: Path) -> None:
    report = json.loads((validated_run / "reports" / "run_report.json").read_text())
    assert report["status"] == "succeeded" and report["published"] == 5
    assert sum(report["quarantined"].values()) == 15 and report["quarantined"]["truncated_last_line"] == 1
    source = canonical_uri((validated_run.parent / "bad input.csv").as_uri())
    assert source.endswith("/bad%20input.csv")
    assert (validated_run / "quarantine" / f"source_id={source_id(source)}").is_dir()
    assert report["quality"]["success"] is True
    result = latest_validation(validated_run)
    assert result["critical_failures"] == []
    country = [e for e in result["expectations"] if e["expectation"] == "expect_column_values_to_be_in_set"]
    assert len(country) == 1 and not country[0]["success"] and country[0]["severity"] == "warning"
    assert country[0]["unexpected_count"] == 1
    assert any("expect_column_values_to_be_in_set(country): 1 unexpected" in w for w in result["warnings"])
    # Every curated check has its count, the passed ones too (run without GX's counts).
    curated = [e for e in result["expectations"] if e["suite"] == quality.CURATED_SUITE]
    passed_columns = [e for e in curated if e["success"] and "column" in e["kwargs"]]
    column_checks = [e for e in curated if "column" in e["kwargs"]]
    assert len(passed_columns) == len(column_checks) - 1  # all but the country warning
    assert {e["unexpected_count"] for e in passed_columns} == {0}
    (row_count,) = [e for e in curated if e["expectation"] == "expect_table_row_count_to_equal"]
    assert row_count["success"] and row_count["observed_value"] == report["published"]
    docs = validated_run / "reports" / "data_docs"
    page = next(docs.glob(f"validations/{quality.CURATED_SUITE}/*/*/*.html")).read_text()
    assert "expect_column_values_to_be_in_set" in page or "values must belong to this set" in page


def test_data_docs_list_every_expectation_of_every_suite(
    validated_run: Path, quality_on: QualitySettings
) -> None:
    docs = validated_run / "reports" / "data_docs"
    index = (docs / "index.html").read_text()
    suites = {
        quality.CURATED_SUITE: quality.curated_suite_expectations(quality_on, published_rows=5),
        quality.KEYS_SUITE: quality.keys_suite_expectations(5),
    }
    for name, expectations in suites.items():
        assert f"expectations/{name}.html" in index
        assert re.search(rf"validations/{name}/[^\"]+\.html", index)
        page = re.sub(
            r"\s+", " ", re.sub(r"<[^>]+>", " ", (docs / "expectations" / f"{name}.html").read_text())
        )
        assert f"contains {len(expectations)} total Expectations" in page
        for expectation in expectations:
            config = expectation.configuration
            target = config.kwargs.get("column") or config.kwargs.get("description")
            if target:
                assert target in page, f"{config.type} on {target} is missing from {name}.html"


# The sample's first lines: the cancellation C536379 is line 143.
SAMPLE_HEAD_LINES = 200


def test_a_critical_defect_publishes_nothing(
    spark: SparkSession,
    validated_run: Path,
    tmp_path: Path,
    quality_on: QualitySettings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    output = tmp_path / "out"
    shutil.copytree(validated_run, output)  # a published output (the module's run, not changed)
    curated_before = spark.read.parquet(str(output / "curated")).localCheckpoint()
    report_before = (output / "reports" / "run_report.json").read_text()
    sample_head = tmp_path / "sample_head.csv"
    sample_head.write_bytes(b"".join(SAMPLE_CSV.read_bytes().splitlines(keepends=True)[:SAMPLE_HEAD_LINES]))

    # The injected defect: transforms that let cancellations (negative quantities) through,
    # while the rules (and so the gate's expectations) still name them.
    rule_condition = transforms.rule_condition

    def broken(rule: rules.FilterRule) -> Column:
        skipped = rule.name in ("cancellation", "non_positive_quantity")
        return F.lit(False) if skipped else rule_condition(rule)

    monkeypatch.setattr(transforms, "rule_condition", broken)
    with pytest.raises(QualityGateError) as failure:
        batch.run(spark, settings(sample_head, output), quality=quality_on, run_id="run-with-defect")

    message = str(failure.value)
    assert "expect_column_values_to_not_match_regex(invoice_no)" in message
    assert "C536379" in message  # an offending value is named
    assert_df_equality(spark.read.parquet(str(output / "curated")), curated_before, ignore_row_order=True)
    assert (output / "reports" / "run_report.json").read_text() == report_before
    failed_report = json.loads((output / "reports" / "runs" / "run-with-defect.json").read_text())
    assert failed_report["status"] == "failed_quality_gate" and failed_report["published"] == 0
    result = json.loads((output / "reports" / "validation" / "run-with-defect.json").read_text())
    assert result["success"] is False
    assert any("quantity" in failure for failure in result["critical_failures"])
    assert not (output / "_staging").exists()


def curated_lines(spark: SparkSession, *rows: tuple) -> DataFrame:
    """Curated lines from (invoice_no, stock_code, quantity, unit_price, revenue, customer_id)."""
    return (
        spark.createDataFrame(
            rows,
            "invoice_no string, stock_code string, quantity int, unit_price string, revenue string, "
            "customer_id string",
        )
        .withColumn("description", F.lit("HEART"))
        .withColumn("unit_price", F.col("unit_price").cast(rules.UNIT_PRICE_TYPE))
        .withColumn("revenue", F.col("revenue").cast(rules.REVENUE_TYPE))
        .withColumn("invoice_ts", F.lit("2010-12-01 08:26:00").cast("timestamp_ntz"))
        .withColumn("country", F.lit("United Kingdom"))
        .withColumn("source_file", F.lit("file:///in/day.csv"))
        .withColumn("run_id", F.lit("run-1"))
        .select(*[c for c in transforms.CURATED_COLUMNS if c not in transforms.PARTITION_COLUMNS])
    )


def validate_curated(
    curated: DataFrame, quality_on: QualitySettings, *, published_rows: int | None = None
) -> quality.QualityResult:
    rows = curated.count() if published_rows is None else published_rows
    result, docs = quality.validate(curated, settings=quality_on, published_rows=rows)
    shutil.rmtree(docs)
    return result


GOOD_LINE = ("536365", "85123A", 6, "2.5500", "15.3000", "17850")
# A line that matches each filter rule: the gate's expectations come from the rules, so a rule
# the transforms fail to apply is caught whichever rule it is.
RULE_BREAKERS = {
    "cancellation": ("C536366", "22633", 6, "1.8500", "11.1000", "17850"),
    "bad_debt": ("a536367", "22633", 6, "1.8500", "11.1000", "17850"),
    "non_positive_quantity": ("536368", "22633", 0, "1.8500", "0.0000", "17850"),
    "non_positive_price": ("536369", "22633", 6, "0.0000", "0.0000", "17850"),
}
# Defects no filter rule takes out: (line, the expectation that fails, its column, the
# offending value it names).
DEFECTS = {
    # revenue 99.99 where 6 x 1.85 is 11.10: the check's column holds the difference
    "wrong_revenue": (
        ("536370", "22633", 6, "1.8500", "99.9900", "17850"),
        "expect_column_values_to_be_between",
        quality.REVENUE_CHECK,
        Decimal("88.8900"),
    ),
    "blank_customer_id": (
        ("536371", "22633", 6, "1.8500", "11.1000", " "),
        "expect_column_values_to_not_match_regex",
        "customer_id",
        " ",
    ),
}
DEFECT_LINES = (GOOD_LINE, *RULE_BREAKERS.values(), *(line for line, *_ in DEFECTS.values()))


@pytest.fixture(scope="module")
def defects_validated(
    spark: SparkSession, quality_on: QualitySettings
) -> tuple[DataFrame, quality.QualityResult]:
    """One good line and one line per defect, validated once (the gate checks each expectation
    on its own), with a published row count one more than the lines: a defect of its own."""
    curated = curated_lines(spark, *DEFECT_LINES)
    return curated, validate_curated(curated, quality_on, published_rows=len(DEFECT_LINES) + 1)


def failures_on(result: quality.QualityResult, column: str) -> list[quality.ExpectationOutcome]:
    return [o for o in result.critical_failures if o.kwargs.get("column") == column]


@pytest.mark.parametrize("defect", DEFECTS, ids=list(DEFECTS))
def test_a_critical_defect_is_named_with_its_offending_value(
    defects_validated: tuple[DataFrame, quality.QualityResult], defect: str
) -> None:
    _, result = defects_validated
    _, expectation, column, example = DEFECTS[defect]
    (failure,) = failures_on(result, column)
    assert failure.expectation == expectation
    assert failure.unexpected_count == 1
    assert failure.examples == [example]


@pytest.mark.parametrize("rule", rules.FILTER_RULES, ids=rules.FILTER_RULE_NAMES)
def test_a_published_line_that_a_filter_rule_takes_out_fails_the_gate(
    defects_validated: tuple[DataFrame, quality.QualityResult], rule: rules.FilterRule
) -> None:
    curated, result = defects_validated
    # The one line that breaks this rule, and its offending value.
    ((offending,),) = curated.where(transforms.rule_condition(rule)).select(rule.field).collect()
    (failure,) = [o for o in failures_on(result, rule.field) if o.examples == [offending]]
    assert failure.unexpected_count == 1


def test_each_defect_fails_one_critical_expectation_and_no_other(
    defects_validated: tuple[DataFrame, quality.QualityResult],
) -> None:
    _, result = defects_validated
    failures = result.critical_failures
    assert len(failures) == len(RULE_BREAKERS) + len(DEFECTS) + 1, [o.describe() for o in failures]
    assert len({o.key() for o in failures}) == len(failures)  # each a different expectation
    column_failures = [o for o in failures if "column" in o.kwargs]
    assert [o.unexpected_count for o in column_failures] == [1] * (len(RULE_BREAKERS) + len(DEFECTS))


def test_a_new_filter_rule_reaches_the_gate(
    monkeypatch: pytest.MonkeyPatch, quality_on: QualitySettings
) -> None:
    rule = rules.FilterRule("postage", "StockCode POST: postage", "stock_code", "starts_with", "POST")
    monkeypatch.setattr(rules, "FILTER_RULES", (*rules.FILTER_RULES, rule))
    (check,) = [
        e
        for e in quality.curated_suite_expectations(quality_on, published_rows=1)
        if e.configuration.kwargs.get("column") == "stock_code" and "regex" in e.configuration.kwargs
    ]
    assert check.configuration.kwargs["regex"] == "(?i)^POST"


def test_a_repeated_invoice_line_is_a_warning_with_its_count(
    spark: SparkSession, quality_on: QualitySettings
) -> None:
    curated = curated_lines(
        spark,
        GOOD_LINE,
        GOOD_LINE,
        ("536365", "22633", 6, "1.8500", "11.1000", "17850"),
        # Different (invoice_no, stock_code) pairs that a key joined by NUL alone would confuse.
        ("536366\u00001", "2", 6, "1.8500", "11.1000", "17850"),
        ("536366", "1\u00002", 6, "1.8500", "11.1000", "17850"),
    )
    result = validate_curated(curated, quality_on)
    assert result.success and not result.critical_failures
    (warning,) = [w for w in result.warnings if w.suite == quality.KEYS_SUITE]
    assert warning.expectation == "expect_column_unique_value_count_to_be_between"
    assert (warning.observed_value, warning.unexpected_count) == (4, 1)  # the key's second line


def test_a_wrong_row_count_is_named_with_the_count_seen(
    defects_validated: tuple[DataFrame, quality.QualityResult],
) -> None:
    _, result = defects_validated
    (failure,) = [o for o in result.critical_failures if o.expectation == "expect_table_row_count_to_equal"]
    lines = len(DEFECT_LINES)
    assert (failure.observed_value, failure.unexpected_count) == (lines, None)
    expected = f"curated_invoice_lines.expect_table_row_count_to_equal(value={lines + 1}): observed {lines}"
    assert failure.describe() == expected
    assert expected in QualityGateError(result).describe_failures()


def page_text(path: Path) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", path.read_text()))


def test_data_docs_pages_name_the_run_and_the_data_asset_and_show_every_observed_value(
    validated_run: Path,
) -> None:
    report = json.loads((validated_run / "reports" / "run_report.json").read_text())
    docs = validated_run / "reports" / "data_docs" / "validations"
    pages = {
        suite: sorted(docs.glob(f"{suite}/{report['run_id']}/*/*.html"))
        for suite in (quality.CURATED_SUITE, quality.KEYS_SUITE)
    }
    assert all(len(found) == 1 for found in pages.values()), pages  # the run id names each result
    curated = page_text(pages[quality.CURATED_SUITE][0])
    assert f"Run Name {report['run_id']}" in curated and "__none__" not in curated
    assert (
        f"Data asset: {validated_run}/curated, months 2010-12" in curated
        and "Data asset: None" not in curated
    )
    for suite, (page,) in pages.items():
        rows = [
            re.sub(r"<[^>]+>|\s+", " ", row).strip()
            for row in re.findall(r"<tr>(.*?)</tr>", page.read_text(), flags=re.DOTALL)
        ]
        assert not [row for row in rows if row.endswith(" --")], suite  # GX's "no observed value"
    # The row count is shown as a number, a passed column check as 0% unexpected.
    assert str(report["published"]) in curated and "0% unexpected" in curated
