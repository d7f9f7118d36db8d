"""The lake writer lock, local and on a loopback S3 server: one holder, named; stale locks taken over."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import pytest

from pipelines.run_lock import LockHeld, LockInfo, LockLost, RunLock, lock_uri, read_lock
from schemas.storage import StorageConfig


@pytest.fixture(params=["local", "s3"])
def where(request, tmp_path):
    """(lock uri, storage) on local disk or in a fresh bucket of the loopback S3 server."""
    if request.param == "local":
        return lock_uri(str(tmp_path / "lake"), "curate"), StorageConfig()
    endpoint, bucket = request.getfixturevalue("s3_bucket")
    return lock_uri(f"s3://{bucket}/lake", "curate"), StorageConfig(s3_endpoint_url=endpoint, s3_allow_http=True)


def _dead_pid() -> int:
    """A pid that just existed on this host and is now dead (and reaped)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _plant(uri: str, storage: StorageConfig, **fields) -> LockInfo:
    """Write a lock as another run would have left it (created with the store's own atomic create)."""
    lock = RunLock(uri, owner="planted", storage=storage, heartbeat_s=0)
    info = LockInfo(**{**LockInfo.new("run-old", 600).__dict__, **fields})
    assert lock._store.create(info) is not None
    return info


def test_second_acquire_fails_naming_the_holder_and_release_frees_it(where):
    uri, storage = where
    first = RunLock(uri, owner="run-first", storage=storage).acquire()
    with pytest.raises(LockHeld) as caught:
        RunLock(uri, owner="run-second", storage=storage).acquire()
    message = str(caught.value)
    assert "\n" not in message and message.startswith(f"lock {uri} is held by run run-first (host ")
    assert caught.value.holder.owner == "run-first" and read_lock(uri, storage).owner == "run-first"
    first.renew(run_id="curate-20261201T020000-abcdef")  # the job's run id, once known, names the holder
    with pytest.raises(LockHeld, match="held by run curate-20261201T020000-abcdef"):
        RunLock(uri, owner="run-second", storage=storage).acquire()
    first.release()
    assert read_lock(uri, storage) is None
    first.release()  # twice is harmless
    with RunLock(uri, owner="run-second", storage=storage) as second:
        assert second.held and read_lock(uri, storage).owner == "run-second"
    assert read_lock(uri, storage) is None


def test_an_exception_inside_the_block_releases_the_lock(where):
    uri, storage = where
    with pytest.raises(ZeroDivisionError):
        with RunLock(uri, owner="run-a", storage=storage):
            1 / 0
    assert read_lock(uri, storage) is None


def test_lock_of_a_dead_pid_on_this_host_is_taken_over_at_once(where):
    uri, storage = where
    _plant(uri, storage, pid=_dead_pid(), expires_at=time.time() + 3600)  # lease still valid: the pid tells
    lock = RunLock(uri, owner="run-new", storage=storage).acquire()
    assert "run run-old" in lock.took_over and "is dead" in lock.took_over
    assert read_lock(uri, storage).owner == "run-new"
    lock.release()


def test_live_holder_on_another_host_is_respected_until_its_lease_expires(where):
    uri, storage = where
    info = _plant(uri, storage, host="other-host", pid=_dead_pid(), expires_at=time.time() + 4.0)
    with pytest.raises(LockHeld, match="host other-host"):  # its pid means nothing here
        RunLock(uri, owner="run-new", storage=storage).acquire()
    time.sleep(max(0.0, info.expires_at - time.time()) + 0.2)
    lock = RunLock(uri, owner="run-new", storage=storage).acquire()
    assert "lease expired" in lock.took_over
    lock.release()


def test_heartbeat_keeps_the_lease_and_a_taken_over_holder_learns_it_lost(where):
    uri, storage = where
    lost: list[LockLost] = []
    holder = RunLock(uri, owner="run-long", storage=storage, lease_s=2.0, heartbeat_s=0.3, on_lost=lost.append)
    holder.acquire()
    time.sleep(2.5)  # longer than the lease: only the renewals keep it
    with pytest.raises(LockHeld, match="run-long"):
        RunLock(uri, owner="run-other", storage=storage).acquire()
    assert read_lock(uri, storage).heartbeat_at > holder.info.acquired_at

    # a holder that stops renewing (a paused process) loses it once the lease runs out
    holder._stop.set()
    holder._thread.join()
    time.sleep(max(0.0, holder.info.expires_at - time.time()) + 0.2)
    taker = RunLock(uri, owner="run-taker", storage=storage, heartbeat_s=0).acquire()
    assert not holder.renew() and isinstance(holder.lost, LockLost) and "run-long" in str(holder.lost)
    holder.release()  # must not delete the new holder's lock
    assert read_lock(uri, storage).owner == "run-taker"
    taker.release()


def test_heartbeat_thread_reports_a_lost_lock(where):
    uri, storage = where
    lost = threading.Event()
    holder = RunLock(uri, owner="run-a", storage=storage, lease_s=3.0, heartbeat_s=0.2, on_lost=lambda e: lost.set())
    holder.acquire()
    # someone removes the lock by hand (or takes it over): the next renewal notices
    holder._store.delete(holder._version)
    assert lost.wait(5), "on_lost was not called"
    assert not holder.held
    holder.release()


def test_racing_acquirers_of_a_stale_lock_exactly_one_wins(where):
    uri, storage = where
    _plant(uri, storage, pid=_dead_pid())
    winners, held, barrier = [], [], threading.Barrier(6)

    def contender(i: int) -> None:
        lock = RunLock(uri, owner=f"run-{i}", storage=storage, heartbeat_s=0)
        barrier.wait()
        try:
            winners.append(lock.acquire())
        except LockHeld as exc:
            held.append(exc)

    threads = [threading.Thread(target=contender, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(winners) == 1 and len(held) == 5, (winners, held)
    assert read_lock(uri, storage).owner == winners[0].owner
    assert all(e.holder.owner == winners[0].owner for e in held)
    winners[0].release()


def test_unsupported_scheme_is_refused():
    with pytest.raises(ValueError, match="gs://"):
        RunLock("gs://bucket/lake/_locks/curate.lock", owner="x")
