"""The two interpreters of the rules agree: Spark (batch) and plain Python (streaming)."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from pyspark.sql import SparkSession

from retail_pipeline import rules, transforms
from tests.conftest import BAD_INPUT_CSV, SAMPLE_CSV


def python_outcome(line: str) -> tuple[str, str | None, tuple | None]:
    """(outcome, reason, curated values) of one line by the plain-Python rules."""
    fields = next(csv.reader([line]), [])
    if len(fields) != len(rules.RAW_COLUMNS):
        return "quarantined", "line-level", None
    parsed = rules.parse_record(dict(zip(rules.RAW_COLUMNS, fields, strict=True)))
    if isinstance(parsed, str):
        return "quarantined", parsed, None
    rule = rules.first_matching_rule(parsed)
    values = curated_values(parsed)
    return ("filtered", rule.name, values) if rule else ("published", None, values)


def curated_values(line: rules.InvoiceLine) -> tuple:
    """A typed line's curated business columns, in the contract's order."""
    return (
        line.invoice_no,
        line.stock_code,
        line.description,
        line.quantity,
        line.unit_price,
        line.revenue,
        line.invoice_ts,
        line.customer_id,
        line.country,
    )


@pytest.mark.parametrize("path", [SAMPLE_CSV, BAD_INPUT_CSV], ids=lambda p: p.name)
def test_spark_and_python_classify_every_line_alike(spark: SparkSession, path: Path) -> None:
    text = path.read_text(encoding="utf-8-sig")
    header, *lines = text.splitlines()
    frame = spark.createDataFrame(
        [("file:///x.csv", line) for line in lines], "source_file string, line string"
    )
    classified = frame.transform(transforms.classify_lines, header_lines={header}).collect()
    line_level = {reason.name for reason in rules.LINE_REASONS}
    mismatches = []
    for row in classified:
        outcome, reason, values = python_outcome(row["line"])
        spark_values = tuple(row[c] for c in transforms.CURATED_COLUMNS[:9]) if values else None
        agree = outcome == row["outcome"] and (
            reason == row["reason"] or (reason == "line-level" and row["reason"] in line_level)
        )
        if not agree or spark_values != values:
            mismatches.append((row["line"], (row["outcome"], row["reason"]), (outcome, reason)))
    assert len(classified) == len(lines)
    assert mismatches == []


def date_texts() -> list[str]:
    """InvoiceDate texts around every range edge of both accepted shapes, and near misses."""
    texts = [
        f"{month}/{day}/{year} {hour}:{minute}"
        for month in ("0", "1", "01", "2", "12", "13", "00")
        for day in ("0", "1", "28", "29", "30", "31", "32")
        for year in ("1000", "2010", "2012", "9999")
        for hour in ("0", "08", "23", "24")
        for minute in ("00", "59", "60")
    ]
    texts += [
        f"{year}-{month}-{day} {hour}:{minute}:{second}"
        for year in ("1000", "2011", "2012")
        for month in ("00", "01", "02", "12", "13")
        for day in ("00", "01", "29", "30", "31")
        for hour in ("00", "23", "24")
        for minute in ("00", "59", "60")
        for second in ("00", "59", "60")
    ]
    near_misses = [
        "12/1/2010 8:26:00",
        "12/1/10 8:26",
        "12/1/0999 8:26",
        "12/1/2010 8:6",
        "12/1/2010T8:26",
        "12-1-2010 8:26",
        "123/1/2010 8:26",
        "12/1/2010  8:26",
        "12/1/2010 8:26\u0085",
        "12/1/2010 8:26\u2028",
        "12/1/2010 8:26\t",
        "\t12/1/2010 8:26",
        "2011-12-09T12:50:07",
        "2011-12-09 12:50",
        "2011-12-09",
        "2011-1-09 12:50:07",
        "+2011-12-09 12:50:07",
        "2011-12-09 12:50:07Z",
        "2011-12-09 12:50:07.5",
        "\uff12011-12-09 12:50:07",
        "",
    ]
    return texts + near_misses


def test_spark_and_python_read_invoice_dates_alike(spark: SparkSession) -> None:
    texts = date_texts()
    frame = spark.createDataFrame([(text,) for text in texts], "text string")
    rows = frame.select("text", transforms.invoice_date(frame["text"]).alias("ts")).collect()
    mismatches = [(row.text, row.ts) for row in rows if row.ts != rules.parse_invoice_date(row.text)]
    assert len(rows) == len(texts)
    assert mismatches == []
    # The grid holds real dates of both shapes, and impossible ones.
    parsed = [row.ts for row in rows]
    assert sum(ts is not None for ts in parsed) > 500 and sum(ts is None for ts in parsed) > 2000


HARDENING_LINES = [
    "9" * 64 + ",85123A,HEART,6,12/1/2010 8:26,2.55,17850,United Kingdom",
    "9" * 65 + ",85123A,HEART,6,12/1/2010 8:26,2.55,17850,United Kingdom",
    "536365," + "A" * 65 + ",HEART,6,12/1/2010 8:26,2.55,17850,United Kingdom",
    "5363\x0065,85123A,HEART,6,12/1/2010 8:26,2.55,17850,United Kingdom",
    "536365,85123A,\tWHITE\x00\x07HEART\x1b,6,12/1/2010 8:26,2.55,17850,United Kingdom",
    "536365,85123A,HEART,6,12/1/2010 8:26,2.55,17850\x85,United Kingdom",
    "536365,85123A,HEART,6,12/1/2010 8:26,2.55,17850,United\x7fKingdom",
    "536365,85123A,\u00c9CLAIR \u2028 \U0001f600,6,12/1/2010 8:26,2.55,17850,France",
]


def test_spark_and_python_agree_on_keys_and_control_characters(spark: SparkSession) -> None:
    frame = spark.createDataFrame(
        [("file:///x.csv", line, "run-1") for line in HARDENING_LINES],
        "source_file string, line string, run_id string",
    )
    classified = frame.transform(transforms.classify_lines, header_lines={rules.RAW_HEADER}).collect()
    got = [
        (
            row["line"],
            row["outcome"],
            row["reason"],
            row["description"] if row["outcome"] != "quarantined" else None,
        )
        for row in classified
    ]
    expected = []
    for line in HARDENING_LINES:
        outcome, reason, values = python_outcome(line)
        expected.append((line, outcome, reason, values[2] if values else None))
    assert sorted(got) == sorted(expected)
    reasons = {reason for _, _, reason, _ in got}
    assert {"invalid_invoice_no", "invalid_stock_code", "control_character_in_key"} <= reasons
