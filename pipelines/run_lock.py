"""A lake-level writer lock for a job: ``<lake_root>/_locks/<job>.lock``, so two overlapping runs cannot both write.

Why a lock at all: curation loads the dedup state once per run and appends
segments; two runs over the same new files would both append them. Lance's
optimistic commits keep each table consistent but do not stop that.

The lock is one small JSON object (:class:`LockInfo`: run id, host, pid,
acquired/heartbeat/expiry times, a random token). Every change to it is a
compare-and-swap, so at most one run holds it:

- **local paths** — acquire is an atomic create-if-absent: the JSON goes to a
  private temp file which is then ``os.link``-ed to the lock name (fails with
  ``EEXIST`` if it exists; like ``O_CREAT|O_EXCL`` but readers never see a
  half-written file, and it is the NFS-safe form). Renewal, takeover and
  release (read, check the token, replace/unlink) run under a short
  ``flock`` on a sibling ``.guard`` file that is never deleted, so no two of
  them interleave; the kernel drops that flock if a process dies.
- **s3://** — S3 conditional requests: create is ``PutObject`` with
  ``If-None-Match: *``; renewal and takeover are ``PutObject`` with
  ``If-Match: <ETag>`` of the version read; release is ``DeleteObject`` with
  ``If-Match``. AWS honours all three on general purpose buckets (the last
  since September 2025); moto's server (the tests) does too. s3fs passes
  them through ``S3FileSystem.call_s3``.

Stale locks are taken over: the lease expired (the holder stopped renewing:
killed, lost node, paused) or the holder ran on this host (same hostname and
kernel boot id) and its pid is dead or reused (its start time differs). A
holder renews every ``lease_s / 3`` from a daemon thread; a renewal that
finds another token (the lock was taken over) calls ``on_lost``.
Clock skew between hosts must stay well below ``lease_s`` (default 10 min).

Example::

    with RunLock(lock_uri("data/lake", "curate"), owner="curate-2026...", storage=StorageConfig()):
        ...  # write; LockHeld is raised instead if another run holds it
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import threading
import time
import uuid
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterator

from schemas.storage import StorageConfig, is_remote, resolve_uri

__all__ = ["RunLock", "LockInfo", "LockHeld", "LockLost", "lock_uri", "read_lock"]


class LockHeld(RuntimeError):
    """Another live run holds the lock; ``holder`` is its :class:`LockInfo` (None if unreadable)."""

    def __init__(self, uri: str, holder: LockInfo | None):
        self.uri, self.holder = uri, holder
        who = holder.describe() if holder else "a run whose lock file cannot be read yet"
        super().__init__(f"lock {uri} is held by {who}")


class LockLost(RuntimeError):
    """The lock this run held was taken over (its lease expired) or removed: stop writing."""


def lock_uri(lake_root: str, job: str) -> str:
    """Where the lock of ``job`` lives under a lake root (local path or URI)."""
    return f"{resolve_uri(lake_root).rstrip('/')}/_locks/{job}.lock"


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, timezone.utc).isoformat(timespec="seconds")


def _boot_id() -> str | None:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return None


def _pid_start(pid: int) -> str | None:
    """Start time of a pid in clock ticks since boot (tells a reused pid apart), None if unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    return None if fields[0] in ("Z", "X") else fields[19]  # a zombie is dead


