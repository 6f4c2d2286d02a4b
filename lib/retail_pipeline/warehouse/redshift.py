"""Redshift: COPY the run's curated Parquet from S3 into staging, then the shared merge SQL.

The files are named in a manifest (exactly this batch's files, each with its size, as COPY of
Parquet requires), written to S3 beside them; COPY reads them through an IAM role attached to
the cluster. The connection is `redshift_connector` (AWS's driver), imported only here.
"""

from __future__ import annotations

import posixpath
from collections.abc import Sequence
from typing import Any

from retail_pipeline.warehouse.backends import DbApiTransactions
from retail_pipeline.warehouse.dialects import REDSHIFT
from retail_pipeline.warehouse.errors import WarehouseError, WarehouseInputError, first_line
from retail_pipeline.warehouse.files import MANIFEST_FOLDER, DataFile, copy_manifest, join, write_text
from retail_pipeline.warehouse.merge import sql_literal
from retail_pipeline.warehouse.model import STAGE_LINES
from retail_pipeline.warehouse.urls import WarehouseTarget


def copy_statement(manifest_url: str, iam_role: str) -> str:
    # No column list: COPY fills stage_lines' columns in the order of the files' columns, which
    # model.STAGE_LINES matches (and the integration tests check against the batch's files).
    return (
        f"COPY {STAGE_LINES.name}\nFROM {sql_literal(manifest_url)}\n"
        f"IAM_ROLE {sql_literal(iam_role)}\nFORMAT AS PARQUET\nMANIFEST"
    )


def manifest_url(files: Sequence[DataFile], *, batch_id: str, manifest_dir: str | None) -> str:
    """Where this batch's manifest goes: the configured folder, else `_warehouse_manifests/`
    in the files' common folder (Spark skips folders starting with _)."""
    if not manifest_dir:
        keys = [f.path.removeprefix("s3://") for f in files]
        manifest_dir = "s3://" + posixpath.commonpath([posixpath.dirname(k) for k in keys])
        manifest_dir = join(manifest_dir, MANIFEST_FOLDER)
    if not manifest_dir.startswith("s3://"):
        raise WarehouseInputError(f"the Redshift manifest folder must be on s3://, not {manifest_dir}")
    return join(manifest_dir, f"{batch_id}.manifest")


def require_s3(files: Sequence[DataFile]) -> None:
    local = [f.path for f in files if not f.path.startswith("s3://")]
    if local:
        raise WarehouseInputError(f"Redshift loads from S3 only; {local[0]} is not an s3:// file")


class RedshiftWarehouse(DbApiTransactions):
    dialect = REDSHIFT

    def __init__(self, target: WarehouseTarget, *, manifest_dir: str | None = None) -> None:
        try:
            import redshift_connector
        except ImportError:
            raise WarehouseInputError(
                "redshift:// needs the redshift_connector package: pip install 'retail-pipeline[redshift]'"
            ) from None
        self.errors: tuple[type[BaseException], ...] = (redshift_connector.Error,)
        self.iam_role = target.params["iam_role"]
        self.manifest_dir = target.params.get("manifest_dir") or manifest_dir
        try:
            self._conn: Any = redshift_connector.connect(
                host=target.host,
                port=target.port,
                database=target.database,
                user=target.user,
                password=target.password,
            )
        except redshift_connector.Error as error:
            raise WarehouseError(
                f"cannot connect to Redshift {target.display}: {first_line(error)}"
            ) from None
        self._conn.autocommit = False

    def execute(self, sql: str) -> None:
        cursor = self._conn.cursor()
        try:
            cursor.execute(sql)
        finally:
            cursor.close()

    def query_one(self, sql: str) -> tuple[Any, ...]:
        cursor = self._conn.cursor()
        try:
            cursor.execute(sql)
            row = cursor.fetchone()
        finally:
            cursor.close()
        return tuple(row) if row is not None else ()

    def begin(self) -> None:
        """redshift_connector opens a transaction at the first statement (autocommit off)."""

    def stage(self, files: Sequence[DataFile], *, batch_id: str) -> None:
        if not files:
            return
        require_s3(files)
        url = manifest_url(files, batch_id=batch_id, manifest_dir=self.manifest_dir)
        write_text(url, copy_manifest(files))
        self.execute(copy_statement(url, self.iam_role))
