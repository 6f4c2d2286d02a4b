"""The load step of the scheduled flow on AWS: a Lambda function the state machine
(infra/template.yaml, `DailyFlow`) invokes after the batch job.

    {"action": "batch", "run_id": "jr_..."}  load that batch run (its reports/runs/<id>.json)
                                             into Redshift: its lines replace its sources' lines
    {"action": "streamed"}                   register the streamed output's months in the
                                             catalog and load the months with new objects

The warehouse is reached through the Redshift Data API (`warehouse.data_api`) with the
function's IAM role, or the secret in REDSHIFT_SECRET_ARN: no password in any URL or variable.

The streamed output (`stream.objects`: <prefix>/invoice_year=Y/invoice_month=M/batch-*.parquet)
is loaded a month at a time: every object of each month that has a new or changed object
(its ETag unknown to `<state prefix>/loaded.json`) is loaded in one load, so every invoice of
those months is replaced by all of its lines, however the stream split them between objects.
Loading a month again changes nothing. The ledger of loaded objects is written after the load
commits: a load that fails is simply done again next time.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from retail_pipeline import contract
from retail_pipeline.logs import configure_logging
from retail_pipeline.observe import LoadObserver
from retail_pipeline.warehouse import data_api, files

logger = logging.getLogger(__name__)

BATCH, STREAMED = "batch", "streamed"
LOADED_LEDGER = "loaded.json"
MONTH_FOLDER = "invoice_year={year}/invoice_month={month}"


class OrchestrationError(ValueError):
    """The event or the function's settings cannot be used (not retried by the state machine)."""


@dataclass(frozen=True)
class LoadSettings:
    """The load function's environment (set by infra/template.yaml)."""

    output: str  # the batch job's --output, s3://bucket/batch
    warehouse_url: str  # redshift-data://<workgroup>/<database>?iam_role=...
    streamed_prefix: str  # s3://bucket/streamed/curated
    state_prefix: str  # s3://bucket/streamed/_loads: the loaded objects' ledger, COPY manifests
    catalog_database: str | None
    streamed_table: str | None

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> LoadSettings:
        def required(name: str) -> str:
            value = environ.get(name, "").strip()
            if not value:
                raise OrchestrationError(f"environment variable {name} is not set")
            return value

        workgroup, database = required("REDSHIFT_WORKGROUP"), required("REDSHIFT_DATABASE")
        url = f"{data_api.SCHEME}://{workgroup}/{database}"
        data_api.parse_data_api_url(url, environ=environ)  # fail now on a missing COPY role
        return cls(
            output=required("BATCH_OUTPUT").rstrip("/"),
            warehouse_url=url,
            streamed_prefix=required("STREAMED_CURATED").rstrip("/"),
            state_prefix=required("STREAMED_LOADS").rstrip("/"),
            catalog_database=environ.get("CATALOG_DATABASE") or None,
            streamed_table=environ.get("STREAMED_TABLE") or None,
        )


def handler(event: Mapping[str, Any], context: Any) -> dict[str, Any]:
    configure_logging(fmt=os.environ.get("RETAIL_LOG_FORMAT") or "json", service="retail-load")
    settings = LoadSettings.from_env(os.environ)
    action = event.get("action", BATCH)
    if action == BATCH:
        run_id = str(event.get("run_id") or "")
        if not run_id or "/" in run_id:
            raise OrchestrationError(f"a batch load needs the batch run's id, not {run_id!r}")
        return load_batch_run(settings, run_id)
    if action == STREAMED:
        import boto3

        return load_streamed(settings, s3=boto3.client("s3"), glue=boto3.client("glue"))
    raise OrchestrationError(f"unknown action {action!r}: batch or streamed")


def load_batch_run(settings: LoadSettings, run_id: str, *, client: Any | None = None) -> dict[str, Any]:
    """Load one batch run by its report, reports/runs/<run_id>.json."""
    report_path = files.join(settings.output, "reports", "runs", f"{run_id}.json")
    run = files.read_run_report(settings.output, report_path)
    observer = LoadObserver.of(output=settings.output, warehouse=settings.warehouse_url, run=run)
    observer.started()
    try:
        result = data_api.load_run(
            settings.warehouse_url, settings.output, run_report=report_path, client=client
        )
    except Exception as error:
        observer.failed(error)
        raise
    observer.finished(result)
    return {
        "action": BATCH,
        "status": result.status,
        "batch_id": result.batch_id,
        "files": result.files,
        "rows": result.rows,
        "replaced_rows": result.replaced_rows,
        "revenue": str(result.revenue),
    }


