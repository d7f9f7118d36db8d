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
from schemas.latents import LATENTS_SCHEMA
from schemas.segments import SEGMENTS_SCHEMA, make_segment_id
from schemas.storage import StorageConfig
from tests.factories import speechlike

__all__ = ["segment_row", "write_segments", "write_latents"]


def segment_row(duration_s: float, *, seed: int, speaker: str | None = "test:a", split: str = "train",
                corpus: str | None = "test", **labels: object) -> dict:
    """One ``segments`` row of ``duration_s`` of speech-like audio (seed makes the audio and the id).

    ``labels`` sets other label columns (``environment="room"``, ``style="fast"``, ...).
    """
    samples = speechlike(duration_s, seed=seed, f0_hz=110.0 + 7 * seed)
    sha = f"{seed:064x}"
    return {
        "segment_id": make_segment_id(sha, 0.0, duration_s), "source_uri": f"file:///raw/{seed}.wav",
        "source_sha256": sha, "start_s": 0.0, "end_s": duration_s, "duration_s": len(samples) / 16000,
        "sample_rate_hz": 16000, "pcm_hash": pcm_hash(samples), "split": split, "speaker": speaker, "corpus": corpus,
        "clipping_ratio": 0.0, "silence_ratio": 0.1, "source_sample_rate_hz": 16000, "source_channels": 1,
        "source_format": "WAV", "run_id": "tiny-lake", "ingested_at": datetime(2026, 1, 1, tzinfo=timezone.utc),
        "audio": encode_flac(samples, 16000), **labels,
    }


def write_segments(lake: Path | str, rows: list[dict], storage: StorageConfig | None = None) -> int:
    """Merge-insert rows into ``<lake>/segments.lance`` (created on first use); returns the new version."""
    full = [{name: r.get(name) for name in SEGMENTS_SCHEMA.names} for r in rows]
    return upsert_rows(table_uri(str(lake), "segments"), full, SEGMENTS_SCHEMA, ["segment_id"],
                       storage or StorageConfig())



def write_latents(lake: Path | str, segments: list[dict], *, codec_id: str, stages: int = 2,
                  codebook_size: int = 1000, frame_rate_hz: float = 50.0, seed: int = 0,
                  storage: StorageConfig | None = None) -> int:
    """Merge-insert ``latents`` rows of random codes for ``segments`` (no codec, no Ray); returns the new version.

    Frame ``t`` of a row holds code ``(row_index * 7 + t) % codebook_size`` in stage 0 (so a test can tell
    which row and frame a window came from) and random codes in the other stages.
    """
    import numpy as np

    rng = np.random.default_rng(seed)
    rows = []
    for i, seg in enumerate(segments):
        frames = int(np.ceil(seg["duration_s"] * frame_rate_hz))
        codes = rng.integers(0, codebook_size, size=(frames, stages), dtype=np.int64)
        codes[:, 0] = (i * 7 + np.arange(frames)) % codebook_size
        rows.append({
            "segment_id": seg["segment_id"], "codec_id": codec_id, "num_frames": frames, "num_stages": stages,
            "frame_rate_hz": frame_rate_hz, "bitrate_bps": frame_rate_hz * stages * float(np.log2(codebook_size)),
            "num_samples": int(round(seg["duration_s"] * 16000)), "sample_rate_hz": 16000,
            "duration_s": seg["duration_s"], "split": seg["split"], "speaker": seg.get("speaker"),
            "corpus": seg.get("corpus"), "segments_version": 1, "run_id": "tiny-latents",
            "encoded_at": datetime(2026, 1, 1, tzinfo=timezone.utc), "codes": codes.reshape(-1).tolist(),
        })
    return upsert_rows(table_uri(str(lake), "latents"), rows, LATENTS_SCHEMA, ["segment_id", "codec_id"],
                       storage or StorageConfig())


def recombine_lake(root: Path, lake: str | None = None, storage: StorageConfig | None = None,
                   speakers: int = 3, per_speaker: int = 4, transcripts: bool = False,
                   ) -> tuple[str, Path, Path, list[dict]]:
    """A lake ready for recombination: labelled train segments, random latents of a tiny codec, a tiny factorizer
    trained on nothing (paired with that codec). Returns (lake, codec checkpoint, factorizer checkpoint, rows)."""
    import torch

    from models.codec import build_codec, codec_tiny_test, load_checkpoint, save_checkpoint
    from models.factorizer import build_factorizer, factorizer_tiny_test, save_factorizer_checkpoint

    lake = lake or str(root / "lake")
    rows = [segment_row(0.6 + 0.1 * i, seed=i, speaker=f"t:{i % speakers}", split="train",
                        environment=["clean", "room"][(i // speakers) % 2], language="en",
                        **({"transcript": f"the number {i % 4}", "text_id": f"n{i % 4}"} if transcripts else {}))
            for i in range(speakers * per_speaker)]
    write_segments(lake, rows, storage)
    torch.manual_seed(0)
    codec = save_checkpoint(root / "codec.pt", build_codec(codec_tiny_test()), codec_tiny_test())
    codec_id = load_checkpoint(codec)[2].codec_id
    write_latents(lake, rows, codec_id=codec_id, storage=storage)
    config = factorizer_tiny_test()
    factorizer = save_factorizer_checkpoint(root / "factorizer.pt", build_factorizer(config), config,
                                            codec_id=codec_id)
    return lake, codec, factorizer, rows
