"""Parallel swap targets: which rows pair up, how B's frames are aligned to A's, and how windows carry them."""

from __future__ import annotations

import numpy as np
import pytest

from pipelines.factorizer_data import index_latents, make_window_plan, read_pair_rows, read_windows
from pipelines.factorizer_pairs import align_frames, find_training_pairs, mfcc_features
from schemas.codec import segments_filter
from schemas.storage import StorageConfig
from tests.tiny_lake import segment_row, write_latents, write_segments

CODEC = "codec_x-000000000000-w0000000000"


@pytest.fixture(scope="module")
def lake(tmp_path_factory):
    """Sentence s1 by voices a, b (and by c in another room: not a pair); s2 by a alone; s3 by a, b in valid."""
    lake = tmp_path_factory.mktemp("pairs") / "lake"
    same = {"style": "neutral", "channel": "clean", "language": "en"}
    rows = [segment_row(1.0, seed=1, speaker="v:a", text_id="s1", environment="clean", **same),
            segment_row(1.3, seed=2, speaker="v:b", text_id="s1", environment="clean", **same),
            segment_row(1.1, seed=3, speaker="v:c", text_id="s1", environment="room", **same),
            segment_row(0.8, seed=4, speaker="v:a", text_id="s2", environment="clean", **same),
            segment_row(0.9, seed=5, speaker="v:a", text_id="s3", split="valid", environment="clean", **same),
            segment_row(0.7, seed=6, speaker="v:b", text_id="s3", split="valid", environment="clean", **same)]
    write_segments(lake, rows)
    write_latents(lake, rows, codec_id=CODEC)
    return str(lake), rows


def _train(root: str):
    return index_latents(root, StorageConfig(), codec_id=CODEC, min_count=1,
                         segments_filter=segments_filter(split="train", holdout_corpora=[]))


def _pairs(root: str, index, max_pairs: int = 10):
    return find_training_pairs(root, StorageConfig(), segment_ids=index.segment_ids, num_frames=index.num_frames,
                               frame_rate_hz=index.frame_rate_hz, max_pairs=max_pairs, seed=0, progress=lambda _: None,
                               segments_filter=segments_filter(split="train", holdout_corpora=[]))


def test_a_slowed_copy_aligns_frame_for_frame():
    rng = np.random.default_rng(0)
    a = np.cumsum(rng.normal(size=(13, 40)), axis=1)  # a smooth random trajectory
    b = np.repeat(a, 2, axis=1)                         # the same, spoken twice as slowly
    path = align_frames(a, b, src_frames=40, tgt_frames=80)
    assert path.shape == (40,) and path.dtype == np.int32
    assert np.all(np.diff(path) >= 0) and path.min() >= 0 and path.max() < 80
    assert np.abs(path - 2 * np.arange(40)).max() <= 1  # frame i of A is frame 2i (or its twin) of B


def test_latent_frames_past_the_features_take_the_last_one():
    f = np.arange(10, dtype=float)[None]
    path = align_frames(f, f, src_frames=12, tgt_frames=10)
    assert path.tolist() == list(range(10)) + [9, 9]


def test_mfcc_features_are_at_the_codec_frame_rate_and_normalized():
    samples = np.random.default_rng(1).normal(size=16000).astype(np.float32)
    f = mfcc_features(samples, hop=320)
    assert f.shape[0] == 13 and abs(f.shape[1] - 50) <= 1
    np.testing.assert_allclose(f.mean(axis=1), 0, atol=1e-4)


def test_pairs_are_two_voices_of_one_sentence_in_one_condition(lake):
    root, rows = lake
    index = _train(root)
    pairs = _pairs(root, index)
    speaker_of = {r["segment_id"]: r["speaker"] for r in rows}
    found = sorted((speaker_of[index.segment_ids[a]], speaker_of[index.segment_ids[b]])
                   for a, b in zip(pairs.src, pairs.tgt))
    assert found == [("v:a", "v:b"), ("v:b", "v:a")]  # c is in another room; s2 has one voice; s3 is valid
    assert pairs.candidates == 2
    for k in range(len(pairs)):
        path = pairs.path_of(k)
        assert len(path) == index.num_frames[pairs.src[k]]
        assert path.min() >= 0 and path.max() < index.num_frames[pairs.tgt[k]] and np.all(np.diff(path) >= 0)
    assert len(_pairs(root, index, max_pairs=1)) == 1 and len(_pairs(root, index, max_pairs=0)) == 0


def test_pair_windows_replace_the_last_slots_and_leave_the_others_as_they_were(lake):
    root, _ = lake
    index = _train(root)
    pairs = _pairs(root, index)
    plain = make_window_plan(index, steps=6, batch_size=4, max_frames=30, seed=2).table
    mixed = make_window_plan(index, steps=6, batch_size=4, max_frames=30, seed=2, pairs=pairs,
                             pairs_per_batch=1).table
    slot = np.arange(mixed.num_rows) % 4
    tgt = mixed.column("tgt_row_offset").to_numpy()
    assert np.all(tgt[slot < 3] == -1) and np.all(tgt[slot == 3] >= 0)
    for col in ("row_offset", "offset", "length"):
        np.testing.assert_array_equal(mixed.column(col).to_numpy()[slot < 3], plain.column(col).to_numpy()[slot < 3])
    src_rows = set(index.row_offsets[pairs.src].tolist())
    frames = mixed.column("tgt_frames").to_pylist()
    for i in np.flatnonzero(slot == 3):
        assert int(mixed.column("row_offset")[i].as_py()) in src_rows
        assert len(frames[i]) == mixed.column("length")[i].as_py()
    with pytest.raises(ValueError, match="pairs_per_batch 5 exceeds batch_size 4"):
        make_window_plan(index, steps=1, batch_size=4, max_frames=30, seed=2, pairs=pairs, pairs_per_batch=5)


def test_windows_carry_the_partners_codes_at_the_aligned_frames(lake):
    root, _ = lake
    index = _train(root)
    pairs = _pairs(root, index)
    plan = make_window_plan(index, steps=8, batch_size=2, max_frames=30, seed=4, pairs=pairs, pairs_per_batch=1)
    table = plan.table
    batch = {c: table.column(c).to_numpy(zero_copy_only=False) for c in table.column_names}
    out = read_windows(batch, uri=index.uri, version=index.version, max_frames=30)
    assert out["has_target"].tolist() == [False, True] * 8 and out["target_codes"].shape == out["codes"].shape
    # write_latents' stage 0 is (row_index * 7 + frame) % 1000, row_index = position in the written rows
    written = {off: k for k, off in enumerate(sorted(index.row_offsets.tolist()))}
    for i in np.flatnonzero(out["has_target"]):
        frames, n = np.asarray(batch["tgt_frames"][i]), int(out["lengths"][i])
        expected = (written[int(batch["tgt_row_offset"][i])] * 7 + frames) % 1000
        np.testing.assert_array_equal(out["target_codes"][i, :n, 0], expected)
        assert not out["target_codes"][i, n:].any()
    assert not out["target_codes"][~out["has_target"]].any()
    fixed = read_pair_rows(index, pairs, StorageConfig(), max_frames=30)
    assert fixed["has_target"].all() and len(fixed["lengths"]) == len(pairs)
