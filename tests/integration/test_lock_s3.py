"""The writer lock on S3 (conditional writes) against a moto server process."""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from retail_pipeline.lock import LockLostError, OutputLockedError, output_lock
from retail_pipeline_dev.stream_local.moto import MotoServer
from tests.conftest import wait_until

pytestmark = pytest.mark.integration

KEYS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}
BUCKET = "retail-lake"
RACE_ROUNDS = 10
RACE_TIMEOUT_SECONDS = 30


@pytest.fixture
def s3(moto: MotoServer, monkeypatch: pytest.MonkeyPatch) -> Any:
    """A client on moto; AWS_ENDPOINT_URL is set too, for the lock's own default client."""
    for name, value in {**KEYS, "AWS_ENDPOINT_URL": moto.url}.items():
        monkeypatch.setenv(name, value)
    client = boto3.client("s3")
    if BUCKET not in {bucket["Name"] for bucket in client.list_buckets()["Buckets"]}:
        client.create_bucket(Bucket=BUCKET)
    return client


@pytest.fixture
def prefix() -> str:
    return f"curated/{uuid.uuid4().hex}"


def read_lock(s3: Any, prefix: str) -> dict[str, Any]:
    return json.loads(s3.get_object(Bucket=BUCKET, Key=f"{prefix}/_LOCK")["Body"].read())


def lock_exists(s3: Any, prefix: str) -> bool:
    try:
        s3.head_object(Bucket=BUCKET, Key=f"{prefix}/_LOCK")
    except ClientError as error:
        assert error.response["Error"]["Code"] == "404"
        return False
    return True


def put_lock(s3: Any, prefix: str, *, run_id: str, expires_in: timedelta) -> None:
    """A lock written by hand, as another (possibly killed) run would have left it."""
    now = datetime.now(UTC)
    record = {
        "run_id": run_id,
        "host": "batch-host-7",
        "pid": 4242,
        "acquired_at": (now - timedelta(hours=2)).isoformat(),
        "expires_at": (now + expires_in).isoformat(),
    }
    s3.put_object(Bucket=BUCKET, Key=f"{prefix}/_LOCK", Body=json.dumps(record).encode())


def test_held_lock_is_refused_whichever_s3_scheme_names_the_output(s3: Any, prefix: str) -> None:
    with output_lock(f"s3://{BUCKET}/{prefix}", run_id="run-a", s3_client=s3) as held:
        assert held.location == f"s3://{BUCKET}/{prefix}/_LOCK"
        assert read_lock(s3, prefix)["run_id"] == "run-a"
        for scheme in ("s3", "s3a", "s3n"):
            refused = pytest.raises(OutputLockedError, match=r"locked by run run-a \(host ")
            with refused, output_lock(f"{scheme}://{BUCKET}/{prefix}/", run_id="run-b", s3_client=s3):
                pass
        assert read_lock(s3, prefix)["run_id"] == "run-a"


def test_runs_on_different_prefixes_both_hold(s3: Any, prefix: str) -> None:
    with (
        output_lock(f"s3a://{BUCKET}/{prefix}/a", run_id="run-a", s3_client=s3),
        output_lock(f"s3a://{BUCKET}/{prefix}/b", run_id="run-b", s3_client=s3),
    ):
        assert read_lock(s3, f"{prefix}/a")["run_id"] == "run-a"
        assert read_lock(s3, f"{prefix}/b")["run_id"] == "run-b"


def test_release_deletes_the_lock_object_also_after_an_exception(s3: Any, prefix: str) -> None:
    output = f"s3a://{BUCKET}/{prefix}"
    with output_lock(output, run_id="run-a"):  # boto3's own client, through AWS_ENDPOINT_URL
        assert lock_exists(s3, prefix)
    assert not lock_exists(s3, prefix)
    with pytest.raises(ValueError, match="job failed"), output_lock(output, run_id="run-b", s3_client=s3):
        raise ValueError("job failed")
    assert not lock_exists(s3, prefix)


