"""The lake's tables by name and the key of each: one list for the query CLI, the maintenance jobs and reports.

The row schemas live in their own modules (``schemas/segments.py``, ...); this is
only what tools that walk *every* table need to agree on.
"""

from __future__ import annotations

from typing import Literal

__all__ = ["LAKE_TABLES", "TableName", "TABLE_KEYS"]

#: Every table a lake can hold, in the order the pipeline writes them (README "The tables").
LAKE_TABLES: tuple[str, ...] = ("sources", "segments", "rejects", "runs", "latents", "factors", "synthetic")

TableName = Literal["sources", "segments", "rejects", "runs", "latents", "factors", "synthetic"]

#: The key of each table: what makes a row the same row across versions (the first column is what lookups use).
TABLE_KEYS: dict[str, tuple[str, ...]] = {
    "sources": ("source_uri", "sha256"), "segments": ("segment_id",), "rejects": ("reject_id",),
    "runs": ("run_id",), "latents": ("segment_id", "codec_id"), "factors": ("segment_id", "factorizer_id"),
    "synthetic": ("synth_id",),
}