@dataclass
class LockInfo:
    """What the lock file holds: who, where, since when, until when."""

    token: str
    owner: str
    host: str
    pid: int
    boot_id: str | None
    pid_start: str | None
    acquired_at: float
    heartbeat_at: float
    expires_at: float
    run_id: str | None = None  # the job's run id, once it has one (the ``runs`` row to look at)

    @classmethod
    def new(cls, owner: str, lease_s: float, run_id: str | None = None) -> LockInfo:
        now, pid = time.time(), os.getpid()
        return cls(uuid.uuid4().hex, owner, socket.gethostname(), pid, _boot_id(), _pid_start(pid), now, now,
                   now + lease_s, run_id)

    def to_bytes(self) -> bytes:
        d = asdict(self)
        d.update(acquired=_iso(self.acquired_at), expires=_iso(self.expires_at))  # for people reading the file
        return (json.dumps(d, sort_keys=True) + "\n").encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> LockInfo | None:
        try:
            d = json.loads(data)
            return cls(**{k: d[k] if k != "run_id" else d.get(k) for k in cls.__dataclass_fields__})
        except (ValueError, KeyError, TypeError):
            return None

    def describe(self) -> str:
        return (f"run {self.run_id or self.owner} (host {self.host}, pid {self.pid}, since {_iso(self.acquired_at)}, "
                f"lease until {_iso(self.expires_at)})")

    def stale_reason(self, now: float | None = None) -> str | None:
        """Why this lock may be taken over, or None while its holder may still be writing."""
        now = time.time() if now is None else now
        if now > self.expires_at:
            return f"lease expired at {_iso(self.expires_at)}"
        if self.host != socket.gethostname() or self.boot_id != _boot_id():
            return None  # another host: only the lease can tell
        start = _pid_start(self.pid)
        if self.pid_start is None:  # no /proc where it was taken: ask the kernel
            return None if _pid_alive(self.pid) else f"pid {self.pid} on this host is dead"
        if start is None:
            return f"pid {self.pid} on this host is dead"
        if start != self.pid_start:
            return f"pid {self.pid} on this host is dead (its number was reused)"
        return None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class _LocalStore:
    """CAS on a local file: create by link, other changes under a flock'd guard file; version = token."""

    def __init__(self, path: str):
        self.path = Path(path)

    @contextmanager
    def guarded(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(f"{self.path}.guard", "a") as guard:
            fcntl.flock(guard, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(guard, fcntl.LOCK_UN)

    def _temp(self, body: bytes) -> Path:
        tmp = self.path.with_name(f"{self.path.name}.{uuid.uuid4().hex}.tmp")
        with open(tmp, "wb") as fh:
            fh.write(body)
            fh.flush()
            os.fsync(fh.fileno())
        return tmp

    def create(self, info: LockInfo) -> str | None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self._temp(info.to_bytes())
        try:
            os.link(tmp, self.path)
        except FileExistsError:
            return None
        finally:
            tmp.unlink(missing_ok=True)
        return info.token

    def read(self) -> tuple[LockInfo | None, str] | None:
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return None
        info = LockInfo.from_bytes(data)
        return info, (info.token if info else f"unreadable:{len(data)}:{hash(data)}")

    def replace(self, info: LockInfo, expected: str) -> str | None:
        with self.guarded():
            current = self.read()
            if current is None or current[1] != expected:
                return None
            os.replace(self._temp(info.to_bytes()), self.path)
            return info.token

    def delete(self, expected: str) -> bool:
        with self.guarded():
            current = self.read()
            if current is None or current[1] != expected:
                return False
            self.path.unlink()
            return True


def _precondition_failed(exc: BaseException) -> bool:
    cause = exc.__cause__ if exc.__cause__ is not None else exc
    response = getattr(cause, "response", None) or {}
    return response.get("Error", {}).get("Code") in ("PreconditionFailed", "412") or \
        response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 412


def _no_such_key(exc: BaseException) -> bool:
    cause = exc.__cause__ if exc.__cause__ is not None else exc
    code = (getattr(cause, "response", None) or {}).get("Error", {}).get("Code")
    return isinstance(exc, FileNotFoundError) or code in ("NoSuchKey", "404")


class _S3Store:
    """CAS on an S3 object with conditional requests; version = ETag."""

    def __init__(self, uri: str, storage: StorageConfig):
        import s3fs

        self.fs = s3fs.S3FileSystem(**storage.fsspec_options())  # cached per options by fsspec
        self.bucket, self.key = uri.split("://", 1)[1].split("/", 1)

    def _put(self, info: LockInfo, **cond: str) -> str | None:
        try:
            out = self.fs.call_s3("put_object", Bucket=self.bucket, Key=self.key, Body=info.to_bytes(),
                                  ContentType="application/json", **cond)
        except OSError as exc:  # s3fs turns 412 into FileExistsError / OSError(EINVAL), the ClientError in __cause__
            if "IfMatch" in cond and _no_such_key(exc):
                return None  # AWS answers If-Match on a deleted object with 404: not ours either
            if not _precondition_failed(exc):
                raise
            # a retried request may have succeeded the first time: it is ours if the token is
            current = self.read()
            return current[1] if current and current[0] and current[0].token == info.token else None
        return out["ETag"]

    def create(self, info: LockInfo) -> str | None:
        return self._put(info, IfNoneMatch="*")

    def read(self) -> tuple[LockInfo | None, str] | None:
        try:
            out = self.fs.call_s3("get_object", Bucket=self.bucket, Key=self.key)
        except OSError as exc:
            if _no_such_key(exc):
                return None
            raise
        return LockInfo.from_bytes(_read_body(self.fs, out)), out["ETag"]

    def replace(self, info: LockInfo, expected: str) -> str | None:
        return self._put(info, IfMatch=expected)

    def delete(self, expected: str) -> bool:
        try:
            self.fs.call_s3("delete_object", Bucket=self.bucket, Key=self.key, IfMatch=expected)
        except OSError as exc:
            if _precondition_failed(exc) or _no_such_key(exc):
                return False
            raise
        return True


def _read_body(fs, out: dict) -> bytes:
    """The body of an aiobotocore get_object response, read on s3fs's event loop."""
    from fsspec.asyn import sync

    async def _read() -> bytes:
        async with out["Body"] as stream:
            return await stream.read()

    return sync(fs.loop, _read)


def read_lock(uri: str, storage: StorageConfig) -> LockInfo | None:
    """The current holder of a lock (None if free or unreadable); for status pages and tests."""
    current = _store(uri, storage).read()
    return current[0] if current else None


def _store(uri: str, storage: StorageConfig) -> _LocalStore | _S3Store:
    if uri.startswith("s3://"):
        return _S3Store(uri, storage)
    if is_remote(uri):
        raise ValueError(f"run lock: unsupported URI scheme {uri.split('://')[0]}:// (local paths and s3:// only)")
    return _LocalStore(uri)


class RunLock:
    """Exclusive writer lock of one job on one lake, with a renewed lease; a context manager.

    Args:
        uri: from :func:`lock_uri`.
        owner: who holds it (job, host, pid), shown to anyone who finds the lock held.
        run_id: the job's run id (its ``runs`` row), recorded in the lock from the start.
        storage: how to reach S3 (ignored locally).
        lease_s: how long the lock stays valid without renewal.
        heartbeat_s: renewal period (default ``lease_s / 3``; 0 turns renewal off).
        on_lost: called (from the heartbeat thread) if renewal finds the lock taken over.
    """

    def __init__(self, uri: str, *, owner: str, run_id: str | None = None, storage: StorageConfig | None = None,
                 lease_s: float = 600.0, heartbeat_s: float | None = None,
                 on_lost: Callable[[LockLost], None] | None = None):
        self.uri, self.owner, self.run_id, self.lease_s = uri, owner, run_id, float(lease_s)
        self.heartbeat_s = lease_s / 3 if heartbeat_s is None else heartbeat_s
        self.on_lost = on_lost
        self._store = _store(uri, storage or StorageConfig())
        self._info: LockInfo | None = None
        self._version: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._mutex = threading.Lock()
        self.lost: LockLost | None = None
        self.took_over: str | None = None  # why a stale lock was replaced, if one was

    @property
    def held(self) -> bool:
        return self._info is not None and self.lost is None

    @property
    def info(self) -> LockInfo | None:
        return self._info

    def acquire(self) -> RunLock:
        """Take the lock (taking over a stale one) or raise :class:`LockHeld` naming the holder."""
        for _ in range(5):  # each retry means the lock changed under us between two requests
            info = LockInfo.new(self.owner, self.lease_s, self.run_id)
            version = self._store.create(info)
            if version is None:
                current = self._store.read()
                if current is None:
                    continue  # released in between: try to create again
                holder, seen = current
                reason = holder.stale_reason() if holder else self._unreadable_is_stale()
                if reason is None:
                    raise LockHeld(self.uri, holder)
                version = self._store.replace(info, seen)
                if version is None:
                    continue  # someone else renewed or took it over first
                self.took_over = f"took over the lock of {holder.describe() if holder else 'an unreadable file'}: " \
                                 f"{reason}"
            self._info, self._version = info, version
            if self.heartbeat_s > 0:
                self._stop.clear()
                self._thread = threading.Thread(target=self._beat, name=f"lock-heartbeat:{self.owner}", daemon=True)
                self._thread.start()
            return self
        current = self._store.read()
        raise LockHeld(self.uri, current[0] if current else None)

    def _unreadable_is_stale(self) -> str | None:
        """A lock file that is not valid JSON (hand-edited, a broken store): stale once older than a lease."""
        if isinstance(self._store, _LocalStore):
            try:
                age = time.time() - self._store.path.stat().st_mtime
            except FileNotFoundError:
                return None
            return f"unreadable lock file {age:.0f} s old" if age > self.lease_s else None
        return None

    def renew(self, *, run_id: str | None = None) -> bool:
        """Push the lease forward (and record the job's ``run_id`` if given); False if the lock is no longer ours."""
        with self._mutex:
            if self._info is None or self.lost is not None:
                return False
            now = time.time()
            info = LockInfo(**{**asdict(self._info), "heartbeat_at": now, "expires_at": now + self.lease_s,
                               "run_id": run_id or self._info.run_id})
            try:
                version = self._store.replace(info, self._version or "")
            except Exception:  # noqa: BLE001 - network or store trouble: the lease decides
                if time.time() < self._info.expires_at - self.heartbeat_s:
                    return True  # transient store error: the lease still runs, retry on the next beat
                version = None
            if version is None:
                self.lost = LockLost(f"lock {self.uri} was lost by run {self.owner}: taken over or removed "
                                     "after its lease could not be renewed")
                return False
            self._info, self._version = info, version
            return True

    def _beat(self) -> None:
        while not self._stop.wait(self.heartbeat_s):
            if not self.renew():
                if self.on_lost and self.lost is not None:
                    self.on_lost(self.lost)
                return

    def release(self) -> None:
        """Give the lock back (only if it is still ours); safe to call twice."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=30)
        with self._mutex:
            if self._info is not None and self.lost is None:
                self._store.delete(self._version or "")
            self._info = self._version = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()
