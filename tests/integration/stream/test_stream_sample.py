"""All 9,999 sample rows through the API, the stream and the consumer, against the batch job."""

from __future__ import annotations

import json
from collections import Counter
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from pyspark.sql import SparkSession

from retail_pipeline.stream.objects import list_curated_objects, list_objects
from tests.conftest import SAMPLE_CSV

pytestmark = pytest.mark.integration

LineTuple = tuple[str, str, str | None, int, Decimal, Decimal, datetime, str, str]


def line_tuple(invoice_no: str, stock_code: str, line: dict[str, Any]) -> LineTuple:
    return (
        invoice_no,
        stock_code,
        line["description"],
        line["quantity"],
        Decimal(line["unit_price"]),
        Decimal(line["revenue"]),
        datetime.fromisoformat(line["invoice_ts"]),
        line["customer_id"],
        line["country"],
    )


COLUMNS = (
    "invoice_no, stock_code, description, quantity, unit_price, revenue, invoice_ts, customer_id, country"
)


@pytest.fixture(scope="module")
def batch_output(sample_run: tuple[Any, Path]) -> Path:
    """The batch job's output on the sample (shared, read-only)."""
    return sample_run[1]


@pytest.fixture(scope="module")
def batch_lines(spark: SparkSession, batch_output: Path) -> Counter[LineTuple]:
    rows = spark.read.parquet(str(batch_output / "curated")).selectExpr(*COLUMNS.split(", ")).collect()
    return Counter(tuple(row) for row in rows)


@pytest.fixture(scope="module")
def streamed(make_stack: Any) -> tuple[Any, dict[str, Any]]:
    stack = make_stack(shards=2, batch_size=500)
    # The file as committed: UTF-8 with a byte-order mark, CRLF line breaks.
    status, answer = stack.post(SAMPLE_CSV.read_text(encoding="utf-8"), "text/csv")
    assert status == 202, answer
    stack.poller.drain()
    return stack, answer


def test_every_sample_row_is_accepted_at_ingest(streamed: tuple[Any, dict[str, Any]]) -> None:
    _, answer = streamed
    # Filtered lines (cancellations, ...) are well formed: the consumer counts them.
    assert answer == {"accepted": 9999, "rejected": 0, "reasons": {}, "rejections": []}


@pytest.fixture(scope="module")
def expected_by_key(batch_lines: Counter[LineTuple]) -> dict[tuple[str, str], Counter[LineTuple]]:
    expected: dict[tuple[str, str], Counter[LineTuple]] = {}
    for line, count in batch_lines.items():
        expected.setdefault((line[0], line[1]), Counter())[line] += count
    return expected