def _bucket_key(uri: str) -> tuple[str, str]:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return bucket, key


def streamed_objects(s3: Any, prefix: str) -> dict[str, str]:
    """Every curated Parquet object under the streamed prefix: {s3 URI: ETag}."""
    bucket, key_prefix = _bucket_key(prefix)
    found: dict[str, str] = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=f"{key_prefix}/"):
        for item in page.get("Contents", []):
            if item["Key"].endswith(".parquet"):
                found[f"s3://{bucket}/{item['Key']}"] = str(item["ETag"])
    return found


def object_month(uri: str) -> tuple[int, int]:
    parts = dict(part.split("=", 1) for part in uri.split("/") if "=" in part)
    year, month = (int(parts[name]) for name in contract.PARTITION_COLUMNS)
    return year, month


def read_loaded(s3: Any, state_prefix: str) -> dict[str, str]:
    bucket, key = _bucket_key(f"{state_prefix}/{LOADED_LEDGER}")
    try:
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    except s3.exceptions.NoSuchKey:
        return {}
    loaded: dict[str, str] = json.loads(body)["objects"]
    return loaded


def write_loaded(s3: Any, state_prefix: str, loaded: Mapping[str, str]) -> None:
    bucket, key = _bucket_key(f"{state_prefix}/{LOADED_LEDGER}")
    body = json.dumps({"objects": dict(sorted(loaded.items()))}, indent=1)
    s3.put_object(Bucket=bucket, Key=key, Body=body.encode("utf-8"))


def register_months(glue: Any, settings: LoadSettings, months: set[tuple[int, int]]) -> None:
    """Each streamed month as a partition of the streamed table (created when missing)."""
    if not settings.catalog_database or not settings.streamed_table or not months:
        return
    from retail_pipeline.catalog import CatalogTable, switch_partitions

    table = CatalogTable(settings.catalog_database, settings.streamed_table)
    locations: dict[tuple[int, int], str | None] = {
        (year, month): f"{settings.streamed_prefix}/{MONTH_FOLDER.format(year=year, month=month)}/"
        for year, month in sorted(months)
    }
    switch_partitions(glue, table, locations)


def load_streamed(settings: LoadSettings, *, s3: Any, glue: Any, client: Any | None = None) -> dict[str, Any]:
    """Register and load the streamed months that have new or changed objects."""
    current = streamed_objects(s3, settings.streamed_prefix)
    loaded = read_loaded(s3, settings.state_prefix)
    new = {uri for uri, etag in current.items() if loaded.get(uri) != etag}
    months = {object_month(uri) for uri in new}
    register_months(glue, settings, {object_month(uri) for uri in current})
    if not months:
        logger.info(
            "Streamed output: nothing new to load", extra={"stage": "load_streamed", "objects": len(current)}
        )
        return {"action": STREAMED, "status": files.NOTHING_NEW, "objects": 0, "months": [], "rows": 0}
    to_load = sorted(uri for uri in current if object_month(uri) in months)
    batch_id = f"streamed-{datetime.now(UTC):%Y%m%dT%H%M%SZ}"
    observer = LoadObserver.of(
        output=settings.output, warehouse=settings.warehouse_url, run=None, source=settings.streamed_prefix
    )
    observer.started()
    try:
        result = data_api.load_parquet_files(
            settings.warehouse_url,
            to_load,
            batch_id=batch_id,
            manifest_dir=f"{settings.state_prefix}/manifests",
            client=client,
        )
    except Exception as error:
        observer.failed(error)
        raise
    observer.finished(result)
    write_loaded(s3, settings.state_prefix, {**loaded, **{uri: current[uri] for uri in to_load}})
    return {
        "action": STREAMED,
        "status": result.status,
        "batch_id": batch_id,
        "objects": len(to_load),
        "months": [f"{year}-{month:02d}" for year, month in sorted(months)],
        "rows": result.rows,
    }
