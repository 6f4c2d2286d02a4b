"""The writer lock on local folders: one run per output, a renewed lease, stale locks taken over."""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import socket
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from retail_pipeline import lock
from retail_pipeline.lock import LOCK_NAME, LockError, LockLostError, OutputLockedError, output_lock
from tests.conftest import wait_until

RACE_ROUNDS = 20
RACE_TIMEOUT_SECONDS = 30


def read_lock(output: Path) -> dict[str, Any]:
    return json.loads((output / LOCK_NAME).read_text())


def write_lock(
    output: Path, *, run_id: str, expires_in: timedelta, host: str = "batch-host-7", pid: int = 4242
) -> None:
    """A lock written by hand, as another (possibly killed) run would have left it."""
    now = datetime.now(UTC)
    output.mkdir(parents=True, exist_ok=True)
    record = {
        "run_id": run_id,
        "host": host,
        "pid": pid,
        "acquired_at": (now - timedelta(hours=2)).isoformat(),
        "expires_at": (now + expires_in).isoformat(),
    }
    (output / LOCK_NAME).write_text(json.dumps(record))


def test_second_run_on_the_same_output_is_refused_naming_the_holder(tmp_path: Path) -> None:
    output = tmp_path / "curated"
    with output_lock(str(output), run_id="run-a") as held:
        with pytest.raises(OutputLockedError) as refused, output_lock(str(output), run_id="run-b"):
            pytest.fail("a second run entered a held output")
        assert read_lock(output)["run_id"] == "run-a"
    message = str(refused.value)
    expected = ["run run-a", str(output), socket.gethostname(), f"pid {os.getpid()}", "wait for"]
    assert all(part in message for part in expected), message
    assert held.acquired_at.strftime("%Y-%m-%d %H:%M:%S") in message
    assert held.expires_at.strftime("%Y-%m-%d %H:%M:%S") in message
    assert "\n" not in message
    assert refused.value.holder is not None and refused.value.holder["run_id"] == "run-a"


def test_lock_records_the_holder_and_its_lease(tmp_path: Path) -> None:
    output = tmp_path / "curated"
    with output_lock(str(output), run_id="run-a", lease_seconds=600) as held:
        record = read_lock(output)
    assert record["run_id"] == "run-a" and record["pid"] == os.getpid()
    assert record["host"] == socket.gethostname()
    acquired, expires = (datetime.fromisoformat(record[key]) for key in ("acquired_at", "expires_at"))
    assert acquired.utcoffset() == timedelta(0)
    assert expires - acquired == timedelta(seconds=600)
    assert (held.acquired_at, held.expires_at) == (acquired, expires)


def test_runs_on_different_outputs_both_hold(tmp_path: Path) -> None:
    with output_lock(str(tmp_path / "a"), run_id="run-a"), output_lock(str(tmp_path / "b"), run_id="run-b"):
        assert read_lock(tmp_path / "a")["run_id"] == "run-a"
        assert read_lock(tmp_path / "b")["run_id"] == "run-b"


def test_release_removes_the_lock_and_frees_the_output(tmp_path: Path) -> None:
    output = tmp_path / "curated"
    with output_lock(str(output), run_id="run-a"):
        pass
    assert not (output / LOCK_NAME).exists()
    assert os.listdir(output) == []  # no set-aside copies left behind
    with output_lock(str(output), run_id="run-b"):
        assert read_lock(output)["run_id"] == "run-b"


def test_release_after_an_exception_in_the_run(tmp_path: Path) -> None:
    output = tmp_path / "curated"
    with pytest.raises(ValueError, match="job failed"), output_lock(str(output), run_id="run-a"):
        raise ValueError("job failed")
    assert not (output / LOCK_NAME).exists()


def test_stale_lock_is_taken_over_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(logging.getLogger("retail_pipeline"), "propagate", True)  # configure_logging stops it
    output = tmp_path / "curated"
    write_lock(output, run_id="run-killed", expires_in=timedelta(seconds=-5))
    warnings = caplog.at_level(logging.WARNING, logger="retail_pipeline.lock")
    with warnings, output_lock(str(output), run_id="run-b"):
        assert read_lock(output)["run_id"] == "run-b"
    assert any("run-killed" in r.getMessage() and "stale" in r.getMessage() for r in caplog.records)
    assert os.listdir(output) == []


