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
    values = (
        parsed.invoice_no,
        parsed.stock_code,
        parsed.description,
        parsed.quantity,
        parsed.unit_price,
        parsed.revenue,
        parsed.invoice_ts,
        parsed.customer_id,
        parsed.country,
    )
    return ("filtered", rule.name, values) if rule else ("published", None, values)


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
