"""The Kinesis consumer: every record of a batch -> DynamoDB, S3 curated Parquet, dead letters.

For a batch, in shard order: decode each payload and apply the shared rules (no I/O), store the
published lines in DynamoDB in batches (`store.write_lines`: a redelivered record changes
nothing, a line id stored before is a duplicate), then write one Parquet object per month of
published lines and one JSON Lines object of dead letters to S3.

What can never succeed is not retried: data that is no payload, a line the rules or the limits
quarantine, a line the table refuses: each goes to the dead letters with its reason, and the
shard moves on. Only a retryable failure (DynamoDB throttling, a 5xx, no answer) is reported in
the partial batch response (ReportBatchItemFailures): Lambda resumes the shard at the first
reported record, so that record and every later one are reported, and the S3 objects hold
exactly the records before it (the retry's objects hold the rest, never a line twice). Anything
else (S3, a table that does not exist, access denied) raises: the whole batch is retried as it
was, and an operator has something to fix.
"""

from __future__ import annotations

import base64
import binascii
import os
from collections import Counter
from typing import Any, NamedTuple

from aws_lambda_powertools import Logger

from retail_pipeline import metrics, rules
from retail_pipeline.stream import api, objects, records, store
from retail_pipeline.stream.body import RawRecord
from retail_pipeline.stream.settings import ProcessSettings

logger = Logger(service="retail-stream")


class StreamedRecord(NamedTuple):
    """One Kinesis record, decoded and classified. (A named tuple, as records.Classified: one
    is built per record, and a frozen dataclass is slower to build.)"""

    event_id: str
    sequence_number: str
    arrival_timestamp: float
    line_id: str
    record: RawRecord | None
    outcome: records.Outcome
    reason: str | None
    line: rules.InvoiceLine | None
    # For dead letters only: why the record failed, and its data when it was no payload.
    detail: str | None = None
    data: bytes | None = None


def read_record(record: dict[str, Any]) -> StreamedRecord:
    """Decode and classify one record of Lambda's Kinesis event (no I/O; never raises for what
    the record holds): the consumer's rule throughput is this."""
    kinesis = record["kinesis"]
    event_id, sequence_number = record["eventID"], kinesis["sequenceNumber"]
    arrival = float(kinesis["approximateArrivalTimestamp"])
    try:
        data = base64.b64decode(kinesis["data"], validate=True)
        line_id, raw = records.decode_payload(data)
    except (binascii.Error, ValueError) as error:  # PoisonRecordError is a ValueError
        return StreamedRecord(
            event_id=event_id,
            sequence_number=sequence_number,
            arrival_timestamp=arrival,
            line_id="",
            record=None,
            outcome=records.QUARANTINED,
            reason=records.INVALID_PAYLOAD,
            line=None,
            detail=str(error),
            data=kinesis["data"].encode("ascii", "replace") if isinstance(error, binascii.Error) else data,
        )
    classified = records.classify(raw)
    return StreamedRecord(
        event_id,
        sequence_number,
        arrival,
        line_id,
        raw,
        classified.outcome,
        classified.reason,
        classified.line,
    )


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    settings = ProcessSettings.from_env(os.environ)
    return process_batch(
        event,
        settings,
        dynamodb=api.aws_client("dynamodb", settings.aws),
        s3=api.aws_client("s3", settings.aws),
    )


def process_batch(
    event: dict[str, Any], settings: ProcessSettings, *, dynamodb: Any, s3: Any
) -> dict[str, Any]:
    batch = [read_record(record) for record in event.get("Records", [])]
    published = [
        store.LineToStore(position, item.line, item.line_id, item.event_id)
        for position, item in enumerate(batch)
        if item.outcome == records.PUBLISHED and item.line is not None
    ]
    written = store.write_lines(dynamodb, settings.table_name, published)
    handled = batch if written.failed_at is None else batch[: written.failed_at]
    handled = [_with_store_result(position, item, written) for position, item in enumerate(handled)]
    if handled:
        write_objects(s3, settings, handled)
    failed = batch[len(handled) :]
    counts = Counter(f"{item.outcome}:{item.reason}" if item.reason else item.outcome for item in handled)
    logger.info("Batch processed", extra={"records": len(batch), "failed": len(failed), "outcomes": counts})
    dead = Counter(item.reason or item.outcome for item in handled if item.outcome != records.PUBLISHED)
    metrics.emit_stream_metrics(published=len(handled) - sum(dead.values()), dead_lettered=dict(dead))
    return {"batchItemFailures": [{"itemIdentifier": item.sequence_number} for item in failed]}


def _with_store_result(position: int, item: StreamedRecord, written: store.WriteResult) -> StreamedRecord:
    result = written.results.get(position)
    if result == "duplicate":
        return item._replace(outcome=records.DUPLICATE, reason=records.DUPLICATE_REASON)
    if result == "refused":
        detail = written.refusals.get(position)
        return item._replace(outcome=records.QUARANTINED, reason=records.STORE_REFUSED, detail=detail)
    return item


def write_objects(s3: Any, settings: ProcessSettings, handled: list[StreamedRecord]) -> None:
    shard_id = handled[0].event_id.rpartition(":")[0]
    published = [
        objects.PublishedLine(item.sequence_number, item.line)
        for item in handled
        if item.outcome == records.PUBLISHED and item.line is not None
    ]
    letters = [
        objects.DeadLetter(
            sequence_number=item.sequence_number,
            arrival_timestamp=item.arrival_timestamp,
            event_id=item.event_id,
            line_id=item.line_id,
            outcome=item.outcome,
            reason=item.reason or "",
            record=item.record,
            detail=item.detail,
            data=item.data,
        )
        for item in handled
        if item.outcome != records.PUBLISHED
    ]
    objects.write_curated(s3, settings.bucket, settings.curated_prefix, shard_id, published)
    objects.write_dead_letters(s3, settings.rejects_bucket, settings.dead_letter_prefix, shard_id, letters)
