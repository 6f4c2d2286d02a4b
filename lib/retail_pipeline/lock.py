"""One writer per output folder: a lock object `<output>/_LOCK` held under a renewed lease.

`with output_lock(output, run_id=...) as lock:` refuses a second run on the same output with
OutputLockedError while the first holds the lock. A daemon thread pushes the lease forward every
lease/3; a lock whose lease has passed (its holder was killed) is taken over. Local folders (paths,
file: URIs) use O_EXCL files; S3 (s3://, s3a://, s3n://) uses conditional writes: If-None-Match: *
to create, If-Match on the held ETag to renew and to delete. The '_' prefix keeps Spark's readers
and the job's input listing off the lock.

A lease cannot stop a holder that stalls past it from writing on: `lock.ensure_held()` before
publishing, and LockLostError when the block ends, make that case loud. Lease times come from each
writer's clock: hosts that share an output need synchronised clocks.
"""

from __future__ import annotations

import contextvars
import dataclasses
import hashlib
import json
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol
from urllib.parse import urlsplit

logger = logging.getLogger(__name__)

LOCK_NAME = "_LOCK"
S3_SCHEMES = ("s3", "s3a", "s3n")
ACQUIRE_ATTEMPTS = 8  # a lock released or taken by a racer while we looked: look again, backing off
YOUNG_SECONDS = 1.0  # an unreadable lock this young may be one a racer is still writing
STUCK_SECONDS = 60.0  # a removal takes milliseconds: a marker this old was left by a killed run
HELD = ("PreconditionFailed", "ConditionalRequestConflict")  # S3's refusals of a conditional write
RECORD_KEYS = ("run_id", "host", "pid", "acquired_at", "expires_at")


class LockError(RuntimeError):
    """The output's lock could not be taken, kept or given back."""


class OutputLockedError(LockError):
    """Another run holds the output's lock; `holder` is its record (None when unreadable)."""

    def __init__(self, message: str, *, output: str, holder: dict[str, Any] | None, until: datetime) -> None:
        super().__init__(message)
        self.output, self.holder, self.until = output, holder, until


class LockLostError(LockError):
    """Our lock was taken over or removed while this run held it."""


@dataclass
class LockInfo:
    """The lock this run holds; `expires_at` moves forward with each renewal."""

    output: str
    location: str
    run_id: str
    host: str
    pid: int
    acquired_at: datetime
    expires_at: datetime
    lost: bool = False

    def ensure_held(self) -> None:
        """Raise LockLostError when the lock may no longer be ours (call it before publishing)."""
        if self.lost or self.expires_at <= _now():
            raise LockLostError(
                f"lock {self.location} of run {self.run_id} was lost (lease until "
                f"{_show(self.expires_at)}): another run may have written to {self.output}"
            )

    def record(self) -> bytes:
        fields = {"run_id": self.run_id, "host": self.host, "pid": self.pid}
        times = {"acquired_at": self.acquired_at.isoformat(), "expires_at": self.expires_at.isoformat()}
        return json.dumps({**fields, **times}).encode("utf-8")


@dataclass(frozen=True)
class _Found:
    body: bytes
    token: Any  # local: (device, inode, body); S3: the ETag
    modified: datetime


class _Store(Protocol):
    location: str

    def create(self, body: bytes) -> Any | None: ...  # the new lock's token; None when one exists
    def read(self) -> _Found | None: ...
    def replace(self, token: Any, body: bytes) -> Any | None: ...  # None: the lock is not `token`
    def delete(self, token: Any) -> bool: ...  # removes the lock only while it is `token`


