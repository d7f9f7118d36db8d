"""The ``sources`` table: one row per raw input object seen (file, tar member, manifest row).

Key: (``source_uri``, ``sha256``). A changed file is a new row; an unchanged
file (same size and mtime/etag as its last row) is skipped by incremental
runs without being read. Every source ends ``accepted`` (at least one segment
kept) or ``rejected`` with a ``reason`` that also has a row in ``rejects``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

import pyarrow as pa
from pydantic import BaseModel, ConfigDict

__all__ = ["SourceRow", "SOURCES_SCHEMA", "SourceStatus", "SOURCE_KEY"]

SourceStatus = Literal["accepted", "rejected"]
SOURCE_KEY = ["source_uri", "sha256"]


class SourceRow(BaseModel):
    """One row of ``sources``."""

    model_config = ConfigDict(extra="forbid")

    source_uri: str
    container_uri: str | None = None  # the tar shard a member came from
    sha256: str  # "" when the object could not be read (missing file)
    size_bytes: int | None = None
    mtime_ns: int | None = None
    etag: str | None = None
    status: SourceStatus
    reason: str | None = None
    format: str | None = None
    sample_rate_hz: int | None = None
    channels: int | None = None
    duration_s: float | None = None
    segments_found: int
    segments_written: int
    segments_filtered: int
    segments_deduped: int
    run_id: str
    ingested_at: datetime


SOURCES_SCHEMA = pa.schema(
    [
        pa.field("source_uri", pa.string(), nullable=False),
        pa.field("container_uri", pa.string(), nullable=True),
        pa.field("sha256", pa.string(), nullable=False),
        pa.field("size_bytes", pa.int64(), nullable=True),
        pa.field("mtime_ns", pa.int64(), nullable=True),
        pa.field("etag", pa.string(), nullable=True),
        pa.field("status", pa.string(), nullable=False),
        pa.field("reason", pa.string(), nullable=True),
        pa.field("format", pa.string(), nullable=True),
        pa.field("sample_rate_hz", pa.int32(), nullable=True),
        pa.field("channels", pa.int16(), nullable=True),
        pa.field("duration_s", pa.float64(), nullable=True),
        pa.field("segments_found", pa.int32(), nullable=False),
        pa.field("segments_written", pa.int32(), nullable=False),
        pa.field("segments_filtered", pa.int32(), nullable=False),
        pa.field("segments_deduped", pa.int32(), nullable=False),
        pa.field("run_id", pa.string(), nullable=False),
        pa.field("ingested_at", pa.timestamp("us", tz="UTC"), nullable=False),
    ]
)
