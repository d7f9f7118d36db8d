"""A tiny ``segments`` table written straight with Lance (no curation run, no Ray): for tests of later stages.

Rows are real :data:`schemas.segments.SEGMENTS_SCHEMA` rows with real FLAC blobs
of speech-like audio of the given lengths; writing a few takes milliseconds,
where curating a corpus costs a Ray run.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

from pipelines.audio.flac import encode_flac, pcm_hash
from pipelines.lance_io import table_uri, upsert_rows
from schemas.segments import SEGMENTS_SCHEMA, make_segment_id
from schemas.storage import StorageConfig
from tests.factories import speechlike

__all__ = ["segment_row", "write_segments"]


def segment_row(duration_s: float, *, seed: int, speaker: str | None = "test:a", split: str = "train",
                corpus: str | None = "test") -> dict:
    """One ``segments`` row of ``duration_s`` of speech-like audio (seed makes the audio and the id)."""
    samples = speechlike(duration_s, seed=seed, f0_hz=110.0 + 7 * seed)
    sha = f"{seed:064x}"
    return {
        "segment_id": make_segment_id(sha, 0.0, duration_s), "source_uri": f"file:///raw/{seed}.wav",
        "source_sha256": sha, "start_s": 0.0, "end_s": duration_s, "duration_s": len(samples) / 16000,
        "sample_rate_hz": 16000, "pcm_hash": pcm_hash(samples), "split": split, "speaker": speaker, "corpus": corpus,
        "clipping_ratio": 0.0, "silence_ratio": 0.1, "source_sample_rate_hz": 16000, "source_channels": 1,
        "source_format": "WAV", "run_id": "tiny-lake", "ingested_at": datetime(2026, 1, 1, tzinfo=timezone.utc),
        "audio": encode_flac(samples, 16000),
    }


def write_segments(lake: Path, rows: list[dict]) -> int:
    """Merge-insert rows into ``<lake>/segments.lance`` (created on first use); returns the new version."""
    full = [{name: r.get(name) for name in SEGMENTS_SCHEMA.names} for r in rows]
    return upsert_rows(table_uri(str(lake), "segments"), full, SEGMENTS_SCHEMA, ["segment_id"], StorageConfig())

