"""The ``rejects`` table: every input or segment the curation refused, with a reason.

Key: ``reject_id = stable_id(source_uri, sha256, segment_id, stage, reason)``,
merge-inserted, so a re-run that meets the same bad input adds no row.
``reason`` is a short stable code (group by it); ``error`` is the readable
one-line explanation.
"""

from __future__ import annotations

from datetime import datetime
from enum import Enum

import pyarrow as pa
from pydantic import BaseModel, ConfigDict

__all__ = ["RejectRow", "REJECTS_SCHEMA", "RejectReason", "RejectStage"]


class RejectStage(str, Enum):
    """Where in the pipeline the input was refused."""

    LIST = "list"  # listing / manifest resolution (missing file, unsafe tar path)
    READ = "read"
    DECODE = "decode"
    SEGMENT = "segment"  # VAD found no speech, segment too short
    FILTER = "filter"  # quality threshold
    DEDUP = "dedup"


class RejectReason(str, Enum):
    """Stable reason codes (the ``reason`` column)."""

    MISSING_FILE = "missing_file"
    UNSAFE_PATH = "unsafe_path"
    READ_ERROR = "read_error"
    EMPTY_FILE = "empty_file"
    DECODE_ERROR = "decode_error"
    UNSUPPORTED_FORMAT = "unsupported_format"
    NON_FINITE_SAMPLES = "non_finite_samples"
    TOO_LONG = "too_long"
    NO_SPEECH = "no_speech"
    TOO_SHORT = "too_short"
    TOO_LONG_SEGMENT = "too_long_segment"
    LOW_SNR = "low_snr"
    CLIPPING = "clipping"
    TOO_SILENT = "too_silent"
    LOUDNESS = "loudness"
    NARROW_BANDWIDTH = "narrow_bandwidth"
    DUPLICATE = "duplicate"
    NO_SEGMENT_KEPT = "no_segment_kept"


class RejectRow(BaseModel):
    """One row of ``rejects``."""

    model_config = ConfigDict(extra="forbid")

    reject_id: str
    source_uri: str
    sha256: str
    segment_id: str | None = None
    start_s: float | None = None
    end_s: float | None = None
    stage: RejectStage
    reason: RejectReason
    error: str
    duplicate_of: str | None = None
    run_id: str
    rejected_at: datetime


REJECTS_SCHEMA = pa.schema(
    [
        pa.field("reject_id", pa.string(), nullable=False),
        pa.field("source_uri", pa.string(), nullable=False),
        pa.field("sha256", pa.string(), nullable=False),
        pa.field("segment_id", pa.string(), nullable=True),
        pa.field("start_s", pa.float64(), nullable=True),
        pa.field("end_s", pa.float64(), nullable=True),
        pa.field("stage", pa.string(), nullable=False),
        pa.field("reason", pa.string(), nullable=False),
        pa.field("error", pa.string(), nullable=False),
        pa.field("duplicate_of", pa.string(), nullable=True),
        pa.field("run_id", pa.string(), nullable=False),
        pa.field("rejected_at", pa.timestamp("us", tz="UTC"), nullable=False),
    ]
)
