"""The Redshift Data API connection: its URL, its session, how statements end."""

from __future__ import annotations

from typing import Any, ClassVar

import pytest

from retail_pipeline.warehouse import data_api
from retail_pipeline.warehouse.errors import WarehouseInputError
from tests.data_api_fake import FakeDataApi

ROLE = "arn:aws:iam::123456789012:role/retail-copy"


def test_a_workgroup_url_with_iam_and_one_with_a_secret() -> None:
    iam = data_api.parse_data_api_url(
        "redshift-data://retail-dev/retail", environ={"REDSHIFT_IAM_ROLE": ROLE}
    )
    assert iam.connection() == {"Database": "retail", "WorkgroupName": "retail-dev"}
    assert iam.display == "redshift-data://retail-dev/retail"
    secret = "arn:aws:secretsmanager:us-east-1:123456789012:secret:load-AbCdEf"
    url = f"redshift-data://retail-dev/retail?iam_role={ROLE}&secret_arn={secret}"
    assert data_api.parse_data_api_url(url, environ={}).connection()["SecretArn"] == secret
    cluster = data_api.parse_data_api_url(
        f"redshift-data://cluster:prod-1/dev?iam_role={ROLE}&db_user=loader", environ={}
    )
    assert cluster.connection() == {"Database": "dev", "ClusterIdentifier": "prod-1", "DbUser": "loader"}


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("redshift-data://retail-dev/retail", "iam_role"),
        (f"redshift-data://retail-dev/?iam_role={ROLE}", "database"),
        (f"redshift-data://cluster:prod-1/dev?iam_role={ROLE}", "secret_arn or db_user"),
        (f"redshift-data://retail-dev/retail?iam_role={ROLE}&password=x", "'password' is unknown"),
        ("redshift://retail-dev/retail", "is not redshift-data://"),
    ],
)
def test_a_url_that_cannot_work_is_refused_before_any_call(url: str, message: str) -> None:
    with pytest.raises(WarehouseInputError, match=message):
        data_api.parse_data_api_url(url, environ={})


def warehouse(fake: Any) -> data_api.DataApiWarehouse:
    target = data_api.parse_data_api_url(f"redshift-data://retail-dev/retail?iam_role={ROLE}", environ={})
    return data_api.DataApiWarehouse(target, client=fake, poll_seconds=0.001)


def test_statements_share_one_session_so_temporary_tables_and_transactions_span_calls() -> None:
    fake = FakeDataApi()
    connection = warehouse(fake)
    connection.begin()
    connection.execute("CREATE TEMPORARY TABLE t (n INTEGER, price DECIMAL(12,4), name VARCHAR)")
    connection.execute("INSERT INTO t VALUES (1, 2.5, 'a'), (2, NULL, 'b')")
    assert connection.query_one("SELECT COUNT(*), SUM(price), MAX(name), MIN(price) FROM t") == (
        2,
        "2.5000",
        "b",
        "2.5000",
    )
    connection.rollback()
    assert [r["Sql"] for r in fake.requests][-1] == "ROLLBACK"
    assert len(fake.sessions) == 1 and all("SessionId" in r for r in fake.requests[1:])


def test_a_failed_statement_raises_redshift_s_first_line() -> None:
    fake = FakeDataApi()
    fake.fail_on = "COPY"
    with pytest.raises(data_api.DataApiError, match=r"^failed: ERROR: COPY failed \(COPY stage_lines\)$"):
        warehouse(fake).execute("COPY stage_lines\nFROM 's3://x/m.manifest'")


def test_a_statement_that_runs_too_long_is_cancelled() -> None:
    class Stuck(FakeDataApi):
        cancelled: ClassVar[list[str]] = []

        def describe_statement(self, **params: Any) -> dict[str, Any]:
            return {"Id": params["Id"], "Status": "STARTED"}

        def cancel_statement(self, **params: Any) -> dict[str, Any]:
            self.cancelled.append(params["Id"])
            return {"Status": True}

    fake = Stuck()
    connection = warehouse(fake)
    connection.timeout_seconds = 0.01
    with pytest.raises(data_api.DataApiError, match="cancelled"):
        connection.execute("SELECT 1")
    assert len(fake.cancelled) == 1


def test_result_fields_become_python_values() -> None:
    assert [
        data_api.field_value(f) for f in ({"isNull": True}, {"longValue": 3}, {"stringValue": "1.5"})
    ] == [None, 3, "1.5"]
