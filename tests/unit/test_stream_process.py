"""The consumer's batch logic with stand-in clients: fail fast, what reaches S3, idempotence.

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
    """update_item with `attribute_not_exists(#line)`, as DynamoDB does it; can fail on demand."""

    def __init__(self, fail_on: set[str] | None = None) -> None:
        self.items: dict[tuple[str, str], dict[str, Any]] = {}
        self.fail_on = fail_on or set()

    def update_item(self, **request: Any) -> None:
        key = (request["Key"]["invoice_no"]["S"], request["Key"]["stock_code"]["S"])
        attribute = request["ExpressionAttributeNames"]["#line"]
        if key[1] in self.fail_on:
            raise ClientError({"Error": {"Code": "InternalServerError"}}, "UpdateItem")
        item = self.items.setdefault(key, {})
        if attribute in item:
            error = {"Error": {"Code": "ConditionalCheckFailedException"}, "Item": dict(item)}
            raise ClientError(error, "UpdateItem")
        item[attribute] = request["ExpressionAttributeValues"][":line"]


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
    assert len(table.items) == 3


def test_a_failure_stops_the_batch_there_and_everything_after_it_is_reported() -> None:
    table, bucket = Table(fail_on={"B"}), Bucket()
    response = process_batch(event(lines("A", "B", "C")), SETTINGS, dynamodb=table, s3=bucket)
    assert failed(response) == ["101", "102"]
    assert [row["stock_code"] for row in bucket.rows()] == ["A"]
    assert ("536365", "C") not in table.items  # left for the retry, which starts at B


def test_a_poison_record_first_fails_the_whole_batch_and_writes_nothing() -> None:
    table, bucket = Table(), Bucket()
    response = process_batch(event([b"{", *lines("A")]), SETTINGS, dynamodb=table, s3=bucket)
    assert failed(response) == ["100", "101"]
    assert (bucket.objects, table.items) == ({}, {})


def test_a_redelivered_record_is_written_to_s3_again_but_stored_once() -> None:
    table, bucket = Table(), Bucket()
    process_batch(event(lines("A", "B")), SETTINGS, dynamodb=table, s3=bucket)
    first_objects = dict(bucket.objects)
    process_batch(event(lines("A", "B")), SETTINGS, dynamodb=table, s3=bucket)
    assert bucket.objects == first_objects  # same keys, same content: overwritten
    assert [len(item) for item in table.items.values()] == [1, 1]


def test_the_same_line_id_in_another_record_is_a_producer_duplicate() -> None:
    table, bucket = Table(), Bucket()
    process_batch(event(lines("A")), SETTINGS, dynamodb=table, s3=bucket)
    process_batch(event(lines("A"), first_sequence=500), SETTINGS, dynamodb=table, s3=bucket)
    assert len(bucket.rows()) == 1
    assert [
        (letter["outcome"], letter["reason"], letter["sequence_number"]) for letter in bucket.letters()
    ] == [("duplicate", "duplicate_line_id", "500")]


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
