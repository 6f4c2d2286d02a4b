"""Redshift through the Redshift Data API: the warehouse load where no database connection can
be opened (a Lambda function outside the workgroup's VPC), with no password anywhere.

    redshift-data://<workgroup>/<database>?secret_arn=...&iam_role=...&manifest_dir=s3://...
    redshift-data://cluster:<cluster id>/<database>?db_user=loader&iam_role=...

Authentication is the Data API's: IAM (a serverless workgroup maps the caller's role to the
database user IAMR:<role>; a provisioned cluster takes db_user and redshift:GetClusterCredentials),
or a Secrets Manager secret (secret_arn, e.g. the namespace's managed admin secret). COPY reads
S3 through `iam_role`, as the driver-based Redshift load does (REDSHIFT_IAM_ROLE by default).

Every statement of a load runs in one Data API session (SessionKeepAliveSeconds on the first,
SessionId after it), so the loader's temporary staging tables and its BEGIN ... COMMIT span the
calls as on a connection: the load is the same SQL, checks and transaction as on PostgreSQL,
DuckDB and redshift_connector (`loader`).

Until `loader.connect` and `urls.parse_warehouse_url` know the redshift-data scheme, `load_run`
and `load_parquet_files` here do what loader's do, with a Data API connection.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import pyarrow as pa

from retail_pipeline.warehouse import files, loader, merge
from retail_pipeline.warehouse.backends import Warehouse
from retail_pipeline.warehouse.dialects import REDSHIFT, schema_ddl
from retail_pipeline.warehouse.errors import WarehouseError, WarehouseInputError, first_line
from retail_pipeline.warehouse.redshift import copy_statement, manifest_url, require_s3

SCHEME = "redshift-data"
PARAMS = ("secret_arn", "iam_role", "manifest_dir", "db_user", "region")
CLUSTER_PREFIX = "cluster:"
# A load's statements share one session; it closes itself this long after the last one.
SESSION_KEEP_ALIVE_SECONDS = 600
POLL_SECONDS = 0.25
STATEMENT_TIMEOUT_SECONDS = 3600
FINISHED, FAILED, ABORTED = "FINISHED", "FAILED", "ABORTED"


class DataApiError(WarehouseError):
    """A statement failed or was aborted; the message is Redshift's first line."""


@dataclass(frozen=True)
class DataApiTarget:
    url: str
    database: str
    workgroup: str | None = None
    cluster: str | None = None
    params: Mapping[str, str] = field(default_factory=dict)

    @property
    def display(self) -> str:
        where = self.workgroup or f"{CLUSTER_PREFIX}{self.cluster}"
        return f"{SCHEME}://{where}/{self.database}"

    def connection(self) -> dict[str, str]:
        """The parameters that open a session (never sent again once it is open)."""
        request = {"Database": self.database}
        if self.workgroup:
            request["WorkgroupName"] = self.workgroup
        else:
            request["ClusterIdentifier"] = str(self.cluster)
        if self.params.get("secret_arn"):
            request["SecretArn"] = self.params["secret_arn"]
        elif self.params.get("db_user"):
            request["DbUser"] = self.params["db_user"]
        return request


def parse_data_api_url(url: str, *, environ: Mapping[str, str] | None = None) -> DataApiTarget:
    import os

    env = os.environ if environ is None else environ
    parts = urlsplit(url)
    if parts.scheme != SCHEME or not parts.netloc:
        raise WarehouseInputError(f"{url!r} is not {SCHEME}://<workgroup>/<database>?iam_role=...")
    params = dict(parse_qsl(parts.query, keep_blank_values=True))
    unknown = sorted(set(params) - set(PARAMS))
    if unknown:
        raise WarehouseInputError(
            f"{SCHEME} URL parameter {unknown[0]!r} is unknown (known: {', '.join(PARAMS)})"
        )
    params.setdefault("iam_role", env.get("REDSHIFT_IAM_ROLE", ""))
    params.setdefault("manifest_dir", env.get("REDSHIFT_MANIFEST_DIR", ""))
    params.setdefault("secret_arn", env.get("REDSHIFT_SECRET_ARN", ""))
    where = unquote(parts.netloc)
    database = unquote(parts.path.strip("/"))
    target = DataApiTarget(
        url=url,
        database=database,
        workgroup=None if where.startswith(CLUSTER_PREFIX) else where,
        cluster=where.removeprefix(CLUSTER_PREFIX) if where.startswith(CLUSTER_PREFIX) else None,
        params={k: v for k, v in params.items() if v},
    )
    missing = [] if database else ["the database (the URL's path)"]
    if "iam_role" not in target.params:
        missing.append("iam_role (or REDSHIFT_IAM_ROLE): COPY reads S3 through an IAM role")
    if target.cluster and not ({"secret_arn", "db_user"} & set(target.params)):
        missing.append("secret_arn or db_user: a provisioned cluster needs one of them")
    if missing:
        raise WarehouseInputError(f"{SCHEME} URL {target.display!r} lacks {'; '.join(missing)}")
    return target


def data_api_client(target: DataApiTarget) -> Any:
    import boto3

    region = target.params.get("region")
    return boto3.client("redshift-data", region_name=region) if region else boto3.client("redshift-data")


def field_value(cell: Mapping[str, Any]) -> Any:
    """A Data API result field as Python: numbers stay numbers, DECIMALs (strings) Decimals."""
    if cell.get("isNull"):
        return None
    for kind in ("longValue", "doubleValue", "booleanValue", "blobValue"):
        if kind in cell:
            return cell[kind]
    text = cell.get("stringValue")
    return text


