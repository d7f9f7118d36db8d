"""Lake maintenance that rewrites tables: compaction of small fragments and (re)building of indexes.

Many small commits (one per curation chunk, one per driver upsert) leave a
table of many small fragments, which every scan pays for; appended rows stay
out of the indexes until ``optimize_indices()`` (DESIGN.md trap). The
``compact`` and ``index`` actions of ``jobs/maintain.py`` fix both. Both are
safe to repeat: a table with nothing to do is left at its version.

Shared by the other maintenance modules (``pipelines.retention``,
``pipelines.tags``): the one-line errors, the choice of tables, and the
``runs`` row an action records. That row reuses the curation columns for
tables, not inputs: ``inputs_seen`` = tables examined, ``inputs_processed`` =
``inputs_accepted`` = tables the action changed, ``inputs_skipped_unchanged`` =
tables it left alone; the segment and audio counts are 0. ``config_json`` holds
``{"action", "args", "config"}`` and ``table_versions_json`` the version each
changed table ended at (for ``cleanup``: the versions of the tables it cleaned).
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Callable

import lance

from pipelines.factor_search import index_name as vector_index_name
from pipelines.factor_search import update_factor_index
from pipelines.lance_io import blob_columns, open_table, table_uri, upsert_rows
from schemas.lake import LAKE_TABLES, TABLE_KEYS
from schemas.maintenance import MaintainConfig
from schemas.runs import RUNS_SCHEMA
from schemas.storage import resolve_uri

__all__ = ["MaintenanceInputError", "MaintenanceError", "MaintenanceReport", "CompactResult", "IndexResult",
           "compact_tables", "index_tables", "select_tables", "open_lake_tables", "record_action", "format_versions",
           "scalar_index_name"]

#: Columns that tell rows apart when compaction is checked (the first column of the table key).
_ROW_KEYS = {table: keys[0] for table, keys in TABLE_KEYS.items()}


class MaintenanceInputError(ValueError):
    """A table, version, tag, run or column that does not exist, named in one line; nothing was changed."""


class MaintenanceError(RuntimeError):
    """An action went wrong on a table (e.g. compaction changed the row count); the table was put back."""


@dataclass
class MaintenanceReport:
    """What one action did: a line per table, and what its ``runs`` row records."""

    action: str
    lake_root: str
    lines: list[str] = field(default_factory=list)
    tables_seen: int = 0
    tables_changed: int = 0
    table_versions: dict[str, int] = field(default_factory=dict)  # tables the action wrote -> version now
    run_id: str | None = None

    def format(self) -> str:
        """Human summary: a header and one line per table."""
        head = f"maintain {self.action} -> {self.lake_root}: {self.tables_changed} of {self.tables_seen} tables changed"
        if self.run_id:
            head += f" (run {self.run_id})"
        return "\n".join([head, *(f"  {line}" for line in self.lines)])


def format_versions(versions: list[int]) -> str:
    """Versions as short ranges for messages (``[1, 2, 3, 7, 9, 10]`` -> ``1-3, 7, 9-10``)."""
    out: list[str] = []
    for v in sorted(versions):
        if out and v == int(out[-1].split("-")[-1]) + 1:
            out[-1] = f"{out[-1].split('-')[0]}-{v}"
        else:
            out.append(str(v))
    return ", ".join(out) or "none"


def select_tables(config: MaintainConfig, only: list[str] | None = None) -> list[str]:
    """The tables an action covers: ``config.tables``, narrowed to ``only`` (each must be a lake table)."""
    if not only:
        return list(config.tables)
    unknown = [t for t in only if t not in LAKE_TABLES]
    if unknown:
        raise MaintenanceInputError(f"unknown table {unknown[0]!r}; the lake's tables are {', '.join(LAKE_TABLES)}")
    return [t for t in LAKE_TABLES if t in only]


def open_lake_tables(config: MaintainConfig, only: list[str] | None = None, *,
                     require: bool = False) -> dict[str, lance.LanceDataset]:
    """The selected tables that exist, opened at their latest version.

    Raises:
        MaintenanceInputError: an unknown table name, or (``require``) a named table not written yet.
    """
    lake = resolve_uri(config.lake_root)
    names = select_tables(config, only)
    found = {}
    for name in names:
        ds = open_table(table_uri(lake, name), config.storage)
        if ds is not None:
            found[name] = ds
    if require and only:
        missing = [n for n in names if n not in found]
        if missing:
            raise MaintenanceInputError(f"no table {missing[0]!r} under {lake} (tables there: "
                                        f"{', '.join(found) or 'none'})")
    if require and not found:
        raise MaintenanceInputError(f"no tables under {lake} (looked for {', '.join(names)})")
    return found


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _run_row(run_id: str, action: str, config: MaintainConfig, args: dict, started: datetime, status: str,
             report: MaintenanceReport | None = None, error: str | None = None) -> dict:
    cfg_json = json.dumps({"action": action, "args": args, "config": config.model_dump(mode="json")}, sort_keys=True)
    seen = report.tables_seen if report else 0
    changed = report.tables_changed if report else 0
    return {
        "run_id": run_id, "job": f"maintain:{action}", "status": status,
        "config_hash": hashlib.sha256(cfg_json.encode()).hexdigest()[:16], "config_json": cfg_json,
        "started_at": started, "ended_at": None if status == "running" else _now(),
        "inputs_seen": seen, "inputs_skipped_unchanged": seen - changed, "inputs_processed": changed,
        "inputs_accepted": changed, "inputs_rejected": 0, "segments_written": 0, "segments_filtered": 0,
        "segments_deduped": 0, "audio_s_in": 0.0, "audio_s_written": 0.0, "error": error,
        "table_versions_json": json.dumps(report.table_versions, sort_keys=True) if report else None,
    }


def record_action(config: MaintainConfig, action: str, args: dict,
                  work: Callable[[], MaintenanceReport]) -> MaintenanceReport:
    """Run ``work`` between a ``running`` and a ``succeeded``/``failed`` row of ``runs`` (if ``record_runs``).

    Input checks belong before this call, so a bad input leaves no row behind.
    """
    if not config.record_runs:
        return work()
    lake = resolve_uri(config.lake_root)
    uri = table_uri(lake, "runs")
    started = _now()
    run_id = f"maintain-{action}-{started:%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}"
    upsert_rows(uri, [_run_row(run_id, action, config, args, started, "running")], RUNS_SCHEMA, ["run_id"],
                config.storage)
    try:
        report = work()
    except BaseException as exc:
        upsert_rows(uri, [_run_row(run_id, action, config, args, started, "failed",
                                   error=f"{type(exc).__name__}: {exc}")], RUNS_SCHEMA, ["run_id"], config.storage,
                    update_existing=True)
        raise
    report.run_id = run_id
    upsert_rows(uri, [_run_row(run_id, action, config, args, started, "succeeded", report)], RUNS_SCHEMA,
                ["run_id"], config.storage, update_existing=True)
    return report


# --- compaction ------------------------------------------------------------------------------------------------


@dataclass
class CompactResult:
    """One table's compaction: fragments and rows before and after, versions."""

    table: str
    fragments_before: int
    fragments_after: int
    rows_before: int
    rows_after: int
    version_before: int
    version_after: int

    def format(self) -> str:
        if self.version_after == self.version_before:
            plural = "" if self.fragments_before == 1 else "s"
            return f"{self.table}: {self.fragments_before} fragment{plural}, {self.rows_before} rows: nothing to compact"
        return (f"{self.table}: fragments {self.fragments_before} -> {self.fragments_after}, rows {self.rows_before} "
                f"-> {self.rows_after}; version {self.version_before} -> {self.version_after}")


