"""A tiny lake for the training input: segments (three splits), latents of two codecs, factors, synthetic rows.

Written straight with Lance (no models, no Ray) so every test knows each row's codes and vectors:

- latents stage 0 of real row ``i`` at frame ``t`` is ``(i * 7 + t) % 1000`` (``tests.tiny_lake.write_latents``);
- synthetic row ``j``'s stage 0 is ``2000 + 10 * j + t`` (below 1 << 16 for short rows);
- every factor vector of segment ``i`` is filled with ``i + 0.5`` (speaker) / ``-(i + 0.5)`` (other factors).
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from pipelines.lance_io import table_uri, upsert_rows
from schemas.factors import FACTOR_DIMS, FACTORS_SCHEMA, VECTOR_COLUMNS
from schemas.recombine import FACTORS
from schemas.storage import StorageConfig
from schemas.synthetic import GATE_COLUMNS, SYNTHETIC_SCHEMA
from tests.tiny_lake import segment_row, write_latents, write_segments

__all__ = ["CODEC", "OTHER_CODEC", "FACTORIZER", "write_factors", "write_synthetic", "train_input_lake"]

CODEC, OTHER_CODEC, FACTORIZER = "codec_t-1-w1", "codec_u-2-w2", "factorizer_t-3-w3"
_WHEN = datetime(2026, 1, 1, tzinfo=timezone.utc)


def write_factors(lake: str, segments: list[dict], *, factorizer_id: str = FACTORIZER, codec_id: str = CODEC) -> int:
    """``factors`` rows whose vectors say which segment they belong to (see the module docstring)."""
    rows = []
    for i, seg in enumerate(segments):
        row = {"segment_id": seg["segment_id"], "factorizer_id": factorizer_id, "codec_id": codec_id,
               "num_frames": int(np.ceil(seg["duration_s"] * 50)), "duration_s": seg["duration_s"],
               "run_id": "tiny-factors", "encoded_at": _WHEN, "content_codes": [0, 1],
               **{k: seg.get(k) for k in ("split", "speaker", "language", "style", "environment", "channel",
                                          "corpus")}}
        for name, dim in FACTOR_DIMS.items():
            row[VECTOR_COLUMNS[name]] = [(i + 0.5) * (1 if name == "speaker" else -1)] * dim
        rows.append(row)
    return upsert_rows(table_uri(lake, "factors"), rows, FACTORS_SCHEMA, ["segment_id", "factorizer_id"],
                       StorageConfig())


def write_synthetic(lake: str, recipes: list[dict], *, stages: int = 2) -> int:
    """``synthetic`` rows from recipes ``{content, donors: {factor: segment row}, passed, codec_id, frames}``."""
    rows = []
    for j, r in enumerate(recipes):
        content, donors, frames = r["content"], r.get("donors", {}), r.get("frames", 30)
        codes = np.zeros((frames, stages), dtype=np.int64)
        codes[:, 0] = 2000 + 10 * j + np.arange(frames)
        codes[:, 1] = j
        row = {"synth_id": f"syn{j:03d}", "content_segment_id": content["segment_id"],
               "language": content.get("language"),
               "duration_s": frames / 50, "varied": "+".join(f for f in FACTORS if f in donors) or "speaker",
               "new_cell": None, "strategy": "random", "codec_id": r.get("codec_id", CODEC),
               "factorizer_id": FACTORIZER, "plan_seed": 0, "run_id": "tiny-synthetic", "created_at": _WHEN,
               "num_frames": frames, "num_stages": stages, "frame_rate_hz": 50.0, "passed": r.get("passed", True),
               "rejected_by": "" if r.get("passed", True) else "speaker", "codes": codes.reshape(-1).tolist(),
               "audio": None, **{g: 0.5 for g in GATE_COLUMNS}}
        for f in FACTORS:
            donor = donors.get(f, content)
            row[f"{f}_segment_id"] = donor["segment_id"]
            row[f"source_{f}"], row[f"target_{f}"] = content.get(f), donor.get(f)
        rows.append(row)
    return upsert_rows(table_uri(lake, "synthetic"), rows, SYNTHETIC_SCHEMA, ["synth_id"], StorageConfig())


def train_input_lake(root: Path) -> tuple[str, list[dict], list[dict]]:
    """12 train + 2 valid + 2 test segments with latents (codec CODEC; the first 3 also OTHER_CODEC) and factors,
    and 8 synthetic rows: 5 passed with train lineage, 1 failed, 1 with test-split content, 1 of OTHER_CODEC.

    Returns (lake, segment rows, synthetic recipes); recipe ``j`` is synthetic row ``syn{j:03d}``.
    """
    lake = str(root / "lake")
    splits = ["train"] * 12 + ["valid"] * 2 + ["test"] * 2
    segs = [segment_row(0.4 + 0.15 * i, seed=i, speaker=f"t:{i % 3}", split=split, language=["en", "cs"][i % 2],
                        text_id=f"s{i % 4}", transcript=f"sentence {i % 4}", environment=["clean", "room"][i % 2],
                        channel="clean", style="neutral")
            for i, split in enumerate(splits)]
    write_segments(lake, segs)
    write_latents(lake, segs, codec_id=CODEC)
    write_latents(lake, segs[:3], codec_id=OTHER_CODEC, seed=1)
    write_factors(lake, segs)
    train = segs[:12]
    recipes = [{"content": train[k], "donors": {"speaker": train[(k + 1) % 12]}, "frames": 20 + 5 * k}
               for k in range(5)]
    recipes += [{"content": train[5], "donors": {"environment": train[6]}, "passed": False},
                {"content": segs[14], "donors": {"speaker": train[0]}},
                {"content": train[7], "donors": {"speaker": train[8]}, "codec_id": OTHER_CODEC}]
    write_synthetic(lake, recipes)
    return lake, segs, recipes
