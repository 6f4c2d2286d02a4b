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

from retail_pipeline import contract
from retail_pipeline.warehouse.errors import WarehouseInputError

# The curated files' schema, in the files' column order: what `retail_pipeline.batch` writes
# and what the stream consumer writes (`stream.objects` uses it).
CURATED_SCHEMA = contract.arrow_schema()
# Run statuses: a run that published its sources' lines, and an incremental run that found
# nothing new (it published nothing; its load changes nothing).
SUCCEEDED = contract.STATUS_SUCCEEDED
NOTHING_NEW = contract.STATUS_NOTHING_NEW
# Where the loader writes beside an output (Spark skips folders starting with _).
MANIFEST_FOLDER = "_warehouse_manifests"


@dataclass(frozen=True)
class DataFile:
    path: str  # s3://bucket/key or an absolute local path
    size: int
    rows: int


@dataclass(frozen=True)
class RunSummary:
    """What the loader needs from a run report (report.RunReport's JSON)."""

    run_id: str
    status: str
    published: int  # the run's lines: those of `sources`, each with run_id = this run's
    published_revenue: Decimal
    sources: tuple[str, ...]  # the source files whose lines the run replaced
    curated_partitions: tuple[str, ...]  # the months it rewrote (with other sources' lines too)
    curated_root: str  # where they are, relative to the output (its version folder, on S3)
    source: str  # the report's URI


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
    text = read_text(path)
    try:
        data: dict[str, Any] = json.loads(text)
        if "run_id" in data and "sources" not in data:
            raise WarehouseInputError(
                f"run report {uri} lists no sources: it predates the lines' source_file;"
                " run the batch job again to load its output"
            )
        return RunSummary(
            run_id=str(data["run_id"]),
            status=str(data["status"]),
            published=int(data["published"]),
            published_revenue=Decimal(str(data["published_revenue"])),
            sources=tuple(str(s) for s in data["sources"]),
            curated_partitions=tuple(str(p) for p in data["curated_partitions"]),
            curated_root=str(data.get("curated_root", "curated")),
            source=uri,
        )
    except (ValueError, KeyError, TypeError, InvalidOperation) as error:
        raise WarehouseInputError(f"run report {uri} is not a batch run report: {error!r}") from None


def curated_partitions(output_dir: str) -> list[str]:
    """Every month folder of the output's curated data ("invoice_year=2010/invoice_month=12")."""
    years = _folders(join(output_dir, "curated"), "invoice_year=")
    return sorted(
        f"{year}/{month}"
        for year in years
        for month in _folders(join(output_dir, "curated", year), "invoice_month=")
    )


def _folders(folder: str, prefix: str) -> list[str]:
    filesystem, inner, uri = resolve(folder)
    try:
        infos = filesystem.get_file_info(pafs.FileSelector(inner, recursive=False))
    except (FileNotFoundError, OSError):
        raise WarehouseInputError(f"curated folder {uri} is missing") from None
    return [
        i.base_name for i in infos if i.type == pafs.FileType.Directory and i.base_name.startswith(prefix)
    ]


def partition_files(output_dir: str, partitions: Sequence[str], *, root: str = "curated") -> list[str]:
    """The data files of the given curated partitions under `root` (relative to the output;
    names starting with _ or . skipped, as Spark skips them)."""
    found: list[str] = []
    for partition in partitions:
        folder = join(output_dir, root, partition)
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
