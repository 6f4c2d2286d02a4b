"""Session-wide fixtures: one local Spark session (it takes seconds to start) and one shared,
read-only batch run of the committed sample.

Under pytest-xdist (`make test` runs two workers) each worker has its own Spark session and
servers (free loopback ports, temporary folders); outputs built with `build_once` are built by
the first worker that asks and read by the others.
"""

from __future__ import annotations

import fcntl
import os
import pickle
import stat
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any, TypeVar

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
SERVICE_FIXTURES = {
    "spark",
    "sample_run",
    "daily_runs",
    "pg_server",
    "moto",
    "moto_server",
    "make_stack",
    "aws",
    "aws_env",
    "s3",
}


# The longest test files, in the order xdist hands them out (the Makefile passes
# --no-loadscope-reorder): longest first, so no worker is left alone with one at the end. The
# first builds the chain of daily runs, which is ready when test_daily (third) starts.
LONGEST_FIRST = [
    "integration/warehouse/test_warehouse_daily.py",
    "integration/test_bad_inputs.py",
    "integration/test_daily.py",
    "integration/test_s3a_job.py",
    "integration/stream/test_stream_sample.py",
    "integration/test_packaging.py",
    "integration/test_parser_properties.py",
    "integration/test_quality_gate.py",
]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark the tests that need services (`-m "not services"` is the fast edit-test loop), and
    put the longest files first (a stable sort: the rest keep their order)."""
    for item in items:
        fixtures = set(getattr(item, "fixturenames", ()))
        if fixtures & SERVICE_FIXTURES or "integration" in item.path.parts:
            item.add_marker(pytest.mark.services)
    rank = {name: number for number, name in enumerate(LONGEST_FIRST)}
    tests = Path(__file__).parent
    items.sort(key=lambda item: rank.get(item.path.relative_to(tests).as_posix(), len(rank)))


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


S3A_JARS = ("hadoop-aws-3.3.1.jar", "aws-java-sdk-bundle-1.11.901.jar")


def s3a_jar_paths() -> list[str]:
    """hadoop-aws and the AWS SDK bundle it was built with, from sagemaker-pyspark (make install
    adds it: a test-only arrangement on Spark's Hadoop 3.3.4 client); [] when not installed."""
    import importlib.util

    spec = importlib.util.find_spec("sagemaker_pyspark")
    if spec is None or spec.origin is None:
        return []
    jars = Path(spec.origin).parent / "jars"
    return [str(jars / name) for name in S3A_JARS if (jars / name).is_file()]


@pytest.fixture(scope="session")
def spark() -> Iterator:
    from retail_pipeline.session import get_spark

    conf = {
        "spark.ui.enabled": "false",
        "spark.sql.shuffle.partitions": "4",
        "spark.sql.session.timeZone": "UTC",
        "spark.driver.memory": "2g",
        # C1 only: the suite's hundreds of small jobs never earn C2's compile time back.
        "spark.driver.extraJavaOptions": "-XX:TieredStopAtLevel=1",
    }
    # The S3A connector, where installed (test_s3a_job runs daily runs on s3a:// in this
    # session): on the class path, not spark.jars, which would copy 190 MB at every start.
    jars = s3a_jar_paths()
    if jars:
        conf["spark.driver.extraClassPath"] = ":".join(jars)
    session = get_spark("retail-pipeline-tests", master="local[2]", conf=conf)
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


T = TypeVar("T")


def wait_until(condition: Callable[[], bool], *, seconds: float = 10.0) -> bool:
    """Whether `condition` came true within `seconds` (generous by default: a background
    thread may be starved on a loaded 2-core machine)."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def shared_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """This run's folder that every xdist worker sees (the base temp folder without xdist)."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


def build_once(tmp_path_factory: pytest.TempPathFactory, name: str, build: Callable[[Path], T]) -> T:
    """`build(folder)` once per test run, whichever worker asks first; the others wait and get
    the same (pickled) result. The folder is then frozen (see `freeze`)."""
    root = shared_root(tmp_path_factory) / f"shared-{name}"
    root.mkdir(exist_ok=True)
    result_file = root / "result.pickle"
    with (root / "lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if not result_file.exists():
            result = build(root / "out")
            freeze(root / "out")
            result_file.write_bytes(pickle.dumps(result))
    fingerprints[root / "out"] = fingerprint(root / "out")
    loaded: T = pickle.loads(result_file.read_bytes())
    return loaded


# Frozen outputs by folder, with what they held when frozen (checked after every test).
fingerprints: dict[Path, dict[str, tuple[int, int]]] = {}


def fingerprint(folder: Path) -> dict[str, tuple[int, int]]:
    """Each file's and folder's size and modification time (ns), by path under the folder: a
    stat per entry, cheap enough to check after every test."""
    found: dict[str, tuple[int, int]] = {}
    for path in [folder, *folder.rglob("*")]:
        status = path.stat()
        found[str(path.relative_to(folder))] = (status.st_size, status.st_mtime_ns)
    return found


def freeze(folder: Path) -> None:
    """Read-only modes (a non-root writer fails at once; root ignores modes, so the check
    after each test is what catches it there)."""
    for path in [*folder.rglob("*"), folder]:
        mode = path.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH)
        path.chmod(mode)


def writable_copy(folder: Path, target: Path) -> Path:
    """A copy of a frozen output that a test may change."""
    import shutil

    shutil.copytree(folder, target)
    for path in [target, *target.rglob("*")]:
        path.chmod(path.stat().st_mode | stat.S_IWUSR)
    return target


@pytest.fixture(autouse=True)
def _shared_outputs_unchanged() -> Iterator[None]:
    """A test that changed a shared output fails here, by name, rather than a later test."""
    yield
    for folder, expected in fingerprints.items():
        now = fingerprint(folder)
        if now != expected:
            changed = sorted(k for k in expected.keys() | now.keys() if expected.get(k) != now.get(k))
            fingerprints[folder] = now  # report it once
            pytest.fail(f"this test changed the shared, read-only output {folder}: {changed[:10]}")


@pytest.fixture(scope="session")
def sample_run(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, quality_on: Any
) -> tuple[Any, Path]:
    """One batch run over the committed sample with the local config's quality gate, as `make
    run` does: (its RunReport, its output folder). Read-only: copy it to change anything."""
    from retail_pipeline import batch
    from retail_pipeline.config import BatchSettings

    def build(output: Path) -> tuple[Any, Path]:
        settings = BatchSettings(
            str(SAMPLE_CSV), str(output), encoding="utf-8", quarantine_unterminated_last_line=True
        )
        return batch.run(request.getfixturevalue("spark"), settings, quality=quality_on), output

    return build_once(tmp_path_factory, "sample_run", build)
