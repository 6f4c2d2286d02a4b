"""A stand-in for Lambda's Kinesis event source mapping: shard batches -> the consumer.

Per shard, in order: GetRecords up to `batch_size`, invoke the consumer with Lambda's Kinesis
event, and checkpoint:
- no `batchItemFailures`: the checkpoint moves past the batch;
- failures (ReportBatchItemFailures): the checkpoint moves to just before the first failed
  record (the lowest reported sequence number) and the next batch starts there;
- the consumer raises: the whole batch is retried.
A record that fails `max_retries` times more is sent to the on-failure destination and
skipped, as Lambda does with MaximumRetryAttempts, BisectBatchOnFunctionError (bisecting down
to the failed record) and an on-failure destination; the shard then moves on.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from retail_pipeline_dev.stream_local import LambdaHandler, LocalContext

logger = logging.getLogger(__name__)

OnFailure = Callable[[str, dict[str, Any]], None]


def kinesis_event(
    records: list[dict[str, Any]], *, shard_id: str, stream_arn: str, region: str
) -> dict[str, Any]:
    """Lambda's event for a batch of GetRecords records."""
    return {
        "Records": [
            {
                "kinesis": {
                    "kinesisSchemaVersion": "1.0",
                    "partitionKey": record["PartitionKey"],
                    "sequenceNumber": record["SequenceNumber"],
                    "data": base64.b64encode(record["Data"]).decode("ascii"),
                    "approximateArrivalTimestamp": record["ApproximateArrivalTimestamp"].timestamp(),
                },
                "eventSource": "aws:kinesis",
                "eventVersion": "1.0",
                "eventID": f"{shard_id}:{record['SequenceNumber']}",
                "eventName": "aws:kinesis:record",
                "invokeIdentityArn": "arn:aws:iam::000000000000:role/local-consumer",
                "awsRegion": region,
                "eventSourceARN": stream_arn,
            }
            for record in records
        ]
    }


def first_failure(response: Any, batch: list[dict[str, Any]]) -> int | None:
    """Index of the first failed record; 0 (all) for a response Lambda would not understand."""
    if not isinstance(response, dict) or not response.get("batchItemFailures"):
        return None
    positions = {record["SequenceNumber"]: index for index, record in enumerate(batch)}
    try:
        return min(positions[failure["itemIdentifier"]] for failure in response["batchItemFailures"])
    except (KeyError, TypeError):
        return 0


