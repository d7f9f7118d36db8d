"""The crop plan is reproducible and uniform over audio time; crops are exactly the samples of the segment."""

from __future__ import annotations

import io

import lance
import numpy as np
import pytest
import soundfile as sf

from pipelines.codec_data import SegmentIndex, index_segments, make_crop_plan, read_crops, read_valid_clips
from pipelines.lance_io import table_uri
from schemas.storage import StorageConfig
from tests.tiny_lake import segment_row, write_segments


@pytest.fixture(scope="module")
def lake(tmp_path_factory):
    lake = tmp_path_factory.mktemp("lake")
    write_segments(lake, [segment_row(d, seed=i) for i, d in enumerate((0.2, 1.0, 3.5))])
    return str(lake)


def _index(samples: list[int]) -> SegmentIndex:
    return SegmentIndex("u", 1, np.arange(len(samples), dtype=np.uint64), np.array(samples, dtype=np.int64), "true")


def test_plan_is_a_pure_function_of_the_seed_and_resumes_at_a_step():
    idx = _index([16000, 48000, 4000])
    a = make_crop_plan(idx, steps=50, batch_size=4, crop_s=0.5, seed=7)
    b = make_crop_plan(idx, steps=50, batch_size=4, crop_s=0.5, seed=7)
    c = make_crop_plan(idx, steps=50, batch_size=4, crop_s=0.5, seed=8)
    assert a.table.equals(b.table) and not a.table.equals(c.table)
    rest = a.from_step(30)
    assert rest.num_rows == 20 * 4 and rest.column("step").to_pylist()[0] == 30
    assert rest.equals(a.table.slice(120))
    longer = make_crop_plan(idx, steps=2500, batch_size=4, crop_s=0.5, seed=7)
    shorter = make_crop_plan(idx, steps=1200, batch_size=4, crop_s=0.5, seed=7)
    assert longer.table.slice(0, shorter.table.num_rows).equals(shorter.table), "raising max_steps keeps the crops"


def test_crops_fit_their_segment_and_follow_its_duration():
    idx = _index([16000, 160000, 4000])  # 1 s, 10 s, 0.25 s (shorter than a crop: offset 0, padded on read)
    plan = make_crop_plan(idx, steps=2000, batch_size=4, crop_s=0.5, seed=0).table
    rows = np.asarray(plan.column("row_address"))
    offsets = np.asarray(plan.column("offset"))
    assert np.all(offsets[rows == 2] == 0)
    assert np.all(offsets[rows == 0] <= 8000) and np.all(offsets[rows == 1] <= 152000)
    share = np.bincount(rows.astype(np.int64), minlength=3) / len(rows)
    np.testing.assert_allclose(share, np.array([16000, 160000, 4000]) / 180000, atol=0.02)


def test_read_crops_returns_exactly_the_decoded_samples(lake):
    index = index_segments(lake, StorageConfig(), "true")
    plan = make_crop_plan(index, steps=3, batch_size=4, crop_s=0.25, seed=1)
    batch = {k: np.asarray(plan.table.column(k)) for k in plan.table.column_names}
    out = read_crops(batch, uri=index.uri, version=index.version, crop_samples=plan.crop_samples)
    assert out["audio"].shape == (12, 4000) and out["audio"].dtype == np.float32
    ds = lance.dataset(table_uri(lake, "segments"), version=index.version)
    for i, (addr, offset) in enumerate(zip(batch["row_address"], batch["offset"])):
        (blob,) = [b for _, b in ds.read_blobs("audio", addresses=[int(addr)])]
        full, rate = sf.read(io.BytesIO(blob), dtype="float32")
        assert rate == 16000
        expected = np.zeros(4000, dtype=np.float32)
        piece = full[offset:offset + 4000]
        expected[:len(piece)] = piece
        np.testing.assert_array_equal(out["audio"][i], expected)


def test_index_and_valid_clips_fail_clearly(lake, tmp_path):
    with pytest.raises(ValueError, match="no segments .* match"):
        index_segments(lake, StorageConfig(), "split = 'no-such-split'")
    with pytest.raises(FileNotFoundError, match="run jobs/curate.py first"):
        index_segments(str(tmp_path), StorageConfig(), "true")
    clips = read_valid_clips(lake, StorageConfig(), "true", clips=2, crop_s=3.0)
    assert clips.shape == (2, 48000) and np.abs(clips).max() > 0
