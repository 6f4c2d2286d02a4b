"""The consumer's S3 objects: curated Parquet per batch and month, and dead letters per batch.

Curated objects have exactly the batch job's curated columns and types (the partition columns
are in the key, as Spark writes them; the schema is the warehouse loader's `CURATED_SCHEMA`),
so the loader takes streamed and batch files alike:

    <curated prefix>/invoice_year=YYYY/invoice_month=M/batch-<shard id>-<sequence number>.parquet
    <dead-letter prefix>/arrival_date=YYYY-MM-DD/batch-<shard id>-<sequence number>.jsonl

The sequence number in a key is that of the first record the object holds. A batch is retried
from its first unfinished record, so a retry writes the same keys again (overwriting) and never
a second copy; keying each object by its own first record, not the batch's, keeps that true
when Lambda bisects a failing batch that spans several months.

Lineage, as the batch job's lines carry it: a line's `source_file` is its object's own URI
(s3://bucket/key: stable, since a retry rewrites the same key), its `run_id` the batch's id,
batch-<shard id>-<sequence number of the batch's first published line>.
"""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from retail_pipeline import contract, rules
from retail_pipeline.stream.body import RawRecord
from retail_pipeline.warehouse.files import CURATED_SCHEMA


@dataclass(frozen=True)
class PublishedLine:
    sequence_number: str
    line: rules.InvoiceLine


@dataclass(frozen=True)
class DeadLetter:
    sequence_number: str
    arrival_timestamp: float
    event_id: str
    line_id: str
    outcome: str
    reason: str
    record: RawRecord | None  # None when the data was no payload: then `data` holds it
    detail: str | None = None
    data: bytes | None = None


def curated_table(lines: Sequence[rules.InvoiceLine], *, source_file: str, run_id: str) -> pa.Table:
    """The lines as the contract's curated columns: each line's field of the column's name, and
    the lineage columns the same for all."""
    lineage = {"source_file": source_file, "run_id": run_id}
    columns = {
        name: [lineage[name]] * len(lines)
        if name in contract.LINEAGE_COLUMNS
        else [getattr(line, name) for line in lines]
        for name in CURATED_SCHEMA.names
    }
    return pa.Table.from_pydict(columns, schema=CURATED_SCHEMA)


def batch_id(shard_id: str, published: Sequence[PublishedLine]) -> str:
    """The run_id of a batch's lines: the same when the whole batch is retried (after an S3
    error), so the retry's objects are byte for byte the first attempt's."""
    return f"batch-{shard_id}-{published[0].sequence_number}"


def write_curated(
    s3: Any, bucket: str, prefix: str, shard_id: str, published: Sequence[PublishedLine]
) -> list[str]:
    """One Parquet object per (year, month) of the batch's published lines; their keys."""
    months: dict[tuple[int, int], list[PublishedLine]] = {}
    for item in published:
        months.setdefault((item.line.invoice_ts.year, item.line.invoice_ts.month), []).append(item)
    keys = []
    for (year, month), items in sorted(months.items()):
        object_key = (
            f"{prefix}/invoice_year={year}/invoice_month={month}/"
            f"batch-{shard_id}-{items[0].sequence_number}.parquet"
        )
        table = curated_table(
            [item.line for item in items],
            source_file=f"s3://{bucket}/{object_key}",
            run_id=batch_id(shard_id, published),
        )
        buffer = io.BytesIO()
        pq.write_table(table, buffer, compression="snappy")
        s3.put_object(Bucket=bucket, Key=object_key, Body=buffer.getvalue())
        keys.append(object_key)
    return keys


def write_dead_letters(
    s3: Any, bucket: str, prefix: str, shard_id: str, letters: Sequence[DeadLetter]
) -> str | None:
    """The batch's rejected records with their reasons, as JSON Lines; the key, if any."""
    if not letters:
        return None
    first = letters[0]
    arrival_date = datetime.fromtimestamp(first.arrival_timestamp, tz=UTC).date().isoformat()
    object_key = f"{prefix}/arrival_date={arrival_date}/batch-{shard_id}-{first.sequence_number}.jsonl"
    body = "".join(json.dumps(_letter_document(letter), ensure_ascii=False) + "\n" for letter in letters)
    # backslashreplace: a lone surrogate (an invalid_text record) becomes its JSON escape.
    s3.put_object(Bucket=bucket, Key=object_key, Body=body.encode("utf-8", "backslashreplace"))
    return object_key


def _letter_document(letter: DeadLetter) -> dict[str, Any]:
    document: dict[str, Any] = {
        "event_id": letter.event_id,
        "sequence_number": letter.sequence_number,
        "line_id": letter.line_id,
        "outcome": letter.outcome,
        "reason": letter.reason,
        "record": letter.record,
    }
    if letter.detail is not None:
        document["detail"] = letter.detail
    if letter.data is not None:
        document["data"] = base64.b64encode(letter.data).decode("ascii")
    return document


def list_objects(s3: Any, bucket: str, prefix: str, *, suffix: str = "") -> list[str]:
    """The keys under a prefix (all pages), sorted; e.g. the curated Parquet objects to load."""
    keys: list[str] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=f"{prefix}/"):
        keys.extend(entry["Key"] for entry in page.get("Contents", []) if entry["Key"].endswith(suffix))
    return sorted(keys)


def list_curated_objects(s3: Any, bucket: str, prefix: str) -> list[str]:
    """`s3://bucket/key` of every curated Parquet object the consumer wrote under `prefix`."""
    return [f"s3://{bucket}/{key}" for key in list_objects(s3, bucket, prefix, suffix=".parquet")]