def _blob_sample(ds: lance.LanceDataset, table: str, columns: list[str], n: int = 3) -> dict:
    """sha256 of the blob bytes of a few rows (first and last), keyed by row key: a readable-after check."""
    key = _ROW_KEYS.get(table)
    if not columns or key is None or key not in ds.schema.names:
        return {}
    rows = ds.count_rows()
    picks = [ds.to_table(columns=[key], limit=n, with_row_address=True)]
    if rows > n:
        picks.append(ds.to_table(columns=[key], offset=rows - 1, limit=1, with_row_address=True))
    keys, addresses = [], []
    for t in picks:
        keys += t.column(key).to_pylist()
        addresses += t.column("_rowaddr").to_pylist()
    out = {}
    for column in columns:
        blobs = dict(ds.read_blobs(column, addresses=addresses, preserve_order=True)) if addresses else {}
        for k, a in zip(keys, addresses):
            data = blobs.get(a)
            out[(column, k)] = None if data is None else hashlib.sha256(bytes(data)).hexdigest()
    return out


def compact_tables(config: MaintainConfig, tables: list[str] | None = None) -> MaintenanceReport:
    """Merge each table's small fragments (``optimize.compact_files``); rows and blob bytes must not change.

    A table whose compaction changed its row count or the bytes of a sampled blob is restored to its
    pre-compaction version (a new version: nothing is lost) and :class:`MaintenanceError` is raised.

    Raises:
        MaintenanceInputError: an unknown table, or a table named in ``tables`` that does not exist.
        MaintenanceError: see above.

    Example::

        print(compact_tables(MaintainConfig(lake_root="data/lake"), ["segments"]).format())
    """
    found = open_lake_tables(config, tables, require=True)
    lake = resolve_uri(config.lake_root)
    c = config.compaction

    def work() -> MaintenanceReport:
        report = MaintenanceReport("compact", lake, tables_seen=len(found))
        for name in found:
            ds = open_table(table_uri(lake, name), config.storage)  # fresh: the `runs` row may have moved it on
            before_rows, before_frags, before_version = ds.count_rows(), len(ds.get_fragments()), ds.version
            blobs = blob_columns(ds.schema)
            sample = _blob_sample(ds, name, blobs)
            ds.optimize.compact_files(target_rows_per_fragment=c.target_rows_per_fragment,
                                      max_rows_per_group=c.max_rows_per_group,
                                      materialize_deletions_threshold=c.materialize_deletions_threshold)
            after = open_table(table_uri(lake, name), config.storage)
            result = CompactResult(name, before_frags, len(after.get_fragments()), before_rows, after.count_rows(),
                                   before_version, after.version)
            if result.rows_after != result.rows_before or _blob_sample(after, name, blobs) != sample:
                after.checkout_version(before_version).restore()
                raise MaintenanceError(f"compacting {name} changed its rows or blobs ({result.format()}); "
                                       f"restored version {before_version}")
            if result.version_after != result.version_before:
                report.tables_changed += 1
                report.table_versions[name] = result.version_after
            report.lines.append(result.format())
        return report

    return record_action(config, "compact", {"tables": list(found)}, work)


