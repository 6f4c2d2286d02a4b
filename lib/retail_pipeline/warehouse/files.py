"""The batch job's output as the loader sees it, through pyarrow's file systems (local or S3):
the run report, the run's curated files, their row counts and schema, the COPY manifest.

No Spark here (nor `retail_pipeline.report`, which imports the Spark transforms): the loader
runs on a small driver or a Lambda.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from pyarrow import fs as pafs

from retail_pipeline.warehouse.errors import WarehouseInputError

# The curated files' contract (what `retail_pipeline.batch` writes), in the files' column order.
CURATED_SCHEMA = pa.schema(
    [
        ("invoice_no", pa.string()),
        ("stock_code", pa.string()),
        ("description", pa.string()),
        ("quantity", pa.int32()),
        ("unit_price", pa.decimal128(12, 4)),
        ("revenue", pa.decimal128(23, 4)),
        ("invoice_ts", pa.timestamp("us")),
        ("customer_id", pa.string()),
        ("country", pa.string()),
    ]
)


@dataclass(frozen=True)
class DataFile:
    path: str  # s3://bucket/key or an absolute local path
    size: int
    rows: int


@dataclass(frozen=True)
class RunSummary:
    """What the loader needs from a run report (report.RunReport's JSON)."""

    run_id: str
    published: int
    published_revenue: Decimal
    curated_partitions: tuple[str, ...]
    source: str


def resolve(path: str) -> tuple[pafs.FileSystem, str, str]:
    """(file system, path within it, canonical URI) for a local path, file://, s3:// or s3a://."""
    if path.startswith(("s3://", "s3a://", "s3n://")):
        uri = "s3://" + path.split("://", 1)[1]
        filesystem, inner = pafs.FileSystem.from_uri(uri)
        return filesystem, inner, uri
    local = os.path.abspath(path.removeprefix("file://"))
    return pafs.LocalFileSystem(), local, local


def join(base: str, *parts: str) -> str:
    return "/".join([base.rstrip("/"), *(p.strip("/") for p in parts)])


def read_text(path: str) -> str:
    filesystem, inner, uri = resolve(path)
    try:
        with filesystem.open_input_stream(inner) as stream:
            return bytes(stream.read()).decode("utf-8")
    except (FileNotFoundError, OSError) as error:
        raise WarehouseInputError(f"cannot read {uri}: {error.strerror or error}") from None


def write_text(path: str, text: str) -> None:
    filesystem, inner, _ = resolve(path)
    filesystem.create_dir(inner.rsplit("/", 1)[0], recursive=True)
    with filesystem.open_output_stream(inner) as stream:
        stream.write(text.encode("utf-8"))


def read_run_report(output_dir: str, run_report: str | None = None) -> RunSummary:
    path = run_report or join(output_dir, "reports", "run_report.json")
    _, _, uri = resolve(path)
    try:
        data: dict[str, Any] = json.loads(read_text(path))
        return RunSummary(
            run_id=str(data["run_id"]),
            published=int(data["published"]),
            published_revenue=Decimal(str(data["published_revenue"])),
            curated_partitions=tuple(str(p) for p in data["curated_partitions"]),
            source=uri,
        )
    except (ValueError, KeyError, TypeError, InvalidOperation) as error:
        raise WarehouseInputError(f"run report {uri} is not a batch run report: {error!r}") from None


def partition_months(partitions: Sequence[str]) -> list[tuple[int, int]]:
    """ "invoice_year=2010/invoice_month=12" -> (2010, 12)."""
    months = []
    for partition in partitions:
        try:
            values = dict(part.split("=", 1) for part in partition.strip("/").split("/"))
            months.append((int(values["invoice_year"]), int(values["invoice_month"])))
        except (ValueError, KeyError):
            raise WarehouseInputError(
                f"curated partition {partition!r} is not invoice_year=/invoice_month="
            ) from None
    return months


def partition_files(output_dir: str, partitions: Sequence[str]) -> list[str]:
    """The data files of the given curated partitions (names starting with _ or . skipped, as
    Spark skips them)."""
    found: list[str] = []
    for partition in partitions:
        folder = join(output_dir, "curated", partition)
        filesystem, inner, uri = resolve(folder)
        try:
            infos = filesystem.get_file_info(pafs.FileSelector(inner, recursive=False))
        except (FileNotFoundError, OSError):
            raise WarehouseInputError(f"curated partition {uri} is missing") from None
        names = sorted(i.base_name for i in infos if i.is_file and not i.base_name.startswith(("_", ".")))
        found += [join(uri, name) for name in names]
    return found


def describe_files(paths: Sequence[str]) -> list[DataFile]:
    """Size and row count of each file, from its footer; a file whose schema is not the curated
    contract stops the load before anything is staged."""
    described = []
    for path in paths:
        filesystem, inner, uri = resolve(path)
        try:
            size = filesystem.get_file_info(inner).size
            with filesystem.open_input_file(inner) as handle:
                parquet = pq.ParquetFile(handle)
                schema, rows = parquet.schema_arrow, parquet.metadata.num_rows
        except (OSError, pa.ArrowException) as error:
            raise WarehouseInputError(f"cannot read Parquet file {uri}: {error}") from None
        actual = [(f.name, f.type) for f in schema]
        expected = [(f.name, f.type) for f in CURATED_SCHEMA]
        if actual != expected:
            shown = ", ".join(f"{name} {kind}" for name, kind in actual)
            raise WarehouseInputError(f"{uri} is not curated sales data: its columns are {shown}")
        described.append(DataFile(uri, int(size or 0), int(rows)))
    return described


def copy_manifest(files: Sequence[DataFile]) -> str:
    """A Redshift COPY manifest naming exactly these files. Parquet needs each file's
    content_length; mandatory makes COPY fail rather than skip a missing file."""
    entries = [{"url": f.path, "mandatory": True, "meta": {"content_length": f.size}} for f in files]
    return json.dumps({"entries": entries}, indent=1)
