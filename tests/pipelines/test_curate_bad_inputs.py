"""Bad input that the tiny corpus does not cover: a real but unsupported codec, a 1-hour file, an over-long file.

(Empty, truncated, random-bytes, NaN, all-silence, missing-file and unsafe tar
members are covered end to end in ``test_curate.py``; config errors in
``tests/schemas`` and ``tests/jobs``.)
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import lance
import numpy as np
import pytest
import soundfile as sf

from pipelines.curate import run_curation
from pipelines.lance_io import table_uri
from schemas.curate import CurateConfig
from tests.factories import espeak_16k, write_audio


def _run(folder: Path, lake: Path, **execution):
    cfg = CurateConfig.model_validate({"lake_root": str(lake), "sources": [{"kind": "folder", "uri": str(folder)}],
                                       "execution": execution})
    return run_curation(cfg, progress=lambda _: None)


def _sources(lake: Path) -> dict[str, dict]:
    rows = lance.dataset(table_uri(str(lake), "sources")).to_table().to_pylist()
    return {Path(r["source_uri"]).name: r for r in rows}


def test_unsupported_codec_is_rejected_with_its_reason(tmp_path, ray_session):
    ffmpeg = shutil.which("ffmpeg")
    assert ffmpeg, "ffmpeg is installed by `make` (APT_PACKAGES); it makes the AAC file for this test"
    wav = write_audio(tmp_path / "src.wav", espeak_16k("An AAC file that libsndfile cannot decode."), 16000)
    raw = tmp_path / "raw"
    raw.mkdir()
    subprocess.run([ffmpeg, "-loglevel", "error", "-i", str(wav), "-c:a", "aac", "-f", "adts", str(raw / "call.aac")],
                   check=True)
    (raw / "call.wav").write_bytes((raw / "call.aac").read_bytes())  # an AAC stream with a .wav name
    s = _run(raw, tmp_path / "lake")
    assert (s.inputs_processed, s.inputs_rejected) == (2, 2)
    rows = _sources(tmp_path / "lake")
    assert {r["reason"] for r in rows.values()} == {"unsupported_format"}
    errors = lance.dataset(table_uri(str(tmp_path / "lake"), "rejects")).to_table().column("error").to_pylist()
    assert all(e.startswith("unsupported_format:") and "\n" not in e for e in errors)


def _write_long_speech(path: Path, seconds: int) -> float:
    """Speech with pauses, written in blocks (never held whole in memory); returns the speech duration."""
    utt = espeak_16k("Long recordings are streamed through the pipeline one block at a time.")
    block = np.concatenate([utt, np.zeros(16000, dtype=np.float32)])  # ~4.5 s speech + 1 s pause
    with sf.SoundFile(str(path), "w", samplerate=16000, channels=1, subtype="PCM_16") as f:
        written = 0
        while written < seconds * 16000:
            n = min(block.size, seconds * 16000 - written)
            f.write(block[:n])
            written += n
    return utt.size / 16000


def test_one_hour_file_is_streamed_into_many_segments(tmp_path, ray_session):
    raw = tmp_path / "raw"
    raw.mkdir()
    _write_long_speech(raw / "meeting.wav", 3600)
    s = _run(raw, tmp_path / "lake")
    assert (s.inputs_processed, s.inputs_accepted) == (1, 1)
    src = _sources(tmp_path / "lake")["meeting.wav"]
    assert src["duration_s"] == pytest.approx(3600, abs=0.01)
    seg = lance.dataset(table_uri(str(tmp_path / "lake"), "segments")).to_table(columns=["start_s", "end_s", "duration_s"])
    starts = seg.column("start_s").to_pylist()
    assert seg.num_rows > 100 and max(seg.column("end_s").to_pylist()) > 3500
    assert max(seg.column("duration_s").to_pylist()) <= 20.0 + 1e-6
    assert len(set(starts)) == len(starts)


def test_file_longer_than_the_limit_is_rejected_too_long(tmp_path, ray_session):
    raw = tmp_path / "raw"
    raw.mkdir()
    _write_long_speech(raw / "long.wav", 120)
    s = _run(raw, tmp_path / "lake", max_source_s=60)
    assert s.inputs_rejected == 1
    assert _sources(tmp_path / "lake")["long.wav"]["reason"] == "too_long"
