"""Warehouse URLs: schemes, credentials from the URL or the environment, secrets masked."""

from __future__ import annotations

import pytest

from retail_pipeline.warehouse import WarehouseInputError
from retail_pipeline.warehouse.urls import mask_password, parse_warehouse_url

ROLE = "arn:aws:iam::123456789012:role/retail-copy"


def test_duckdb_paths_follow_sqlalchemy_slashes() -> None:
    assert (
        parse_warehouse_url("duckdb:///data/output/warehouse.duckdb").path == "data/output/warehouse.duckdb"
    )
    assert parse_warehouse_url("duckdb:////tmp/w.duckdb").path == "/tmp/w.duckdb"
    with pytest.raises(WarehouseInputError, match="must name a file"):
        parse_warehouse_url("duckdb://")


def test_postgres_urls_pass_through_to_libpq() -> None:
    target = parse_warehouse_url("postgres://loader:pw@db.internal:6432/retail?sslmode=require")
    assert (target.scheme, target.host, target.database) == ("postgresql", "db.internal", "retail")
    assert target.url.endswith("?sslmode=require")  # libpq reads the rest, PGPASSWORD included


def test_redshift_settings_come_from_the_url_or_the_environment() -> None:
    from_url = parse_warehouse_url(
        f"redshift://loader:pw@cluster.example:5439/dev?iam_role={ROLE}&manifest_dir=s3://b/m", environ={}
    )
    assert (from_url.user, from_url.password, from_url.port) == ("loader", "pw", 5439)
    assert dict(from_url.params) == {"iam_role": ROLE, "manifest_dir": "s3://b/m"}

    environ = {"REDSHIFT_IAM_ROLE": ROLE, "PGPASSWORD": "from-env", "REDSHIFT_USER": "etl"}
    from_env = parse_warehouse_url("redshift://cluster.example/dev", environ=environ)
    assert (from_env.user, from_env.password, from_env.port) == ("etl", "from-env", 5439)
    assert from_env.params["iam_role"] == ROLE


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("redshift://loader@cluster.example/dev", "lacks iam_role"),
        (f"redshift://cluster.example/dev?iam_role={ROLE}", "lacks user"),
        (f"redshift://loader@cluster.example/dev?iam_role={ROLE}&region=eu", "parameter 'region' is unknown"),
        ("sqlite:///x.db", "must start with one of duckdb://, postgresql://, redshift://"),
        ("postgresql://h:notaport/db", "is malformed"),
    ],
)
def test_unusable_urls_are_refused_with_the_reason(url: str, message: str) -> None:
    with pytest.raises(WarehouseInputError, match=message):
        parse_warehouse_url(url, environ={})


def test_passwords_never_show() -> None:
    target = parse_warehouse_url(f"redshift://loader:s3cret@cluster.example/dev?iam_role={ROLE}", environ={})
    assert "s3cret" not in target.display and "s3cret" not in repr(target)
    assert mask_password("postgresql://u:s3cret@h/db") == "postgresql://u:***@h/db"
    with pytest.raises(WarehouseInputError) as refused:
        parse_warehouse_url("mysql://u:s3cret@h/db")
    assert "s3cret" not in str(refused.value)