@pytest.fixture(scope="module")
def stored(streamed: tuple[Any, dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    """Every (InvoiceNo, StockCode) in the table, as the query API answers for it (one scan:
    moto answers each Query by sorting the whole table)."""
    stack, _ = streamed
    return {(item["invoice_no"], item["stock_code"]): item for item in stack.items()}


def test_dynamodb_holds_exactly_the_lines_the_batch_job_publishes(
    stored: dict[tuple[str, str], dict[str, Any]], batch_lines: Counter[LineTuple]
) -> None:
    lines: Counter[LineTuple] = Counter()
    for (invoice_no, stock_code), item in stored.items():
        lines.update(line_tuple(invoice_no, stock_code, line) for line in item["lines"])
    assert len(stored) == 9507
    assert sum(batch_lines.values()) == 9853
    assert lines == batch_lines


def test_every_invoice_and_stock_code_holds_all_its_lines_and_totals(
    stored: dict[tuple[str, str], dict[str, Any]],
    expected_by_key: dict[tuple[str, str], Counter[LineTuple]],
) -> None:
    problems = []
    assert set(stored) == set(expected_by_key)
    for key, item in stored.items():
        expected = expected_by_key[key]
        got = Counter(line_tuple(key[0], key[1], line) for line in item["lines"])
        totals = (sum(expected.values()), sum(line[3] * n for line, n in expected.items()))
        revenue = sum((line[5] * n for line, n in expected.items()), Decimal(0))
        if (
            got != expected
            or (item["line_count"], item["total_quantity"]) != totals
            or Decimal(item["total_revenue"]) != revenue
        ):
            problems.append((key, item))
    # 304 keys hold several lines; 196 lines repeat another line of the same key exactly.
    assert sum(1 for lines in expected_by_key.values() if sum(lines.values()) > 1) == 304
    assert problems == []


def test_the_query_api_answers_what_the_table_holds(
    streamed: tuple[Any, dict[str, Any]], stored: dict[tuple[str, str], dict[str, Any]]
) -> None:
    """The API on a sample: the keys with the most lines, and three invoices whole."""
    stack, _ = streamed
    busiest = sorted(stored, key=lambda key: (-stored[key]["line_count"], key))[:10]
    invoices = sorted({invoice_no for invoice_no, _ in stored})[:3]
    for key in busiest:
        assert stack.get(InvoiceNo=key[0], StockCode=key[1]) == (200, stored[key])
    for invoice_no in invoices:
        items = [item for key, item in sorted(stored.items()) if key[0] == invoice_no]
        status, answer = stack.get(InvoiceNo=invoice_no)
        assert (status, answer["items"]) == (200, items)
        assert answer["line_count"] == sum(item["line_count"] for item in items)


def test_curated_objects_match_the_batch_output_in_schema_and_rows(
    streamed: tuple[Any, dict[str, Any]], spark: SparkSession, batch_output: Path, tmp_path: Path
) -> None:
    stack, _ = streamed
    s3, bucket = stack.client("s3"), stack.resources.bucket
    prefix = stack.resources.process_settings().curated_prefix
    uris = list_curated_objects(s3, bucket, prefix)
    assert uris and all(uri.startswith(f"s3://{bucket}/{prefix}/invoice_year=") for uri in uris)
    for key in list_objects(s3, bucket, prefix):
        target = tmp_path / key
        target.parent.mkdir(parents=True, exist_ok=True)
        s3.download_file(bucket, key, str(target))
    streamed_df = spark.read.parquet(str(tmp_path / prefix))
    batch_df = spark.read.parquet(str(batch_output / "curated"))
    # Same names and types, timestamp_ntz and lineage included, and the same partition columns.
    assert sorted(streamed_df.dtypes) == sorted(batch_df.dtypes)
    assert dict(streamed_df.dtypes)["invoice_ts"] == "timestamp_ntz"
    # The same lines; each from its own source: the sample file, or the object that holds it.
    assert {row[0] for row in batch_df.select("source_file").distinct().collect()} == {SAMPLE_CSV.as_uri()}
    streamed_sources = {row[0] for row in streamed_df.select("source_file").distinct().collect()}
    assert streamed_sources == set(uris)
    lines_only = [c for c in batch_df.columns if c not in ("source_file", "run_id")]
    assert streamed_df.select(lines_only).exceptAll(batch_df.select(lines_only)).count() == 0
    assert batch_df.select(lines_only).exceptAll(streamed_df.select(lines_only)).count() == 0


def test_rejects_reach_the_dead_letter_prefix_with_their_reasons(
    streamed: tuple[Any, dict[str, Any]],
) -> None:
    stack, _ = streamed
    s3, bucket = stack.client("s3"), stack.resources.bucket
    reasons: Counter[str] = Counter()
    for key in list_objects(s3, bucket, stack.resources.process_settings().dead_letter_prefix):
        for text in s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode("utf-8").splitlines():
            letter = json.loads(text)
            reasons[f"{letter['outcome']}:{letter['reason']}"] += 1
    assert reasons == {
        "filtered:cancellation": 100,
        "filtered:non_positive_quantity": 30,
        "filtered:non_positive_price": 16,
    }
