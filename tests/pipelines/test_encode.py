"""The encode run on a tiny real segments table: exact rows, idempotency, increments, a second codec, errors."""

from __future__ import annotations

from pathlib import Path

import lance
import numpy as np
import pytest
import torch

from models.codec import CheckpointError, build_codec, codec_tiny_test, load_checkpoint, save_checkpoint
from pipelines.encode import EncodeInputError, run_encode
from pipelines.lance_io import read_segment_audio, table_uri
from pipelines.latents import LatentsLookupError, decode_latents, measure_latent_storage, read_latent_codes
from schemas.codec import FSQConfig
from schemas.encode import EncodeConfig
from schemas.latents import LatentRow
from schemas.storage import StorageConfig
from tests.tiny_lake import segment_row, write_segments

SPLITS = ["train", "train", "valid", "test"]


def _one_stage_config():
    cfg = codec_tiny_test()
    return cfg.model_copy(update={"name": "codec_tiny_test_1stage", "fsq": FSQConfig(levels=cfg.fsq.levels, stages=1)})


def _checkpoint(path: Path, config, seed: int) -> Path:
    torch.manual_seed(seed)
    return save_checkpoint(path, build_codec(config), config)


def _config(lake: Path, checkpoint: Path, **kw) -> EncodeConfig:
    execution = kw.pop("execution", {"concurrency": 1})
    return EncodeConfig.model_validate({"lake_root": str(lake), "checkpoint": str(checkpoint),
                                       "execution": {"segments_per_batch": 2, **execution}, **kw})


def _latents(lake: Path, codec_id: str | None = None) -> list[dict]:
    ds = lance.dataset(table_uri(str(lake), "latents"))
    return ds.to_table(filter=None if codec_id is None else f"codec_id = '{codec_id}'").to_pylist()


def _version(lake: Path, name: str) -> int:
    return lance.dataset(table_uri(str(lake), name)).version


@pytest.fixture(scope="module")
def encoded(tmp_path_factory, ray_session):
    root = tmp_path_factory.mktemp("encode")
    lake = root / "lake"
    write_segments(lake, [segment_row(0.7 + 0.45 * i, seed=i, split=s, speaker=f"test:{i % 2}")
                          for i, s in enumerate(SPLITS)])
    ckpt_a = _checkpoint(root / "a.pt", codec_tiny_test(), seed=0)
    ckpt_b = _checkpoint(root / "b.pt", _one_stage_config(), seed=1)
    summary = run_encode(_config(lake, ckpt_a, execution={}), progress=lambda _: None)  # default: 2 actors
    return lake, ckpt_a, ckpt_b, summary


def test_one_row_per_segment_with_the_codes_the_codec_gives(encoded):
    lake, ckpt_a, _, summary = encoded
    codec, cfg, meta = load_checkpoint(ckpt_a)
    rows = {r["segment_id"]: r for r in _latents(lake)}
    audio = read_segment_audio(str(lake), StorageConfig())
    assert summary.rows_written == summary.segments_to_encode == len(rows) == len(audio) == 4
    seg_version = _version(lake, "segments")
    for sid, samples, rate in audio:
        row = rows[sid]
        LatentRow.model_validate(row)
        expected = codec.encode(torch.from_numpy(samples)[None]).codes[0].numpy()
        codes, _ = read_latent_codes(str(lake), sid, meta.codec_id)
        assert codes.shape == (codec.num_frames(len(samples)), 2) == (row["num_frames"], row["num_stages"])
        np.testing.assert_array_equal(codes, expected)
        assert (row["codec_id"], row["num_samples"], row["sample_rate_hz"]) == (meta.codec_id, len(samples), 16000)
        assert row["frame_rate_hz"] == 50.0 and row["bitrate_bps"] == pytest.approx(cfg.bitrate_bps)
        assert row["duration_s"] == pytest.approx(len(samples) / rate)
        assert row["segments_version"] == seg_version and row["run_id"] == summary.run_id
    assert sorted(r["split"] for r in rows.values()) == sorted(SPLITS)
    assert {r["speaker"] for r in rows.values()} == {"test:0", "test:1"}
    (run,) = [r for r in lance.dataset(table_uri(str(lake), "runs")).to_table().to_pylist()
              if r["run_id"] == summary.run_id]
    assert (run["job"], run["status"], run["segments_written"], run["inputs_seen"]) == ("encode", "succeeded", 4, 4)
    assert summary.storage is not None and summary.storage.segments == 4


def test_rerun_writes_nothing(encoded):
    lake, ckpt_a, _, _ = encoded
    before = _version(lake, "latents")
    again = run_encode(_config(lake, ckpt_a), progress=lambda _: None)
    assert (again.segments_selected, again.segments_already_encoded, again.rows_written) == (4, 4, 0)
    assert _version(lake, "latents") == before and len(_latents(lake)) == 4


