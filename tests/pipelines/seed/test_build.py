"""The tiny seed build: real files that decode, parallel voices, labeled variants, shards, bad inputs, idempotence."""

from __future__ import annotations

import hashlib
import json
import tarfile
from collections import defaultdict
from pathlib import Path

import numpy as np
import soundfile as sf

from pipelines.seed import REJECT_REASONS, build_seed_corpus
from pipelines.seed.formats import shard_key
from schemas.labels import ManifestRow


def _rows(root: Path) -> list[dict]:
    return [json.loads(line) for line in (root / "manifest.jsonl").read_text().splitlines()]


def _tree(root: Path) -> dict[str, tuple[int, str]]:
    """rel path -> (mtime_ns, sha256) of every file the build wrote."""
    return {str(p.relative_to(root)): (p.stat().st_mtime_ns, hashlib.sha256(p.read_bytes()).hexdigest())
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_every_manifest_file_decodes_and_formats_are_mixed(tiny_corpus):
    root, summary = tiny_corpus
    rows = _rows(root)
    assert len(rows) == summary.files >= 20
    suffixes, rates, channels = set(), set(), set()
    for row in rows:
        ManifestRow.model_validate(row)
        info = sf.info(str(root / row["path"]))
        x, _ = sf.read(str(root / row["path"]), dtype="float32")
        assert x.size > 0 and np.all(np.isfinite(x)), row["path"]
        assert info.samplerate == row["sample_rate_hz"] and info.channels == row["num_channels"]
        suffixes.add(Path(row["path"]).suffix)
        rates.add(info.samplerate)
        channels.add(info.channels)
    on_disk = {str(p.relative_to(root)) for p in (root / "audio").rglob("*") if p.is_file()}
    assert on_disk == {r["path"] for r in rows}, "one manifest row per file under audio/"
    assert suffixes == {".wav", ".flac", ".ogg"}
    assert len(rates) >= 4 and 8000 in rates
    assert channels == {1, 2}


def test_real_speech_carries_provenance(tiny_corpus):
    root, _ = tiny_corpus
    real = [r for r in _rows(root) if r["synthetic"] is False and "clean_path" not in r]
    assert {r["corpus"] for r in real} == {"pocketsphinx", "alsa", "tuxpaint"}
    for r in real:
        assert r["license"] and r["origin"].split(":", 1)[0] in ("pocketsphinx-testdata", "alsa-utils",
                                                                 "tuxpaint-stamps-default")
    provenance = json.loads((root / "provenance.json").read_text())
    assert provenance["corpora"]["tuxpaint"]["packages"][0]["license"] == "GPL-2"
    assert (root / "PROVENANCE.md").exists()


def test_each_sentence_is_spoken_by_several_voices(tiny_corpus):
    root, _ = tiny_corpus
    voices = defaultdict(set)
    for r in _rows(root):
        if r["synthetic"] and "clean_path" not in r:
            voices[r["text_id"]].add(r["speaker"])
            assert r["style"] and r["speaking_rate"] > 0 and r["pitch_shift"] > 0
    assert len(voices) == 4
    assert all(len(v) >= 2 for v in voices.values()), voices


def test_variants_are_labeled_and_parallel_to_their_clean_utterance(tiny_corpus):
    root, _ = tiny_corpus
    rows = _rows(root)
    by_path = {r["path"]: r for r in rows}
    variants = [r for r in rows if "clean_path" in r]
    assert variants
    for v in variants:
        clean = by_path[v["clean_path"]]
        assert (v.get("speaker"), v.get("text_id"), v["utterance_id"]) == \
               (clean.get("speaker"), clean.get("text_id"), clean["utterance_id"])
        assert v["environment"] in ("clean", "room", "noise", "room+noise") and v["channel"]
        if "room" in v["environment"]:
            assert v["room"] and v["rt60_s"] > 0 and v["room_volume_m3"] > 0
        if "noise" in v["environment"]:
            assert v["noise_type"] and v["noise_snr_db"] is not None
        if "telephone" in v["channel"]:
            assert (v["band_low_hz"], v["band_high_hz"]) == (300.0, 3400.0) and v["sample_rate_hz"] == 8000
        if "codec2" in v["channel"] or "opus" in v["channel"]:
            assert v["codec"] in ("codec2", "opus") and v["codec_bitrate_bps"] > 0
        if "clipping" in v["channel"]:
            assert 0 < v["clip_threshold"] < 1
        if "low_bit_depth" in v["channel"]:
            assert 4 <= v["bit_depth"] <= 8
    kinds = {k.split("_")[0] if k.startswith(("codec2_", "opus_")) else k
             for v in variants for k in v["channel"].split("+")}
    assert {"telephone", "eq", "clipping", "low_bit_depth", "codec2", "opus"} <= kinds
    assert {"room", "noise"} <= {e for v in variants for e in v["environment"].split("+")}


def test_shards_hold_the_same_keys_as_the_manifest(tiny_corpus):
    import webdataset as wds

    root, _ = tiny_corpus
    rows = _rows(root)
    shards = sorted((root / "shards").glob("seed-*.tar"))
    samples = list(wds.WebDataset([str(s) for s in shards], shardshuffle=False))
    assert {s["__key__"] for s in samples} == {shard_key(r["path"]) for r in rows}
    by_key = {shard_key(r["path"]): r for r in rows}
    for s in samples:
        labels = json.loads(s["json"])
        row = by_key[s["__key__"]]
        assert "path" not in labels and labels == {k: v for k, v in row.items() if k != "path"}
        ext = row["path"].rpartition(".")[2]
        assert s[ext] == (root / row["path"]).read_bytes()


def test_bad_inputs_cover_every_expected_case(tiny_corpus):
    root, _ = tiny_corpus
    bad = root / "bad"
    expected = json.loads((bad / "EXPECTED.json").read_text())
    assert set(expected.values()) == set(REJECT_REASONS) | {None}
    tars = {}
    for key, reason in expected.items():
        path, _, member = key.partition("::")
        if reason == "missing_file":
            assert not (bad / path).exists()
        else:
            assert (bad / path).exists(), key
        if member:
            tars.setdefault(path, {})[member] = reason
    for tar_path, members in tars.items():
        with tarfile.open(bad / tar_path) as tar:
            names = set(tar.getnames())
        assert set(members) <= names
        assert any(n.startswith("/") for n in names) and any(".." in n.split("/") for n in names)
    assert (bad / "empty.wav").stat().st_size == 0
    nonfinite, _ = sf.read(str(bad / "non_finite.wav"))
    assert not np.all(np.isfinite(nonfinite))
    manifest = [json.loads(line) for line in (bad / "manifest.jsonl").read_text().splitlines()]
    assert any(r["path"] == "missing/gone.wav" for r in manifest)
    for r in manifest:
        ManifestRow.model_validate(r)
    assert not any((root / "audio").rglob("*.m4a"))


def test_rerun_is_idempotent_and_force_rebuild_is_identical(tiny_config, tiny_corpus):
    root, _ = tiny_corpus
    before = _tree(root)
    again = build_seed_corpus(tiny_config, emit=lambda line: None)
    assert again.built == 0 and again.removed == 0
    assert _tree(root) == before, "a re-run rewrote files"
    build_seed_corpus(tiny_config, force=True, emit=lambda line: None)
    after = _tree(root)
    assert after.keys() == before.keys()
    changed = [p for p in before if before[p][1] != after[p][1]]
    assert changed == [], f"rebuild from the same seed differs: {changed[:5]}"
