"""The ``runs`` table: one row per job run, written at start (``running``) and updated at the end.

A run that was killed stays ``running`` forever: that is how an operator sees
it. ``table_versions_json`` maps each table the run wrote to the Lance
version it ended at, so any table can be read "as of" a run.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

import pyarrow as pa
from pydantic import BaseModel, ConfigDict

__all__ = ["RunRow", "RUNS_SCHEMA", "RunStatus"]

RunStatus = Literal["running", "succeeded", "failed"]


class RunRow(BaseModel):
    """One row of ``runs``."""

    model_config = ConfigDict(extra="forbid")

    run_id: str
    job: str
    status: RunStatus
    config_hash: str
    config_json: str
    started_at: datetime
    ended_at: datetime | None = None
    inputs_seen: int
    inputs_skipped_unchanged: int
    inputs_processed: int
    inputs_accepted: int
    inputs_rejected: int
    segments_written: int
    segments_filtered: int
    segments_deduped: int
    audio_s_in: float
    audio_s_written: float
    error: str | None = None
    table_versions_json: str | None = None


RUNS_SCHEMA = pa.schema(
    [
        pa.field("run_id", pa.string(), nullable=False),
        pa.field("job", pa.string(), nullable=False),
        pa.field("status", pa.string(), nullable=False),
        pa.field("config_hash", pa.string(), nullable=False),
        pa.field("config_json", pa.string(), nullable=False),
        pa.field("started_at", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("ended_at", pa.timestamp("us", tz="UTC"), nullable=True),
        pa.field("inputs_seen", pa.int64(), nullable=False),
        pa.field("inputs_skipped_unchanged", pa.int64(), nullable=False),
        pa.field("inputs_processed", pa.int64(), nullable=False),
        pa.field("inputs_accepted", pa.int64(), nullable=False),
        pa.field("inputs_rejected", pa.int64(), nullable=False),
        pa.field("segments_written", pa.int64(), nullable=False),
        pa.field("segments_filtered", pa.int64(), nullable=False),
        pa.field("segments_deduped", pa.int64(), nullable=False),
        pa.field("audio_s_in", pa.float64(), nullable=False),
        pa.field("audio_s_written", pa.float64(), nullable=False),
        pa.field("error", pa.string(), nullable=True),
        pa.field("table_versions_json", pa.string(), nullable=True),
    ]
)
