"""The consumer's batch logic with stand-in clients: what is reported (only retryable failures),
what reaches the dead letters, what reaches S3, idempotence, batched writes.

(The same behaviours against moto's server are in tests/integration/stream.)
"""

from __future__ import annotations

import base64
import dataclasses
import io
import json
from typing import Any

import pyarrow.parquet as pq
import pytest
from botocore.exceptions import ClientError

from retail_pipeline.stream.process import process_batch
from retail_pipeline.stream.records import encode_payload
from retail_pipeline.stream.settings import AwsSettings, ProcessSettings

SETTINGS = ProcessSettings(AwsSettings("us-east-1", None), "transactions", "lake", "curated", "dead_letter")
SHARD = "shardId-000000000001"


class Table:
    """BatchGetItem, BatchWriteItem and PutItem as DynamoDB answers them; can fail on demand:
    `fail_on` stock codes fail the request with `error` (a 500 by default), `refuse` stock codes
    with a ValidationException, and the first `unprocessed` put requests come back unprocessed."""

    def __init__(
        self,
        fail_on: set[str] | None = None,
        *,
        error: str = "InternalServerError",
        refuse: set[str] | None = None,
        unprocessed: int = 0,
    ) -> None:
        self.items: dict[tuple[str, str], dict[str, Any]] = {}
        self.fail_on = fail_on or set()
        self.error = error
        self.refuse = refuse or set()
        self.unprocessed = unprocessed
        self.calls: list[str] = []

    def _check(self, items: list[dict[str, Any]], operation: str) -> None:
        codes = {item["line_key"]["S"].split("\x1f")[0] for item in items}
        if codes & self.refuse:
            raise ClientError({"Error": {"Code": "ValidationException"}}, operation)
        if codes & self.fail_on:
            status = 500 if self.error == "InternalServerError" else 400
            response = {"Error": {"Code": self.error}, "ResponseMetadata": {"HTTPStatusCode": status}}
            raise ClientError(response, operation)  # type: ignore[arg-type]

    def batch_get_item(self, *, RequestItems: dict[str, Any]) -> dict[str, Any]:
        ((table, request),) = RequestItems.items()
        self.calls.append("BatchGetItem")
        keys = [(key["invoice_no"]["S"], key["line_key"]["S"]) for key in request["Keys"]]
        found = [self.items[key] for key in keys if key in self.items]
        return {"Responses": {table: found}, "UnprocessedKeys": {}}

    def batch_write_item(self, *, RequestItems: dict[str, Any]) -> dict[str, Any]:
        ((table, requests),) = RequestItems.items()
        self.calls.append("BatchWriteItem")
        assert len(requests) <= 25
        self._check([request["PutRequest"]["Item"] for request in requests], "BatchWriteItem")
        left, self.unprocessed = requests[: self.unprocessed], max(0, self.unprocessed - len(requests))
        for request in requests[len(left) :]:
            item = request["PutRequest"]["Item"]
            self.items[(item["invoice_no"]["S"], item["line_key"]["S"])] = item
        return {"UnprocessedItems": {table: left} if left else {}}

    def put_item(self, *, TableName: str, Item: dict[str, Any]) -> None:
        self.calls.append("PutItem")
        self._check([Item], "PutItem")
        self.items[(Item["invoice_no"]["S"], Item["line_key"]["S"])] = Item

    def stock_codes(self) -> list[str]:
        return sorted(item["stock_code"]["S"] for item in self.items.values())