class DataApiWarehouse:
    """The loader's `Warehouse` over the Data API: statements run one at a time in one session."""

    dialect = REDSHIFT

    def __init__(
        self,
        target: DataApiTarget,
        *,
        client: Any | None = None,
        manifest_dir: str | None = None,
        poll_seconds: float = POLL_SECONDS,
        timeout_seconds: float = STATEMENT_TIMEOUT_SECONDS,
    ) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        self.target = target
        self.client = client if client is not None else data_api_client(target)
        self.errors: tuple[type[BaseException], ...] = (DataApiError, BotoCoreError, ClientError)
        self.iam_role = target.params["iam_role"]
        self.manifest_dir = target.params.get("manifest_dir") or manifest_dir
        self.session_id: str | None = None
        self.poll_seconds = poll_seconds
        self.timeout_seconds = timeout_seconds

    def _run(self, sql: str) -> str:
        request: dict[str, Any] = {"Sql": sql}
        if self.session_id is None:
            request |= self.target.connection() | {"SessionKeepAliveSeconds": SESSION_KEEP_ALIVE_SECONDS}
        else:
            request["SessionId"] = self.session_id
        response = self.client.execute_statement(**request)
        self.session_id = self.session_id or response.get("SessionId")
        statement_id = str(response["Id"])
        deadline = time.monotonic() + self.timeout_seconds
        while True:
            described = self.client.describe_statement(Id=statement_id)
            status = described["Status"]
            if status == FINISHED:
                return statement_id
            if status in (FAILED, ABORTED):
                reason = first_line(Exception(described.get("Error") or status))
                raise DataApiError(f"{status.lower()}: {reason} ({sql.splitlines()[0][:80]})")
            if time.monotonic() > deadline:
                self.client.cancel_statement(Id=statement_id)
                raise DataApiError(
                    f"statement {statement_id} ran over {self.timeout_seconds:.0f} s: cancelled"
                )
            time.sleep(self.poll_seconds)

    def execute(self, sql: str) -> None:
        self._run(sql)

    def query_one(self, sql: str) -> tuple[Any, ...]:
        statement_id = self._run(sql)
        records = self.client.get_statement_result(Id=statement_id).get("Records", [])
        return tuple(field_value(cell) for cell in records[0]) if records else ()

    def begin(self) -> None:
        self.execute("BEGIN")

    def commit(self) -> None:
        self.execute("COMMIT")

    def rollback(self) -> None:
        if self.session_id is not None:
            self.execute("ROLLBACK")

    def close(self) -> None:
        """The session closes itself SESSION_KEEP_ALIVE_SECONDS after its last statement."""

    def stage(self, data_files: Sequence[files.DataFile], *, batch_id: str) -> None:
        if not data_files:
            return
        require_s3(data_files)
        url = manifest_url(data_files, batch_id=batch_id, manifest_dir=self.manifest_dir)
        files.write_text(url, files.copy_manifest(data_files))
        self.execute(copy_statement(url, self.iam_role))


def load_run(
    warehouse_url: str, output_dir: str, *, run_report: str | None = None, client: Any | None = None
) -> loader.LoadResult:
    """`loader.load_run` through the Data API: the run's lines replace its sources' lines."""
    target = parse_data_api_url(warehouse_url)
    planned = loader.plan_run_load(output_dir, run_report, display=target.display)
    if isinstance(planned, loader.LoadResult):
        return planned
    described, plan = planned
    manifests = files.join(output_dir, files.MANIFEST_FOLDER)
    return _load(target, described, plan, manifest_dir=manifests, client=client)


def load_parquet_files(
    warehouse_url: str,
    parquet_files: Sequence[str],
    *,
    batch_id: str,
    manifest_dir: str | None = None,
    client: Any | None = None,
) -> loader.LoadResult:
    """`loader.load_parquet_files` through the Data API: each invoice in the files replaces
    that invoice's lines (the streamed output's load)."""
    target = parse_data_api_url(warehouse_url)
    try:
        merge.check_batch_id(batch_id)
    except ValueError as error:
        raise WarehouseInputError(str(error)) from None
    plan = loader.LoadPlan(batch_id, merge.Replaces(invoices=True), line_batch_id=batch_id)
    return _load(target, files.describe_files(parquet_files), plan, manifest_dir=manifest_dir, client=client)


def _load(
    target: DataApiTarget,
    data_files: Sequence[files.DataFile],
    plan: loader.LoadPlan,
    *,
    manifest_dir: str | None,
    client: Any | None,
) -> loader.LoadResult:
    """loader._load with a Data API session for a connection."""
    started = time.perf_counter()
    require_s3(data_files)
    warehouse = DataApiWarehouse(target, client=client, manifest_dir=manifest_dir)
    connection: Warehouse = warehouse
    try:
        connection.begin()
        for statement in schema_ddl(connection.dialect):
            connection.execute(statement)
        loader._check_tables(connection)  # noqa: SLF001 - the loader's own checks, shared
        connection.commit()
        result = loader._load_in_transaction(connection, data_files, plan)  # noqa: SLF001
    except (*warehouse.errors, OSError, pa.ArrowException) as error:
        loader._rollback(connection)  # noqa: SLF001
        why = first_line(error)
        raise WarehouseError(
            f"load of batch {plan.batch_id} into {target.display} failed and was rolled back: {why}"
        ) from None
    except BaseException:
        loader._rollback(connection)  # noqa: SLF001
        raise
    durations = {**result.durations_s, "total": round(time.perf_counter() - started, 3)}
    return loader.LoadResult(
        batch_id=result.batch_id,
        warehouse=target.display,
        files=result.files,
        rows=result.rows,
        revenue=result.revenue,
        replaced_rows=result.replaced_rows,
        table_rows=result.table_rows,
        durations_s=durations,
        status=result.status,
    )
