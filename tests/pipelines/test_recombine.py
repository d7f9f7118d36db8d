"""The recombine run on a tiny real lake: the plan's rows with full lineage, gates stored, idempotent, errors early."""

from __future__ import annotations

import lance
import numpy as np
import pytest
import torch

from models.codec import build_codec, codec_tiny_test, save_checkpoint
from models.factorizer import load_factorizer_checkpoint
from pipelines.audio.flac import decode_flac
from pipelines.lance_io import table_uri
from pipelines.recombine import RecombineInputError, plan_only, run_recombine
from recombination.swap import factorize_codes, recombine
from schemas.recombine import PlanError, RecombineConfig
from schemas.synthetic import SYNTHETIC_SCHEMA
from tests.tiny_lake import recombine_lake

PLAN = {"vary": ["speaker"], "strategy": "cross_product", "source_filter": "split = 'train'"}


def _config(lake, codec, factorizer, tmp, **kw) -> RecombineConfig:
    plan = {**PLAN, **kw.pop("plan", {})}
    return RecombineConfig.model_validate({
        "lake_root": str(lake), "codec_checkpoint": str(codec), "factorizer_checkpoint": str(factorizer),
        "plan": plan, "gates": {"speaker_judge": False, **kw.pop("gates", {})},
        "output": {"report_path": str(tmp / "report.html"), **kw.pop("output", {})},
        "execution": {"rows_per_batch": 8, "commit_every_rows": 12, **kw.pop("execution", {})}, **kw})


@pytest.fixture(scope="module")
def made(tmp_path_factory, ray_session):
    root = tmp_path_factory.mktemp("recombine")
    lake, codec, factorizer, rows = recombine_lake(root)
    summary = run_recombine(_config(lake, codec, factorizer, root, output={"audio": True}), progress=lambda _: None)
    return root, lake, codec, factorizer, rows, summary


def _synthetic(lake) -> list[dict]:
    return lance.dataset(table_uri(str(lake), "synthetic")).to_table(
        columns=[n for n in SYNTHETIC_SCHEMA.names if n != "audio"]).to_pylist()


@pytest.mark.integration
def test_every_plan_row_is_made_once_with_lineage_codes_and_gate_scores(made):
    root, lake, _, _, rows, s = made
    # cross product over speakers: 12 sources x 2 other speakers (no self swaps), plus the report grid's rows
    # (4 sources x the commonest targets, with its own donors: some are new combinations)
    assert s.plan_rows == s.to_make == s.rows_written > 24
    out = _synthetic(lake)
    assert len(out) == s.plan_rows and len({r["synth_id"] for r in out}) == s.plan_rows
    assert len({(r["content_segment_id"], r["target_speaker"]) for r in out}) == 24
    speaker_of = {r["segment_id"]: r["speaker"] for r in rows}
    for r in out:
        assert r["target_speaker"] == speaker_of[r["speaker_segment_id"]] != r["source_speaker"]
        assert r["environment_segment_id"] == r["content_segment_id"]  # not varied: from the source itself
        assert r["num_frames"] * r["num_stages"] == len(r["codes"]) and r["run_id"] == s.run_id
        assert 0.0 <= r["content_agreement"] <= 1.0 and -1.0 <= r["factor_speaker_target_sim"] <= 1.0
        assert r["judge_speaker_target_sim"] is None  # judges off: not judged, stored as null
        assert r["passed"] == (r["rejected_by"] == "")
    assert s.passed == sum(r["passed"] for r in out)
    assert "report:" in s.format() and (root / "report.html").stat().st_size > 1000


@pytest.mark.integration
def test_codes_are_what_the_swap_makes_and_audio_decodes_them(made):
    _, lake, codec_path, factorizer_path, _, _ = made
    from models.codec import load_checkpoint

    codec, _, _ = load_checkpoint(codec_path)
    factorizer, _, _ = load_factorizer_checkpoint(factorizer_path)
    row = sorted(_synthetic(lake), key=lambda r: r["synth_id"])[0]
    lat = lance.dataset(table_uri(str(lake), "latents")).to_table().to_pylist()
    codes = {r["segment_id"]: np.asarray(r["codes"]).reshape(r["num_frames"], r["num_stages"]) for r in lat}
    ids = [row["content_segment_id"], row["speaker_segment_id"]]
    f = factorize_codes(factorizer, codec, [codes[i] for i in ids])
    expected = recombine(factorizer, codec, f, content_rows=[0], donor_rows={"speaker": [1]}).codes[0]
    np.testing.assert_array_equal(np.asarray(row["codes"]).reshape(expected.shape), expected)
    ds = lance.dataset(table_uri(str(lake), "synthetic"))
    address = ds.to_table(columns=["synth_id"], filter=f"synth_id = '{row['synth_id']}'",
                          with_row_address=True).column("_rowaddr")[0].as_py()
    (audio,) = dict(ds.read_blobs("audio", addresses=[address])).values()
    wav, rate = decode_flac(audio)
    assert rate == 16000 and len(wav) == expected.shape[0] * codec.hop_length


@pytest.mark.integration
def test_a_rerun_makes_nothing_and_a_bigger_plan_only_the_new_rows(made):
    root, lake, codec, factorizer, _, first = made
    again = run_recombine(_config(lake, codec, factorizer, root), progress=lambda _: None)
    assert (again.already_made, again.to_make, again.rows_written) == (first.plan_rows, 0, 0)
    more = run_recombine(_config(lake, codec, factorizer, root, plan={"vary": ["speaker", "environment"]},
                                 output={"report_path": None}), progress=lambda _: None)
    assert more.to_make == more.plan_rows - more.already_made and more.rows_written == more.to_make
    ids = [r["synth_id"] for r in _synthetic(lake)]
    assert len(ids) == len(set(ids)) == first.rows_written + more.to_make


def test_bad_inputs_fail_before_anything_is_written(tmp_path):
    lake, codec, factorizer, _ = recombine_lake(tmp_path)
    torch.manual_seed(5)
    other = save_checkpoint(tmp_path / "other.pt", build_codec(codec_tiny_test()), codec_tiny_test())
    cases = [
        (_config(lake, other, factorizer, tmp_path), RecombineInputError, "was trained on codec"),
        (_config(lake, codec, factorizer, tmp_path, plan={"source_filter": "speaker = = 1"}), PlanError,
         "cannot run on segments"),
        (_config(lake, codec, factorizer, tmp_path, plan={"source_filter": "split = 'test'"}), PlanError,
         "split = 'test'"),
    ]
    for config, error, text in cases:
        with pytest.raises(error, match=text) as exc:
            run_recombine(config, progress=lambda _: None)
        assert "\n" not in str(exc.value)
    with pytest.raises(ValueError, match="unknown factor"):
        _config(lake, codec, factorizer, tmp_path, plan={"vary": ["pitch"]})
    assert not (tmp_path / "lake" / "synthetic.lance").exists() and not (tmp_path / "lake" / "runs.lance").exists()
    assert "rows" in plan_only(_config(lake, codec, factorizer, tmp_path))
