"""The consumer against moto: records that can never succeed, throttling and 5xx (through a fault
proxy), unprocessed items, redelivered batches, repeated lines, S3 keys."""

from __future__ import annotations

import dataclasses
import io
import json
from typing import Any

import pyarrow.parquet as pq
import pytest

from retail_pipeline.stream import records, store
from retail_pipeline.stream.objects import CURATED_SCHEMA, list_objects
from retail_pipeline.stream.records import encode_payload
from retail_pipeline_dev.stream_local.poller import StreamPoller, kinesis_event, s3_on_failure
from tests.integration.stream.faults import BATCH_GET_ITEM, BATCH_WRITE_ITEM

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


def consumer_log(stack: Any, **options: Any) -> tuple[StreamPoller, list[Any]]:
    """A poller whose consumer keeps each response, with an on-failure destination in S3."""
    responses: list[Any] = []

    def consumer(event: dict[str, Any], context: Any) -> Any:
        responses.append(stack.process(event, context))
        return responses[-1]

    poller = StreamPoller(
        stack.client("kinesis"),
        stream_name=stack.resources.stream_name,
        invoke=consumer,
        on_failure=s3_on_failure(stack.client("s3"), stack.resources.bucket, "on_failure"),
        **{"batch_size": 10, "max_retries": 1, **options},
    )
    return poller, responses


@pytest.mark.parametrize(
    "poison",
    [
        b"\x00 not a payload",
        b"[" * 100_000,  # nested too deeply for the JSON decoder
        b'{"line_id": "x", "record": {"Quantity": 6}}',
        encode_payload("other:1", record("536365", "S" * 65)),  # a key the query could never find
        # Another producer's JSON escape of half a surrogate pair.
        json.dumps({"line_id": "other:2", "record": record("536365", "S9", Description="\ud800")}).encode(),
    ],
)
def test_a_record_that_can_never_succeed_goes_to_the_dead_letters_and_the_shard_moves_on(
    make_stack: Any, poison: bytes
) -> None:
    stack = make_stack()
    good = [encode_payload(f"req-1:{n}", record("536365", f"S{n}")) for n in range(4)]
    sequence = put(stack, [good[0], good[1], poison, good[2], good[3]])
    poller, responses = consumer_log(stack)
    poller.drain()

    # Nothing is reported, so nothing is retried: one invocation, and the shard moved on.
    assert responses == [{"batchItemFailures": []}]
    assert poller.shards[0].checkpoint == sequence[-1]
    assert list_objects(stack.client("s3"), stack.resources.bucket, "on_failure") == []
    stored = {(item["stock_code"], item["line_count"]) for item in stack.items()}
    assert stored == {("S0", 1), ("S1", 1), ("S2", 1), ("S3", 1)}
    assert sorted(row["stock_code"] for row in curated_rows(stack)) == ["S0", "S1", "S2", "S3"]
    (letter,) = dead_letters(stack)
    assert (letter["sequence_number"], letter["outcome"]) == (sequence[2], "quarantined")
    assert letter["reason"] in ("invalid_payload", "invalid_stock_code", "invalid_text")


@pytest.mark.parametrize(
    ("operation", "status", "code"),
    [
        (BATCH_WRITE_ITEM, 400, "ProvisionedThroughputExceededException"),
        (BATCH_WRITE_ITEM, 400, "ThrottlingException"),
        (BATCH_WRITE_ITEM, 500, "InternalServerError"),
        (BATCH_GET_ITEM, 503, "ServiceUnavailable"),
    ],
)
def test_throttling_and_5xx_are_reported_and_the_retry_stores_each_line_once(
    make_stack: Any, operation: str, status: int, code: str
) -> None:
    stack = make_stack(faults=True)
    sequence = put(stack, [encode_payload(f"req-1:{n}", record("536365", f"S{n:02d}")) for n in range(30)])
    # Both attempts of the client; a BatchWriteItem's after the first 25 lines were written.
    after = 0 if operation == BATCH_GET_ITEM else 1
    stack.faults.fail(operation, status=status, code=code, times=2, after=after)
    poller, responses = consumer_log(stack, batch_size=100, max_retries=3)
    poller.drain()

    first_failed = [failure["itemIdentifier"] for failure in responses[0]["batchItemFailures"]]
    assert first_failed == (sequence if operation == BATCH_GET_ITEM else sequence[25:])
    assert responses[-1] == {"batchItemFailures": []}
    assert len(responses) == 2  # the retry started at the first failed record and finished
    assert [(item["stock_code"], item["line_count"]) for item in stack.items()] == [
        (f"S{n:02d}", 1) for n in range(30)
    ]
    assert sorted(row["stock_code"] for row in curated_rows(stack)) == [f"S{n:02d}" for n in range(30)]
    assert dead_letters(stack) == []


def test_unprocessed_items_are_written_again_within_the_invocation(make_stack: Any) -> None:
    stack = make_stack(faults=True)
    put(stack, [encode_payload(f"req-1:{n}", record("536365", f"S{n:02d}")) for n in range(30)])
    stack.faults.take_half(BATCH_WRITE_ITEM, times=3)  # half of each of the first three requests
    poller, responses = consumer_log(stack, batch_size=100)
    poller.drain()
    assert responses == [{"batchItemFailures": []}]
    assert sum(item["line_count"] for item in stack.items()) == 30
    assert stack.faults.seen[BATCH_WRITE_ITEM] > 2


def test_a_line_the_table_refuses_is_a_dead_letter_and_the_others_are_stored(make_stack: Any) -> None:
    """DynamoDB (here moto) refusing a key longer than it allows: the limits keep ingest and the
    consumer from sending one, so the line is built by hand to reach the table."""
    stack = make_stack()
    good = records.classify(record("536365", "S1")).line
    assert good is not None
    too_long = dataclasses.replace(good, invoice_no="5" * 2100)
    lines = [
        store.LineToStore(0, good, "req-1:0", "shardId-000000000000:1"),
        store.LineToStore(1, too_long, "req-1:1", "shardId-000000000000:2"),
        store.LineToStore(2, good, "req-1:2", "shardId-000000000000:3"),
    ]
    written = store.write_lines(stack.client("dynamodb"), stack.resources.table_name, lines)
    assert (written.failed_at, written.results) == (None, {0: "stored", 1: "refused", 2: "stored"})
    assert "2048" in written.refusals[1]
    assert [item["line_count"] for item in stack.items()] == [2]


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


def test_a_line_a_client_sends_again_with_its_key_or_its_body_is_stored_once(make_stack: Any) -> None:
    stack = make_stack()
    body = f"{HEADER}\r\n536365,85123A,HOLDER,6,12/1/2010 8:26,2.55,17850,United Kingdom\r\n"
    assert stack.post(body, Idempotency_Key="order-42")[0] == 202
    assert stack.post(body, Idempotency_Key="order-42")[0] == 202  # the client's retry
    assert stack.post(body)[0] == 202  # no key: the body's digest names its lines
    assert stack.post(body)[0] == 202  # ... so the same body sent again is the same lines
    stack.poller.drain()

    (item,) = stack.items()
    assert [line["line_id"].split(":")[0][:5] for line in item["lines"]] == ["key-o", "body-"]
    assert item["line_count"] == 2
    assert len(curated_rows(stack)) == 2
    assert [(letter["outcome"], letter["reason"]) for letter in dead_letters(stack)] == [
        ("duplicate", "duplicate_line_id")
    ] * 2
