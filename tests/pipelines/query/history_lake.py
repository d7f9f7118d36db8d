"""A tiny lake with history, for the SQL and time-travel tests: two runs, several versions, a tag, no Ray.

Run ``r1`` writes 2 segments (segments v1); run ``r2`` adds 2 more (segments
v2) and latents of all 4 (latents v1). Each run's ``runs`` row is written
``running`` at start and updated to ``succeeded`` at the end with the table
versions it ended at, like the real jobs do; segments v1 is tagged ``first``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone

import pyarrow as pa

from pipelines.lance_io import open_table, table_uri, upsert_rows
from schemas.runs import RUNS_SCHEMA
from schemas.storage import StorageConfig
from tests.tiny_lake import segment_row, write_latents, write_segments

__all__ = ["HistoryLake", "build_history_lake", "run_row"]


@dataclass(frozen=True)
class HistoryLake:
    """Where the lake is and what went into it."""

    root: str
    rows: list[dict]        # the 4 segments rows (first 2 written by r1)
    durations_s: list[float]
    codec_id: str = "codec-test"


def run_row(run_id: str, status: str, started: datetime, ended: datetime | None = None,
            versions: dict[str, int] | None = None) -> dict:
    """One ``runs`` row with zero counts."""
    row: dict = {f.name: 0 for f in RUNS_SCHEMA if pa.types.is_integer(f.type)}
    row.update({f.name: 0.0 for f in RUNS_SCHEMA if pa.types.is_floating(f.type)})
    row.update({"run_id": run_id, "job": "curate", "status": status, "config_hash": "h", "config_json": "{}",
                "started_at": started, "ended_at": ended,
                "table_versions_json": None if versions is None else json.dumps(versions, sort_keys=True)})
    return row


def _run(lake: str, run_id: str, storage: StorageConfig, write) -> None:
    runs = table_uri(lake, "runs")
    started = datetime.now(timezone.utc)
    upsert_rows(runs, [run_row(run_id, "running", started)], RUNS_SCHEMA, ["run_id"], storage)
    versions = write()
    ended = datetime.now(timezone.utc)
    upsert_rows(runs, [run_row(run_id, "succeeded", started, ended, versions)], RUNS_SCHEMA, ["run_id"], storage,
                update_existing=True)


def build_history_lake(lake: str, storage: StorageConfig | None = None) -> HistoryLake:
    """Write the lake described in the module docstring under ``lake`` (a path or ``s3://`` URI)."""
    storage = storage or StorageConfig()
    durations = [0.5, 0.6, 0.7, 0.8]
    rows = [segment_row(d, seed=i, speaker=f"t:{i % 2}") for i, d in enumerate(durations)]
    codec_id = HistoryLake(lake, rows, durations).codec_id
    _run(lake, "r1", storage, lambda: {"segments": write_segments(lake, rows[:2], storage)})
    _run(lake, "r2", storage, lambda: {"segments": write_segments(lake, rows[2:], storage),
                                       "latents": write_latents(lake, rows, codec_id=codec_id, storage=storage)})
    seg = open_table(table_uri(lake, "segments"), storage)
    seg.tags.create("first", 1)  # type: ignore[union-attr]
    return HistoryLake(lake, rows, durations, codec_id)
