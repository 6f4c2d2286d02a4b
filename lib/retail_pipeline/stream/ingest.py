"""`POST /transactions`: check each record with the shared rules, put the valid ones on Kinesis.

Answers 202 `{"accepted", "rejected", "reasons": {reason: count}, "rejections": [...]}`, where
`rejections` lists the first `limits.REJECTIONS_LISTED` rejected records (CSV line number or
JSON index, and reason): the answer stays small whatever the body holds. Other answers: 400
for a body that cannot be read, 413 above INGEST_MAX_BODY_BYTES or `limits.REQUEST_MAX_RECORDS`
records, 415 for a media type other than JSON or CSV, 401 without a valid access token, and
503 if Kinesis does not take every record after retries (then the client should retry).

A record is accepted when `records.check` passes it: the field checks, and the limits of the
table and the query API (`limits.line_problem`), so nothing is taken that cannot be stored.

Each accepted record is put with PartitionKey = InvoiceNo (an invoice's lines stay in order on
one shard) and a line id `<key>:<position>`. The key is the request's Idempotency-Key header
if the client sent one, else a digest of the body's bytes: a client that sends a request again
(with the same key, or the same body) cannot store a line twice, even after a partial failure.
Filtered lines (cancellations, ...) are well formed and go on the stream too: the consumer
counts them by reason.
"""

from __future__ import annotations

import hashlib
import os
import re
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEvent
from botocore.exceptions import BotoCoreError, ClientError

from retail_pipeline import limits, metrics
from retail_pipeline.stream import api
from retail_pipeline.stream.body import (
    BodyError,
    BodyRecord,
    TooManyRecordsError,
    UnsupportedMediaTypeError,
    read_body,
)
from retail_pipeline.stream.records import check, encode_payload
from retail_pipeline.stream.settings import IngestSettings

logger = Logger(service="retail-stream")

IDEMPOTENCY_KEY = re.compile(r"[A-Za-z0-9_.:-]{1,128}")
# 128 bits of SHA-256: a body's lines collide with another body's only by design.
BODY_DIGEST_HEX_CHARS = 32
PUT_ATTEMPTS = 4


class RequestError(ValueError):
    """The request cannot be taken; `status` and the message are the answer."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class StreamUnavailableError(RuntimeError):
    """Kinesis did not take every record after retries."""


@dataclass(frozen=True)
class Entry:
    payload: bytes
    partition_key: str

    @property
    def size(self) -> int:
        return len(self.payload) + len(self.partition_key.encode("utf-8"))


@dataclass
class Rejections:
    """Every rejection counted by reason; only the first `listed` kept as examples."""

    position_name: str
    listed: int = limits.REJECTIONS_LISTED
    reasons: Counter[str] = field(default_factory=Counter)
    examples: list[dict[str, Any]] = field(default_factory=list)

    def add(self, position: int, reason: str) -> None:
        self.reasons[reason] += 1
        if len(self.examples) < self.listed:
            self.examples.append({self.position_name: position, "reason": reason})

    @property
    def count(self) -> int:
        return sum(self.reasons.values())


@dataclass(frozen=True)
class LineKey:
    """What line ids start with, and whether the client chose it (the 503 says how to retry)."""

    value: str
    from_client: bool


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    settings = IngestSettings.from_env(os.environ)
    return handle(event, settings, kinesis=api.aws_client("kinesis", settings.aws))


def handle(event: dict[str, Any], settings: IngestSettings, *, kinesis: Any) -> dict[str, Any]:
    request = APIGatewayProxyEvent(event)
    if api.authorize(request, settings.auth) is None:
        return api.unauthorized_response()
    try:
        kind, records, line_key = read_request(request, settings)
    except RequestError as error:
        return api.error_response(error.status, str(error))
    entries, rejections = check_records(
        records, line_key.value, position_name="line" if kind == "csv" else "index"
    )
    try:
        put_entries(kinesis, settings.stream_name, entries)
    except (StreamUnavailableError, BotoCoreError, ClientError):
        logger.exception("Kinesis did not take the records", extra={"records": len(entries)})
        return api.error_response(503, unavailable_message(line_key))
    logger.info(
        "Ingested",
        extra={"accepted": len(entries), "rejected": rejections.count, "reasons": rejections.reasons},
    )
    metrics.emit_stream_metrics(accepted=len(entries), rejected=dict(rejections.reasons))
    body = {
        "accepted": len(entries),
        "rejected": rejections.count,
        "reasons": dict(rejections.reasons),
        "rejections": rejections.examples,
    }
    return api.json_response(202, body)


def unavailable_message(line_key: LineKey) -> str:
    again = "with the same Idempotency-Key" if line_key.from_client else "with the same body"
    return f"the stream is unavailable; send the request again {again}: no line is stored twice"


def read_request(
    request: APIGatewayProxyEvent, settings: IngestSettings
) -> tuple[str, list[BodyRecord], LineKey]:
    """The body's kind, its records and the key of its line ids; RequestError if unusable."""
    if request.http_method != "POST":
        raise RequestError(405, "use POST")
    try:
        raw = api.body_bytes(request)
        if len(raw) > settings.max_body_bytes:
            raise RequestError(413, f"the body is larger than {settings.max_body_bytes} bytes")
        kind, records = read_body(raw, request.headers.get("content-type"))
        return kind, records, line_key_of(request, raw)
    except UnsupportedMediaTypeError as error:
        raise RequestError(415, "send application/json or text/csv") from error
    except TooManyRecordsError as error:
        raise RequestError(413, str(error)) from error
    except BodyError as error:
        raise RequestError(400, str(error)) from error