def test_a_new_segment_is_the_only_work_of_the_next_run(encoded):
    lake, ckpt_a, _, _ = encoded
    new = segment_row(1.3, seed=10, split="train")
    write_segments(lake, [new])
    s = run_encode(_config(lake, ckpt_a), progress=lambda _: None)
    assert (s.segments_selected, s.segments_already_encoded, s.rows_written) == (5, 4, 1)
    assert [r["segment_id"] for r in _latents(lake) if r["run_id"] == s.run_id] == [new["segment_id"]]
    assert len(_latents(lake)) == 5


def test_a_second_codec_adds_its_own_rows_for_the_filtered_segments(encoded):
    lake, ckpt_a, ckpt_b, _ = encoded
    id_a, id_b = load_checkpoint(ckpt_a)[2].codec_id, load_checkpoint(ckpt_b)[2].codec_id
    before_a = sorted((r["segment_id"], r["run_id"]) for r in _latents(lake, id_a))
    s = run_encode(_config(lake, ckpt_b, segments_filter="split = 'train'"), progress=lambda _: None)
    rows_b = _latents(lake, id_b)
    assert s.codec_id == id_b and s.rows_written == len(rows_b) == 3  # two train segments + the new one
    assert {r["split"] for r in rows_b} == {"train"} and {r["num_stages"] for r in rows_b} == {1}
    assert sorted((r["segment_id"], r["run_id"]) for r in _latents(lake, id_a)) == before_a


def test_decode_turns_a_row_back_into_audio_of_its_length(encoded):
    lake, ckpt_a, _, _ = encoded
    codec, _, meta = load_checkpoint(ckpt_a)
    sid = _latents(lake, meta.codec_id)[0]["segment_id"]
    codes, row = read_latent_codes(str(lake), sid, meta.codec_id)
    wav, rate = decode_latents(str(lake), sid, checkpoint=ckpt_a)
    expected = codec.decode(torch.from_numpy(codes.astype(np.int64))[None], row["num_samples"])[0].numpy()
    assert rate == 16000 and wav.shape == (row["num_samples"],) and wav.dtype == np.float32
    np.testing.assert_allclose(wav, expected, atol=1e-6)
    by_id, _ = decode_latents(str(lake), sid, codec_id=meta.codec_id)  # weights found through the runs row
    np.testing.assert_allclose(by_id, wav, atol=1e-6)


def test_decode_names_an_unknown_segment_or_codec(encoded):
    lake, ckpt_a, ckpt_b, _ = encoded
    with pytest.raises(LatentsLookupError, match="'nope' has no latents"):
        decode_latents(str(lake), "nope", checkpoint=ckpt_a)
    sid = next(r["segment_id"] for r in _latents(lake) if r["split"] == "test")  # codec B encoded train only
    with pytest.raises(LatentsLookupError,
                       match=r"no latents of codec 'codec_tiny_test_1stage-[\w-]+' \(it has: codec_tiny_test-"):
        decode_latents(str(lake), sid, checkpoint=ckpt_b)
    with pytest.raises(CheckpointError, match="expected 'other'"):
        decode_latents(str(lake), sid, checkpoint=ckpt_a, codec_id="other")


def test_storage_per_hour_counts_codes_and_flac_blobs_of_the_same_segments(encoded):
    lake, ckpt_a, _, _ = encoded
    codec_id = load_checkpoint(ckpt_a)[2].codec_id
    st = measure_latent_storage(str(lake), codec_id)
    rows = _latents(lake, codec_id)
    seg = lance.dataset(table_uri(str(lake), "segments"))
    meta = seg.to_table(columns=["segment_id"], with_row_address=True)
    blobs = dict(seg.read_blobs("audio", addresses=meta.column("_rowaddr").to_pylist()))
    assert st.segments == len(rows) == len(blobs) >= 4
    assert st.flac_bytes == sum(len(b) for b in blobs.values())
    assert st.codes_payload_bytes == sum(2 * r["num_frames"] * r["num_stages"] for r in rows)
    assert 0 < st.codes_bytes_on_disk < st.row_bytes_on_disk
    assert st.audio_s == pytest.approx(sum(r["duration_s"] for r in rows))
    assert st.ratio == pytest.approx(st.flac_bytes / st.codes_bytes_on_disk) and st.ratio > 10
    assert "MB/h" in st.format() and "smaller" in st.format()


def test_bad_checkpoints_and_inputs_fail_before_anything_is_written(encoded, tmp_path):
    lake, ckpt_a, _, _ = encoded
    versions = {t: _version(lake, t) for t in ("latents", "runs")}
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(ckpt_a.read_bytes()[:2000])
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        run_encode(_config(lake, corrupt))
    with pytest.raises(CheckpointError, match=r"is codec 'codec_tiny_test-[\w-]+', expected 'codec_50hz_2x8555-x'"):
        run_encode(_config(lake, ckpt_a, codec_id="codec_50hz_2x8555-x"))
    with pytest.raises(EncodeInputError, match="segments_filter 'no_such_column = 1' cannot run"):
        run_encode(_config(lake, ckpt_a, segments_filter="no_such_column = 1"))
    with pytest.raises(EncodeInputError, match="no segments table"):
        run_encode(_config(tmp_path / "empty-lake", ckpt_a))
    assert {t: _version(lake, t) for t in versions} == versions
    assert not (tmp_path / "empty-lake").exists()
