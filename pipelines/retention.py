"""Cleanup of old table versions under a retention rule, so the lake stops growing with every commit.

Every Lance commit keeps the files of the versions before it (that is what
time travel reads). ``cleanup`` removes the versions no rule keeps. The rule,
per table — a version is **kept** when any of these holds:

1. it is the table's current version;
2. it is among the newest ``retention.keep_last_versions`` versions;
3. it is newer than ``retention.keep_days`` days;
4. a tag points at it (``pipelines.tags``; tags are never moved or removed here);
5. (``retention.keep_latest_run_versions``) the latest succeeded run of some job recorded it in its
   ``table_versions_json``, so ``lance.dataset(uri, version=...)`` "as of" the last curate, encode,
   recombine, ... run keeps working however old that run is. Older runs of a job are not protected:
   tag a run (``jobs/maintain.py tag --run-id``) to keep its versions for good.

Everything else goes, with the data files only those versions referenced
(Lance ``cleanup_old_versions(versions=...)``; files a kept version reads stay).
A dry run lists the versions and an estimate of the bytes (the data files no
kept version references); the real run reports what Lance removed.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

import lance

from pipelines.lance_io import open_table, table_uri
from pipelines.maintenance import MaintenanceReport, format_versions, open_lake_tables, record_action
from schemas.maintenance import MaintainConfig
from schemas.storage import StorageConfig, is_remote, resolve_uri

__all__ = ["CleanupPlan", "plan_cleanup", "cleanup_tables", "latest_run_versions"]


@dataclass
class CleanupPlan:
    """One table's versions: which go, which stay and why; and, once run, what was removed."""

    table: str
    current: int
    remove: list[int] = field(default_factory=list)
    keep: dict[int, list[str]] = field(default_factory=dict)  # version -> reasons
    estimated_bytes: int = 0  # data files referenced only by removed versions
    bytes_removed: int | None = None  # measured by Lance (None: dry run)
    files_removed: int | None = None

    def format(self, dry_run: bool) -> str:
        kept = f"keeps {len(self.keep)} ({format_versions(list(self.keep))})"
        tagged = [f"{v} ({', '.join(r)})" for v, r in sorted(self.keep.items())
                  if any(x.startswith(("tag ", "run ")) for x in r)]
        why = f"; tagged/run-pinned: {'; '.join(tagged)}" if tagged else ""
        if not self.remove:
            return f"{self.table}: nothing to remove; {kept}{why}"
        n = f"{len(self.remove)} version{'' if len(self.remove) == 1 else 's'}"
        if dry_run:
            gone = (f"would remove {n} ({format_versions(self.remove)}), "
                    f"{_mb(self.estimated_bytes)} of data files no kept version reads (+ their manifests)")
        else:
            gone = (f"removed {n} ({format_versions(self.remove)}), "
                    f"{_mb(self.bytes_removed or 0)} in {self.files_removed} data/index files")
        return f"{self.table}: {gone}; {kept}{why}"


def _mb(n: int) -> str:
    return f"{n / 1e6:.2f} MB" if n >= 10_000 else f"{n} bytes"


def latest_run_versions(lake_root: str, storage: StorageConfig) -> dict[str, dict[int, list[str]]]:
    """table -> version -> jobs whose latest succeeded run recorded that version (rule 5)."""
    runs = open_table(table_uri(lake_root, "runs"), storage)
    out: dict[str, dict[int, list[str]]] = defaultdict(lambda: defaultdict(list))
    if runs is None:
        return out
    rows = runs.to_table(columns=["job", "ended_at", "started_at", "table_versions_json"],
                         filter="status = 'succeeded' AND table_versions_json IS NOT NULL").to_pylist()
    latest: dict[str, dict] = {}
    for r in rows:
        when = r["ended_at"] or r["started_at"]
        if r["job"] not in latest or when > (latest[r["job"]]["ended_at"] or latest[r["job"]]["started_at"]):
            latest[r["job"]] = r
    for job, r in latest.items():
        for table, version in json.loads(r["table_versions_json"]).items():
            out[table][int(version)].append(job)
    return out


def _version_time(v: dict) -> datetime:
    ts = v["timestamp"]  # pylance gives a naive local datetime (datetime.fromtimestamp)
    return ts.astimezone(timezone.utc) if ts.tzinfo is None else ts


def _data_files(ds: lance.LanceDataset, version: int) -> dict[str, int]:
    files = {}
    for frag in ds.checkout_version(version).get_fragments():
        for f in frag.metadata.files:
            files[f.path] = f.file_size_bytes or 0
    return files


