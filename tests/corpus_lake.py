"""A small lake for corpus-report tests: labelled segments, rejects, a run, latents and synthetic rows.

Written straight with Lance (``upsert_rows``), no Ray and no models: the report
only reads metadata, so rows with the real table schemas are all it needs.
The seed covers speaker x environment cells ``SEED_CELLS``; the synthetic rows
that pass add ``NEW_CELLS`` (absent from the seed) and one seed cell; a failed
output sits on a cell nothing else covers, so it must not count.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

from pipelines.lance_io import table_uri, upsert_rows
from schemas.rejects import REJECTS_SCHEMA
from schemas.runs import RUNS_SCHEMA
from schemas.storage import StorageConfig
from schemas.synthetic import SYNTHETIC_SCHEMA
from tests.tiny_lake import segment_row, write_latents, write_segments

__all__ = ["SEED_CELLS", "NEW_CELLS", "FAILED_CELL", "REJECT_REASONS", "build_corpus_lake"]

_T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
SEED_CELLS = {("v:a", "clean"), ("v:a", "room"), ("v:b", "clean"), ("v:c", "noise"), (None, "clean")}
NEW_CELLS = {("v:b", "room"), ("v:c", "clean")}
FAILED_CELL = ("v:a", "noise")
REJECT_REASONS = {"no_speech": 3, "low_snr": 2, "duplicate": 1}


def _segments() -> list[dict]:
    cells = sorted(SEED_CELLS, key=str)
    rows = []
    for i in range(15):
        speaker, env = cells[i % len(cells)]
        rows.append(segment_row(0.4 + 0.05 * i, seed=100 + i, speaker=speaker, environment=env,
                                split=["train", "train", "valid", "test"][i % 4],
                                language=["en", "de", None][i % 3], channel=["clean", "telephone"][i % 2],
                                snr_db=None if i == 0 else 5.0 + 2 * i, loudness_lufs=-30.0 + i,
                                bandwidth_hz=4000.0 + 250 * i))
    return rows


def _synthetic_row(i: int, speaker: str, env: str, passed: bool, segment_id: str) -> dict:
    row = {name: None for name in SYNTHETIC_SCHEMA.names}
    row.update({
        "synth_id": f"syn{i:03d}", "content_segment_id": segment_id, "speaker_segment_id": segment_id,
        "style_segment_id": segment_id, "environment_segment_id": segment_id, "channel_segment_id": segment_id,
        "source_speaker": "v:a", "target_speaker": speaker, "source_environment": "clean",
        "target_environment": env, "duration_s": 1.0 + 0.5 * i, "varied": "speaker+environment",
        "new_cell": (speaker, env) not in SEED_CELLS, "strategy": "cross_product", "codec_id": "codec_t",
        "factorizer_id": "fact_t", "plan_seed": 0, "run_id": "syn-run", "created_at": _T0, "num_frames": 10,
        "num_stages": 2, "frame_rate_hz": 50.0, "passed": passed, "rejected_by": "" if passed else "speaker,content",
        "codes": [1, 2, 3], "content_agreement": 0.9,
    })
    return row


def build_corpus_lake(lake: str | Path, storage: StorageConfig | None = None, *, rejects: bool = True,
                      synthetic: bool = True) -> list[dict]:
    """Write the lake's tables under ``lake`` (a path or ``s3://`` URI); returns the segments rows written."""
    storage = storage or StorageConfig()
    lake = str(lake)
    rows = _segments()
    write_segments(lake, rows, storage)
    write_latents(lake, rows[:6], codec_id="codec_t", storage=storage)
    if rejects:
        rej = []
        for reason, n in REJECT_REASONS.items():
            for j in range(n):
                rej.append({"reject_id": f"{reason}-{j}", "source_uri": f"file:///raw/bad{j}.wav", "sha256": "0" * 64,
                            "segment_id": None, "start_s": None, "end_s": None,
                            "stage": "dedup" if reason == "duplicate" else "filter", "reason": reason,
                            "error": f"{reason} #{j}", "duplicate_of": None, "run_id": "r1", "rejected_at": _T0})
        upsert_rows(table_uri(lake, "rejects"), rej, REJECTS_SCHEMA, ["reject_id"], storage)
    upsert_rows(table_uri(lake, "runs"), [{
        "run_id": "r1", "job": "curate", "status": "succeeded", "config_hash": "h", "config_json": "{}",
        "started_at": _T0, "ended_at": _T0, "inputs_seen": 21, "inputs_skipped_unchanged": 0, "inputs_processed": 21,
        "inputs_accepted": 15, "inputs_rejected": 6, "segments_written": 15, "segments_filtered": 2,
        "segments_deduped": 1, "audio_s_in": 30.0, "audio_s_written": 12.0, "error": None,
        "table_versions_json": '{"segments": 1, "rejects": 1}'}], RUNS_SCHEMA, ["run_id"], storage)
    if synthetic:
        sid = rows[0]["segment_id"]
        made = [(*cell, True) for cell in sorted(NEW_CELLS)] + [("v:a", "room", True), (*FAILED_CELL, False),
                                                                 ("v:b", "room", True)]
        syn = [_synthetic_row(i, sp, env, ok, sid) for i, (sp, env, ok) in enumerate(made)]
        upsert_rows(table_uri(lake, "synthetic"), syn, SYNTHETIC_SCHEMA, ["synth_id"], storage)
    return rows
