"""Lineage of one synthetic utterance: the segment behind each factor, what that segment is, and who made the row.

A ``synthetic`` row already holds its recipe (``schemas.recombine.PLAN_SCHEMA``:
the segment id of each factor, strategy, seed, codec and factorizer ids) and
its ``run_id``. :func:`read_lineage` spreads it into one row per factor
(content, speaker, style, environment, channel) and joins what the recipe
only names: each segment's labels and provenance from ``segments`` (source
URI, the curation run that wrote it) and the recombine run from ``runs`` (job,
status, start, config hash). A segment or run missing from the lake (a table
rebuilt since) leaves its columns null and ``segment_found`` false: lineage
still says what the row was made from.
"""

from __future__ import annotations

import argparse
from typing import Any

import pyarrow as pa

from pipelines.lance_io import open_table, table_uri
from pipelines.query.errors import QueryError
from pipelines.query.lake import open_lake_table
from schemas.recombine import FACTORS
from schemas.sql import sql_list, sql_quote
from schemas.storage import StorageConfig, resolve_uri

__all__ = ["read_lineage", "add_command", "LINEAGE_SCHEMA", "LINEAGE_FACTORS"]

#: One lineage row per factor, in this order.
LINEAGE_FACTORS: tuple[str, ...] = ("content", *FACTORS)

_SEGMENT_LABELS = ("speaker", "language", "style", "environment", "channel", "corpus")
_RUN_COLUMNS = ("job", "status", "started_at", "config_hash")
_SYNTH_COLUMNS = ("synth_id", "content_segment_id", *(f"{f}_segment_id" for f in FACTORS), "varied", "strategy",
                  "plan_seed", "codec_id", "factorizer_id", "passed", "run_id")

LINEAGE_SCHEMA = pa.schema([
    pa.field("synth_id", pa.string()),
    pa.field("factor", pa.string()),
    pa.field("varied", pa.bool_()),  # the plan swapped this factor in from a donor (content: never)
    pa.field("segment_id", pa.string()),
    pa.field("segment_found", pa.bool_()),
    *(pa.field(name, pa.string()) for name in _SEGMENT_LABELS),
    pa.field("duration_s", pa.float64()),
    pa.field("source_uri", pa.string()),
    pa.field("segment_run_id", pa.string()),  # the curation run that wrote the segment
    pa.field("codec_id", pa.string()),
    pa.field("factorizer_id", pa.string()),
    pa.field("strategy", pa.string()),
    pa.field("plan_seed", pa.int64()),
    pa.field("passed", pa.bool_()),
    pa.field("run_id", pa.string()),  # the recombine run that made the synthetic row
    pa.field("run_job", pa.string()),
    pa.field("run_status", pa.string()),
    pa.field("run_started_at", pa.timestamp("us", tz="UTC")),
    pa.field("run_config_hash", pa.string()),
])

#: Shortest id prefix looked up when no synth_id matches exactly (ids are 32 hex digits).
_MIN_PREFIX = 6


def _read_synthetic(lake: str, storage: StorageConfig, synth_id: str) -> dict:
    """The synthetic row's recipe columns; a unique prefix of the id is enough."""
    ds = open_lake_table(lake, "synthetic", storage)
    rows = ds.to_table(columns=list(_SYNTH_COLUMNS), filter=f"synth_id = {sql_quote(synth_id)}").to_pylist()
    if not rows and len(synth_id) >= _MIN_PREFIX and synth_id.isalnum():
        rows = ds.to_table(columns=list(_SYNTH_COLUMNS), filter=f"starts_with(synth_id, {sql_quote(synth_id)})",
                           limit=2).to_pylist()
        if len(rows) > 1:
            raise QueryError(f"synth_id prefix {synth_id!r} matches several rows: give more of the id")
    if not rows:
        raise QueryError(f"unknown synth_id {synth_id!r}: no such row in {table_uri(lake, 'synthetic')} "
                         f"({ds.count_rows()} rows)")
    return rows[0]


def _read_segments(lake: str, storage: StorageConfig, ids: list[str]) -> dict[str, dict]:
    ds = open_table(table_uri(lake, "segments"), storage)
    if ds is None:
        return {}
    columns = ["segment_id", *_SEGMENT_LABELS, "duration_s", "source_uri", "run_id"]
    found = ds.to_table(columns=columns, filter=f"segment_id IN ({sql_list(sorted(set(ids)))})").to_pylist()
    return {r["segment_id"]: r for r in found}


def _read_run(lake: str, storage: StorageConfig, run_id: str) -> dict:
    ds = open_table(table_uri(lake, "runs"), storage)
    if ds is None:
        return {}
    found = ds.to_table(columns=list(_RUN_COLUMNS), filter=f"run_id = {sql_quote(run_id)}", limit=1).to_pylist()
    return found[0] if found else {}


def read_lineage(lake_root: str, storage: StorageConfig | None, synth_id: str) -> pa.Table:
    """One row per factor of a synthetic row: the segment behind it, its labels, the models and the run.

    Args:
        synth_id: the row's id (a unique prefix of at least 6 characters is enough).

    Returns:
        A :data:`LINEAGE_SCHEMA` table of 5 rows, in :data:`LINEAGE_FACTORS` order.

    Raises:
        QueryError: no synthetic table, or no row with that id (or an ambiguous prefix).

    Example::

        read_lineage("data/lake", StorageConfig(), "3f2a9c1e")
    """
    storage = storage or StorageConfig()
    lake = resolve_uri(lake_root)
    synth = _read_synthetic(lake, storage, synth_id)
    behind = {f: synth[f"{f}_segment_id"] for f in LINEAGE_FACTORS}
    segments = _read_segments(lake, storage, list(behind.values()))
    run = _read_run(lake, storage, synth["run_id"])
    varied = set(synth["varied"].split("+")) if synth["varied"] else set()
    rows = []
    for factor, segment_id in behind.items():
        seg = segments.get(segment_id, {})
        rows.append({
            "synth_id": synth["synth_id"], "factor": factor, "varied": factor in varied, "segment_id": segment_id,
            "segment_found": bool(seg), **{name: seg.get(name) for name in _SEGMENT_LABELS},
            "duration_s": seg.get("duration_s"), "source_uri": seg.get("source_uri"),
            "segment_run_id": seg.get("run_id"),
            **{name: synth[name] for name in ("codec_id", "factorizer_id", "strategy", "plan_seed", "passed",
                                              "run_id")},
            **{f"run_{name}": run.get(name) for name in _RUN_COLUMNS},
        })
    return pa.Table.from_pylist(rows, schema=LINEAGE_SCHEMA)


def _run(args: argparse.Namespace) -> pa.Table:
    return read_lineage(args.lake_root, args.storage, args.synth_id)


def add_command(subparsers: Any) -> None:
    """Register ``lineage``: the sources of each factor of one synthetic row, its models and its run."""
    p = subparsers.add_parser("lineage", help="where a synthetic row came from: the segment behind each factor, "
                              "models, run", description="One row per factor (content, speaker, style, environment, "
                              "channel) of a synthetic row, with the segment's labels and the recombine run.")
    p.add_argument("synth_id", help="the synthetic row's id (a unique prefix of 6+ characters is enough)")
    p.set_defaults(run=_run)