class Bucket:
    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}

    def put_object(self, *, Bucket: str, Key: str, Body: bytes) -> None:
        self.objects[Key] = Body

    def rows(self) -> list[dict[str, Any]]:
        found = []
        for key, body in sorted(self.objects.items()):
            if key.endswith(".parquet"):
                found.extend(pq.read_table(io.BytesIO(body)).to_pylist())
        return found

    def letters(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        for key, body in sorted(self.objects.items()):
            if key.endswith(".jsonl"):
                found.extend(json.loads(line) for line in body.decode().splitlines())
        return found


def record(stock_code: str, *, invoice_no: str = "536365", date: str = "12/1/2010 8:26") -> dict[str, str]:
    return {
        "InvoiceNo": invoice_no,
        "StockCode": stock_code,
        "Description": "X",
        "Quantity": "2",
        "InvoiceDate": date,
        "UnitPrice": "1.25",
        "CustomerID": "17850.0",
        "Country": "United Kingdom",
    }


def event(payloads: list[bytes], *, first_sequence: int = 100) -> dict[str, Any]:
    return {
        "Records": [
            {
                "eventID": f"{SHARD}:{first_sequence + n}",
                "kinesis": {
                    "sequenceNumber": str(first_sequence + n),
                    "partitionKey": "536365",
                    "approximateArrivalTimestamp": 1291192000.0,
                    "data": base64.b64encode(data).decode(),
                },
            }
            for n, data in enumerate(payloads)
        ]
    }


def lines(*stock_codes: str) -> list[bytes]:
    return [encode_payload(f"req:{code}", record(code)) for code in stock_codes]


def failed(response: Any) -> list[str]:
    return [failure["itemIdentifier"] for failure in response["batchItemFailures"]]


def test_a_batch_is_stored_and_written_once_per_month() -> None:
    table, bucket = Table(), Bucket()
    payloads = [*lines("A", "B"), encode_payload("req:J", record("J", date="2011-01-04 10:00:00"))]
    assert process_batch(event(payloads), SETTINGS, dynamodb=table, s3=bucket) == {"batchItemFailures": []}
    assert sorted(bucket.objects) == [
        f"curated/invoice_year=2010/invoice_month=12/batch-{SHARD}-100.parquet",
        # keyed by its own first record, so a bisected retry overwrites it too
        f"curated/invoice_year=2011/invoice_month=1/batch-{SHARD}-102.parquet",
    ]
    assert [row["customer_id"] for row in bucket.rows()] == ["17850", "17850", "17850"]
    assert table.stock_codes() == ["A", "B", "J"]
    assert table.calls == ["BatchGetItem", "BatchWriteItem"]  # two requests for the whole batch


def test_a_retryable_failure_is_reported_from_the_first_line_it_left_unstored() -> None:
    codes = [f"S{n:02d}" for n in range(30)]  # two BatchWriteItem requests: 25 lines, then 5
    table, bucket = Table(fail_on={"S27"}), Bucket()
    response = process_batch(event(lines(*codes)), SETTINGS, dynamodb=table, s3=bucket)
    assert failed(response) == [str(100 + n) for n in range(25, 30)]
    assert [row["stock_code"] for row in bucket.rows()] == codes[:25]
    assert table.stock_codes() == codes[:25]  # the rest is left for the retry, which starts at S25


@pytest.mark.parametrize("error", ["ProvisionedThroughputExceededException", "ThrottlingException"])
def test_throttling_is_reported_for_the_retry(error: str) -> None:
    table, bucket = Table(fail_on={"B"}, error=error), Bucket()
    response = process_batch(event(lines("A", "B")), SETTINGS, dynamodb=table, s3=bucket)
    assert failed(response) == ["100", "101"]
    assert bucket.objects == {}


def test_unprocessed_items_are_sent_again() -> None:
    table, bucket = Table(unprocessed=3), Bucket()
    response = process_batch(event(lines("A", "B", "C", "D")), SETTINGS, dynamodb=table, s3=bucket)
    assert failed(response) == []
    assert table.stock_codes() == ["A", "B", "C", "D"]
    assert table.calls == ["BatchGetItem", "BatchWriteItem", "BatchWriteItem"]


def test_a_line_the_table_refuses_goes_to_the_dead_letters_and_is_not_reported() -> None:
    table, bucket = Table(refuse={"B"}), Bucket()
    response = process_batch(event(lines("A", "B", "C")), SETTINGS, dynamodb=table, s3=bucket)
    assert failed(response) == []
    assert table.stock_codes() == ["A", "C"]
    assert [(letter["outcome"], letter["reason"]) for letter in bucket.letters()] == [
        ("quarantined", "store_refused")
    ]


def test_an_error_that_no_retry_of_the_record_can_mend_fails_the_invocation() -> None:
    table, bucket = Table(fail_on={"A"}, error="AccessDeniedException"), Bucket()
    with pytest.raises(ClientError):
        process_batch(event(lines("A")), SETTINGS, dynamodb=table, s3=bucket)


@pytest.mark.parametrize("poison", [b"{", b"[" * 100_000, b'{"line_id": "x", "record": {"Quantity": 6}}'])
def test_a_poison_record_goes_to_the_dead_letters_and_the_shard_moves_on(poison: bytes) -> None:
    table, bucket = Table(), Bucket()
    response = process_batch(event([*lines("A"), poison, *lines("B")]), SETTINGS, dynamodb=table, s3=bucket)
    assert failed(response) == []
    assert table.stock_codes() == ["A", "B"]
    (letter,) = bucket.letters()
    assert (letter["outcome"], letter["reason"], letter["record"]) == ("quarantined", "invalid_payload", None)
    assert base64.b64decode(letter["data"]) == poison


def test_a_redelivered_record_is_written_to_s3_again_but_stored_once() -> None:
    table, bucket = Table(), Bucket()
    process_batch(event(lines("A", "B")), SETTINGS, dynamodb=table, s3=bucket)
    first_objects = dict(bucket.objects)
    process_batch(event(lines("A", "B")), SETTINGS, dynamodb=table, s3=bucket)
    assert bucket.objects == first_objects  # same keys, same content: overwritten
    assert table.stock_codes() == ["A", "B"]


def test_the_same_line_id_in_another_record_is_a_producer_duplicate() -> None:
    table, bucket = Table(), Bucket()
    process_batch(event(lines("A")), SETTINGS, dynamodb=table, s3=bucket)
    process_batch(event(lines("A", "A"), first_sequence=500), SETTINGS, dynamodb=table, s3=bucket)
    assert len(bucket.rows()) == 1
    assert [
        (letter["outcome"], letter["reason"], letter["sequence_number"]) for letter in bucket.letters()
    ] == [("duplicate", "duplicate_line_id", "500"), ("duplicate", "duplicate_line_id", "501")]


def test_a_line_id_twice_in_one_batch_is_stored_once() -> None:
    table, bucket = Table(), Bucket()
    process_batch(event(lines("A", "A")), SETTINGS, dynamodb=table, s3=bucket)
    assert (table.stock_codes(), len(bucket.rows())) == (["A"], 1)
    assert [letter["sequence_number"] for letter in bucket.letters()] == ["101"]


def test_a_record_from_another_producer_that_the_stores_cannot_hold_is_quarantined() -> None:
    table, bucket = Table(), Bucket()
    too_long = encode_payload("other:1", {**record("A"), "StockCode": "S" * 65})
    process_batch(event([too_long]), SETTINGS, dynamodb=table, s3=bucket)
    assert table.items == {}
    assert [(letter["outcome"], letter["reason"]) for letter in bucket.letters()] == [
        ("quarantined", "invalid_stock_code")
    ]


@pytest.mark.parametrize(
    ("changes", "outcome", "reason"),
    [
        ({"InvoiceNo": "C536379"}, "filtered", "cancellation"),
        ({"Quantity": "x"}, "quarantined", "invalid_quantity"),
    ],
)
def test_rejects_go_to_the_dead_letter_prefix_with_their_reason(
    changes: dict[str, str], outcome: str, reason: str
) -> None:
    table, bucket = Table(), Bucket()
    payload = encode_payload("req:1", {**record("A"), **changes})
    process_batch(event([payload]), SETTINGS, dynamodb=table, s3=bucket)
    (key,) = bucket.objects
    assert key == f"dead_letter/arrival_date=2010-12-01/batch-{SHARD}-100.jsonl"
    (letter,) = bucket.letters()
    assert (letter["outcome"], letter["reason"], letter["record"]["Quantity"]) == (
        outcome,
        reason,
        changes.get("Quantity", "2"),
    )
    assert table.items == {}


def test_rejects_go_to_their_own_bucket_when_one_is_set() -> None:
    class Buckets:
        def __init__(self) -> None:
            self.keys: list[tuple[str, str]] = []

        def put_object(self, *, Bucket: str, Key: str, Body: bytes) -> None:
            self.keys.append((Bucket, Key.partition("/")[0]))

    buckets = Buckets()
    settings = dataclasses.replace(SETTINGS, dead_letter_bucket="quarantine")
    published = encode_payload("req:1", record("A"))
    cancelled = encode_payload("req:2", {**record("B"), "InvoiceNo": "C536379"})
    process_batch(event([published, cancelled]), settings, dynamodb=Table(), s3=buckets)
    assert sorted(buckets.keys) == [("lake", "curated"), ("quarantine", "dead_letter")]


def test_a_dead_letter_with_a_lone_surrogate_is_still_json() -> None:
    table, bucket = Table(), Bucket()
    payload = b'{"line_id": "other:1", "record": {"InvoiceNo": "536365", "Description": "\\ud800"}}'
    process_batch(event([payload]), SETTINGS, dynamodb=table, s3=bucket)
    (letter,) = bucket.letters()
    assert (letter["reason"], letter["record"]["Description"]) == ("missing_stock_code", "\ud800")
