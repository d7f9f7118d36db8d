"""The curation job end to end on a tiny real corpus: counts, rejects, idempotency, increments."""

from __future__ import annotations

import io
import json
from pathlib import Path

import lance
import pytest
import soundfile as sf

from pipelines.curate import run_curation
from pipelines.lance_io import read_segment_audio, table_uri
from schemas.curate import CurateConfig
from schemas.storage import StorageConfig
from tests.factories import espeak, write_audio
from tests.raw_corpus import EXPECTED_REJECTS, make_raw_corpus


def _config(raw: Path, lake: Path, **execution) -> CurateConfig:
    return CurateConfig.model_validate({
        "lake_root": str(lake),
        "sources": [{"kind": "manifest", "uri": str(raw / "manifest.jsonl")},
                    {"kind": "webdataset", "uri": str(raw / "shards")}],
        "execution": {"commit_every_sources": 5, **execution},
    })


def _table(lake: Path, name: str):
    return lance.dataset(table_uri(str(lake), name))


@pytest.fixture(scope="module")
def curated(tmp_path_factory, ray_session):
    raw = tmp_path_factory.mktemp("raw")
    make_raw_corpus(raw)
    lake = tmp_path_factory.mktemp("lake")
    summary = run_curation(_config(raw, lake), progress=lambda _: None)
    return raw, lake, summary


def test_every_input_is_accepted_or_rejected_with_its_reason(curated):
    raw, lake, s = curated
    assert s.inputs_processed == 12  # 4 good files + 6 bad/missing + 2 tar members
    assert (s.inputs_accepted, s.inputs_rejected) == (4, 8)
    sources = _table(lake, "sources").to_table().to_pylist()
    assert len(sources) == 12 and {r["status"] for r in sources} == {"accepted", "rejected"}
    by_name = {Path(r["source_uri"].split("#")[-1]).name: r for r in sources}
    for name, reason in EXPECTED_REJECTS.items():
        assert by_name[name]["status"] == "rejected" and by_name[name]["reason"] == reason, name
    assert by_name["escape.flac"]["reason"] == "unsafe_path"
    assert by_name["s001-copy.wav"]["reason"] == "duplicate"
    rejects = _table(lake, "rejects").to_table().to_pylist()
    rejected_uris = {r["source_uri"] for r in sources if r["status"] == "rejected"}
    assert rejected_uris <= {r["source_uri"] for r in rejects}, "every rejected source has a rejects row"
    assert all(r["error"] and r["reason"] for r in rejects)


def test_segments_carry_audio_labels_quality_and_split(curated):
    raw, lake, s = curated
    seg = _table(lake, "segments").to_table(columns=[c for c in _table(lake, "segments").schema.names if c != "audio"])
    rows = seg.to_pylist()
    assert len(rows) == s.segments_written == 4  # utterance mode: one segment per short file
    assert {r["speaker"] for r in rows} == {"espeak-ng:en+m3", "espeak-ng:en+f2", "espeak-ng:en-us+m1", "espeak-ng:en+f4"}
    one = next(r for r in rows if r["text_id"] == "s001")
    assert one["transcript"].startswith("The quick brown fox") and json.loads(one["extra_labels_json"]) == {"mood": "neutral"}
    assert one["source_sample_rate_hz"] == 22050 and one["sample_rate_hz"] == 16000
    assert all(r["split"] in ("train", "valid", "test") and r["snr_db"] > 10 and r["duration_s"] > 1 for r in rows)
    stereo = next(r for r in rows if r["text_id"] == "s002")
    assert stereo["source_channels"] == 2 and stereo["source_format"] == "FLAC"
    audio = read_segment_audio(str(lake), StorageConfig(), filter="text_id = 's001'")
    (sid, samples, rate), = audio
    assert rate == 16000 and abs(len(samples) / rate - one["duration_s"]) < 0.01 and samples.std() > 0.01


def test_second_run_writes_nothing_and_skips_everything(curated):
    raw, lake, first = curated
    versions = {t: _table(lake, t).version for t in ("segments", "sources", "rejects")}
    again = run_curation(_config(raw, lake), progress=lambda _: None)
    assert again.inputs_processed == 0 and again.inputs_skipped_unchanged == first.inputs_seen
    assert {t: _table(lake, t).version for t in versions} == versions
    runs = _table(lake, "runs").to_table().to_pylist()
    assert [r["status"] for r in runs].count("succeeded") >= 2
    assert again.wall_s < first.wall_s


def test_a_new_file_is_the_only_work_of_the_next_run(curated):
    raw, lake, _ = curated
    before = _table(lake, "segments").count_rows()
    x, sr = espeak("A new recording arrived overnight and should be curated alone.", voice="en+m7")
    path = write_audio(raw / "audio" / "new" / "late.wav", x, sr)
    with open(raw / "manifest.jsonl", "a") as fh:
        fh.write(json.dumps({"path": str(path.relative_to(raw)), "speaker": "espeak-ng:en+m7"}) + "\n")
    s = run_curation(_config(raw, lake), progress=lambda _: None)
    assert (s.inputs_processed, s.inputs_accepted, s.segments_written) == (1, 1, 1)
    assert _table(lake, "segments").count_rows() == before + 1
