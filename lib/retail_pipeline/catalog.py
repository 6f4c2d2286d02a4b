"""Publishing curated months on S3 through the Glue Data Catalog (boto3 only, no Spark).

An S3 "rename" is a copy, so a month folder swapped in place can be read half old, half new.
Instead each run writes the months it rewrites under its own version prefix,
`<output>/curated_versions/<run_id>/invoice_year=Y/invoice_month=M/`, never touched again, and
the catalog partition (Y, M) is pointed at that folder: a reader through the catalog (Athena,
Redshift Spectrum, Spark or Glue with the catalog) sees each month old or new, never half.
Versions no partition points to any more are removed after a grace period the caller chooses.

Clients are passed in (the job's, or a test's pointed at a moto server).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from botocore.exceptions import ClientError

from retail_pipeline import contract
from retail_pipeline.config import S3_SCHEMES

logger = logging.getLogger(__name__)

VERSIONS_DIR = "curated_versions"
PARTITION_KEYS = contract.PARTITION_COLUMNS
# The Glue API's limits per call: BatchDeletePartition takes 25, not 100 like the others.
CREATE_BATCH, UPDATE_BATCH, DELETE_BATCH = 100, 100, 25
S3_DELETE_BATCH = 1000
# What a StorageDescriptor input may hold (GetTable's output can carry more in the future).
STORAGE_INPUT_KEYS = (
    "Columns",
    "InputFormat",
    "OutputFormat",
    "Compressed",
    "NumberOfBuckets",
    "SerdeInfo",
    "BucketColumns",
    "SortColumns",
    "Parameters",
    "SkewedInfo",
    "StoredAsSubDirectories",
    "SchemaReference",
)

Month = tuple[int, int]


class CatalogError(RuntimeError):
    """A catalog or version-store call failed; the message names the table and the partitions."""


@dataclass(frozen=True)
class CatalogTable:
    database: str
    table: str
    catalog_id: str | None = None  # None: the caller's account

    def request(self) -> dict[str, str]:
        """The names a partition call takes."""
        return {"DatabaseName": self.database, "TableName": self.table, **self.catalog()}

    def catalog(self) -> dict[str, str]:
        return {"CatalogId": self.catalog_id} if self.catalog_id else {}

    def __str__(self) -> str:
        return f"{self.database}.{self.table}"


def month_location(output_uri: str, run_id: str, year: int, month: int) -> str:
    """Where run `run_id` writes month (year, month): the folder names Spark writes."""
    return f"{version_prefix(output_uri, run_id)}invoice_year={year}/invoice_month={month}/"


def version_prefix(output_uri: str, run_id: str) -> str:
    _check_run_id(run_id)
    return f"{output_uri.rstrip('/')}/{VERSIONS_DIR}/{run_id}/"


def switch_partitions(glue: Any, table: CatalogTable, locations: Mapping[Month, str | None]) -> None:
    """Point each month's partition at its new folder (created when missing), or delete it
    (None: the month became empty). A partition already at its location is left alone, so a
    re-run is a no-op. Each partition switches whole; raises CatalogError naming the failures."""
    for year, month in locations:
        if not 1 <= month <= 12 or year < 1:
            raise ValueError(f"not a month: invoice_year={year}/invoice_month={month}")
    storage = _table_storage(glue, table)
    registered = _registered(glue, table)
    creates: list[dict[str, Any]] = []
    updates: list[dict[str, Any]] = []
    deletes: list[dict[str, Any]] = []
    for (year, month), location in sorted(locations.items()):
        values, current = registered.get((year, month), ([str(year), str(month)], None))
        if location is None:
            if current is not None:
                deletes.append({"Values": values})
        elif current is None:
            creates.append(_partition_input(storage, values, location))
        elif _folder(current) != _folder(location):
            updates.append(
                {"PartitionValueList": values, "PartitionInput": _partition_input(storage, values, location)}
            )
    batches = (
        (glue.batch_create_partition, creates, "create", "PartitionInputList", CREATE_BATCH),
        (glue.batch_update_partition, updates, "update", "Entries", UPDATE_BATCH),
        (glue.batch_delete_partition, deletes, "delete", "PartitionsToDelete", DELETE_BATCH),
    )
    # Every batch is tried: each partition switches on its own, and the error names them all.
    failures = [
        failure
        for call, items, verb, field, size in batches
        for failure in _in_batches(call, table, items, verb=verb, field=field, size=size)
    ]
    if failures:
        raise CatalogError(f"catalog table {table}: partitions not switched: {'; '.join(failures)}")
    unchanged = len(locations) - len(creates) - len(updates) - len(deletes)
    logger.info(
        "Catalog %s: %d partitions created, %d moved, %d deleted, %d already current",
        table,
        len(creates),
        len(updates),
        len(deletes),
        unchanged,
    )


def current_locations(glue: Any, table: CatalogTable) -> dict[Month, str]:
    """The location of each registered partition, by (year, month)."""
    return {month: location for month, (_, location) in _registered(glue, table).items()}


def run_ids_in(output_uri: str, locations: Iterable[str]) -> set[str]:
    """The runs whose versions these locations (e.g. `current_locations(...).values()`) are in."""
    root = _bucket_key(f"{output_uri.rstrip('/')}/{VERSIONS_DIR}/")
    run_ids = set()
    for location in locations:
        bucket, key = _bucket_key(location)
        if bucket == root[0] and key.startswith(root[1]):
            run_ids.add(key[len(root[1]) :].split("/", 1)[0])
    return run_ids


def expired_versions(s3: Any, output_uri: str, *, keep: Collection[str], older_than: datetime) -> list[str]:
    """The run ids under `<output>/curated_versions/` not in `keep` (the versions the catalog
    and the manifest still point to) whose objects are all older than `older_than`."""
    if older_than.tzinfo is None:
        raise ValueError("older_than must be timezone-aware (S3 times are UTC)")
    bucket, root = _bucket_key(f"{output_uri.rstrip('/')}/{VERSIONS_DIR}/")
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=root, Delimiter="/")
    run_ids = {p["Prefix"][len(root) :].rstrip("/") for page in pages for p in page.get("CommonPrefixes", [])}
    expired = []
    for run_id in sorted(run_ids - set(keep)):
        newest = max((o["LastModified"] for o in _objects(s3, bucket, f"{root}{run_id}/")), default=None)
        if newest is not None and newest < older_than:
            expired.append(run_id)
    return expired


def remove_versions(s3: Any, output_uri: str, run_ids: Iterable[str]) -> int:
    """Delete every object of these runs' versions; returns how many were deleted."""
    removed = 0
    for run_id in run_ids:
        bucket, prefix = _bucket_key(version_prefix(output_uri, run_id))
        keys = [o["Key"] for o in _objects(s3, bucket, prefix)]
        for start in range(0, len(keys), S3_DELETE_BATCH):
            batch = [{"Key": key} for key in keys[start : start + S3_DELETE_BATCH]]
            errors = s3.delete_objects(Bucket=bucket, Delete={"Objects": batch, "Quiet": True}).get(
                "Errors", []
            )
            if errors:
                named = ", ".join(f"{e.get('Key')} ({e.get('Code')})" for e in errors[:10])
                raise CatalogError(f"could not delete {len(errors)} object(s) of version {run_id}: {named}")
        removed += len(keys)
        logger.info("Removed version %s: %d objects under s3://%s/%s", run_id, len(keys), bucket, prefix)
    return removed


