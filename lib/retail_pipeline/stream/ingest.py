"""`POST /transactions`: check each record with the shared rules, put the valid ones on Kinesis.

Answers 202 with the accepted and rejected counts and a reason per rejected record (its CSV line
number or JSON index), 400 for a body that cannot be read, 413 above INGEST_MAX_BODY_BYTES,
415 for a media type other than JSON or CSV, 401 without a valid access token, and 503 if
Kinesis does not take every record after retries (then the client should retry).

Each accepted record is put with PartitionKey = InvoiceNo (an invoice's lines stay in order on
one shard) and a line id `<key>:<position>`, where the key is the request's Idempotency-Key
header if the client sent one, else API Gateway's request id: a client that retries a POST
with the same Idempotency-Key cannot store a line twice. Filtered lines (cancellations, ...)
are well formed and go on the stream too: the consumer counts them by reason.
"""

from __future__ import annotations

import os
import re
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEvent
from botocore.exceptions import BotoCoreError, ClientError

from retail_pipeline import rules
from retail_pipeline.stream import api
from retail_pipeline.stream.body import BodyError, BodyRecord, UnsupportedMediaTypeError, parse_body
from retail_pipeline.stream.records import encode_payload
from retail_pipeline.stream.settings import IngestSettings

logger = Logger(service="retail-stream")

IDEMPOTENCY_KEY = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")
RECORD_TOO_LARGE = "record_too_large"  # over Kinesis' 1 MiB per record
RECORD_MAX_BYTES = 1024 * 1024
PARTITION_KEY_MAX_CHARS = 256
PUT_MAX_RECORDS = 500
PUT_MAX_BYTES = 5 * 1024 * 1024
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
    entries, rejections = check_records(records, line_key, position_name="line" if kind == "csv" else "index")
    try:
        put_entries(kinesis, settings.stream_name, entries)
    except (StreamUnavailableError, BotoCoreError, ClientError):
        logger.exception("Kinesis did not take the records", extra={"records": len(entries)})
        return api.error_response(503, "the stream is unavailable; retry with the same Idempotency-Key")
    reasons = Counter(rejection["reason"] for rejection in rejections)
    logger.info("Ingested", extra={"accepted": len(entries), "rejected": len(rejections), "reasons": reasons})
    body = {"accepted": len(entries), "rejected": len(rejections), "rejections": rejections}
    return api.json_response(202, body)


def read_request(
    request: APIGatewayProxyEvent, settings: IngestSettings
) -> tuple[str, list[BodyRecord], str]:
    """The body's kind, its records and the key of its line ids; RequestError if unusable."""
    if request.http_method != "POST":
        raise RequestError(405, "use POST")
    try:
        raw = api.body_bytes(request)
        if len(raw) > settings.max_body_bytes:
            raise RequestError(413, f"the body is larger than {settings.max_body_bytes} bytes")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as error:
            raise BodyError("the body is not UTF-8 text") from error
        kind, records = parse_body(text, request.headers.get("content-type"))
        return kind, records, _line_key(request)
    except UnsupportedMediaTypeError as error:
        raise RequestError(415, "send application/json or text/csv") from error
    except BodyError as error:
        raise RequestError(400, str(error)) from error


def _line_key(request: APIGatewayProxyEvent) -> str:
    idempotency_key = request.headers.get("idempotency-key")
    if idempotency_key is not None:
        if not IDEMPOTENCY_KEY.match(idempotency_key):
            raise BodyError("Idempotency-Key must be 1-128 letters, digits or _ . : -")
        return f"key-{idempotency_key}"
    return f"req-{api.request_id(request) or uuid.uuid4()}"


def check_records(
    records: Sequence[BodyRecord], line_key: str, *, position_name: str
) -> tuple[list[Entry], list[dict[str, Any]]]:
    """The records to put on the stream, and the rejected ones with their reason."""
    entries: list[Entry] = []
    rejections: list[dict[str, Any]] = []
    for item in records:
        reason = item.reason
        if item.record is not None:
            parsed = rules.parse_record(item.record)
            if isinstance(parsed, str):
                reason = parsed
            else:
                payload = encode_payload(f"{line_key}:{item.position}", item.record)
                entry = Entry(payload, parsed.invoice_no[:PARTITION_KEY_MAX_CHARS])
                if entry.size <= RECORD_MAX_BYTES:
                    entries.append(entry)
                    continue
                reason = RECORD_TOO_LARGE
        rejections.append({position_name: item.position, "reason": reason})
    return entries, rejections


def _chunks(entries: Sequence[Entry]) -> Iterator[list[Entry]]:
    """PutRecords requests within Kinesis' limits (500 records, 5 MiB)."""
    chunk: list[Entry] = []
    size = 0
    for entry in entries:
        if chunk and (len(chunk) == PUT_MAX_RECORDS or size + entry.size > PUT_MAX_BYTES):
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
