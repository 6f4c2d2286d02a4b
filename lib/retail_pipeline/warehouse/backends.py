"""Connections to the embedded and the test warehouse: how each opens, stages files and ends a
transaction. (Redshift's is in `redshift`.) Drivers are imported only by the backend in use.

- DuckDB reads the Parquet files itself (read_parquet; S3 files through a pyarrow dataset).
- PostgreSQL gets the rows through COPY FROM STDIN: pyarrow turns each Parquet row group into
  CSV in C++, so no Python object is made per row, and memory stays at one row group.
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from typing import Any, Protocol

import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from retail_pipeline.warehouse.dialects import DUCKDB, POSTGRESQL, Dialect
from retail_pipeline.warehouse.errors import WarehouseError, first_line
from retail_pipeline.warehouse.files import DataFile, resolve
from retail_pipeline.warehouse.merge import sql_literal
from retail_pipeline.warehouse.model import STAGE_LINES
from retail_pipeline.warehouse.urls import WarehouseTarget

ROWS_PER_BATCH = 65_536


class Warehouse(Protocol):
    dialect: Dialect
    # The driver's exceptions: the loader turns them into a one-line WarehouseError.
    errors: tuple[type[BaseException], ...]

    def execute(self, sql: str) -> None: ...
    def query_one(self, sql: str) -> tuple[Any, ...]: ...
    def begin(self) -> None: ...
    def stage(self, files: Sequence[DataFile], *, batch_id: str) -> None:
        """Load the files' rows into the (already created) stage_lines table."""
        ...

    def commit(self) -> None: ...
    def rollback(self) -> None: ...
    def close(self) -> None: ...


class DbApiTransactions:
    """How every backend ends a transaction: its DB-API connection's own calls."""

    _conn: Any

    def commit(self) -> None:
        self._conn.commit()

    def rollback(self) -> None:
        self._conn.rollback()

    def close(self) -> None:
        self._conn.close()


class DuckDBWarehouse(DbApiTransactions):
    dialect = DUCKDB

    def __init__(self, target: WarehouseTarget) -> None:
        import duckdb

        self.errors: tuple[type[BaseException], ...] = (duckdb.Error,)
        folder = os.path.dirname(os.path.abspath(target.path))
        os.makedirs(folder, exist_ok=True)
        try:
            self._conn = duckdb.connect(target.path)
        except duckdb.Error as error:
            raise WarehouseError(f"cannot open DuckDB file {target.path}: {first_line(error)}") from None

    def execute(self, sql: str) -> None:
        self._conn.execute(sql)

    def query_one(self, sql: str) -> tuple[Any, ...]:
        row = self._conn.execute(sql).fetchone()
        return tuple(row) if row is not None else ()

    def begin(self) -> None:
        self._conn.begin()

    def stage(self, files: Sequence[DataFile], *, batch_id: str) -> None:
        if not files:
            return
        columns = ", ".join(STAGE_LINES.column_names)
        if all(not f.path.startswith("s3://") for f in files):
            paths = ", ".join(sql_literal(f.path) for f in files)
            source = f"read_parquet([{paths}], hive_partitioning = false)"
        else:  # no httpfs extension needed: pyarrow reads S3
            import pyarrow.dataset as pads

            filesystem, _, _ = resolve(files[0].path)
            dataset = pads.dataset([resolve(f.path)[1] for f in files], filesystem=filesystem)
            self._conn.register("curated_files", dataset)
            source = "curated_files"
        self._conn.execute(f"INSERT INTO stage_lines ({columns}) SELECT {columns} FROM {source}")


class PostgresWarehouse(DbApiTransactions):
    dialect = POSTGRESQL

    def __init__(self, target: WarehouseTarget) -> None:
        import psycopg

        self.errors: tuple[type[BaseException], ...] = (psycopg.Error,)
        try:
            self._conn = psycopg.connect(target.url, autocommit=False, connect_timeout=10)
        except psycopg.Error as error:
            raise WarehouseError(
                f"cannot connect to PostgreSQL {target.display}: {first_line(error)}"
            ) from None

    def execute(self, sql: str) -> None:
        self._conn.execute(sql.encode("utf-8"))  # bytes: no %-placeholder parsing

    def query_one(self, sql: str) -> tuple[Any, ...]:
        row = self._conn.execute(sql.encode("utf-8")).fetchone()
        return tuple(row) if row is not None else ()

    def begin(self) -> None:
        """psycopg opens a transaction at the first statement."""

    def stage(self, files: Sequence[DataFile], *, batch_id: str) -> None:
        columns = list(STAGE_LINES.column_names)
        statement = f"COPY stage_lines ({', '.join(columns)}) FROM STDIN (FORMAT csv)"
        options = pacsv.WriteOptions(include_header=False)
        with self._conn.cursor() as cursor, cursor.copy(statement.encode("utf-8")) as copy:
            for data_file in files:
                filesystem, inner, _ = resolve(data_file.path)
                with filesystem.open_input_file(inner) as handle:
                    for batch in pq.ParquetFile(handle).iter_batches(ROWS_PER_BATCH, columns=columns):
                        # CSV: null is an unquoted empty field, an empty string is "".
                        buffer = io.BytesIO()
                        pacsv.write_csv(batch, buffer, options)
                        copy.write(buffer.getvalue())
