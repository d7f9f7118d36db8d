"""The ``synthetic`` table: one recombined utterance per row, with its recipe, codes, gate scores and verdict.

Key: ``synth_id`` = hash of the recipe (content segment, the donor segment of
each factor, codec id, factorizer id, plan seed; ``recombination.plan``), so
re-running or resuming a plan never writes a row twice.

Lineage is the plan row itself (every ``PLAN_SCHEMA`` column: which segment
gave which factor, the labels it carried, the strategy and seed) plus
``run_id``; the codes decode with the codec named by ``codec_id``.

Gate scores (``recombination.gates``) are stored, not only the verdict, so a
stricter threshold later is a filter, not a re-run:

- ``factor_*``: the output's codes re-encoded by the factorizer and compared
  with the factors put in (cosine of vectors; ``content_agreement`` = share of
  frames whose content code survived). A self-check: the factorizer grades
  its own work here.
- ``judge_speaker_*``: an independent speaker encoder (Resemblyzer's GE2E,
  never trained with our models) on the decoded audio, against the decoded
  target donor and the decoded source. Null when judges are off.
- ``dnsmos_ovrl``: DNSMOS P.835 overall quality of the decoded audio (null when off).

``audio`` (FLAC, 16 kHz mono) is optional and last (a Lance blob column).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import pyarrow as pa
from pydantic import ConfigDict, Field

from schemas._arrow import BLOB_METADATA
from schemas.recombine import PLAN_SCHEMA, PlanRow

__all__ = ["SyntheticRow", "SYNTHETIC_SCHEMA", "SYNTHETIC_KEY", "GATE_COLUMNS"]

SYNTHETIC_KEY: tuple[str] = ("synth_id",)

#: Score columns, all float32 and nullable (NaN/null: not judged, which gates treat as a failure).
GATE_COLUMNS: tuple[str, ...] = (
    "factor_speaker_target_sim", "factor_speaker_source_sim", "factor_style_sim", "factor_environment_sim",
    "factor_channel_sim", "content_agreement", "judge_speaker_target_sim", "judge_speaker_source_sim",
    "dnsmos_ovrl",
)


class SyntheticRow(PlanRow):
    """One row of ``synthetic``: a plan row plus what the run made of it."""

    model_config = ConfigDict(extra="forbid")

    run_id: str
    created_at: datetime
    num_frames: int
    num_stages: int
    frame_rate_hz: float
    factor_speaker_target_sim: float | None = None
    factor_speaker_source_sim: float | None = None
    factor_style_sim: float | None = None
    factor_environment_sim: float | None = None
    factor_channel_sim: float | None = None
    content_agreement: float | None = None
    judge_speaker_target_sim: float | None = None
    judge_speaker_source_sim: float | None = None
    dnsmos_ovrl: float | None = None
    passed: bool
    rejected_by: str = Field(description="gates that failed, comma-separated; empty when passed")
    codes: list[Annotated[int, Field(ge=0, lt=1 << 16)]]
    audio: bytes | None = None


SYNTHETIC_SCHEMA = pa.schema(
    [
        *PLAN_SCHEMA,
        pa.field("run_id", pa.string(), nullable=False),
        pa.field("created_at", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("num_frames", pa.int32(), nullable=False),
        pa.field("num_stages", pa.int16(), nullable=False),
        pa.field("frame_rate_hz", pa.float64(), nullable=False),
        *(pa.field(name, pa.float32(), nullable=True) for name in GATE_COLUMNS),
        pa.field("passed", pa.bool_(), nullable=False),
        pa.field("rejected_by", pa.string(), nullable=False),
        pa.field("codes", pa.list_(pa.uint16()), nullable=False),
        pa.field("audio", pa.large_binary(), nullable=True, metadata=BLOB_METADATA),
    ]
)
