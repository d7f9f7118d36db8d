"""The factors run on a tiny real lake (segments + latents, no curation): exact rows, idempotency, increments,
a second factorizer, the index, and the errors found before anything is written."""

from __future__ import annotations

from pathlib import Path

import lance
import numpy as np
import pytest
import torch

from models.codec import CheckpointError, build_codec, codec_tiny_test, load_checkpoint, save_checkpoint
from models.factorizer import (FactorizerCheckpointError, build_factorizer, factorizer_tiny_test,
                               load_factorizer_checkpoint, save_factorizer_checkpoint)
from pipelines.encode_factors import FactorsInputError, run_encode_factors
from pipelines.factor_search import index_name, similar_segments
from pipelines.lance_io import table_uri
from schemas.encode_factors import EncodeFactorsConfig
from schemas.factors import FACTOR_DIMS, FACTORS_SCHEMA, VECTOR_COLUMNS, FactorRow
from tests.tiny_lake import segment_row, write_latents, write_segments

LABELS = [dict(split="train", speaker="test:0", language="en", style="fast", environment="room", channel="clean"),
          dict(split="train", speaker="test:1", language="de", style=None, environment=None, channel="telephone"),
          dict(split="valid", speaker="test:0", language="en", style="slow", environment="noise", channel=None),
          dict(split="test", speaker=None, language=None, style=None, environment=None, channel=None)]
TABLE_DIMS = {"speaker_dim": 64, "style_dim": 16, "environment_dim": 16, "channel_dim": 16}


def _factorizer(path: Path, codec_id: str, *, seed: int, name: str = "factorizer_tiny_test", dims=TABLE_DIMS) -> Path:
    torch.manual_seed(seed)
    cfg = factorizer_tiny_test().model_copy(update={"name": name, **dims})
    return save_factorizer_checkpoint(path, build_factorizer(cfg), cfg, codec_id=codec_id)


def _config(lake: Path, factorizer: Path, codec: Path, **kw) -> EncodeFactorsConfig:
    execution = kw.pop("execution", {"concurrency": 1})
    return EncodeFactorsConfig.model_validate({
        "lake_root": str(lake), "factorizer_checkpoint": str(factorizer), "codec_checkpoint": str(codec),
        "execution": {"rows_per_batch": 2, **execution}, **kw})


def _factors(lake: Path, factorizer_id: str | None = None) -> list[dict]:
    ds = lance.dataset(table_uri(str(lake), "factors"))
    return ds.to_table(filter=None if factorizer_id is None else f"factorizer_id = '{factorizer_id}'").to_pylist()


def _version(lake: Path, name: str) -> int:
    return lance.dataset(table_uri(str(lake), name)).version


def _quiet(_: str) -> None:
    return None


@pytest.fixture(scope="module")
def lake(tmp_path_factory, ray_session):
    """Four segments with latents of the tiny codec (two also of another codec), factorized by factorizer A."""
    root = tmp_path_factory.mktemp("factors")
    lake = root / "lake"
    segments = [segment_row(0.5 + 0.3 * i, seed=i, corpus="test", **labels) for i, labels in enumerate(LABELS)]
    write_segments(lake, segments)
    torch.manual_seed(0)
    codec = save_checkpoint(root / "codec.pt", build_codec(codec_tiny_test()), codec_tiny_test())
    codec_id = load_checkpoint(codec)[2].codec_id
    write_latents(lake, segments, codec_id=codec_id)
    write_latents(lake, segments[:2], codec_id="codec_other-000000000000-w0000000000", seed=3)
    fa = _factorizer(root / "fa.pt", codec_id, seed=0)
    summary = run_encode_factors(_config(lake, fa, codec), progress=_quiet)
    return {"root": root, "lake": lake, "codec": codec, "codec_id": codec_id, "fa": fa, "summary": summary,
            "segments": segments}


def _expected(codec_path: Path, factorizer_path: Path, row_codes: np.ndarray):
    codec, _, _ = load_checkpoint(codec_path)
    factorizer, _, _ = load_factorizer_checkpoint(factorizer_path)
    with torch.inference_mode():
        latent = codec.codes_to_latent(torch.from_numpy(row_codes.astype(np.int64))[None])
        enc = factorizer.encode(latent, torch.tensor([row_codes.shape[0]]))
        return enc, factorizer.content_to_codes(enc.content)[0].numpy()