# --- indexes ---------------------------------------------------------------------------------------------------


def scalar_index_name(column: str) -> str:
    """Name of the BTREE index on a column (``segment_id`` -> ``segment_id_idx``)."""
    return f"{column}_idx"


@dataclass
class IndexResult:
    """What ``index`` did to one index of one table."""

    table: str
    index: str
    action: str  # "created", "rebuilt", "optimized", "up to date"
    rows_indexed: int = 0
    rows_added: int = 0

    def format(self) -> str:
        added = f" (+{self.rows_added} rows)" if self.action == "optimized" else ""
        return f"{self.table}.{self.index}: {self.action}{added}; {self.rows_indexed} rows indexed"


def _check_columns(config: MaintainConfig, found: dict[str, lance.LanceDataset]) -> None:
    for name, ds in found.items():
        missing = [col for col in config.index.scalar.get(name, []) if col not in ds.schema.names]
        if missing:
            raise MaintenanceInputError(f"index.scalar: table {name} has no column {missing[0]!r} (columns: "
                                        f"{', '.join(ds.schema.names)})")


def _index_one(ds: lance.LanceDataset, table: str, column: str, rebuild: bool) -> IndexResult:
    name = scalar_index_name(column)
    exists = any(d.name == name for d in ds.describe_indices())
    if not exists or rebuild:
        ds.create_scalar_index(column, "BTREE", name=name, replace=True)
        return IndexResult(table, name, "rebuilt" if exists else "created", rows_indexed=ds.count_rows())
    stats = ds.stats.index_stats(name)
    if not stats["num_unindexed_rows"]:
        return IndexResult(table, name, "up to date", rows_indexed=stats["num_indexed_rows"])
    ds.optimize.optimize_indices(index_names=[name])
    return IndexResult(table, name, "optimized", rows_indexed=ds.count_rows(), rows_added=stats["num_unindexed_rows"])