def test_a_lock_whose_holder_on_this_host_is_dead_is_taken_over_at_once(tmp_path: Path) -> None:
    """kill -9 leaves the lock behind; on the same machine the next run need not wait a lease."""
    finished = multiprocessing.get_context("fork").Process(target=int)
    finished.start()
    finished.join()
    output = tmp_path / "curated"
    host = socket.gethostname()
    write_lock(
        output, run_id="run-killed", expires_in=timedelta(minutes=30), host=host, pid=finished.pid or 0
    )
    with output_lock(str(output), run_id="run-b"):
        assert read_lock(output)["run_id"] == "run-b"
    # A live holder on this host is still refused.
    write_lock(output, run_id="run-alive", expires_in=timedelta(minutes=30), host=host, pid=os.getpid())
    with pytest.raises(OutputLockedError, match="run-alive"), output_lock(str(output), run_id="run-c"):
        pass


def test_live_lock_written_by_another_host_is_refused(tmp_path: Path) -> None:
    output = tmp_path / "curated"
    write_lock(output, run_id="run-elsewhere", expires_in=timedelta(minutes=5))
    refused = pytest.raises(OutputLockedError, match=r"run run-elsewhere \(host batch-host-7, pid 4242\)")
    with refused, output_lock(str(output), run_id="run-b"):
        pass
    assert read_lock(output)["run_id"] == "run-elsewhere"


def test_renewal_moves_the_lease_forward(tmp_path: Path) -> None:
    output = tmp_path / "curated"

    def expires_at() -> datetime:
        return datetime.fromisoformat(read_lock(output)["expires_at"])

    with output_lock(str(output), run_id="run-a", lease_seconds=0.6) as held:
        first = expires_at()
        assert wait_until(lambda: expires_at() > first)
        assert wait_until(lambda: held.expires_at > first)  # set just after the write
        assert wait_until(lambda: datetime.now(UTC) > first + timedelta(seconds=0.1))
        # Past the first lease: still held, so a second run is refused rather than taking over.
        with pytest.raises(OutputLockedError), output_lock(str(output), run_id="run-b", lease_seconds=0.6):
            pass
        held.ensure_held()
    assert not (output / LOCK_NAME).exists()


def test_without_renewal_an_expired_lease_is_taken_and_never_removed_by_us(tmp_path: Path) -> None:
    output = tmp_path / "curated"
    lost = pytest.raises(LockLostError, match="run-a")
    with lost, output_lock(str(output), run_id="run-a", lease_seconds=0.2, renew=False) as held:
        time.sleep(0.3)
        with pytest.raises(LockLostError):
            held.ensure_held()
        with output_lock(str(output), run_id="run-b", renew=False):
            pass
        write_lock(output, run_id="run-c", expires_in=timedelta(minutes=5))
    assert read_lock(output)["run_id"] == "run-c"


def test_release_never_removes_another_runs_lock(tmp_path: Path) -> None:
    output = tmp_path / "curated"
    with pytest.raises(LockLostError), output_lock(str(output), run_id="run-a", renew=False):
        (output / LOCK_NAME).unlink()  # an operator removed it, then another run took the output
        write_lock(output, run_id="run-b", expires_in=timedelta(minutes=5))
    assert read_lock(output)["run_id"] == "run-b"


def test_renewal_notices_a_lock_taken_from_it(tmp_path: Path) -> None:
    output = tmp_path / "curated"
    with pytest.raises(LockLostError), output_lock(str(output), run_id="run-a", lease_seconds=0.3) as held:
        (output / LOCK_NAME).unlink()
        write_lock(output, run_id="run-b", expires_in=timedelta(minutes=5))
        assert wait_until(lambda: held.lost)
        with pytest.raises(LockLostError):
            held.ensure_held()
    assert read_lock(output)["run_id"] == "run-b"


def test_unreadable_lock_is_held_until_its_mtime_plus_lease(tmp_path: Path) -> None:
    output = tmp_path / "curated"
    output.mkdir()
    (output / LOCK_NAME).write_text('{"run_id": "run-a", "ho')
    with pytest.raises(OutputLockedError, match="unreadable lock"), output_lock(str(output), run_id="run-b"):
        pass
    an_hour_ago = time.time() - 3601
    os.utime(output / LOCK_NAME, (an_hour_ago, an_hour_ago))
    with output_lock(str(output), run_id="run-b", lease_seconds=3600):
        assert read_lock(output)["run_id"] == "run-b"


