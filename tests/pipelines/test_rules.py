"""Pure curation rules: dedup winners, stable splits, label splitting, filters."""

from __future__ import annotations

import json

from pipelines.dedup import decide_duplicates
from pipelines.filters import check_segment
from pipelines.labels import split_labels
from pipelines.splits import assign_split
from schemas.curate import FilterConfig, SegmentationConfig, SplitConfig
from schemas.rejects import RejectReason


def test_dedup_keeps_existing_then_smallest_source():
    new = [("s2", "h1", "b.wav", 0.0, 1), ("s1", "h1", "a.wav", 0.0, 1), ("s3", "h2", "c.wav", 0.0, 1),
           ("s4", "hx", "d.wav", 0, 1)]
    d = decide_duplicates(new, existing_by_hash={"h2": "old"}, existing_rows=set())
    assert d.duplicates == {("s2", "b.wav"): "s1", ("s3", "c.wav"): "old"}


def test_dedup_same_content_in_two_files_keeps_one_row():
    new = [("s1", "h1", "b.tar#x.flac", 0.0, 2), ("s1", "h1", "a/x.flac", 0.0, 2)]
    d = decide_duplicates(new, {}, set())
    assert d.duplicates == {("s1", "b.tar#x.flac"): "s1"}


def test_dedup_prefers_the_labelled_copy():
    new = [("s1", "h1", "a/copy.wav", 0.0, 1), ("s2", "h1", "z/original.wav", 0.0, 5)]
    assert decide_duplicates(new, {}, set()).duplicates == {("s1", "a/copy.wav"): "s2"}


def test_dedup_resumed_rows_are_present_not_duplicates():
    new = [("s1", "h1", "a.wav", 0.0, 0), ("s9", "h1", "z.wav", 0.0, 5)]
    d = decide_duplicates(new, existing_by_hash={"h1": "s1"}, existing_rows={("s1", "a.wav")})
    assert d.already_present == {("s1", "a.wav")} and d.duplicates == {("s9", "z.wav"): "s1"}


def test_dedup_order_independent():
    rows = [("s%d" % i, "h%d" % (i % 3), f"f{i}.wav", 0.0, i % 2) for i in range(9)]
    a = decide_duplicates(rows, {}, set())
    b = decide_duplicates(list(reversed(rows)), {}, set())
    assert a == b


def test_split_is_stable_per_speaker_and_respects_overrides():
    cfg = SplitConfig(valid_percent=20, test_percent=20, test_speakers=["pinned"])
    assert {assign_split("v1", f"f{i}", cfg) for i in range(20)} == {assign_split("v1", "x", cfg)}
    assert assign_split("pinned", "x", cfg) == "test"
    shares = [assign_split(f"spk{i}", "x", cfg) for i in range(2000)]
    assert 0.15 < shares.count("test") / 2000 < 0.25 and 0.15 < shares.count("valid") / 2000 < 0.25


def test_labels_keep_unknown_and_mistyped_values():
    typed, extra = split_labels({"speaker": "a", "rt60_s": "0.4", "bit_depth": "eight", "mood": "calm", "path": "x"})
    assert typed == {"speaker": "a", "rt60_s": 0.4}
    assert json.loads(extra) == {"bit_depth": "eight", "mood": "calm"}


def test_filters_give_reason_and_message():
    seg, f = SegmentationConfig(), FilterConfig(min_snr_db=10)
    ok = dict(snr_db=30.0, clipping_ratio=0.0, silence_ratio=0.1, loudness_lufs=-23.0, bandwidth_hz=7000.0)
    assert check_segment(duration_s=3.0, segmentation=seg, filters=f, **ok) is None
    stage, reason, msg = check_segment(duration_s=0.4, segmentation=seg, filters=f, **ok)
    assert reason is RejectReason.TOO_SHORT and "0.40 s" in msg
    _, reason, msg = check_segment(duration_s=3.0, segmentation=seg, filters=f, **{**ok, "snr_db": 4.0})
    assert reason is RejectReason.LOW_SNR and "4.0 dB" in msg
    _, reason, _ = check_segment(duration_s=3.0, segmentation=seg, filters=f, **{**ok, "clipping_ratio": 0.5})
    assert reason is RejectReason.CLIPPING
    assert check_segment(duration_s=3.0, segmentation=seg, filters=f, **{**ok, "loudness_lufs": float("nan")}) is None
