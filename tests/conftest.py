"""One local Spark session for the whole test run (it takes seconds to start)."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import MappingProxyType

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SAMPLE_CSV = REPO_ROOT / "data" / "raw" / "online_retail_first_9999.csv"
BAD_INPUT_CSV = REPO_ROOT / "tests" / "data" / "bad_input.csv"
# The sample's first line as a raw record (keyed by rules.RAW_COLUMNS).
GOOD_RECORD: Mapping[str, str] = MappingProxyType(
    {
        "InvoiceNo": "536365",
        "StockCode": "85123A",
        "Description": "WHITE HANGING HEART T-LIGHT HOLDER",
        "Quantity": "6",
        "InvoiceDate": "12/1/2010 8:26",
        "UnitPrice": "2.55",
        "CustomerID": "17850",
        "Country": "United Kingdom",
    }
)

os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")

# Fixtures that start a JVM or a server: a test using one is not part of `make test-fast`.
SERVICE_FIXTURES = {"spark", "pg_server", "moto", "moto_server", "make_stack", "aws", "aws_env", "s3"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark the tests that need services (`-m "not services"` is the fast edit-test loop)."""
    for item in items:
        fixtures = set(getattr(item, "fixturenames", ()))
        if fixtures & SERVICE_FIXTURES or "integration" in item.path.parts:
            item.add_marker(pytest.mark.services)


@pytest.fixture(scope="session")
def quality_on():  # type: ignore[no-untyped-def]
    """The committed local config's data-quality settings (the gate on)."""
    from retail_pipeline.config import load_config

    return load_config().quality


@pytest.fixture(scope="session")
def quality_off(quality_on):  # type: ignore[no-untyped-def]
    """The gate off: for tests about something else (Great Expectations costs seconds)."""
    import dataclasses

    return dataclasses.replace(quality_on, enabled=False)


@pytest.fixture(scope="session")
def spark() -> Iterator:
    from retail_pipeline.config import load_config
    from retail_pipeline.session import get_spark

    # The local config's JIT settings: the suite runs hundreds of small jobs, where C2's
    # compile work is the cost those settings cut.
    local = load_config().spark
    session = get_spark(
        "retail-pipeline-tests",
        master="local[2]",
        conf={
            "spark.ui.enabled": "false",
            "spark.sql.shuffle.partitions": "4",
            "spark.sql.session.timeZone": "UTC",
            "spark.driver.memory": "2g",
            "spark.driver.extraJavaOptions": local.conf.get("spark.driver.extraJavaOptions", ""),
        },
        jit_c1_only=local.jit_c1_only,
    )
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()