def test_a_slow_taker_leaves_the_lock_that_replaced_the_stale_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A taker that judged a lock stale acts only after another run took the output over; a third
    run slips in at the first rename it makes. The fast run's lock must survive all of it."""
    output = tmp_path / "curated"
    write_lock(output, run_id="run-killed", expires_in=timedelta(seconds=-5))
    slow_taker = lock._store_for(str(output))
    stale = slow_taker.read()
    assert stale is not None
    real_rename, slipped_in = os.rename, threading.Event()

    def rename_then_a_third_run_creates(source: str, target: str) -> None:
        real_rename(source, target)
        if not slipped_in.is_set() and not (output / LOCK_NAME).exists():
            slipped_in.set()
            write_lock(output, run_id="run-third", expires_in=timedelta(minutes=5))

    with output_lock(str(output), run_id="run-fast", renew=False):
        monkeypatch.setattr(lock.os, "rename", rename_then_a_third_run_creates)
        assert not slow_taker.delete(stale.token)
        assert read_lock(output)["run_id"] == "run-fast"
        monkeypatch.undo()
    assert os.listdir(output) == []


@pytest.mark.parametrize("form", ["relative", "absolute", "file:", "file://"])
def test_local_output_forms_lock_inside_the_output_folder(
    form: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "out" / "curated"
    output = {
        "relative": "out/curated",
        "absolute": str(folder),
        "file:": f"file:{folder}",
        "file://": f"file://{folder}",
    }[form]
    with output_lock(output, run_id="run-a") as held:
        assert read_lock(folder)["run_id"] == "run-a"  # the folder was created for the lock
        assert held.location == str(folder / LOCK_NAME)
    assert not (folder / LOCK_NAME).exists()


def test_unsupported_scheme_is_refused_by_name(tmp_path: Path) -> None:
    with pytest.raises(LockError, match=r"hdfs://"), output_lock("hdfs://namenode/curated", run_id="run-a"):
        pass


def _race(output: str, run_id: str, start: Any, done: Any, results: Any) -> None:
    """One racing run: try the lock, report, and hold it until every racer has tried."""
    start.wait(RACE_TIMEOUT_SECONDS)
    try:
        with output_lock(output, run_id=run_id, renew=False):
            results.put((run_id, "won", None))
            done.wait(RACE_TIMEOUT_SECONDS)
    except OutputLockedError as refused:
        results.put((run_id, "refused", refused.holder["run_id"] if refused.holder else None))
        done.wait(RACE_TIMEOUT_SECONDS)
    except Exception as error:
        results.put((run_id, f"error: {error!r}", None))
        done.wait(RACE_TIMEOUT_SECONDS)


@pytest.mark.parametrize(("racers", "stale"), [(2, False), (3, True)], ids=["free", "stale"])
def test_processes_racing_for_one_output_exactly_one_wins(racers: int, stale: bool, tmp_path: Path) -> None:
    context = multiprocessing.get_context("fork")
    for round_number in range(RACE_ROUNDS):
        output = tmp_path / f"round-{round_number}"
        if stale:
            write_lock(output, run_id="run-killed", expires_in=timedelta(seconds=-1))
        start, done, results = context.Barrier(racers), context.Barrier(racers), context.Queue()
        processes = [
            context.Process(target=_race, args=(str(output), f"run-{round_number}-{n}", start, done, results))
            for n in range(racers)
        ]
        for process in processes:
            process.start()
        outcomes = [results.get(timeout=RACE_TIMEOUT_SECONDS) for _ in processes]
        for process in processes:
            process.join(RACE_TIMEOUT_SECONDS)
            assert process.exitcode == 0
        winners = [run_id for run_id, outcome, _ in outcomes if outcome == "won"]
        assert len(winners) == 1, outcomes
        losers = [(outcome, holder) for _, outcome, holder in outcomes if outcome != "won"]
        assert losers == [("refused", winners[0])] * (racers - 1), outcomes
        assert os.listdir(output) == [], f"round {round_number} left {os.listdir(output)}"
