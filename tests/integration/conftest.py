"""Fixtures shared by the integration tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from retail_pipeline_dev.stream_local.moto import MotoServer
from tests.conftest import build_once
from tests.integration.daily_chain import DailyRuns, build_daily_runs
from tests.integration.job_process import write_job_archive


@pytest.fixture(scope="session")
def daily_runs(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> DailyRuns:
    """The chain of daily runs (daily_chain.py), built once per test run (shared by xdist
    workers) and read-only, as `sample_run`."""
    return build_once(
        tmp_path_factory, "daily_runs", lambda root: build_daily_runs(request.getfixturevalue("spark"), root)
    )


@pytest.fixture(scope="session")
def job_archive(tmp_path_factory: pytest.TempPathFactory) -> bool:
    """The JVM archive the job's processes start from, written once per test run by one
    worker when it is missing (job_process.write_job_archive)."""
    return build_once(tmp_path_factory, "job_archive", write_job_archive)


@pytest.fixture(scope="module")
def moto() -> Iterator[MotoServer]:
    """A moto server (a separate process, on loopback) for the tests of one module."""
    with MotoServer() as server:
        yield server
