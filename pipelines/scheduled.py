"""Curation as a scheduler runs it: take the lake's writer lock, run incrementally, report in JSON, exit with a code.

A nightly run over a growing prefix is :func:`pipelines.curate.run_curation`
(it skips unchanged sources and resumes a killed run) wrapped in three things
a scheduler needs:

- a writer lock (:mod:`pipelines.run_lock`) so an overlapping run, a retry
  fired too early or a second cron host cannot write at the same time; a run
  killed with the lock held leaves it stale, and the next run takes it over;
- an exit code that tells the cases apart (:data:`EXIT_CODES`);
- a machine-readable summary (one JSON object: run id, status, counts, hours,
  table versions, duration, error), printed as one line on stdout and, if
  asked, written to a local path or an ``s3://`` URI.
"""

from __future__ import annotations

import _thread
import json
import os
import signal
import socket
import sys
import threading
import time
import traceback
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from pipelines.curate import AccountingError, CurateSummary, new_run_id, run_curation
from pipelines.lance_io import read_column_values, table_uri
from pipelines.run_lock import LockHeld, LockLost, RunLock, lock_uri
from pipelines.sources import ManifestError, filesystem_for
from schemas.curate import CurateConfig
from schemas.sql import sql_quote
from schemas.storage import StorageConfig, is_remote, resolve_uri

__all__ = ["run_scheduled_curation", "ScheduledResult", "write_summary", "path_or_uri", "EXIT_OK", "EXIT_FAILED",
           "EXIT_BAD_CONFIG", "EXIT_LOCKED", "EXIT_CODES"]

EXIT_OK = 0  # succeeded, including "nothing new"
EXIT_FAILED = 1  # the run failed; its `runs` row says why; the next run resumes
EXIT_BAD_CONFIG = 2  # the config is invalid: nothing was done (retrying will not help)
EXIT_LOCKED = 75  # EX_TEMPFAIL: another run holds the lake's curate lock; nothing was done, try later
EXIT_CODES = {EXIT_OK: "succeeded", EXIT_FAILED: "failed", EXIT_BAD_CONFIG: "bad_config", EXIT_LOCKED: "locked"}

#: errors users can act on: one line, no traceback (as ``jobs/curate.py`` always did)
_KNOWN_ERRORS = (FileNotFoundError, ManifestError, AccountingError, LockLost)


@dataclass
class ScheduledResult:
    """What a scheduled run ended with: the exit code and the JSON summary (a plain dict)."""

    exit_code: int
    summary: dict
    curate: CurateSummary | None = None
    interrupted: bool = False  # ended by a signal: leave with os._exit (Ray's teardown aborts after one)


def _now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _counts(s: CurateSummary | dict) -> dict:
    get = (lambda k: getattr(s, k, 0)) if isinstance(s, CurateSummary) else (lambda k: s.get(k) or 0)
    names = ("inputs_seen", "inputs_skipped_unchanged", "inputs_processed", "inputs_accepted", "inputs_rejected",
             "segments_found", "segments_written", "segments_filtered", "segments_deduped",
             "segments_already_present")
    out = {k: int(get(k)) for k in names}
    out["hours_in"] = round(float(get("audio_s_in")) / 3600, 6)
    out["hours_written"] = round(float(get("audio_s_written")) / 3600, 6)
    return out


def _stderr(message: str) -> None:
    print(f"error: {message}", file=sys.stderr, flush=True)


def _run_row(lake: str, storage: StorageConfig, run_id: str) -> dict | None:
    """The ``runs`` row of ``run_id`` (its counters, when run_curation raised after writing some chunks)."""
    try:
        rows = read_column_values(table_uri(lake, "runs"), ["run_id", "inputs_seen", "inputs_skipped_unchanged",
                                                            "inputs_processed", "inputs_accepted", "inputs_rejected",
                                                            "segments_written", "segments_filtered",
                                                            "segments_deduped", "audio_s_in", "audio_s_written",
                                                            "table_versions_json"], storage,
                                  filter=f"run_id = {sql_quote(run_id)}").to_pylist()
    except Exception:  # noqa: BLE001 - the summary must still be written if the lake cannot be read
        return None
    return rows[0] if rows else None


def path_or_uri(path: str) -> str:
    """Where a summary path points: remote URIs as given, local paths made absolute."""
    return path if is_remote(path) else resolve_uri(path)


def write_summary(summary: dict, path: str, storage: StorageConfig) -> str:
    """Write the JSON summary to a local path (atomically: temp + rename) or an ``s3://`` URI; returns where."""
    body = json.dumps(summary, indent=2) + "\n"
    if is_remote(path):
        fs = filesystem_for(path, storage)
        fs.pipe_file(path.split("://", 1)[1], body.encode())
        return path
    target = Path(path_or_uri(path))
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    tmp.write_text(body)
    os.replace(tmp, target)
    return str(target)


def _exit_on_sigterm():
    """SIGTERM raises SystemExit (as Ray's driver handler does once Ray is up), so the lock is released and the
    run reported; returns the previous handler (None off the main thread, where handlers cannot be set)."""
    if threading.current_thread() is not threading.main_thread():
        return None
    return signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))


def _interrupt_on_lost(err: LockLost) -> None:
    """Another run took the lock over: stop this one before it writes more (raises KeyboardInterrupt in main)."""
    print(f"error: {err}", flush=True)
    _thread.interrupt_main()


