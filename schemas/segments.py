"""The ``segments`` table: one curated 16 kHz mono speech segment per row.

Key: ``segment_id = stable_id(source_sha256, start_ms, end_ms)``, so the same
audio cut from the same content gets the same id on every run (idempotent
writes). Audio is FLAC bytes in a Lance blob column (stored out of line;
read it with ``pipelines.lance_io.read_segment_audio`` or lance-ray's
``read_lance``, which turn blob descriptions back into bytes).
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

import pyarrow as pa
from pydantic import ConfigDict

from schemas._arrow import BLOB_METADATA, stable_id
from schemas.labels import SegmentLabels

__all__ = ["SegmentRow", "SEGMENTS_SCHEMA", "LABEL_COLUMNS", "QUALITY_COLUMNS", "Split", "make_segment_id"]

Split = Literal["train", "valid", "test"]

_LABEL_ARROW = {str: pa.string(), float: pa.float32(), int: pa.int32(), bool: pa.bool_()}


def _label_fields() -> list[pa.Field]:
    from schemas._arrow import _unwrap_optional

    out = []
    for name, info in SegmentLabels.model_fields.items():
        inner, _ = _unwrap_optional(info.annotation)
        out.append(pa.field(name, _LABEL_ARROW[inner], nullable=True))  # type: ignore[index]
    return out


LABEL_COLUMNS: tuple[str, ...] = tuple(SegmentLabels.model_fields)
QUALITY_COLUMNS: tuple[str, ...] = (
    "snr_db", "clipping_ratio", "silence_ratio", "loudness_lufs", "bandwidth_hz", "peak_dbfs", "rms_dbfs",
)


def make_segment_id(source_sha256: str, start_s: float, end_s: float) -> str:
    """Deterministic id of a cut of some content (times rounded to the millisecond)."""
    return stable_id(source_sha256, round(start_s * 1000), round(end_s * 1000))


class SegmentRow(SegmentLabels):
    """One row of ``segments`` (labels are inherited from :class:`SegmentLabels`)."""

    model_config = ConfigDict(extra="forbid")

    segment_id: str
    source_uri: str
    source_sha256: str
    start_s: float
    end_s: float
    duration_s: float
    sample_rate_hz: int
    audio: bytes
    pcm_hash: str
    split: Split
    extra_labels_json: str | None = None
    # quality (measured on the 16 kHz segment)
    snr_db: float | None = None
    clipping_ratio: float
    silence_ratio: float
    loudness_lufs: float | None = None
    bandwidth_hz: float | None = None
    peak_dbfs: float | None = None
    rms_dbfs: float | None = None
    # where it came from
    source_sample_rate_hz: int
    source_channels: int
    source_format: str
    run_id: str
    ingested_at: datetime


SEGMENTS_SCHEMA = pa.schema(
    [
        pa.field("segment_id", pa.string(), nullable=False),
        pa.field("source_uri", pa.string(), nullable=False),
        pa.field("source_sha256", pa.string(), nullable=False),
        pa.field("start_s", pa.float64(), nullable=False),
        pa.field("end_s", pa.float64(), nullable=False),
        pa.field("duration_s", pa.float64(), nullable=False),
        pa.field("sample_rate_hz", pa.int32(), nullable=False),
        pa.field("pcm_hash", pa.string(), nullable=False),
        pa.field("split", pa.string(), nullable=False),
        *_label_fields(),
        pa.field("extra_labels_json", pa.string(), nullable=True),
        pa.field("snr_db", pa.float32(), nullable=True),
        pa.field("clipping_ratio", pa.float32(), nullable=False),
        pa.field("silence_ratio", pa.float32(), nullable=False),
        pa.field("loudness_lufs", pa.float32(), nullable=True),
        pa.field("bandwidth_hz", pa.float32(), nullable=True),
        pa.field("peak_dbfs", pa.float32(), nullable=True),
        pa.field("rms_dbfs", pa.float32(), nullable=True),
        pa.field("source_sample_rate_hz", pa.int32(), nullable=False),
        pa.field("source_channels", pa.int16(), nullable=False),
        pa.field("source_format", pa.string(), nullable=False),
        pa.field("run_id", pa.string(), nullable=False),
        pa.field("ingested_at", pa.timestamp("us", tz="UTC"), nullable=False),
        # Last on purpose: lance-ray 0.5 + pylance 14 fail the commit ("field IDs do not match")
        # when a blob column is followed by other columns.
        pa.field("audio", pa.large_binary(), nullable=False, metadata=BLOB_METADATA),
    ]
)