class ShardPoller:
    def __init__(
        self,
        kinesis: Any,
        *,
        stream_name: str,
        shard_id: str,
        invoke: LambdaHandler,
        batch_size: int = 100,
        max_retries: int = 2,
        on_failure: OnFailure | None = None,
    ) -> None:
        self.kinesis = kinesis
        self.stream_name = stream_name
        self.shard_id = shard_id
        self.invoke = invoke
        self.batch_size = batch_size
        self.max_retries = max_retries
        self.on_failure = on_failure
        description = kinesis.describe_stream_summary(StreamName=stream_name)["StreamDescriptionSummary"]
        self.stream_arn = description["StreamARN"]
        self.region = kinesis.meta.region_name
        self.checkpoint: str | None = None  # the last sequence number done
        self.behind_ms = 0
        self._iterator: str | None = None
        self._failed_attempts: dict[str, int] = {}

    @property
    def caught_up(self) -> bool:
        """The last poll found no record, none is left to retry, and the shard has no backlog."""
        return self._iterator is not None and self.behind_ms == 0 and not self._failed_attempts

    def _shard_iterator(self) -> str:
        position: dict[str, str] = {"ShardIteratorType": "TRIM_HORIZON"}
        if self.checkpoint is not None:
            position = {
                "ShardIteratorType": "AFTER_SEQUENCE_NUMBER",
                "StartingSequenceNumber": self.checkpoint,
            }
        response = self.kinesis.get_shard_iterator(
            StreamName=self.stream_name, ShardId=self.shard_id, **position
        )
        return str(response["ShardIterator"])

    def poll(self) -> int:
        """One batch; how many records the checkpoint moved past."""
        if self._iterator is None:
            self._iterator = self._shard_iterator()
        response = self.kinesis.get_records(ShardIterator=self._iterator, Limit=self.batch_size)
        self.behind_ms = int(response.get("MillisBehindLatest", 0))
        batch = response["Records"]
        if not batch:
            self._iterator = response.get("NextShardIterator")
            return 0
        event = kinesis_event(batch, shard_id=self.shard_id, stream_arn=self.stream_arn, region=self.region)
        try:
            failed = first_failure(self.invoke(event, LocalContext(function_name="process")), batch)
        except Exception:
            logger.exception("The consumer raised on a batch of %s from %s", len(batch), self.shard_id)
            failed = 0
        if failed is None:
            self._failed_attempts = {}
            self.checkpoint = batch[-1]["SequenceNumber"]
            self._iterator = response.get("NextShardIterator")
            return len(batch)
        self._iterator = None  # resume from the checkpoint
        if failed > 0:
            self.checkpoint = batch[failed - 1]["SequenceNumber"]
        return failed + self._give_up_on(batch[failed])

    def drain(self, deadline: float) -> int:
        done = 0
        while time.monotonic() < deadline:
            moved = self.poll()
            done += moved
            if moved == 0 and self.caught_up:
                return done
        raise TimeoutError(f"{self.shard_id} was not drained in time")

    def run(self, stop: threading.Event, idle_seconds: float) -> None:
        while not stop.is_set():
            if self.poll() == 0:
                stop.wait(idle_seconds)

    def _give_up_on(self, record: dict[str, Any]) -> int:
        sequence_number = record["SequenceNumber"]
        attempts = self._failed_attempts.get(sequence_number, 0) + 1
        self._failed_attempts = {sequence_number: attempts}
        if attempts <= self.max_retries:
            return 0
        logger.warning("Record %s of %s failed %s times: skipped", sequence_number, self.shard_id, attempts)
        if self.on_failure is not None:
            self.on_failure(self.shard_id, record)
        self.checkpoint = sequence_number
        self._failed_attempts = {}
        return 1


class StreamPoller:
    """One ShardPoller per shard of the stream, each in its own thread (as Lambda runs one
    invocation per shard at a time)."""

    def __init__(self, kinesis: Any, *, stream_name: str, invoke: LambdaHandler, **options: Any) -> None:
        shards = kinesis.list_shards(StreamName=stream_name)["Shards"]
        self.shards = [
            ShardPoller(kinesis, stream_name=stream_name, shard_id=shard["ShardId"], invoke=invoke, **options)
            for shard in shards
        ]

    def drain(self, *, timeout_seconds: float = 300.0) -> int:
        """Poll until every shard is caught up; how many records the checkpoints moved past."""
        deadline = time.monotonic() + timeout_seconds
        with ThreadPoolExecutor(max_workers=len(self.shards), thread_name_prefix="shard") as pool:
            return sum(pool.map(lambda shard: shard.drain(deadline), self.shards))

    def run(self, stop: threading.Event, *, idle_seconds: float = 0.2) -> None:
        """Poll every shard until `stop` is set (for a background thread)."""
        with ThreadPoolExecutor(max_workers=len(self.shards), thread_name_prefix="shard") as pool:
            list(pool.map(lambda shard: shard.run(stop, idle_seconds), self.shards))


def s3_on_failure(s3: Any, bucket: str, prefix: str) -> OnFailure:
    """An on-failure destination writing each skipped record (with its data) to S3."""

    def send(shard_id: str, record: dict[str, Any]) -> None:
        document = {
            "shard_id": shard_id,
            "sequence_number": record["SequenceNumber"],
            "partition_key": record["PartitionKey"],
            "approximate_arrival_timestamp": record["ApproximateArrivalTimestamp"].isoformat(),
            "data": base64.b64encode(record["Data"]).decode("ascii"),
        }
        key = f"{prefix}/{shard_id}/{record['SequenceNumber']}.json"
        s3.put_object(Bucket=bucket, Key=key, Body=json.dumps(document).encode("utf-8"))

    return send