def test_one_row_per_latents_row_holding_the_factorizers_output(lake):
    lk, summary = lake["lake"], lake["summary"]
    fid = load_factorizer_checkpoint(lake["fa"])[2].factorizer_id
    ds = lance.dataset(table_uri(str(lk), "factors"))
    assert ds.schema == FACTORS_SCHEMA  # fixed-size float32 lists, not Ray's tensor extension type
    rows = {r["segment_id"]: r for r in _factors(lk)}
    latents = {r["segment_id"]: r for r in lance.dataset(table_uri(str(lk), "latents")).to_table(
        filter=f"codec_id = '{lake['codec_id']}'").to_pylist()}
    assert summary.rows_written == summary.rows_to_encode == summary.rows_selected == len(rows) == 4
    assert set(rows) == set(latents)  # the other codec's latents were not read
    by_id = {s["segment_id"]: s for s in lake["segments"]}
    for sid, row in rows.items():
        FactorRow.model_validate(row)
        lat = latents[sid]
        codes = np.asarray(lat["codes"], dtype=np.uint16).reshape(lat["num_frames"], lat["num_stages"])
        enc, content = _expected(lake["codec"], lake["fa"], codes)
        for name in FACTOR_DIMS:
            np.testing.assert_allclose(row[VECTOR_COLUMNS[name]], getattr(enc, name)[0].numpy(), atol=1e-5)
        np.testing.assert_array_equal(row["content_codes"], content)
        assert (row["factorizer_id"], row["codec_id"], row["run_id"]) == (fid, lake["codec_id"], summary.run_id)
        assert (row["num_frames"], row["duration_s"]) == (lat["num_frames"], lat["duration_s"])
        seg = by_id[sid]
        assert {k: row[k] for k in ("split", "speaker", "language", "style", "environment", "channel", "corpus")} == \
            {k: seg.get(k) for k in ("split", "speaker", "language", "style", "environment", "channel", "corpus")}
    (run,) = [r for r in lance.dataset(table_uri(str(lk), "runs")).to_table().to_pylist()
              if r["run_id"] == summary.run_id]
    assert (run["job"], run["status"], run["inputs_seen"], run["segments_written"]) == ("encode_factors", "succeeded",
                                                                                       4, 4)
    assert '"factorizer_id":"' + fid in run["config_json"].replace(" ", "")


def test_the_speaker_index_exists_and_a_segment_finds_itself_first(lake):
    lk, summary = lake["lake"], lake["summary"]
    fid = summary.factorizer_id
    (update,) = summary.index
    assert (update.factor, update.action, update.index_type, update.rows) == ("speaker", "created", "IVF_FLAT", 4)
    (desc,) = [d for d in lance.dataset(table_uri(str(lk), "factors")).describe_indices()
               if d.name == index_name("speaker")]
    assert desc.num_rows_indexed == len(_factors(lk))
    sid = lake["segments"][2]["segment_id"]
    got = similar_segments(str(lk), factorizer_id=fid, segment_id=sid, k=3)
    assert got.num_rows == 3 and got.column("segment_id")[0].as_py() == sid
    assert abs(got.column("distance")[0].as_py()) < 1e-5
    assert got.column("distance").to_pylist() == sorted(got.column("distance").to_pylist())
    assert "index speaker_vector: created IVF_FLAT (1 partition)" in summary.format()


def test_rerun_writes_nothing(lake):
    lk = lake["lake"]
    before = _version(lk, "factors")
    again = run_encode_factors(_config(lk, lake["fa"], lake["codec"]), progress=_quiet)
    assert (again.rows_selected, again.rows_already_encoded, again.rows_written) == (4, 4, 0)
    assert [u.action for u in again.index] == ["up to date"]
    assert _version(lk, "factors") == before and len(_factors(lk)) == 4


def test_new_latents_rows_are_the_only_work_of_the_next_run(lake):
    lk = lake["lake"]
    new = segment_row(0.9, seed=10, split="train", speaker="test:1", language="en")
    write_segments(lk, [new])
    write_latents(lk, [new], codec_id=lake["codec_id"], seed=5)
    s = run_encode_factors(_config(lk, lake["fa"], lake["codec"]), progress=_quiet)
    assert (s.rows_selected, s.rows_already_encoded, s.rows_written) == (5, 4, 1)
    assert [r["segment_id"] for r in _factors(lk) if r["run_id"] == s.run_id] == [new["segment_id"]]
    assert [(u.action, u.rows) for u in s.index] == [("rebuilt", 5)]  # a tiny table's flat index is remade
    got = similar_segments(str(lk), factorizer_id=s.factorizer_id, segment_id=new["segment_id"], k=1)
    assert got.column("segment_id").to_pylist() == [new["segment_id"]]


