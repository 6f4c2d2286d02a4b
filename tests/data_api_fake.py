"""A Redshift Data API stand-in for tests: the `redshift-data` client's calls (their parameters
checked against botocore's model of the service), with each session a DuckDB connection that
runs the statements for real.

What it translates from Redshift's SQL: the DDL's placement clauses (DISTSTYLE, SORTKEY,
ENCODE), `LOCK`, OCTET_LENGTH, and `COPY ... FROM '<manifest>' ... MANIFEST`, which reads the
manifest and its Parquet files from S3 (boto3, e.g. against moto) into the table. Everything
else (the merge, the checks, BEGIN/COMMIT/ROLLBACK, temporary tables) is the loader's own SQL.
"""

from __future__ import annotations

import io
import json
import re
import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import boto3
import duckdb
import pyarrow.parquet as pq
from botocore.validate import validate_parameters

PLACEMENT = re.compile(r"\n(DISTSTYLE|DISTKEY|COMPOUND SORTKEY|SORTKEY|ENCODE AUTO)[^\n]*", re.MULTILINE)
COPY = re.compile(r"^COPY (\w+)\nFROM '([^']+)'\nIAM_ROLE '[^']+'\nFORMAT AS PARQUET\nMANIFEST$")


class DataApiValidationError(Exception):
    """What the service answers a malformed request with (ValidationException)."""


class FakeDataApi:
    def __init__(self, database: duckdb.DuckDBPyConnection | None = None) -> None:
        self.database = database or duckdb.connect()
        self.model = boto3.client("redshift-data", region_name="us-east-1").meta.service_model
        self.sessions: dict[str, duckdb.DuckDBPyConnection] = {}
        self.statements: dict[str, dict[str, Any]] = {}
        self.requests: list[dict[str, Any]] = []
        self.fail_on: str | None = None  # a statement's start that fails

    def _check(self, operation: str, params: dict[str, Any]) -> None:
        validate_parameters(params, self.model.operation_model(operation).input_shape)

    def execute_statement(self, **params: Any) -> dict[str, Any]:
        self._check("ExecuteStatement", params)
        self.requests.append(params)
        if "SessionId" in params:
            if {"WorkgroupName", "ClusterIdentifier", "Database", "SecretArn"} & set(params):
                raise DataApiValidationError("a statement in a session names no connection parameters")
            session_id = params["SessionId"]
            if session_id not in self.sessions:
                raise DataApiValidationError(f"session {session_id} does not exist")
        else:
            if "Database" not in params or not ({"WorkgroupName", "ClusterIdentifier"} & set(params)):
                raise DataApiValidationError("a new session needs a database and a workgroup or cluster")
            session_id = str(uuid.uuid4()) if params.get("SessionKeepAliveSeconds") else ""
            if session_id:
                self.sessions[session_id] = self.database.cursor()
        connection = self.sessions.get(session_id) or self.database.cursor()
        statement_id = str(uuid.uuid4())
        self.statements[statement_id] = self._run(connection, params["Sql"])
        answer = {"Id": statement_id}
        return answer | ({"SessionId": session_id} if session_id else {})

    def _run(self, connection: duckdb.DuckDBPyConnection, sql: str) -> dict[str, Any]:
        if self.fail_on and sql.startswith(self.fail_on):
            return {"Status": "FAILED", "Error": f"ERROR: {self.fail_on} failed\n  Detail: injected"}
        try:
            rows = self._translated(connection, sql)
        except duckdb.Error as error:
            return {"Status": "FAILED", "Error": f"ERROR: {error}"}
        return {"Status": "FINISHED", "Rows": rows}

    def _translated(self, connection: duckdb.DuckDBPyConnection, sql: str) -> list[tuple[Any, ...]] | None:
        if sql.startswith("LOCK "):
            return None
        copy = COPY.match(sql)
        if copy:
            self._copy(connection, table=copy.group(1), manifest=copy.group(2))
            return None
        sql = PLACEMENT.sub("", sql).replace("OCTET_LENGTH(", "STRLEN(")
        cursor = connection.execute(sql)
        return cursor.fetchall() if cursor.description else None

    def _copy(self, connection: duckdb.DuckDBPyConnection, *, table: str, manifest: str) -> None:
        s3 = boto3.client("s3")
        bucket, _, key = manifest.removeprefix("s3://").partition("/")
        entries = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())["entries"]
        for entry in entries:
            bucket, _, key = entry["url"].removeprefix("s3://").partition("/")
            body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
            assert len(body) == entry["meta"]["content_length"]
            parquet = pq.read_table(io.BytesIO(body))  # noqa: F841 - read by DuckDB by its name
            connection.execute(f"INSERT INTO {table} SELECT * FROM parquet")

    def describe_statement(self, **params: Any) -> dict[str, Any]:
        self._check("DescribeStatement", params)
        statement = self.statements[params["Id"]]
        answer = {
            "Id": params["Id"],
            "Status": statement["Status"],
            "HasResultSet": bool(statement.get("Rows")),
        }
        return answer | ({"Error": statement["Error"]} if "Error" in statement else {})

    def get_statement_result(self, **params: Any) -> dict[str, Any]:
        self._check("GetStatementResult", params)
        rows = self.statements[params["Id"]].get("Rows") or []
        return {"Records": [[field(value) for value in row] for row in rows], "TotalNumRows": len(rows)}

    def cancel_statement(self, **params: Any) -> dict[str, Any]:
        self._check("CancelStatement", params)
        return {"Status": True}


def field(value: Any) -> dict[str, Any]:
    """A value as the Data API's Field: DECIMAL and dates come back as strings."""
    if value is None:
        return {"isNull": True}
    if isinstance(value, bool):
        return {"booleanValue": value}
    if isinstance(value, int):
        return {"longValue": value}
    if isinstance(value, float):
        return {"doubleValue": value}
    if isinstance(value, Decimal | date | datetime):
        return {"stringValue": str(value)}
    return {"stringValue": str(value)}
