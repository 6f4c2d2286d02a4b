"""Fixtures of the warehouse tests: one PostgreSQL server for the session; fresh, empty
warehouses (DuckDB files or PostgreSQL databases) per test. The batch runs they load are the
chain of daily runs (tests/integration/daily_chain.py)."""

from __future__ import annotations

import atexit
import itertools
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.integration.pg_server import INSTALL_HINT, PostgresServer, find_bin_dir


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresServer]:
    bin_dir = find_bin_dir()
    if bin_dir is None:
        message = f"PostgreSQL server binaries not found: {INSTALL_HINT}"
        if os.environ.get("CI"):
            pytest.fail(message)  # CI installs them: a missing server must not pass as a skip
        pytest.skip(message)
    server = PostgresServer(bin_dir)
    atexit.register(server.stop)  # also when the session dies before its teardown
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture(params=["duckdb", "postgresql"])
def new_warehouse(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[], str]:
    """Makes empty warehouses of one kind (each kind a run of the test): DuckDB files or
    PostgreSQL databases."""
    numbers = itertools.count()

    def make() -> str:
        if request.param == "duckdb":
            return f"duckdb:///{tmp_path}/warehouse-{next(numbers)}.duckdb"
        server: PostgresServer = request.getfixturevalue("pg_server")
        return server.create_database()

    return make


@pytest.fixture
def warehouse_url(new_warehouse: Callable[[], str]) -> str:
    """An empty warehouse of each kind the tests run on."""
    return new_warehouse()