def _plan_table(ds: lance.LanceDataset, table: str, config: MaintainConfig, pinned: dict[int, list[str]],
                now: datetime, estimate: bool) -> CleanupPlan:
    r = config.retention
    versions = ds.versions()
    numbers = sorted(v["version"] for v in versions)
    current = ds.latest_version
    newest = set(numbers[-r.keep_last_versions:])
    cutoff = now - timedelta(days=r.keep_days)
    tags: dict[int, list[str]] = defaultdict(list)
    for tag, info in ds.tags.list().items():
        tags[info["version"]].append(tag)
    plan = CleanupPlan(table, current)
    for v in versions:
        n, why = v["version"], []
        if n == current:
            why.append("current")
        if n in newest:
            why.append(f"last {r.keep_last_versions}")
        if _version_time(v) > cutoff:
            why.append(f"< {r.keep_days:g} days")
        why += [f"tag {t}" for t in sorted(tags.get(n, []))]
        if r.keep_latest_run_versions:
            why += [f"run {job}" for job in sorted(pinned.get(n, []))]
        if why:
            plan.keep[n] = why
        else:
            plan.remove.append(n)
    if estimate and plan.remove:
        kept_files: set[str] = set()
        for n in plan.keep:
            kept_files |= set(_data_files(ds, n))
        gone: dict[str, int] = {}
        for n in plan.remove:
            gone.update({p: s for p, s in _data_files(ds, n).items() if p not in kept_files})
        side = _blob_side_bytes(table_uri(resolve_uri(config.lake_root), table), config.storage) if gone else {}
        plan.estimated_bytes = sum(size + side.get(path.removesuffix(".lance"), 0) for path, size in gone.items())
    return plan


def _blob_side_bytes(uri: str, storage: StorageConfig) -> dict[str, int]:
    """Bytes of the blob side files of each data file (``data/<file stem>/*.blob``, where Lance puts big blobs).

    The manifest lists a data file's own size only, so the estimate lists the ``data`` folder once.
    """
    import fsspec

    if is_remote(uri):
        fs, root = fsspec.core.url_to_fs(f"{uri}/data", **storage.fsspec_options())
    else:
        fs, root = fsspec.filesystem("file"), f"{uri}/data"
    out: dict[str, int] = defaultdict(int)
    for path, info in fs.find(root, detail=True).items():
        rel = path[len(root.rstrip("/")) + 1:] if path.startswith(root.rstrip("/")) else path.split("/data/", 1)[-1]
        if "/" in rel:
            out[rel.split("/", 1)[0]] += int(info.get("size") or 0)
    return out


def plan_cleanup(config: MaintainConfig, tables: list[str] | None = None, *, now: datetime | None = None,
                 estimate: bool = True) -> list[CleanupPlan]:
    """Which versions of each table the retention rule (module docstring) removes; changes nothing.

    Raises:
        pipelines.maintenance.MaintenanceInputError: an unknown or missing table.
    """
    found = open_lake_tables(config, tables, require=True)
    lake = resolve_uri(config.lake_root)
    pinned = latest_run_versions(lake, config.storage) if config.retention.keep_latest_run_versions else {}
    now = now or datetime.now(timezone.utc)
    return [_plan_table(ds, name, config, pinned.get(name, {}), now, estimate) for name, ds in found.items()]


def cleanup_tables(config: MaintainConfig, tables: list[str] | None = None, *, dry_run: bool = False,
                   now: datetime | None = None) -> tuple[MaintenanceReport, list[CleanupPlan]]:
    """Remove the versions the retention rule does not keep (``dry_run``: only list them).

    Returns:
        The report (``table_versions``: current version of each cleaned table) and each table's plan.

    Example::

        report, plans = cleanup_tables(MaintainConfig(lake_root="data/lake"), dry_run=True)
        print(report.format())
    """
    lake = resolve_uri(config.lake_root)
    plans = plan_cleanup(config, tables, now=now, estimate=dry_run)
    if dry_run:
        report = MaintenanceReport("cleanup (dry run)", lake, tables_seen=len(plans),
                                   lines=[p.format(dry_run=True) for p in plans])
        return report, plans

    def work() -> MaintenanceReport:
        report = MaintenanceReport("cleanup", lake, tables_seen=len(plans))
        for plan in plans:
            if plan.remove:
                ds = open_table(table_uri(lake, plan.table), config.storage)
                # error_if_tagged_old_versions: a tag made since the plan was read stops the cleanup (exit 1)
                stats = ds.cleanup_old_versions(versions=plan.remove, error_if_tagged_old_versions=True)
                plan.bytes_removed = stats.bytes_removed
                plan.files_removed = stats.data_files_removed + stats.index_files_removed
                report.tables_changed += 1
                report.table_versions[plan.table] = ds.latest_version
            report.lines.append(plan.format(dry_run=False))
        return report

    return record_action(config, "cleanup", {"tables": [p.table for p in plans]}, work), plans