def run_scheduled_curation(config: CurateConfig, *, lock: bool = True, summary_path: str | None = None,
                           lease_s: float = 600.0, heartbeat_s: float | None = None,
                           progress: Callable[[str], None] = print, error: Callable[[str], None] | None = None
                           ) -> ScheduledResult:
    """One scheduled curation run: lock, run, summarize. Never raises for a failed run: see ``exit_code``.

    Args:
        config: a validated curate config (bad configs are the caller's exit 2).
        lock: take ``<lake_root>/_locks/curate.lock`` first (off only when something else serializes runs).
        summary_path: also write the JSON summary here (local path or ``s3://`` URI).
        lease_s, heartbeat_s: the lock's lease and renewal period (see :class:`pipelines.run_lock.RunLock`).
        progress: where progress lines and the final JSON line go (stdout by default).
        error: where one-line errors go (stderr ``error: ...`` by default).

    Example::

        result = run_scheduled_curation(load_config("configs/curate_nightly.yaml"), summary_path="/tmp/night.json")
        sys.exit(result.exit_code)
    """
    error = error or _stderr
    lake = resolve_uri(config.lake_root)
    started = datetime.now(timezone.utc)
    t0 = time.perf_counter()
    run_id = new_run_id(started)
    summary: dict = {"job": "curate", "lake_root": lake, "host": socket.gethostname(), "pid": os.getpid(),
                     "started_at": started.isoformat(timespec="seconds"), "run_id": run_id, "error": None,
                     "lock": None, "lock_holder": None, "lock_took_over": None,
                     "counts": _counts({}), "rejects_by_reason": {}, "table_versions": {}}
    run_lock = None
    curate: CurateSummary | None = None
    code = EXIT_OK
    interrupted = False
    previous_sigterm = _exit_on_sigterm()
    try:
        if lock:
            owner = f"curate@{socket.gethostname()}:{os.getpid()}"
            run_lock = RunLock(lock_uri(lake, "curate"), owner=owner, run_id=run_id, storage=config.storage,
                               lease_s=lease_s, heartbeat_s=heartbeat_s, on_lost=_interrupt_on_lost)
            summary["lock"] = run_lock.uri
            run_lock.acquire()
            summary["lock_took_over"] = run_lock.took_over
            if run_lock.took_over:
                progress(f"[curate] {run_lock.took_over}")

        curate = run_curation(config, progress=progress, run_id=run_id)
    except LockHeld as exc:
        code, summary["error"], summary["run_id"] = EXIT_LOCKED, str(exc), None  # no run happened: no `runs` row
        summary["lock_holder"] = (exc.holder.run_id or exc.holder.owner) if exc.holder else None
        error(str(exc))
        run_lock = None  # not ours: nothing to release
    except (KeyboardInterrupt, SystemExit) as exc:  # Ctrl-C, SIGTERM (`ray job stop`, a pod deleted), lock lost
        err = run_lock.lost if run_lock is not None and run_lock.lost else exc
        what = {SystemExit: "terminated (SIGTERM)", KeyboardInterrupt: "interrupted"}.get(type(err))
        code, summary["error"] = EXIT_FAILED, f"{type(err).__name__}: {what or err}"
        error(summary["error"])
        interrupted = True  # Ray is left as it is: shutting it down after a signal can abort the process
    except _KNOWN_ERRORS as exc:
        code, summary["error"] = EXIT_FAILED, f"{type(exc).__name__}: {exc}"
        error(summary["error"])
    except Exception as exc:  # noqa: BLE001 - unexpected: keep the traceback, still report and exit 1
        code, summary["error"] = EXIT_FAILED, f"{type(exc).__name__}: {exc}"
        traceback.print_exc()
    finally:
        if previous_sigterm is not None:
            signal.signal(signal.SIGTERM, previous_sigterm)
        if run_lock is not None:
            try:
                run_lock.release()
            except Exception as exc:  # noqa: BLE001 - a lock we cannot delete expires with its lease
                error(f"could not release {run_lock.uri} ({type(exc).__name__}: {exc}); it expires with its lease")

    if curate is not None:
        summary.update(run_id=curate.run_id, counts=_counts(curate), rejects_by_reason=curate.rejects_by_reason,
                       table_versions=curate.table_versions)
    elif code == EXIT_FAILED:
        row = _run_row(lake, config.storage, run_id)
        if row is not None:
            summary.update(counts=_counts(row),
                           table_versions=json.loads(row["table_versions_json"] or "{}"))
    summary.update(ended_at=_now_iso(), duration_s=round(time.perf_counter() - t0, 3),
                   summary_path=(path_or_uri(summary_path) if summary_path else None))
    # the fields a scheduler looks at first, so the line is easy to grep: {"job": "curate", "status": ...
    summary = {"job": "curate", "status": EXIT_CODES[code], "exit_code": code, "run_id": summary.pop("run_id"),
               **{k: v for k, v in summary.items() if k != "job"}}
    if curate is not None:
        progress(curate.format())
    if summary_path:
        try:
            write_summary(summary, summary_path, config.storage)
        except Exception as exc:  # noqa: BLE001 - the run's outcome stands; say the report is missing
            error(f"could not write the summary to {summary_path}: {type(exc).__name__}: {exc}")
    progress(json.dumps(summary))
    return ScheduledResult(code, summary, curate, interrupted)