def _registered(glue: Any, table: CatalogTable) -> dict[Month, tuple[list[str], str]]:
    """Each registered partition's values as stored (updates and deletes must name them
    exactly) and location, by (year, month)."""
    registered = {}
    try:
        for page in glue.get_paginator("get_partitions").paginate(**table.request()):
            for partition in page["Partitions"]:
                values = partition["Values"]
                year, month = (int(value) for value in values)
                registered[(year, month)] = (values, partition["StorageDescriptor"]["Location"])
    except ClientError as error:
        raise CatalogError(f"cannot list the partitions of catalog table {table}: {error}") from error
    except ValueError as error:  # int keys hold ints; anything else was not registered by us
        raise CatalogError(f"catalog table {table} has a partition that is not a month: {error}") from error
    return registered


def _table_storage(glue: Any, table: CatalogTable) -> dict[str, Any]:
    """The table's StorageDescriptor without its location: the format, serde and columns each
    partition repeats (Spectrum and Hive-style readers take them from the partition)."""
    try:
        found = glue.get_table(DatabaseName=table.database, Name=table.table, **table.catalog())
    except ClientError as error:
        raise CatalogError(f"cannot read catalog table {table}: {error}") from error
    keys = [key["Name"] for key in found["Table"].get("PartitionKeys", [])]
    if tuple(keys) != PARTITION_KEYS:
        raise CatalogError(f"catalog table {table} is partitioned by {keys}, expected {list(PARTITION_KEYS)}")
    if found["Table"].get("Parameters", {}).get("projection.enabled") == "true":
        logger.warning("Catalog table %s has partition projection on: Athena ignores its partitions", table)
    storage = found["Table"]["StorageDescriptor"]
    return {key: storage[key] for key in STORAGE_INPUT_KEYS if key in storage}


def _partition_input(storage: dict[str, Any], values: list[str], location: str) -> dict[str, Any]:
    return {"Values": values, "StorageDescriptor": {**storage, "Location": _folder(location)}}


def _in_batches(
    call: Callable[..., dict[str, Any]],
    table: CatalogTable,
    items: list[dict[str, Any]],
    *,
    verb: str,
    field: str,
    size: int,
) -> Iterator[str]:
    """Send `items` in calls of at most `size`; yield a description of each failed partition
    (from a call's Errors list, or every partition of a call that failed whole)."""
    for start in range(0, len(items), size):
        batch = items[start : start + size]
        try:
            errors = call(**table.request(), **{field: batch}).get("Errors", [])
        except ClientError as error:
            yield f"{verb} {', '.join(_name(_values_of(item)) for item in batch)} ({error})"
            continue
        for entry in errors:
            values = entry.get("PartitionValues") or entry.get("PartitionValueList") or []
            detail = entry.get("ErrorDetail", {})
            yield f"{verb} {_name(values)} ({detail.get('ErrorCode')}: {detail.get('ErrorMessage')})"


def _values_of(item: dict[str, Any]) -> list[str]:
    return list(item.get("Values") or item.get("PartitionValueList") or [])


def _name(values: list[str]) -> str:
    return "/".join(f"{key}={value}" for key, value in zip(PARTITION_KEYS, values, strict=False))


def _folder(location: str) -> str:
    return location if location.endswith("/") else f"{location}/"


def _bucket_key(uri: str) -> tuple[str, str]:
    if not uri.startswith(S3_SCHEMES):
        raise ValueError(f"not an S3 location: {uri} (expected one of {', '.join(S3_SCHEMES)})")
    bucket, _, key = uri.partition("://")[2].partition("/")
    return bucket, key


def _objects(s3: Any, bucket: str, prefix: str) -> Iterator[dict[str, Any]]:
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        yield from page.get("Contents", [])


def _check_run_id(run_id: str) -> None:
    # An empty or nested run id would name (and remove) other runs' versions too.
    if not run_id or "/" in run_id or run_id in {".", ".."}:
        raise ValueError(f"not a run id: {run_id!r}")
