"""The Kinesis consumer: every record of a batch -> DynamoDB, S3 curated Parquet, dead letters.

For each record, in shard order (Powertools' batch processor, failing fast as below):
decode the payload (a record that is no payload is poison), apply the shared rules, and store a
published line in DynamoDB (`store.put_line`: a redelivered record changes nothing). Then, for
the records handled, one Parquet object per month of published lines and one JSON Lines object
of rejects (filtered, quarantined, duplicate; each with its reason) go to S3.

The answer is a partial batch response (ReportBatchItemFailures). Lambda resumes a shard at the
first failed record, so once a record fails the rest of the batch is left for that retry and
reported failed too (as Powertools' SQS FIFO processor does): the S3 objects then hold exactly
the records before the first failure, and the retry's objects hold the rest, never twice.
An exception from S3 fails the whole invocation, and the batch is retried as it was.
"""

from __future__ import annotations

import os
from collections import Counter
from functools import partial
from typing import Any, NamedTuple

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.kinesis_stream_event import KinesisStreamRecord

from retail_pipeline import rules
from retail_pipeline.stream import api, objects, records, store
from retail_pipeline.stream.body import RawRecord
from retail_pipeline.stream.settings import ProcessSettings

logger = Logger(service="retail-stream")


class EarlierRecordFailedError(Exception):
    """Not handled: an earlier record of the batch failed, and Lambda resumes from that one."""


_SKIPPED = (EarlierRecordFailedError, EarlierRecordFailedError("an earlier record of the batch failed"), None)


class CheckpointBatchProcessor(BatchProcessor):
    """Kinesis batch processing that stops at the first failed record and reports it and every
    later record, so the batch's side effects end exactly where Lambda will resume."""

    def __init__(self, logger: Any = None) -> None:
        super().__init__(EventType.KinesisDataStreams, raise_on_entire_batch_failure=False, logger=logger)

    def _process_record(self, record: dict[str, Any]) -> Any:
        if self.fail_messages:
            return self.failure_handler(self._to_batch_type(record, self.event_type), _SKIPPED)
        return super()._process_record(record)


class StreamedRecord(NamedTuple):
    """One Kinesis record, decoded and classified. (A named tuple, as records.Classified: one
    is built per record, and a frozen dataclass costs ~3 us more to build.)"""

    event_id: str
    sequence_number: str
    arrival_timestamp: float
    line_id: str
    record: RawRecord
    outcome: records.Outcome
    reason: str | None
    line: rules.InvoiceLine | None


def read_record(record: KinesisStreamRecord) -> StreamedRecord:
    """Decode and classify one record (no I/O): the consumer's rule throughput is this."""
    payload = record.kinesis  # Powertools builds this view anew on every access
    line_id, raw = records.decode_payload(payload.data_as_bytes())
    classified = records.classify(raw)
    return StreamedRecord(
        event_id=record.event_id,
        sequence_number=payload.sequence_number,
        arrival_timestamp=payload.approximate_arrival_timestamp,
        line_id=line_id,
        record=raw,
        outcome=classified.outcome,
        reason=classified.reason,
        line=classified.line,
    )


def handle_record(record: KinesisStreamRecord, *, dynamodb: Any, table: str) -> StreamedRecord:
    streamed = read_record(record)
    if streamed.outcome != records.PUBLISHED or streamed.line is None:
        return streamed
    result = store.put_line(
        dynamodb, table, line=streamed.line, line_id=streamed.line_id, source=streamed.event_id
    )
    if result == "duplicate":
        return streamed._replace(outcome=records.DUPLICATE, reason=records.DUPLICATE_REASON)
    return streamed


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: Any) -> PartialItemFailureResponse:
    settings = ProcessSettings.from_env(os.environ)
    return process_batch(
        event,
        settings,
        dynamodb=api.aws_client("dynamodb", settings.aws),
        s3=api.aws_client("s3", settings.aws),
    )


def process_batch(
    event: dict[str, Any], settings: ProcessSettings, *, dynamodb: Any, s3: Any
) -> PartialItemFailureResponse:
    batch = event.get("Records", [])
    processor = CheckpointBatchProcessor(logger=logger)
    record_handler = partial(handle_record, dynamodb=dynamodb, table=settings.table_name)
    with processor(records=batch, handler=record_handler):
        results = processor.process()
    handled: list[StreamedRecord] = [result for status, result, _ in results if status == "success"]
    if handled:
        write_objects(s3, settings, handled)
    response = processor.response()
    counts = Counter(f"{item.outcome}:{item.reason}" if item.reason else item.outcome for item in handled)
    logger.info(
        "Batch processed",
        extra={"records": len(batch), "failed": len(response["batchItemFailures"]), "outcomes": counts},
    )
    return response


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
        )
        for item in handled
        if item.outcome != records.PUBLISHED
    ]
    objects.write_curated(s3, settings.bucket, settings.curated_prefix, shard_id, published)
    objects.write_dead_letters(s3, settings.rejects_bucket, settings.dead_letter_prefix, shard_id, letters)
