"""The Spark interpreter of the rules: one test per transform and per rule (chispa)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import pytest
from chispa import assert_column_equality, assert_df_equality
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from retail_pipeline import contract, ledger, rules, transforms

HEADER = rules.RAW_HEADER
GOOD = "536365,85123A,WHITE HANGING HEART T-LIGHT HOLDER,6,12/1/2010 8:26,2.55,17850,United Kingdom"
LINES_SCHEMA = T.StructType(
    [
        T.StructField("source_file", T.StringType()),
        T.StructField("line", T.StringType()),
        T.StructField("run_id", T.StringType()),
    ]
)
RUN_ID = "20261207T000000Z-0a1b2c3d"
SOURCE = "file:///in/a.csv"


def lines_df(spark: SparkSession, *lines: str, source: str = SOURCE) -> DataFrame:
    return spark.createDataFrame([(source, line, RUN_ID) for line in lines], LINES_SCHEMA)


def with_expected(spark: SparkSession, cases: list[tuple[str, str | None]], column: str) -> DataFrame:
    schema = T.StructType([*LINES_SCHEMA.fields, T.StructField(f"expected_{column}", T.StringType())])
    return spark.createDataFrame([(SOURCE, line, RUN_ID, want) for line, want in cases], schema)


def test_split_fields_reads_rfc4180_quoting(spark: SparkSession) -> None:
    lines = lines_df(
        spark,
        '536381,82567,"AIRLINE LOUNGE,METAL SIGN",2,12/1/2010 9:41,2.1,15311,United Kingdom',
        '536477,22041,"RECORD FRAME 7"" SINGLE SIZE ",48,12/1/2010 12:27,2.1,16210,United Kingdom',
    )
    fields = lines.transform(transforms.split_fields).select("fields.Description", "fields._malformed")
    expected = spark.createDataFrame(
        [("AIRLINE LOUNGE,METAL SIGN", None), ('RECORD FRAME 7" SINGLE SIZE ', None)],
        "Description string, _malformed string",
    )
    assert_df_equality(fields, expected, ignore_row_order=True, ignore_nullable=True)


QUARANTINE_CASES: list[tuple[str, str | None]] = [
    (GOOD, None),
    ("", "empty_line"),
    ("   ", "empty_line"),
    ("536365,85123A,HEART,6,12/1/2010 8:26,2.55,17850", "wrong_field_count"),
    (GOOD + ",EXTRA", "wrong_field_count"),
    ('536365,85123A,"HEART,6,12/1/2010 8:26,2.55,17850,United Kingdom', "unclosed_quote"),
    ('536365,85123A,HEART,6,12/1/2010 8:26,2.55,17850,"United Kingdom', "unclosed_quote"),
    (",85123A,HEART,6,12/1/2010 8:26,2.55,17850,United Kingdom", "missing_invoice_no"),
    ("536365, ,HEART,6,12/1/2010 8:26,2.55,17850,United Kingdom", "missing_stock_code"),
    ("536365,85123A,HEART,6.5,12/1/2010 8:26,2.55,17850,United Kingdom", "invalid_quantity"),
    ("536365,85123A,HEART,,12/1/2010 8:26,2.55,17850,United Kingdom", "invalid_quantity"),
    ('536365,85123A,HEART,6,12/1/2010 8:26,"2,55",17850,United Kingdom', "invalid_unit_price"),
    ("536365,85123A,HEART,6,12/1/2010 8:26,2.55555,17850,United Kingdom", "invalid_unit_price"),
    ("536365,85123A,HEART,6,13/45/2010 8:26,2.55,17850,United Kingdom", "invalid_invoice_date"),
    ("536365,85123A,HEART,6,2/29/2011 8:26,2.55,17850,United Kingdom", "invalid_invoice_date"),
    ("536365,85123A,HEART,6,2010-12-01,2.55,17850,United Kingdom", "invalid_invoice_date"),
    ("536365,85123A,HEART,6,1/1/0000 0:00,2.55,17850,United Kingdom", "invalid_invoice_date"),
    ("536365,85123A,HEART,6,12/1/2010 8:26,2.55,17850,", "missing_country"),
    ("536365,85123A,HEART,6,2010-12-01 08:26:00,2.55,,United Kingdom", None),
]


def test_add_quarantine_reason_names_the_first_reason(spark: SparkSession) -> None:
    cases = with_expected(spark, QUARANTINE_CASES, "reason")
    result = (
        cases.transform(transforms.split_fields)
        .transform(transforms.clean_fields)
        .transform(transforms.type_fields)
        .transform(transforms.add_quarantine_reason)
    )
    assert_column_equality(result, "quarantine_reason", "expected_reason")


def test_only_the_unterminated_last_line_of_its_file_is_truncated(spark: SparkSession) -> None:
    cut = "536365,85123A,HEART,6,12/1/2010 8:26,2.55,17850,United Kingd"
    lines = spark.createDataFrame(
        [("file:/in/a.csv", cut, "truncated_last_line"), ("file:///in/b.csv", cut, None)],
        "source_file string, line string, expected_reason string",
    )
    result = (
        lines.transform(transforms.split_fields)
        .transform(transforms.clean_fields)
        .transform(transforms.type_fields)
        .transform(transforms.add_quarantine_reason, truncated_last_lines={"file:///in/a.csv": cut})
    )
    assert_column_equality(result, "quarantine_reason", "expected_reason")


def test_type_fields_gives_the_curated_types_and_values(spark: SparkSession) -> None:
    lines = lines_df(
        spark,
        GOOD,
        '536367,84879,"  BIRD ORNAMENT  ",32,2011-01-31 23:59:07,1.695,13047.0,France',
        "536368,84880,   ,-2,12/9/2011 12:50,0,,EIRE",
    )
    typed = (
        lines.transform(transforms.split_fields)
        .transform(transforms.clean_fields)
        .transform(transforms.type_fields)
        .select(*transforms.CURATED_COLUMNS)
    )
    # The contract's types, in the contract's order.
    expected_schema = spark.createDataFrame([], contract.spark_ddl()).schema
    expected = spark.createDataFrame(
        [
            ("536365", "85123A", "WHITE HANGING HEART T-LIGHT HOLDER", 6, Decimal("2.55"), Decimal("15.30"),
             datetime(2010, 12, 1, 8, 26), "17850", "United Kingdom", SOURCE, RUN_ID, 2010, 12),
            ("536367", "84879", "BIRD ORNAMENT", 32, Decimal("1.695"), Decimal("54.24"),
             datetime(2011, 1, 31, 23, 59, 7), "13047", "France", SOURCE, RUN_ID, 2011, 1),
            ("536368", "84880", None, -2, Decimal("0"), Decimal("0"),
             datetime(2011, 12, 9, 12, 50), "Unknown", "EIRE", SOURCE, RUN_ID, 2011, 12),
        ],
        expected_schema,
    )  # fmt: skip
    assert_df_equality(typed, expected, ignore_row_order=True, ignore_nullable=True)


FILTER_CASES: list[tuple[str, str | None]] = [
    (GOOD, None),
    ("C536379,D,Discount,-1,12/1/2010 9:41,27.5,14527,United Kingdom", "cancellation"),
    ("c536379,D,Discount,1,12/1/2010 9:41,27.5,14527,United Kingdom", "cancellation"),
    ("A563185,B,Adjust bad debt,1,8/12/2011 14:50,11062.06,,United Kingdom", "bad_debt"),
    ("a563186,B,Adjust bad debt,1,8/12/2011 14:51,-11062.06,,United Kingdom", "bad_debt"),
    ("536589,21777,,-10,12/1/2010 16:50,0,,United Kingdom", "non_positive_quantity"),
    ("536589,21777,,0,12/1/2010 16:50,1,,United Kingdom", "non_positive_quantity"),
    ("536414,22139,,56,12/1/2010 11:52,0,,United Kingdom", "non_positive_price"),
    ("536414,22139,,56,12/1/2010 11:52,-0.01,,United Kingdom", "non_positive_price"),
    ("B536414,22139,,56,12/1/2010 11:52,0.01,,United Kingdom", None),
]


@pytest.mark.parametrize("rule", rules.FILTER_RULES, ids=lambda r: r.name)
def test_each_filter_rule_is_applied(spark: SparkSession, rule: rules.FilterRule) -> None:
    cases = [case for case in FILTER_CASES if case[1] in (rule.name, None)]
    result = (
        with_expected(spark, cases, "rule")
        .transform(transforms.split_fields)
        .transform(transforms.clean_fields)
        .transform(transforms.type_fields)
        .transform(transforms.add_filter_reason)
    )
    assert_column_equality(result, "filter_reason", "expected_rule")


def test_add_outcome_puts_each_line_in_one_place(spark: SparkSession) -> None:
    lines = with_expected(
        spark,
        [
            (HEADER, "header"),
            (GOOD, "published"),
            ("C536379,D,Discount,-1,12/1/2010 9:41,27.5,14527,United Kingdom", "filtered"),
            ("536365,85123A,HEART,six,12/1/2010 8:26,2.55,17850,United Kingdom", "quarantined"),
        ],
        "outcome",
    )
    result = lines.transform(transforms.classify_lines, header_lines={HEADER})
    assert_column_equality(result, "outcome", "expected_outcome")
    reasons = result.where(F.col("outcome") != "published").select("outcome", "reason")
    expected = spark.createDataFrame(
        [("header", None), ("filtered", "cancellation"), ("quarantined", "invalid_quantity")],
        "outcome string, reason string",
    )
    assert_df_equality(reasons, expected, ignore_row_order=True, ignore_nullable=True)


def test_to_curated_keeps_published_lines_in_the_output_contract(spark: SparkSession) -> None:
    lines = lines_df(spark, HEADER, GOOD, "C536379,D,Discount,-1,12/1/2010 9:41,27.5,14527,United Kingdom")
    curated = lines.transform(transforms.classify_lines, header_lines={HEADER}).transform(
        transforms.to_curated
    )
    assert tuple(curated.columns) == transforms.CURATED_COLUMNS
    assert [row["invoice_no"] for row in curated.collect()] == ["536365"]


def test_to_quarantine_keeps_the_raw_line_reason_and_source(spark: SparkSession) -> None:
    bad = "536365,85123A,HEART,six,12/1/2010 8:26,2.55,17850,United Kingdom"
    lines = lines_df(spark, GOOD, bad, source="file:///in/my%20file.csv")
    quarantine = lines.transform(transforms.classify_lines, header_lines={HEADER}).transform(
        transforms.to_quarantine
    )
    source = "file:///in/my%20file.csv"
    expected = spark.createDataFrame(
        [(source, bad, "invalid_quantity", RUN_ID, ledger.source_id(source))],
        "source_file string, raw_line string, reason string, run_id string, source_id string",
    )
    assert_df_equality(quarantine, expected, ignore_nullable=True)