def test_stale_lock_is_taken_over(
    s3: Any, prefix: str, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(logging.getLogger("retail_pipeline"), "propagate", True)  # configure_logging stops it
    put_lock(s3, prefix, run_id="run-killed", expires_in=timedelta(seconds=-5))
    with output_lock(f"s3://{BUCKET}/{prefix}", run_id="run-b", s3_client=s3):
        assert read_lock(s3, prefix)["run_id"] == "run-b"
    assert any("run-killed" in r.getMessage() and "stale" in r.getMessage() for r in caplog.records)
    assert not lock_exists(s3, prefix)


def test_renewal_rewrites_the_lock_under_its_etag(s3: Any, prefix: str) -> None:
    key = {"Bucket": BUCKET, "Key": f"{prefix}/_LOCK"}

    def expires_at() -> datetime:
        return datetime.fromisoformat(read_lock(s3, prefix)["expires_at"])

    with output_lock(f"s3://{BUCKET}/{prefix}", run_id="run-a", lease_seconds=0.6, s3_client=s3) as held:
        first_etag, first = s3.head_object(**key)["ETag"], expires_at()
        assert wait_until(lambda: expires_at() > first)
        assert s3.head_object(**key)["ETag"] != first_etag
        assert wait_until(lambda: held.expires_at > first)  # set just after the write
        assert wait_until(lambda: datetime.now(UTC) > first + timedelta(seconds=0.1))
        refused = pytest.raises(OutputLockedError)  # past the first lease, still held
        with refused, output_lock(f"s3://{BUCKET}/{prefix}", run_id="run-b", lease_seconds=0.6, s3_client=s3):
            pass
        held.ensure_held()
    assert not lock_exists(s3, prefix)


def test_a_lock_taken_from_us_is_left_in_place_and_reported(s3: Any, prefix: str) -> None:
    lost = pytest.raises(LockLostError, match="run-a")
    with (
        lost,
        output_lock(f"s3://{BUCKET}/{prefix}", run_id="run-a", lease_seconds=0.6, s3_client=s3) as held,
    ):
        put_lock(s3, prefix, run_id="run-b", expires_in=timedelta(minutes=5))
        assert wait_until(lambda: held.lost)  # the renewal's If-Match on our ETag was refused
    assert read_lock(s3, prefix)["run_id"] == "run-b"


def test_unreadable_lock_is_held_for_a_lease_after_it_was_written(s3: Any, prefix: str) -> None:
    s3.put_object(Bucket=BUCKET, Key=f"{prefix}/_LOCK", Body=b"not a lock record")
    output = f"s3://{BUCKET}/{prefix}"
    with (
        pytest.raises(OutputLockedError, match="unreadable lock"),
        output_lock(output, run_id="run-b", s3_client=s3),
    ):
        pass
    time.sleep(1.2)  # LastModified has whole seconds
    with output_lock(output, run_id="run-b", lease_seconds=1, s3_client=s3):
        assert read_lock(s3, prefix)["run_id"] == "run-b"


def _race(output: str, run_id: str, client: Any, gates: tuple[Any, Any], outcomes: dict[str, Any]) -> None:
    """One racing run: try the lock, report, and hold it until every racer has tried."""
    start, done = gates
    start.wait(RACE_TIMEOUT_SECONDS)
    try:
        with output_lock(output, run_id=run_id, renew=False, s3_client=client):
            outcomes[run_id] = ("won", None)
            done.wait(RACE_TIMEOUT_SECONDS)
    except OutputLockedError as refused:
        outcomes[run_id] = ("refused", refused.holder["run_id"] if refused.holder else None)
        done.wait(RACE_TIMEOUT_SECONDS)
    except Exception as error:
        outcomes[run_id] = (f"error: {error!r}", None)
        done.wait(RACE_TIMEOUT_SECONDS)


@pytest.mark.parametrize(("racers", "stale"), [(2, False), (3, True)], ids=["free", "stale"])
def test_threads_racing_for_one_output_exactly_one_wins(
    s3: Any, prefix: str, racers: int, stale: bool
) -> None:
    clients = [boto3.client("s3") for _ in range(racers)]  # made here: client creation is not thread-safe
    for round_number in range(RACE_ROUNDS):
        round_prefix = f"{prefix}/round-{round_number}"
        if stale:
            put_lock(s3, round_prefix, run_id="run-killed", expires_in=timedelta(seconds=-1))
        start, done = threading.Barrier(racers), threading.Barrier(racers)
        outcomes: dict[str, tuple[str, str | None]] = {}
        output = f"s3://{BUCKET}/{round_prefix}"
        threads = [
            threading.Thread(
                target=_race, args=(output, f"run-{round_number}-{n}", client, (start, done), outcomes)
            )
            for n, client in enumerate(clients)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(RACE_TIMEOUT_SECONDS)
        winners = [run_id for run_id, (outcome, _) in outcomes.items() if outcome == "won"]
        assert len(winners) == 1, outcomes
        losers = [outcome for outcome in outcomes.values() if outcome[0] != "won"]
        assert losers == [("refused", winners[0])] * (racers - 1), outcomes
        assert not lock_exists(s3, round_prefix)
