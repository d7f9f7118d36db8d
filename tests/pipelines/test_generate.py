"""jobs/generate.py's path: the generator as the maker of a recombination plan (tiny real lake and models)."""

from __future__ import annotations

import lance
import pytest
import torch

from models.codec import load_checkpoint
from models.factorizer import load_factorizer_checkpoint
from models.generator import build_generator, generator_tiny_test, save_generator_checkpoint
from pipelines.generate import GenerationError, prepare_generation
from pipelines.lance_io import table_uri
from pipelines.phonemes import PhonemeInventory, Phonemizer
from recombination.generate import generate_rows
from recombination.swap import factorize_codes
from schemas.generate import GENERATED_STRATEGY, GenerateConfig
from tests.models import one_torch_thread  # noqa: F401  (autouse: one intra-op thread)
from tests.tiny_lake import recombine_lake


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("generate")
    lake, codec_path, factorizer_path, rows = recombine_lake(root, transcripts=True)
    codec, _, codec_meta = load_checkpoint(codec_path)
    factorizer, f_config, f_meta = load_factorizer_checkpoint(factorizer_path)
    seqs = Phonemizer()([r["transcript"] for r in rows], "en")
    inventory = PhonemeInventory.from_sequences(seqs)
    config = generator_tiny_test().model_copy(update={
        "num_stages": 2, "codebook_size": codec.quantizer.codebook_size,
        **{f"{f}_dim": getattr(f_config, f"{f}_dim") for f in ("speaker", "style", "environment", "channel")},
    }).with_phoneme_classes(inventory.num_classes)
    torch.manual_seed(0)
    generator = build_generator(config).eval()
    path = save_generator_checkpoint(root / "generator.pt", generator, config, codec_id=codec_meta.codec_id,
                                     factorizer_id=f_meta.factorizer_id, phonemes=inventory.symbols)
    return root, lake, codec_path, factorizer_path, path, codec, factorizer, generator, codec_meta, f_meta


def _config(setup, **kw) -> GenerateConfig:
    root, lake, codec_path, factorizer_path, generator_path = setup[:5]
    return GenerateConfig.model_validate({
        "lake_root": lake, "codec_checkpoint": str(codec_path), "factorizer_checkpoint": str(factorizer_path),
        "generator_checkpoint": str(generator_path), "phoneme_cache": None,
        "plan": {"vary": ["speaker"], "strategy": "cross_product", "source_filter": "split = 'train'"},
        "gates": {"speaker_judge": False}, "execution": {"rows_per_batch": 8, "commit_every_rows": 12}, **kw})


def test_generated_rows_keep_the_content_length_and_are_gated_like_swaps(setup):
    codec, factorizer, generator = setup[5:8]
    lat = lance.dataset(table_uri(setup[1], "latents")).to_table(columns=["codes", "num_frames", "num_stages"])
    codes = [lat.column("codes")[i].values.to_numpy().reshape(lat.column("num_frames")[i].as_py(), -1)
             for i in range(3)]
    factors = factorize_codes(factorizer, codec, codes)
    out = generate_rows(generator, factorizer, codec, factors, content_rows=[0, 1], donor_rows={"speaker": [2, 0]},
                        phonemes=[[2, 3, 4], [5, 6]])
    assert [len(c) for c in out.codes] == [len(codes[0]), len(codes[1])]
    assert torch.equal(out.put_in["speaker"], factors.vectors["speaker"][[2, 0]])
    assert torch.equal(out.put_in["environment"], factors.vectors["environment"][[0, 1]])  # not varied: own
    again = generate_rows(generator, factorizer, codec, factors, content_rows=[0, 1],
                          donor_rows={"speaker": [2, 0]}, phonemes=[[2, 3, 4], [5, 6]])
    assert all((a == b).all() for a, b in zip(out.codes, again.codes))  # greedy: deterministic


def test_the_plan_gets_generated_ids_and_a_generator_of_another_factorizer_is_refused(setup, tmp_path):
    from pipelines.recombine import _latent_offsets, _plan

    cfg = _config(setup)
    codec_meta, f_meta = setup[8], setup[9]
    _, offsets = _latent_offsets(setup[1], cfg, codec_meta.codec_id)
    plan, _ = _plan(setup[1], cfg, codec_meta.codec_id, f_meta.factorizer_id, offsets)
    made, stage, dropped = prepare_generation(cfg, setup[1], plan, codec_id=codec_meta.codec_id,
                                              factorizer_id=f_meta.factorizer_id)
    assert dropped == 0 and made.num_rows == plan.num_rows
    assert set(made.column("strategy").to_pylist()) == {GENERATED_STRATEGY}
    assert not set(made.column("synth_id").to_pylist()) & set(plan.column("synth_id").to_pylist())
    assert set(stage["phonemes"]) == set(made.column("content_segment_id").to_pylist())
    with pytest.raises(GenerationError, match="was trained on codec"):
        prepare_generation(cfg, setup[1], plan, codec_id=codec_meta.codec_id, factorizer_id="factorizer_other")
    with pytest.raises(ValueError, match="report_path"):
        _config(setup, output={"report_path": str(tmp_path / "r.html")})


@pytest.mark.slow  # a Ray Data pass of the recombine stage (~30-60 s on 2 cores)
@pytest.mark.integration
def test_generate_run_writes_lineage_and_reruns_make_nothing(setup, ray_session):
    from pipelines.recombine import run_recombine

    first = run_recombine(_config(setup), progress=lambda _: None)
    assert first.rows_written == first.plan_rows > 0
    rows = lance.dataset(table_uri(setup[1], "synthetic")).to_table(
        columns=["synth_id", "strategy", "content_segment_id", "speaker_segment_id", "num_frames",
                 "factor_speaker_target_sim", "passed"]).to_pylist()
    assert {r["strategy"] for r in rows} == {GENERATED_STRATEGY} and len(rows) == first.plan_rows
    assert all(r["factor_speaker_target_sim"] is not None and r["content_segment_id"] for r in rows)
    runs = lance.dataset(table_uri(setup[1], "runs")).to_table(columns=["job", "status"]).to_pylist()
    assert {"job": "generate", "status": "succeeded"} in runs
    again = run_recombine(_config(setup), progress=lambda _: None)
    assert again.rows_written == 0 and again.already_made == first.plan_rows
