"""The ``latents`` table: one segment encoded by one codec per row.

Key: ``(segment_id, codec_id)``. ``codec_id`` names the exact model, weights
included (``<preset>-<config hash>-w<weights hash>``, see
``models.codec.checkpoint``), so retrained weights never pass as the old ones,
several codecs' latents of the same segment live side by side and an encode
run only ever adds the pairs that are missing (idempotent, incremental).

Why ``codes`` is a flat ``list<uint16>`` (frame-major: frame 0's stages, then
frame 1's, ...; ``reshape(num_frames, num_stages)``) rather than packed
``uint16`` bytes in a binary column:

- queryable: Lance SQL sees the values (``array_length(codes)``,
  ``codes[1] = 0``) and Arrow/NumPy read them zero-copy
  (``column.values.to_numpy()``), where a binary column is opaque bytes with an
  endianness to remember;
- compact: Lance bit-packs integer lists, so codes below 1000 (FSQ levels
  8x5x5x5) take ~10 bits on disk, less than the 16 of packed bytes (measured:
  0.66x the uint16 payload); the per-row offset is 4 bytes;
- one schema for every codec: the stage count differs between codecs, so a
  ``fixed_size_list`` per frame cannot be declared once for the table;
  ``num_frames`` and ``num_stages`` give the shape instead.

``split``, ``speaker`` and ``corpus`` are copied from ``segments`` so latent
queries (and ``schemas.codec.segments_filter``) need no join;
``segments_version`` is the ``segments`` table version the audio was read at.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field

__all__ = ["LatentRow", "LATENTS_SCHEMA", "LATENTS_KEY"]

#: The table's key: merge/anti-join on these.
LATENTS_KEY: tuple[str, str] = ("segment_id", "codec_id")


class LatentRow(BaseModel):
    """One row of ``latents``."""

    model_config = ConfigDict(extra="forbid")

    segment_id: str
    codec_id: str
    num_frames: int
    num_stages: int
    frame_rate_hz: float
    bitrate_bps: float
    num_samples: int
    sample_rate_hz: int
    duration_s: float
    split: str
    speaker: str | None = None
    corpus: str | None = None
    segments_version: int
    run_id: str
    encoded_at: datetime
    codes: list[Annotated[int, Field(ge=0, lt=1 << 16)]]  # num_frames x num_stages, frame-major


LATENTS_SCHEMA = pa.schema(
    [
        pa.field("segment_id", pa.string(), nullable=False),
        pa.field("codec_id", pa.string(), nullable=False),
        pa.field("num_frames", pa.int32(), nullable=False),
        pa.field("num_stages", pa.int16(), nullable=False),
        pa.field("frame_rate_hz", pa.float64(), nullable=False),
        pa.field("bitrate_bps", pa.float64(), nullable=False),
        pa.field("num_samples", pa.int64(), nullable=False),
        pa.field("sample_rate_hz", pa.int32(), nullable=False),
        pa.field("duration_s", pa.float64(), nullable=False),
        pa.field("split", pa.string(), nullable=False),
        pa.field("speaker", pa.string(), nullable=True),
        pa.field("corpus", pa.string(), nullable=True),
        pa.field("segments_version", pa.int64(), nullable=False),
        pa.field("run_id", pa.string(), nullable=False),
        pa.field("encoded_at", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("codes", pa.list_(pa.uint16()), nullable=False),
    ]
)