def test_a_second_factorizer_adds_its_own_rows_for_the_filtered_segments(lake):
    lk = lake["lake"]
    fb = _factorizer(lake["root"] / "fb.pt", lake["codec_id"], seed=1, name="factorizer_tiny_b")
    id_a = load_factorizer_checkpoint(lake["fa"])[2].factorizer_id
    before_a = sorted((r["segment_id"], r["run_id"]) for r in _factors(lk, id_a))
    s = run_encode_factors(_config(lk, fb, lake["codec"], segments_filter="split = 'train'"), progress=_quiet)
    rows_b = _factors(lk, s.factorizer_id)
    assert s.factorizer_id != id_a and s.rows_written == len(rows_b) == 3  # two train segments + the new one
    assert {r["split"] for r in rows_b} == {"train"}
    assert sorted((r["segment_id"], r["run_id"]) for r in _factors(lk, id_a)) == before_a
    got = similar_segments(str(lk), factorizer_id=s.factorizer_id, segment_id=rows_b[0]["segment_id"], k=10)
    assert got.num_rows == 3 and set(got.column("factorizer_id").to_pylist()) == {s.factorizer_id}


def test_bad_checkpoints_and_inputs_fail_in_one_line_before_anything_is_written(lake, tmp_path):
    lk, codec, fa = lake["lake"], lake["codec"], lake["fa"]
    versions = {t: _version(lk, t) for t in ("factors", "runs")}
    torch.manual_seed(7)
    other_codec = save_checkpoint(tmp_path / "other_codec.pt", build_codec(codec_tiny_test()), codec_tiny_test())
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(fa.read_bytes()[:2000])
    small = _factorizer(tmp_path / "small.pt", lake["codec_id"], seed=0, name="factorizer_small", dims={})
    other_lake = tmp_path / "other-lake"
    write_segments(other_lake, lake["segments"][:1])
    write_latents(other_lake, lake["segments"][:1], codec_id="codec_other-000000000000-w0000000000")
    fid = load_factorizer_checkpoint(fa)[2].factorizer_id
    cases = [
        (FactorizerCheckpointError, rf"factorizer '{fid}' reads latents of codec '{lake['codec_id']}', "
                                    rf"codec_checkpoint .*other_codec.pt is codec 'codec_tiny_test-\w+-w\w+'",
         _config(lk, fa, other_codec)),
        (FactorizerCheckpointError, "not a readable checkpoint", _config(lk, corrupt, codec)),
        (CheckpointError, "not a readable checkpoint", _config(lk, fa, corrupt)),
        (FactorizerCheckpointError, f"checkpoint is factorizer '{fid}', expected 'factorizer_x-1'",
         _config(lk, fa, codec, factorizer_id="factorizer_x-1")),
        (FactorsInputError, r"makes vectors of sizes \{'speaker': 8, 'style': 4, 'environment': 4, 'channel': 4\}; "
                            r"the factors table holds \{'speaker': 64",
         _config(lk, small, codec)),
        (FactorsInputError, "segments_filter 'no_such_column = 1' cannot run: ",
         _config(lk, fa, codec, segments_filter="no_such_column = 1")),
        (FactorsInputError, rf"latents under .*other-lake has no rows of codec '{lake['codec_id']}' \(it has: "
                            r"codec_other-000000000000-w0000000000\); run jobs/encode.py",
         _config(other_lake, fa, codec)),
        (FactorsInputError, "no latents table under", _config(tmp_path / "seg-only", fa, codec)),
    ]
    write_segments(tmp_path / "seg-only", lake["segments"][:1])
    for error, message, config in cases:
        with pytest.raises(error, match=message) as info:
            run_encode_factors(config, progress=_quiet)
        assert "\n" not in str(info.value)
    assert {t: _version(lk, t) for t in versions} == versions
    for empty in (other_lake, tmp_path / "seg-only"):
        assert not (empty / "factors.lance").exists() and not (empty / "runs.lance").exists()