def line_key_of(request: APIGatewayProxyEvent, raw: bytes) -> LineKey:
    idempotency_key = request.headers.get("idempotency-key")
    if idempotency_key is not None:
        if not IDEMPOTENCY_KEY.fullmatch(idempotency_key):
            raise BodyError("Idempotency-Key must be 1-128 letters, digits or _ . : -")
        return LineKey(f"key-{idempotency_key}", from_client=True)
    digest = hashlib.sha256(raw).hexdigest()[:BODY_DIGEST_HEX_CHARS]
    return LineKey(f"body-{digest}", from_client=False)


def check_records(
    records: Sequence[BodyRecord], line_key: str, *, position_name: str
) -> tuple[list[Entry], Rejections]:
    """The records to put on the stream, and the rejected ones counted by reason."""
    entries: list[Entry] = []
    rejections = Rejections(position_name)
    for item in records:
        reason = item.reason
        if item.record is not None:
            checked = check(item.record)
            if isinstance(checked, str):
                reason = checked
            else:
                payload = encode_payload(f"{line_key}:{item.position}", item.record)
                entry = Entry(payload, checked.invoice_no)
                # limits.LINE_MAX_BYTES keeps every checked line under this; kept as a guard.
                if entry.size <= limits.KINESIS_RECORD_MAX_BYTES:
                    entries.append(entry)
                    continue
                reason = limits.RECORD_TOO_LARGE
        rejections.add(item.position, reason or "")
    return entries, rejections


def _chunks(entries: Sequence[Entry]) -> Iterator[list[Entry]]:
    """PutRecords requests within Kinesis' limits (500 records, 5 MiB)."""
    chunk: list[Entry] = []
    size = 0
    for entry in entries:
        if chunk and (
            len(chunk) == limits.PUT_RECORDS_MAX_RECORDS or size + entry.size > limits.PUT_RECORDS_MAX_BYTES
        ):
            yield chunk
            chunk, size = [], 0
        chunk.append(entry)
        size += entry.size
    if chunk:
        yield chunk


def put_entries(kinesis: Any, stream_name: str, entries: Sequence[Entry]) -> None:
    """Put every entry; only the entries Kinesis refused (throttling) are sent again."""
    for chunk in _chunks(entries):
        pending = chunk
        for attempt in range(PUT_ATTEMPTS):
            response = kinesis.put_records(
                StreamName=stream_name,
                Records=[{"Data": entry.payload, "PartitionKey": entry.partition_key} for entry in pending],
            )
            pending = [
                entry
                for entry, result in zip(pending, response["Records"], strict=True)
                if "ErrorCode" in result
            ]
            if not pending:
                break
            time.sleep(0.05 * 2**attempt)
        if pending:
            raise StreamUnavailableError(f"{len(pending)} records refused after {PUT_ATTEMPTS} attempts")
