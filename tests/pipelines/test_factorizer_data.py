"""Factorizer training data: labels become class indices, windows come from the right rows and frames."""

from __future__ import annotations

import numpy as np
import pytest

from pipelines.factorizer_data import (UNKNOWN, build_vocab, channel_class, index_latents, make_window_plan,
                                       read_index_rows, read_windows)
from schemas.codec import segments_filter
from schemas.storage import StorageConfig
from tests.tiny_lake import segment_row, write_latents, write_segments

CODEC = "codec_x-000000000000-w0000000000"


@pytest.fixture(scope="module")
def lake(tmp_path_factory):
    lake = tmp_path_factory.mktemp("fdata") / "lake"
    rows = []
    for i in range(12):
        labels = {"environment": ["clean", "room"][i % 2], "channel": ["clean", "codec2_1200", "codec2_700c"][i % 3],
                  "style": "fast" if i < 11 else "rare"}
        rows.append(segment_row(0.5 + 0.2 * i, seed=i, speaker=f"t:{i % 3}", split="train" if i < 10 else "valid",
                                **labels))
    rows.append(segment_row(1.0, seed=50, speaker=None, split="train", corpus="alsa"))  # a held-out corpus
    write_segments(lake, rows)
    write_latents(lake, rows, codec_id=CODEC)
    write_latents(lake, rows[:3], codec_id="codec_other-000000000000-w1111111111", seed=1)
    return lake, rows


def test_channel_families_drop_the_bit_rate():
    assert channel_class("telephone+codec2_1600") == "telephone+codec2"
    assert channel_class("opus_12k") == "opus" and channel_class("low_bit_depth") == "low_bit_depth"


def test_index_joins_labels_and_builds_the_vocabulary_on_train(lake):
    root, rows = lake
    idx = index_latents(str(root), StorageConfig(), codec_id=CODEC, min_count=2,
                        segments_filter=segments_filter(split="train"))
    assert len(idx) == 10 and idx.frame_rate_hz == 50.0  # 10 train rows; alsa held out; other codec ignored
    assert idx.vocab == {"speaker": ["t:0", "t:1", "t:2"], "style": ["fast"], "environment": ["clean", "room"],
                         "channel": ["clean", "codec2"]}
    by_id = {r["segment_id"]: r for r in rows}
    for sid, spk, env in zip(idx.segment_ids, idx.labels["speaker"], idx.labels["environment"]):
        assert idx.vocab["speaker"][spk] == by_id[sid]["speaker"]
        assert idx.vocab["environment"][env] == by_id[sid]["environment"]
    valid = index_latents(str(root), StorageConfig(), codec_id=CODEC, vocab=idx.vocab,
                          segments_filter=segments_filter(split="valid"))
    assert len(valid) == 2 and UNKNOWN in valid.labels["style"].tolist()  # "rare" is not a training class


def test_vocabulary_drops_rare_labels():
    import pyarrow as pa

    meta = pa.table({"speaker": ["a", "a", "b", None], "style": [None] * 4, "environment": ["x"] * 4,
                     "channel": ["opus_6k", "opus_8k", "eq", "eq"]})
    assert build_vocab(meta, min_count=2) == {"speaker": ["a"], "style": [], "environment": ["x"],
                                              "channel": ["eq", "opus"]}


def test_windows_come_from_the_planned_row_and_frame(lake):
    root, _ = lake
    idx = index_latents(str(root), StorageConfig(), codec_id=CODEC, segments_filter=segments_filter(split="train"))
    plan = make_window_plan(idx, steps=5, batch_size=4, max_frames=40, seed=3)
    table = plan.table
    batch = {c: table.column(c).to_numpy() for c in table.column_names}
    out = read_windows(batch, uri=idx.uri, version=idx.version, max_frames=40)
    assert out["codes"].shape == (20, 40, 2) and out["codes"].dtype == np.uint16
    frames = dict(zip(idx.row_offsets.tolist(), idx.num_frames.tolist()))
    for i in range(20):
        length, offset, row = int(out["lengths"][i]), int(batch["offset"][i]), int(batch["row_offset"][i])
        assert length == min(frames[row], 40) and offset + length <= frames[row]
        stage0 = out["codes"][i, :length, 0].astype(np.int64)
        assert np.all(np.diff(stage0) % 1000 == 1)  # consecutive frames of one row (write_latents' ramp)
        assert not out["codes"][i, length:].any()  # zero padding past the length
    np.testing.assert_array_equal(out["speaker"], batch["speaker"])


def test_a_longer_plan_starts_with_the_shorter_one(lake):
    root, _ = lake
    idx = index_latents(str(root), StorageConfig(), codec_id=CODEC, segments_filter=segments_filter(split="train"))
    short = make_window_plan(idx, steps=30, batch_size=4, max_frames=40, seed=0).table
    long = make_window_plan(idx, steps=1500, batch_size=4, max_frames=40, seed=0).table
    assert long.slice(0, short.num_rows).equals(short)
    other = make_window_plan(idx, steps=30, batch_size=4, max_frames=40, seed=1).table
    assert not other.equals(short)


def test_fixed_validation_rows(lake):
    root, _ = lake
    idx = index_latents(str(root), StorageConfig(), codec_id=CODEC, segments_filter=segments_filter(split="train"))
    a = read_index_rows(idx, StorageConfig(), rows=3, max_frames=40)
    b = read_index_rows(idx, StorageConfig(), rows=3, max_frames=40)
    assert a["codes"].shape == (3, 40, 2) and np.array_equal(a["codes"], b["codes"])


def test_missing_latents_say_what_to_run(lake, tmp_path):
    root, _ = lake
    with pytest.raises(ValueError, match="no latents of codec 'nope' .* encode them first"):
        index_latents(str(root), StorageConfig(), codec_id="nope", segments_filter="true")
    write_segments(tmp_path / "lake", [segment_row(0.5, seed=1)])
    with pytest.raises(FileNotFoundError, match="no latents table .* run jobs/encode.py first"):
        index_latents(str(tmp_path / "lake"), StorageConfig(), codec_id=CODEC, segments_filter="true")