class _LocalStore:
    """Residual race: a holder renewing after its lease passed can lose to a taker (it learns at
    its next renewal: `lost`); a taker killed mid-takeover blocks that lock for STUCK_SECONDS."""

    def __init__(self, folder: str) -> None:
        self._folder = os.path.abspath(folder)
        self.location = os.path.join(self._folder, LOCK_NAME)

    def create(self, body: bytes) -> Any | None:
        os.makedirs(self._folder, exist_ok=True)
        try:
            fd = os.open(self.location, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return None
        try:
            os.write(fd, body)
            os.fsync(fd)
            return (*_inode(fd), body)
        except BaseException:
            os.unlink(self.location)  # just created with O_EXCL: still ours
            raise
        finally:
            os.close(fd)

    def read(self) -> _Found | None:
        return _read_file(self.location)

    def replace(self, token: Any, body: bytes) -> Any | None:
        # Written in place through our own file, checked by content (inode numbers are reused) and
        # held open meanwhile; takers rename, never write, so this cannot clobber a lock of theirs.
        try:
            fd = os.open(self.location, os.O_RDWR)
        except FileNotFoundError:
            return None
        try:
            if _inode(fd) != token[:2] or os.pread(fd, len(token[2]) + 1, 0) != token[2]:
                return None
            os.pwrite(fd, body, 0)
            os.ftruncate(fd, len(body))
            os.fsync(fd)
            current = _read_file(self.location)
            in_place = current is not None and current.token[:2] == token[:2]
        finally:
            os.close(fd)
        return (*token[:2], body) if in_place else None

    def delete(self, token: Any) -> bool:
        # One remover per lock version (an O_EXCL marker named after it), so no racer can remove
        # the fresh lock another has just created; checked again once set aside, in case a late
        # holder renewed in place meanwhile (then it is linked back: link never overwrites).
        digest = hashlib.sha256(token[2]).hexdigest()[:16]
        marker = f"{self.location}.removing-{token[0]}-{token[1]}-{digest}"
        if not _claim(marker):
            return False
        try:
            current = _read_file(self.location)
            if current is None or current.token != token:
                return False
            aside = f"{self.location}.{uuid.uuid4().hex}"
            os.rename(self.location, aside)
            moved = _read_file(aside)
            if moved is not None and moved.token == token:
                os.unlink(aside)
                return True
            try:
                os.link(aside, self.location)
            except FileExistsError:
                logger.warning("lock %s was replaced while set aside; dropped the set-aside copy", aside)
            os.unlink(aside)
            return False
        finally:
            os.unlink(marker)


def _claim(marker: str) -> bool:
    """Create `marker` exclusively; one left by a killed remover is cleared after STUCK_SECONDS."""
    for _ in range(2):
        try:
            os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
            return True
        except FileExistsError:
            try:
                if time.time() - os.stat(marker).st_mtime < STUCK_SECONDS:
                    return False
                os.unlink(marker)
            except FileNotFoundError:
                pass
    return False


def _inode(fd: int) -> tuple[int, int]:
    status = os.fstat(fd)
    return status.st_dev, status.st_ino


def _read_file(path: str) -> _Found | None:
    try:
        with open(path, "rb") as lock_file:
            body = lock_file.read()
            status = os.fstat(lock_file.fileno())
    except FileNotFoundError:
        return None
    modified = datetime.fromtimestamp(status.st_mtime, UTC)
    return _Found(body, (status.st_dev, status.st_ino, body), modified)


class _S3Store:
    """Every write is conditional (If-None-Match / If-Match), so S3 leaves no race of its own."""

    def __init__(self, bucket: str, key: str, client: Any | None) -> None:
        if client is None:
            import boto3

            client = boto3.client("s3")  # AWS_ENDPOINT_URL in the environment points it elsewhere
        from botocore.exceptions import ClientError

        self._client, self._client_error = client, ClientError
        self._where = {"Bucket": bucket, "Key": key}
        self.location = f"s3://{bucket}/{key}"

    def _is(self, error: Exception, codes: tuple[str, ...], statuses: tuple[int, ...] = ()) -> bool:
        response = getattr(error, "response", {})
        status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        return response.get("Error", {}).get("Code") in codes or status in statuses

    def create(self, body: bytes) -> Any | None:
        try:
            return self._client.put_object(**self._where, Body=body, IfNoneMatch="*")["ETag"]
        except self._client_error as error:
            if self._is(error, HELD, (409, 412)):
                return None
            raise

    def read(self) -> _Found | None:
        try:
            response = self._client.get_object(**self._where)
        except self._client_error as error:
            if self._is(error, ("NoSuchKey",)):
                return None
            raise
        return _Found(response["Body"].read(), response["ETag"], response["LastModified"])

    def replace(self, token: Any, body: bytes) -> Any | None:
        try:
            return self._client.put_object(**self._where, Body=body, IfMatch=token)["ETag"]
        except self._client_error as error:
            if self._is(error, (*HELD, "NoSuchKey"), (409, 412)):
                return None
            raise

    def delete(self, token: Any) -> bool:
        try:
            self._client.delete_object(**self._where, IfMatch=token)
        except self._client_error as error:
            if self._is(error, (*HELD, "NoSuchKey"), (409, 412)):
                return False
            raise
        return True


def _store_for(output: str, *, s3_client: Any | None = None) -> _Store:
    """Where the lock of `output` lives: `<output>/_LOCK` on the output's own storage."""
    parts = urlsplit(output)
    scheme = parts.scheme.lower()
    if scheme in S3_SCHEMES:
        if not parts.netloc:
            raise LockError(f"cannot lock output {output}: no bucket in the URI")
        prefix = parts.path.strip("/")
        return _S3Store(parts.netloc, f"{prefix}/{LOCK_NAME}" if prefix else LOCK_NAME, s3_client)
    if scheme == "file":
        # Taken literally, as Hadoop's Path takes it ("%20" is not decoded).
        path = output[len("file:") :]
        if path.startswith("//"):
            authority, _, rest = path[2:].partition("/")
            if authority not in ("", "localhost"):
                raise LockError(f"cannot lock output {output}: file: URI names host {authority!r}")
            path = "/" + rest
        return _LocalStore(path)
    if scheme:
        raise LockError(
            f"cannot lock output {output}: scheme {scheme}:// is not supported "
            f"(local paths, file:, {', '.join(s + '://' for s in S3_SCHEMES)})"
        )
    return _LocalStore(output)


def _now() -> datetime:
    return datetime.now(UTC)


def _show(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _parse(body: bytes) -> dict[str, Any] | None:
    """The lock's record, with its times as datetimes; None when it is not a lock record."""
    try:
        record = json.loads(body)
        if not isinstance(record, dict) or any(key not in record for key in RECORD_KEYS):
            return None
        times = {key: datetime.fromisoformat(record[key]) for key in ("acquired_at", "expires_at")}
    except (ValueError, TypeError):
        return None
    return {**record, **{key: t if t.tzinfo else t.replace(tzinfo=UTC) for key, t in times.items()}}


def _expiry(found: _Found, lease_seconds: float) -> tuple[dict[str, Any] | None, datetime]:
    """The holder's record and when the lock goes stale; an unreadable lock counts as held for
    one of our leases after it was written (its holder's lease is unknown)."""
    record = _parse(found.body)
    if record is None:
        return None, found.modified + timedelta(seconds=lease_seconds)
    if record["host"] == socket.gethostname() and not _alive(record["pid"]):
        return record, found.modified  # its holder on this machine is gone: stale already
    return record, record["expires_at"]


def _alive(pid: Any) -> bool:
    """Whether a process of this machine runs (a reused pid reads as alive: the lease decides)."""
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, ValueError, TypeError, OverflowError):
        return True
    return True


def _ours(found: _Found, info: LockInfo) -> bool:
    record = _parse(found.body)
    identity = (info.run_id, info.host, info.pid, info.acquired_at)
    return record is not None and tuple(record[key] for key in RECORD_KEYS[:4]) == identity


def _locked_message(output: str, location: str, holder: dict[str, Any] | None, until: datetime) -> str:
    todo = (
        f"wait for that run to finish, or if it was killed rerun after {_show(until)} (the lock is "
        f"then taken over); delete {location} by hand only when sure no run is writing"
    )
    if holder is None:
        return f"output {output} has an unreadable lock {location}, held until {_show(until)}: {todo}"
    return (
        f"output {output} is locked by run {holder['run_id']} (host {holder['host']}, pid "
        f"{holder['pid']}) since {_show(holder['acquired_at'])}; its lease expires at {_show(until)}: {todo}"
    )


def _acquire(store: _Store, output: str, run_id: str, lease_seconds: float) -> tuple[LockInfo, Any]:
    took_over = False
    for attempt in range(ACQUIRE_ATTEMPTS):
        now = _now()
        until = now + timedelta(seconds=lease_seconds)
        info = LockInfo(output, store.location, run_id, socket.gethostname(), os.getpid(), now, until)
        token = store.create(info.record())
        if token is not None and took_over:
            found = store.read()  # after a takeover, make sure no racer's delete took ours too
            token = token if found is not None and found.token == token else None
        if token is not None:
            return info, token
        found = store.read()
        if found is None:
            continue  # released between our create and read
        holder, until = _expiry(found, lease_seconds)
        last = attempt == ACQUIRE_ATTEMPTS - 1
        if holder is None and not last and _now() - found.modified < timedelta(seconds=YOUNG_SECONDS):
            time.sleep(_backoff(attempt))  # a racer's O_EXCL file, created but not yet written
            continue
        if until > _now():
            message = _locked_message(output, store.location, holder, until)
            raise OutputLockedError(message, output=output, holder=holder, until=until)
        stale = (
            f"run {holder['run_id']} (host {holder['host']}, pid {holder['pid']})" if holder else "unreadable"
        )
        logger.warning("taking over stale lock %s of %s, expired %s", store.location, stale, _show(until))
        took_over = True
        if not store.delete(found.token):
            time.sleep(_backoff(attempt))  # a racer is removing it: let it finish, then look again
    raise LockError(f"could not take lock {store.location} in {ACQUIRE_ATTEMPTS} attempts: contention")


def _backoff(attempt: int) -> float:
    return min(0.02 * 2**attempt, 1.0)


class _Renewer(threading.Thread):
    def __init__(self, store: _Store, info: LockInfo, token: Any, lease_seconds: float) -> None:
        super().__init__(name=f"lock-renewer-{info.run_id}", daemon=True)
        self.token = token
        self._store, self._info, self._lease = store, info, lease_seconds
        self._stop_event = threading.Event()
        self._context = contextvars.copy_context()  # keeps the run id on the thread's log lines

    def run(self) -> None:
        self._context.run(self._loop)

    def _loop(self) -> None:
        while not self._stop_event.wait(self._lease / 3) and self._renew():
            pass

    def stop(self) -> Any:
        self._stop_event.set()
        self.join()
        return self.token

    def _renew(self) -> bool:
        info = self._info
        renewed = dataclasses.replace(info, expires_at=_now() + timedelta(seconds=self._lease))
        try:
            token = self._store.replace(self.token, renewed.record())
            if token is None:  # maybe our own write landed unacknowledged: look before giving up
                found = self._store.read()
                token = found.token if found is not None and _ours(found, renewed) else None
        except Exception:
            logger.warning("could not renew lock %s; retrying", info.location, exc_info=True)
            return True
        if token is None:
            info.lost = True
            logger.error("lock %s of run %s was taken over or removed", info.location, info.run_id)
            return False
        self.token, info.expires_at = token, renewed.expires_at
        return True


def _release(store: _Store, info: LockInfo, token: Any) -> None:
    try:
        if store.delete(token):
            return
        found = store.read()
        if found is not None and _ours(found, info) and store.delete(found.token):
            return
    except Exception:
        logger.exception("could not remove lock %s; it expires at %s", info.location, _show(info.expires_at))
        return
    info.lost = True
    logger.error("lock %s is no longer run %s's; left it in place", info.location, info.run_id)


@contextmanager
def output_lock(
    output: str, *, run_id: str, lease_seconds: float = 3600, renew: bool = True, s3_client: Any | None = None
) -> Iterator[LockInfo]:
    """Hold `<output>/_LOCK` for the block; raises OutputLockedError when another run holds it,
    and LockLostError after a block that ended normally if the lock was lost meanwhile."""
    if lease_seconds <= 0:
        raise ValueError(f"lease_seconds must be positive, got {lease_seconds}")
    store = _store_for(output, s3_client=s3_client)
    info, token = _acquire(store, output, run_id, lease_seconds)
    logger.info("locked output %s (lease %s s, until %s)", output, lease_seconds, _show(info.expires_at))
    renewer = _Renewer(store, info, token, lease_seconds) if renew else None
    if renewer is not None:
        renewer.start()
    try:
        yield info
    finally:
        if renewer is not None:
            token = renewer.stop()
        _release(store, info, token)
    if info.lost:
        raise LockLostError(
            f"lock {info.location} of run {info.run_id} was taken over or removed while the run wrote "
            f"{output}: another run may have written there too; check the output before using it"
        )
