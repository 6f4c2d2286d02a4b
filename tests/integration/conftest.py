"""Fixtures shared by the integration tests."""

from __future__ import annotations

import pytest

from tests.conftest import build_once
from tests.integration.daily_chain import DailyRuns, build_daily_runs


@pytest.fixture(scope="session")
def daily_runs(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> DailyRuns:
    """The chain of daily runs (daily_chain.py), built once per test run (shared by xdist
    workers) and read-only, as `sample_run`."""
    return build_once(
        tmp_path_factory, "daily_runs", lambda root: build_daily_runs(request.getfixturevalue("spark"), root)
    )