def index_tables(config: MaintainConfig, tables: list[str] | None = None, *,
                 rebuild: bool = False) -> MaintenanceReport:
    """Create missing BTREE indexes (``config.index.scalar``), give existing ones the appended rows, keep the
    ``factors`` vector index up to date (``update_factor_index``); ``rebuild`` re-creates them all.

    Other indexes found on a table (made by hand) get ``optimize_indices()`` when rows are unindexed.

    Raises:
        MaintenanceInputError: an unknown table or a configured column the table does not have.

    Example::

        print(index_tables(MaintainConfig(lake_root="data/lake")).format())
    """
    found = open_lake_tables(config, tables, require=True)
    _check_columns(config, found)
    lake = resolve_uri(config.lake_root)
    vectors = {vector_index_name(f) for f in config.index.factors.factors} if config.index.factors.build else set()

    def work() -> MaintenanceReport:
        report = MaintenanceReport("index", lake, tables_seen=len(found))
        for name in found:
            ds = open_table(table_uri(lake, name), config.storage)  # fresh: the `runs` row may have moved it on
            results = []
            configured = {scalar_index_name(c) for c in config.index.scalar.get(name, [])}
            for column in config.index.scalar.get(name, []):
                results.append(_index_one(ds, name, column, rebuild))
                ds = open_table(table_uri(lake, name), config.storage)
            for d in ds.describe_indices():  # indexes nobody configured here: bring them up to date too
                if d.name in configured or (name == "factors" and d.name in vectors):
                    continue
                unindexed = ds.stats.index_stats(d.name)["num_unindexed_rows"]
                if unindexed:
                    ds.optimize.optimize_indices(index_names=[d.name])
                    ds = open_table(table_uri(lake, name), config.storage)
                results.append(IndexResult(name, d.name, "optimized" if unindexed else "up to date",
                                           rows_indexed=ds.count_rows() if unindexed else d.num_rows_indexed,
                                           rows_added=unindexed))
            if name == "factors" and vectors:
                if rebuild:
                    for d in ds.describe_indices():
                        if d.name in vectors:
                            ds.drop_index(d.name)
                for u in update_factor_index(lake, config.index.factors, config.storage):
                    action = "rebuilt" if rebuild and u.action == "created" else u.action
                    results.append(IndexResult(name, vector_index_name(u.factor), action, rows_indexed=u.rows,
                                               rows_added=u.rows_added))
                ds = open_table(table_uri(lake, name), config.storage)
            if any(r.action not in ("up to date", "empty table") for r in results):
                report.tables_changed += 1
                report.table_versions[name] = ds.version
            report.lines += [r.format() for r in results] or [f"{name}: no index configured"]
        return report

    return record_action(config, "index", {"tables": list(found), "rebuild": rebuild}, work)
