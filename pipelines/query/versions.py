"""Time travel over the lake: a table's history, a table as of a version or run, and what changed between two.

Every Lance commit is a version; a run records the version each table ended
at in ``runs.table_versions_json``. :func:`read_history` joins the two (and
the runs' time windows, for the versions a run committed on its way).
:func:`diff_versions` compares two versions by the table's key
(:data:`~pipelines.query.lake.TABLE_KEYS`): anti-joins of the key columns
give the added and removed rows; a key in both whose row address moved was
rewritten (merge-insert update, or compaction), and only those rows are read
in full to tell an update from a move. So a diff reads the key columns of both
versions plus the rewritten rows, never the blobs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone

import lance
import pyarrow as pa
import pyarrow.compute as pc

from pipelines.lance_io import open_table, table_uri
from pipelines.query.errors import QueryError
from pipelines.query.lake import (
    TABLE_KEYS, clean_message, open_lake_table, query_columns, version_timestamp, versions_at_run,
)
from schemas.sql import sql_list
from schemas.storage import StorageConfig

__all__ = ["read_history", "open_as_of", "read_as_of", "read_rows", "diff_versions", "VersionDiff", "HISTORY_SCHEMA"]

HISTORY_SCHEMA = pa.schema([
    ("version", pa.int64()), ("committed_at", pa.timestamp("us", tz="UTC")), ("rows", pa.int64()),
    ("rows_change", pa.int64()), ("fragments", pa.int64()), ("tags", pa.string()),
    ("run_id", pa.string()), ("during_run", pa.string()),
])

_FAR_FUTURE = datetime.max.replace(tzinfo=timezone.utc)


def _utc(ts: datetime) -> datetime:
    return ts if ts.tzinfo else ts.replace(tzinfo=timezone.utc)


def _read_runs(lake_root: str, storage: StorageConfig) -> list[dict]:
    ds = open_table(table_uri(lake_root, "runs"), storage)
    if ds is None:
        return []
    return ds.to_table(columns=["run_id", "started_at", "ended_at", "table_versions_json"]).to_pylist()


def read_history(lake_root: str, table: str, storage: StorageConfig | None = None) -> pa.Table:
    """Every version of a table: commit time, rows, tags, and the run that wrote it.

    ``run_id``: the run(s) whose ``table_versions_json`` names this version (it ended there).
    ``during_run``: the run(s) running when the version was committed (``started_at`` to ``ended_at``; a run
    that never ended: until the next run started), which also names the versions a run committed on its way.

    Example::

        read_history("data/lake", "segments").to_pylist()[-1]
        # {'version': 3, 'committed_at': ..., 'rows': 5123, 'rows_change': 812, ..., 'run_id': 'curate-...'}
    """
    storage = storage or StorageConfig()
    ds = open_lake_table(lake_root, table, storage)
    runs = _read_runs(lake_root, storage)
    recorded: dict[int, list[str]] = {}
    for run in runs:
        version = json.loads(run["table_versions_json"] or "{}").get(table)
        if version is not None:
            recorded.setdefault(int(version), []).append(run["run_id"])
    starts = sorted(_utc(r["started_at"]) for r in runs)
    windows = []
    for run in runs:
        start = _utc(run["started_at"])
        end = _utc(run["ended_at"]) if run["ended_at"] else next((s for s in starts if s > start), _FAR_FUTURE)
        windows.append((start, end, run["run_id"]))
    tags: dict[int, list[str]] = {}
    for name, info in ds.tags.list().items():
        tags.setdefault(int(info["version"]), []).append(name)
    rows, previous = [], 0
    for entry in ds.versions():
        version, at = int(entry["version"]), version_timestamp(entry)
        meta = entry.get("metadata") or {}
        count = int(meta["total_rows"]) if "total_rows" in meta else open_lake_table(
            lake_root, table, storage, version).count_rows()
        rows.append({
            "version": version, "committed_at": at, "rows": count, "rows_change": count - previous,
            "fragments": int(meta.get("total_fragments", 0)), "tags": ", ".join(sorted(tags.get(version, []))),
            "run_id": ", ".join(recorded.get(version, [])),
            "during_run": ", ".join(rid for start, end, rid in windows if start <= at <= end),
        })
        previous = count
    return pa.Table.from_pylist(rows, schema=HISTORY_SCHEMA)


def open_as_of(lake_root: str, table: str, *, version: int | str | None = None, run_id: str | None = None,
               storage: StorageConfig | None = None) -> lance.LanceDataset:
    """A table at a version or tag, or as a run left it (see :func:`pipelines.query.lake.versions_at_run`).

    Raises:
        QueryError: both version and run_id given, unknown table, version, tag or run, or a table that did
            not exist yet when the run ended.
    """
    storage = storage or StorageConfig()
    if version is not None and run_id is not None:
        raise QueryError("give a version or a run id, not both")
    if run_id is not None:
        pinned = versions_at_run(lake_root, run_id, storage)
        open_lake_table(lake_root, table, storage)  # a clear error for an unknown or unwritten table first
        if table not in pinned:
            raise QueryError(f"table {table!r} did not exist yet when run {run_id!r} ended")
        version = pinned[table]
    return open_lake_table(lake_root, table, storage, version)


def read_rows(ds: lance.LanceDataset, *, columns: list[str] | None = None, filter: str | None = None,
              limit: int | None = None) -> pa.Table:
    """Rows of a dataset with Lance's own projection and filter (default columns: all but the blobs).

    Raises:
        QueryError: a missing column, a blob column, or a filter Lance cannot parse or resolve.
    """
    wanted = columns or query_columns(ds)
    have = set(ds.schema.names)
    missing = [c for c in wanted if c not in have]
    if missing:
        raise QueryError(f"no column {', '.join(map(repr, missing))}; columns are {', '.join(query_columns(ds))}")
    blobs = [c for c in wanted if c not in query_columns(ds)]
    if blobs:
        raise QueryError(f"{', '.join(blobs)}: blob column (read audio with pipelines.lance_io.read_segment_audio)")
    if limit is not None and limit < 0:
        raise QueryError(f"limit must be >= 0, got {limit}")
    try:
        return ds.to_table(columns=wanted, filter=filter, limit=limit)
    except (ValueError, OSError) as exc:
        raise QueryError(f"bad filter {filter!r}: {clean_message(exc)}" if filter else clean_message(exc)) from None


def read_as_of(lake_root: str, table: str, *, version: int | str | None = None, run_id: str | None = None,
               storage: StorageConfig | None = None, columns: list[str] | None = None, filter: str | None = None,
               limit: int | None = None) -> pa.Table:
    """Rows of a table at a version/tag or as of a run (Lance projection + filter; no blobs).

    Example::

        read_as_of("data/lake", "segments", run_id="curate-20260101", columns=["segment_id", "speaker"])
    """
    ds = open_as_of(lake_root, table, version=version, run_id=run_id, storage=storage)
    return read_rows(ds, columns=columns, filter=filter, limit=limit)


@dataclass(frozen=True)
class VersionDiff:
    """What changed in a table from ``version_from`` to ``version_to``; each table holds key columns + run_id."""

    table: str
    version_from: int
    version_to: int
    rows_from: int
    rows_to: int
    added: pa.Table
    removed: pa.Table
    updated: pa.Table
    unchanged: int

    def to_table(self) -> pa.Table:
        """All changes in one table, a ``change`` column first (added / removed / updated)."""
        parts = [t.add_column(0, "change", pa.array([name] * t.num_rows, pa.string()))
                 for name, t in (("added", self.added), ("removed", self.removed), ("updated", self.updated))]
        return pa.concat_tables(parts, promote_options="permissive")

    def format(self) -> str:
        """One line of counts."""
        return (f"{self.table} v{self.version_from} -> v{self.version_to}: {self.rows_from} -> {self.rows_to} rows; "
                f"+{self.added.num_rows} added, -{self.removed.num_rows} removed, {self.updated.num_rows} updated, "
                f"{self.unchanged} unchanged")


def _keys_with_address(ds: lance.LanceDataset, key: list[str]) -> pa.Table:
    cols = key + (["run_id"] if "run_id" in ds.schema.names and "run_id" not in key else [])
    return ds.to_table(columns=cols, with_row_address=True)


def _rows_by_key(ds: lance.LanceDataset, key: list[str], keys: pa.Table, columns: list[str]) -> pa.Table:
    """Full rows (no blobs) of the given keys, filtered by the first key column in chunks, then joined exactly."""
    parts = []
    first = keys.column(key[0]).to_pylist()
    for i in range(0, len(first), 500):
        where = f"{key[0]} IN ({sql_list(first[i:i + 500])})"
        parts.append(ds.to_table(columns=columns, filter=where))
    rows = pa.concat_tables(parts) if parts else ds.schema.empty_table().select(columns)
    wanted = set(zip(*(keys.column(k).to_pylist() for k in key)))
    found = zip(*(rows.column(k).to_pylist() for k in key))
    return rows.filter(pa.array([k in wanted for k in found], pa.bool_()))  # (no Arrow join: lists in rows)


def _sort(t: pa.Table, key: list[str]) -> pa.Table:
    return t.sort_by([(k, "ascending") for k in key])


def diff_versions(lake_root: str, table: str, version_from: int | str, version_to: int | str,
                  storage: StorageConfig | None = None) -> VersionDiff:
    """Rows added, removed and updated between two versions of a table, by its key.

    Raises:
        QueryError: unknown table or version (the message lists the versions that exist).

    Example::

        diff_versions("data/lake", "segments", 2, 3).format()
        # 'segments v2 -> v3: 4100 -> 5123 rows; +1023 added, -0 removed, 0 updated, 4100 unchanged'
    """
    storage = storage or StorageConfig()
    old = open_lake_table(lake_root, table, storage, version_from)
    new = open_lake_table(lake_root, table, storage, version_to)
    key = list(TABLE_KEYS[table])
    k_old, k_new = _keys_with_address(old, key), _keys_with_address(new, key)
    shown = [c for c in k_new.column_names if c != "_rowaddr"]
    added = _sort(k_new.join(k_old.select(key), key, join_type="left anti").select(shown), key)
    removed = _sort(k_old.join(k_new.select(key), key, join_type="left anti").select(shown), key)
    both = k_new.join(k_old.select([*key, "_rowaddr"]), key, join_type="inner", right_suffix="_old")
    moved = both.filter(pc.not_equal(both.column("_rowaddr"), both.column("_rowaddr_old")))
    updated = k_new.select(shown).slice(0, 0)
    if moved.num_rows:
        columns = [c for c in query_columns(new) if c in set(query_columns(old))]
        before = _sort(_rows_by_key(old, key, moved, columns), key)
        after = _sort(_rows_by_key(new, key, moved, columns), key)
        changed = [i for i, (a, b) in enumerate(zip(before.to_pylist(), after.to_pylist())) if a != b]
        updated = after.take(pa.array(changed, pa.int64())).select(shown)
    return VersionDiff(table=table, version_from=old.version, version_to=new.version, rows_from=old.count_rows(),
                       rows_to=new.count_rows(), added=added, removed=removed, updated=updated,
                       unchanged=both.num_rows - updated.num_rows)
