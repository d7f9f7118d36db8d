"""The ``factors`` table: one segment factorized by one factorizer per row.

Key: ``(segment_id, factorizer_id)``. The factorizer id already names the
codec whose latents it reads (``models.factorizer.checkpoint``), and
``codec_id`` is kept beside it so a query can select both without parsing ids.

The global factors are fixed-size float32 vectors, L2-normalised, so a Lance
vector index (cosine) answers "utterances whose voice is like this one" on
``speaker_vector``. Their sizes are fixed for the table (every factorizer
written here must produce them: :data:`FACTOR_DIMS`), because a
``fixed_size_list`` column has one size and a vector index needs one.

The content stream is the factorizer's frame-level bottleneck: one FSQ code
per frame (``content_codes``, ``list<uint16>``), enough to re-synthesize the
utterance with other global factors without reading ``latents`` again.

``split``, ``speaker``, ``language``, ``style``, ``environment``, ``channel``
and ``corpus`` are copied from ``segments`` so a vector search returns
readable rows without a join.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field

__all__ = ["FactorRow", "FACTORS_SCHEMA", "FACTORS_KEY", "FACTOR_DIMS", "VECTOR_COLUMNS"]

FACTORS_KEY: tuple[str, str] = ("segment_id", "factorizer_id")

#: Vector size of each global factor in the table.
FACTOR_DIMS: dict[str, int] = {"speaker": 64, "style": 16, "environment": 16, "channel": 16}

#: factor name -> its vector column.
VECTOR_COLUMNS: dict[str, str] = {name: f"{name}_vector" for name in FACTOR_DIMS}

_LABELS = ("split", "speaker", "language", "style", "environment", "channel", "corpus")


class FactorRow(BaseModel):
    """One row of ``factors`` (vectors as plain lists of floats)."""

    model_config = ConfigDict(extra="forbid")

    segment_id: str
    factorizer_id: str
    codec_id: str
    num_frames: int
    duration_s: float
    split: str
    speaker: str | None = None
    language: str | None = None
    style: str | None = None
    environment: str | None = None
    channel: str | None = None
    corpus: str | None = None
    run_id: str
    encoded_at: datetime
    speaker_vector: list[float] = Field(min_length=FACTOR_DIMS["speaker"], max_length=FACTOR_DIMS["speaker"])
    style_vector: list[float] = Field(min_length=FACTOR_DIMS["style"], max_length=FACTOR_DIMS["style"])
    environment_vector: list[float] = Field(min_length=FACTOR_DIMS["environment"],
                                            max_length=FACTOR_DIMS["environment"])
    channel_vector: list[float] = Field(min_length=FACTOR_DIMS["channel"], max_length=FACTOR_DIMS["channel"])
    content_codes: list[Annotated[int, Field(ge=0, lt=1 << 16)]]


FACTORS_SCHEMA = pa.schema(
    [
        pa.field("segment_id", pa.string(), nullable=False),
        pa.field("factorizer_id", pa.string(), nullable=False),
        pa.field("codec_id", pa.string(), nullable=False),
        pa.field("num_frames", pa.int32(), nullable=False),
        pa.field("duration_s", pa.float64(), nullable=False),
        pa.field("split", pa.string(), nullable=False),
        *[pa.field(name, pa.string(), nullable=True) for name in _LABELS[1:]],
        pa.field("run_id", pa.string(), nullable=False),
        pa.field("encoded_at", pa.timestamp("us", tz="UTC"), nullable=False),
        *[pa.field(VECTOR_COLUMNS[name], pa.list_(pa.float32(), dim), nullable=False)
          for name, dim in FACTOR_DIMS.items()],
        pa.field("content_codes", pa.list_(pa.uint16()), nullable=False),
    ]
)
