"""The consumer against moto: poison records, redelivered batches, repeated lines, S3 keys."""

from __future__ import annotations

import io
import json
from typing import Any

import pyarrow.parquet as pq
import pytest

from retail_pipeline.stream.local.poller import StreamPoller, kinesis_event, s3_on_failure
from retail_pipeline.stream.objects import CURATED_SCHEMA, list_objects
from retail_pipeline.stream.records import encode_payload

pytestmark = pytest.mark.integration

HEADER = "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country"


def record(
    invoice_no: str, stock_code: str = "85123A", quantity: str = "6", **changes: str
) -> dict[str, str]:
    return {
        "InvoiceNo": invoice_no,
        "StockCode": stock_code,
        "Description": "WHITE HANGING HEART T-LIGHT HOLDER",
        "Quantity": quantity,
        "InvoiceDate": "12/1/2010 8:26",
        "UnitPrice": "2.55",
        "CustomerID": "17850",
        "Country": "United Kingdom",
        **changes,
    }


def put(stack: Any, payloads: list[bytes]) -> list[str]:
    """Put records one by one (in this order on the one shard); their sequence numbers."""
    kinesis = stack.client("kinesis")
    return [
        kinesis.put_record(StreamName=stack.resources.stream_name, Data=data, PartitionKey="536365")[
            "SequenceNumber"
        ]
        for data in payloads
    ]


def curated_rows(stack: Any) -> list[dict[str, Any]]:
    """Every curated row, each object checked: the curated schema, and lines whose source is the
    object itself and whose run is the batch that wrote it (named as the object's keys are)."""
    s3, bucket = stack.client("s3"), stack.resources.bucket
    rows: list[dict[str, Any]] = []
    for key in list_objects(s3, bucket, stack.resources.process_settings().curated_prefix):
        table = pq.read_table(io.BytesIO(s3.get_object(Bucket=bucket, Key=key)["Body"].read()))
        assert table.schema.equals(CURATED_SCHEMA, check_metadata=False)
        assert set(table.column("source_file").to_pylist()) == {f"s3://{bucket}/{key}"}
        (run_id,) = set(table.column("run_id").to_pylist())
        assert run_id.startswith("batch-shardId-000000000000-")
        rows.extend(table.to_pylist())
    return rows


def dead_letters(stack: Any) -> list[dict[str, Any]]:
    s3, bucket = stack.client("s3"), stack.resources.bucket
    letters: list[dict[str, Any]] = []
    for key in list_objects(s3, bucket, stack.resources.process_settings().dead_letter_prefix):
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode("utf-8")
        letters.extend(json.loads(line) for line in body.splitlines())
    return letters


def test_a_poison_record_is_reported_the_others_are_stored_and_the_shard_moves_on(make_stack: Any) -> None:
    stack = make_stack(batch_size=10)
    good = [encode_payload(f"req-1:{n}", record("536365", f"S{n}")) for n in range(4)]
    sequence = put(stack, [good[0], good[1], b"\x00 not a payload", good[2], good[3]])
    responses: list[Any] = []

    def consumer(event: dict[str, Any], context: Any) -> Any:
        responses.append(stack.process(event, context))
        return responses[-1]

    poller = StreamPoller(
        stack.client("kinesis"),
        stream_name=stack.resources.stream_name,
        invoke=consumer,
        batch_size=10,
        max_retries=1,
        on_failure=s3_on_failure(stack.client("s3"), stack.resources.bucket, "on_failure"),
    )
    poller.drain()

    # The poison and every later record of its batch are reported: Lambda resumes at the poison.
    failed = [failure["itemIdentifier"] for failure in responses[0]["batchItemFailures"]]
    assert failed == sequence[2:]
    # Retried once more, then sent to the on-failure destination; then the shard moved on.
    assert responses[1]["batchItemFailures"][0]["itemIdentifier"] == sequence[2]
    assert responses[2] == {"batchItemFailures": []}
    assert poller.shards[0].checkpoint == sequence[-1]
    on_failure = list_objects(stack.client("s3"), stack.resources.bucket, "on_failure")
    assert on_failure == [f"on_failure/shardId-000000000000/{sequence[2]}.json"]
    stored = {(item["stock_code"], item["line_count"]) for item in stack.items()}
    assert stored == {("S0", 1), ("S1", 1), ("S2", 1), ("S3", 1)}
    # The S3 objects hold each line once: those before the poison, then those after it.
    assert sorted(row["stock_code"] for row in curated_rows(stack)) == ["S0", "S1", "S2", "S3"]
    keys = list_objects(stack.client("s3"), stack.resources.bucket, "streamed/curated")
    assert keys == sorted(
        f"streamed/curated/invoice_year=2010/invoice_month=12/batch-shardId-000000000000-{sequence[n]}.parquet"
        for n in (0, 3)
    )


def test_the_same_batch_delivered_twice_stores_nothing_twice(make_stack: Any) -> None:
    stack = make_stack()
    repeated = record("536365", "85123A")
    payloads = [
        encode_payload("req-1:2", repeated),
        # The same line again in the same invoice: a genuine repeat, kept.
        encode_payload("req-1:3", repeated),
        encode_payload("req-1:4", record("536365", "71053", quantity="3")),
        encode_payload("req-1:5", record("C536379", "D", quantity="-1")),
    ]
    put(stack, payloads)
    kinesis = stack.client("kinesis")
    shard_iterator = kinesis.get_shard_iterator(
        StreamName=stack.resources.stream_name,
        ShardId="shardId-000000000000",
        ShardIteratorType="TRIM_HORIZON",
    )["ShardIterator"]
    batch = kinesis.get_records(ShardIterator=shard_iterator, Limit=10)["Records"]
    description = kinesis.describe_stream_summary(StreamName=stack.resources.stream_name)
    event = kinesis_event(
        batch,
        shard_id="shardId-000000000000",
        stream_arn=description["StreamDescriptionSummary"]["StreamARN"],
        region="us-east-1",
    )

    assert stack.process(event, None) == {"batchItemFailures": []}
    assert stack.process(event, None) == {"batchItemFailures": []}

    items = {item["stock_code"]: item for item in stack.items()}
    assert {code: item["line_count"] for code, item in items.items()} == {"85123A": 2, "71053": 1}
    assert (items["85123A"]["total_quantity"], items["85123A"]["total_revenue"]) == (12, "30.6000")
    assert sorted(row["stock_code"] for row in curated_rows(stack)) == ["71053", "85123A", "85123A"]
    assert [(letter["line_id"], letter["reason"]) for letter in dead_letters(stack)] == [
        ("req-1:5", "cancellation")
    ]


def test_a_line_a_client_sends_again_with_its_idempotency_key_is_stored_once(make_stack: Any) -> None:
    stack = make_stack()
    body = f"{HEADER}\r\n536365,85123A,HOLDER,6,12/1/2010 8:26,2.55,17850,United Kingdom\r\n"
    assert stack.post(body, Idempotency_Key="order-42")[0] == 202
    assert stack.post(body, Idempotency_Key="order-42")[0] == 202  # the client's retry
    assert stack.post(body)[0] == 202  # no key: a new line that happens to be the same
    stack.poller.drain()

    (item,) = stack.items()
    assert item["lines"][0]["line_id"] == "key-order-42:2"
    assert item["line_count"] == 2
    assert len(curated_rows(stack)) == 2
    assert [(letter["outcome"], letter["reason"]) for letter in dead_letters(stack)] == [
        ("duplicate", "duplicate_line_id")
    ]
