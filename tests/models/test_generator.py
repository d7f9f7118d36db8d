"""Latent generator: shapes, masking, conditioning, an overfit run, generation, checkpoints, config errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from pydantic import ValidationError

from models.checkpoint_io import atomic_torch_save
from models.generator import (FactorVectors, GeneratorBatch, GeneratorCheckpointError, GeneratorLoss,
                              GeneratorOutput, build_generator, build_generator_loss, generator_id_for,
                              generator_small, generator_tiny_test, load_generator_checkpoint, preset,
                              save_generator_checkpoint, uniform_alignment)
from pipelines.phonemes import PhonemeInventory
from schemas.factors import FACTOR_DIMS, VECTOR_COLUMNS
from schemas.generator import GeneratorLossConfig, GeneratorModelConfig
from tests.models import one_torch_thread  # noqa: F401  (autouse: one intra-op thread)

CODEC_ID = "codec_50hz_2x8555-0123456789ab-w0123456789"
FACTORIZER_ID = "factorizer_default-0123456789ab-wabcdef0123"
INVENTORY = PhonemeInventory(("a", "b", "d", "e", "i", "k", "o", "s", "t", "u"))   # 12 classes, like the preset


def _factors(rows: int, seed: int = 0) -> FactorVectors:
    g = torch.Generator().manual_seed(seed)
    return FactorVectors(**{name: torch.randn(rows, dim, generator=g) for name, dim in FACTOR_DIMS.items()})


def _batch(seed: int = 0) -> GeneratorBatch:
    g = torch.Generator().manual_seed(seed)
    return GeneratorBatch(phonemes=torch.randint(2, INVENTORY.num_classes, (4, 9), generator=g),
                          phoneme_lengths=torch.tensor([9, 7, 5, 8]), factors=_factors(4, seed),
                          codes=torch.randint(0, 1000, (4, 40, 2), generator=g).to(torch.int32),
                          lengths=torch.tensor([40, 34, 28, 37]))


def _logits(model, b: GeneratorBatch, **changes) -> torch.Tensor:
    args = {"phonemes": b.phonemes, "phoneme_lengths": b.phoneme_lengths, "factors": b.factors,
            "lengths": b.lengths, "codes": b.codes, **changes}
    with torch.no_grad():
        return model(**args).logits


def test_shapes_and_gradients():
    torch.manual_seed(0)
    model, b = build_generator("generator_tiny_test"), _batch()
    out = model(b.phonemes, b.phoneme_lengths, b.factors, b.lengths, codes=b.codes)
    assert isinstance(out, GeneratorOutput) and out.logits.shape == (4, 40, 2, 1000)
    losses = build_generator_loss()(out, b)
    assert losses.total.ndim == 0 and torch.isfinite(losses.total)
    assert losses.stage_cross_entropy.shape == (2,) and 0 <= float(losses.accuracy) <= 1
    assert set(losses.as_floats()) == {"total", "cross_entropy", "accuracy", "cross_entropy_stage0",
                                       "accuracy_stage0", "cross_entropy_stage1", "accuracy_stage1"}
    losses.total.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
    assert model.stage_embed.weight.grad.abs().sum() > 0 and model.condition[0].weight.grad.abs().sum() > 0


def test_padding_never_changes_valid_outputs():
    torch.manual_seed(0)
    model, b = build_generator("generator_tiny_test").eval(), _batch()
    ref = _logits(model, b)
    phonemes, codes = b.phonemes.clone(), b.codes.clone()
    phonemes[1, int(b.phoneme_lengths[1]):] = 11                           # padded phonemes
    codes[1, int(b.lengths[1]):] = 999                                     # padded frames
    longer = torch.cat([codes, torch.full((4, 7, 2), 5, dtype=codes.dtype)], dim=1)   # the batch padded further
    for changed in (_logits(model, b, phonemes=phonemes, codes=codes), _logits(model, b, codes=longer)):
        for row, n in enumerate(b.lengths.tolist()):
            assert torch.allclose(ref[row, :n], changed[row, :n], atol=1e-5)
    # stage 0 never sees the codes it predicts: teacher forcing feeds stage 0's codes to stage 1 only
    other = b.codes.clone()
    other[..., 1] = (other[..., 1] + 1) % 1000
    shifted = _logits(model, b, codes=other)
    assert torch.equal(shifted, ref)
    other[..., 0] = (other[..., 0] + 1) % 1000
    shifted = _logits(model, b, codes=other)
    assert torch.equal(shifted[..., 0, :], ref[..., 0, :]) and not torch.allclose(shifted[..., 1, :], ref[..., 1, :])


def test_padded_frames_do_not_count_in_the_loss():
    torch.manual_seed(0)
    model, b = build_generator("generator_tiny_test"), _batch()
    out = model(b.phonemes, b.phoneme_lengths, b.factors, b.lengths, codes=b.codes)
    noisy = GeneratorBatch(b.phonemes, b.phoneme_lengths, b.factors, b.codes.clone(), b.lengths)
    noisy.codes[2, int(b.lengths[2]):] = 0
    loss_fn = GeneratorLoss(label_smoothing=0.1, stage_weights=[2.0, 1.0])
    assert torch.equal(loss_fn(out, b).total, loss_fn(out, noisy).total)
    terms = loss_fn(out, b)
    assert torch.allclose(terms.total, (2 * terms.stage_cross_entropy[0] + terms.stage_cross_entropy[1]) / 3)


def test_uniform_alignment_is_monotonic_and_covers_every_phoneme():
    index, within = uniform_alignment(torch.tensor([3, 4]), torch.tensor([9, 10]), 12)
    assert index[0, :9].tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert index[1, :10].tolist() == [0, 0, 1, 1, 1, 2, 2, 3, 3, 3]
    assert int(index[0].max()) == 2 and ((within >= 0) & (within <= 1)).all()


def test_every_factor_steers_the_output():
    torch.manual_seed(0)
    model, b = build_generator("generator_tiny_test").eval(), _batch()
    ref = _logits(model, b)
    for name in FACTOR_DIMS:
        swapped = b.factors.replace(**{name: getattr(b.factors, name).flip(0)})   # another row's vector
        assert not torch.allclose(_logits(model, b, factors=swapped)[0, :40], ref[0, :40], atol=1e-4), name
    assert torch.equal(_logits(model, b, factors=b.factors.replace()), ref)


def test_overfits_a_tiny_batch():
    torch.manual_seed(0)
    model, loss_fn, b = build_generator("generator_tiny_test"), build_generator_loss(), _batch()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    history = []
    for _ in range(30):
        losses = loss_fn(model(b.phonemes, b.phoneme_lengths, b.factors, b.lengths, codes=b.codes), b)
        history.append(losses.as_floats())
        opt.zero_grad()
        losses.total.backward()
        opt.step()
    first, last = history[0], history[-1]
    assert first["total"] > 6.5                                 # ~ln(1000): chance
    assert last["total"] < 0.6 * first["total"]                # measured: 6.97 -> 2.47
    assert last["accuracy"] > 0.3 > 0.02 > first["accuracy"]   # measured: 0.004 -> 0.55


def test_generate_returns_codes_in_range_consistent_with_the_logits():
    torch.manual_seed(0)
    model, b = build_generator("generator_tiny_test").eval(), _batch()
    codes = model.generate(b.phonemes, b.phoneme_lengths, b.factors, b.lengths)
    assert codes.shape == (4, 40, 2) and codes.dtype == torch.long
    assert int(codes.min()) >= 0 and int(codes.max()) < 1000
    assert (codes[1, int(b.lengths[1]):] == 0).all()
    # greedy: each stage is the argmax given the stages before it, i.e. a fixed point of teacher forcing
    best = _logits(model, b, codes=codes).argmax(-1)
    for row, n in enumerate(b.lengths.tolist()):
        assert torch.equal(best[row, :n], codes[row, :n])

    def sample(seed: int, **kw) -> torch.Tensor:
        return model.generate(b.phonemes, b.phoneme_lengths, b.factors, b.lengths,
                              generator=torch.Generator().manual_seed(seed), **kw)

    hot = sample(1, temperature=1.0)
    assert torch.equal(hot, sample(1, temperature=1.0)) and not torch.equal(hot, codes)
    assert int(hot.max()) < 1000 and (hot[2, int(b.lengths[2]):] == 0).all()
    assert torch.equal(sample(2, temperature=5.0, top_k=1), codes)
    with pytest.raises(ValueError, match="temperature must be >= 0"):
        sample(0, temperature=-1.0)


def test_factor_vectors_from_training_input_columns():
    batch = {column: np.ones((3, FACTOR_DIMS[name]), dtype=np.float32) for name, column in VECTOR_COLUMNS.items()}
    factors = FactorVectors.from_columns(batch)
    assert factors.speaker.shape == (3, 64) and factors.concatenated().shape == (3, sum(FACTOR_DIMS.values()))
    del batch["channel_vector"]
    with pytest.raises(KeyError, match="lacks factor vector column.* channel_vector"):
        FactorVectors.from_columns(batch)


def test_bad_inputs_fail_clearly():
    model, b = build_generator("generator_tiny_test"), _batch()

    def call(**kw) -> GeneratorOutput:
        return model(**{"phonemes": b.phonemes, "phoneme_lengths": b.phoneme_lengths, "factors": b.factors,
                        "lengths": b.lengths, "codes": b.codes, **kw})

    with pytest.raises(ValueError, match=r"phoneme ids must lie in \[0, 12\)"):
        call(phonemes=b.phonemes + 20)
    with pytest.raises(ValueError, match=r"phoneme_lengths must lie in \[1, 9\]"):
        call(phoneme_lengths=torch.tensor([9, 0, 5, 8]))
    with pytest.raises(ValueError, match=r"expected speaker vectors \[4, 64\], got \[4, 8\]"):
        call(factors=b.factors.replace(speaker=torch.zeros(4, 8)))
    with pytest.raises(ValueError, match=r"codes must lie in \[0, 1000\)"):
        call(codes=b.codes + 1000)
    with pytest.raises(ValueError, match="codes have 20 frames, lengths ask for up to 40"):
        call(codes=b.codes[:, :20])
    with pytest.raises(ValueError, match="pass the target codes"):
        call(codes=None)
    with pytest.raises(ValueError, match="lengths .* must be >= 1"):
        model.generate(b.phonemes, b.phoneme_lengths, b.factors, torch.tensor([5, 0, 5, 5]))
    out = call()
    with pytest.raises(ValueError, match=r"expected codes \[4, >= 40, 2\]"):
        build_generator_loss()(out, GeneratorBatch(b.phonemes, b.phoneme_lengths, b.factors, b.codes[:, :5],
                                                   b.lengths))
    with pytest.raises(ValueError, match="3 stage weights for 2 stages"):
        GeneratorLoss(stage_weights=[1, 1, 1])(out, b)


def test_config_validation():
    assert generator_small().factor_dims == FACTOR_DIMS
    assert generator_tiny_test().with_phoneme_classes(30).phoneme_classes == 30
    with pytest.raises(KeyError, match="known: generator_small, generator_tiny_test"):
        preset("nope")
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        GeneratorModelConfig(name="g", hidden_size=3)
    with pytest.raises(ValidationError, match="kernel_size must be odd"):
        GeneratorModelConfig(name="g", kernel_size=4)
    with pytest.raises(ValidationError, match="not divisible by num_heads"):
        GeneratorModelConfig(name="g", hidden_dim=10, num_heads=4)
    with pytest.raises(ValidationError):
        generator_small().with_phoneme_classes(2)
    with pytest.raises(ValidationError, match="stage_weights must be >= 0"):
        GeneratorLossConfig(stage_weights=[0.0, 0.0])
    assert build_generator_loss(GeneratorLossConfig(label_smoothing=0.1)).label_smoothing == 0.1


def test_schema_imports_without_torch():
    code = "import sys, schemas.generator; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[2])


@pytest.fixture()
def saved(tmp_path):
    torch.manual_seed(0)
    cfg = generator_tiny_test().with_phoneme_classes(INVENTORY.num_classes)
    model, b = build_generator(cfg), _batch()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    build_generator_loss()(model(b.phonemes, b.phoneme_lengths, b.factors, b.lengths, codes=b.codes),
                           b).total.backward()
    opt.step()
    path = save_generator_checkpoint(tmp_path / "gen" / "generator.pt", model, cfg, codec_id=CODEC_ID,
                                     factorizer_id=FACTORIZER_ID, phonemes=INVENTORY.symbols, step=3,
                                     optimizer_state=opt.state_dict(), extra={"rows_seen": 4})
    return path, model.eval(), cfg, b


def test_checkpoint_round_trip_gives_identical_outputs(saved):
    path, model, cfg, b = saved
    loaded, cfg2, meta = load_generator_checkpoint(path, expected_codec_id=CODEC_ID,
                                                   expected_factorizer_id=FACTORIZER_ID)
    assert cfg2 == cfg and not loaded.training and meta.step == 3 and meta.optimizer_state
    assert (meta.codec_id, meta.factorizer_id, meta.extra) == (CODEC_ID, FACTORIZER_ID, {"rows_seen": 4})
    assert PhonemeInventory(tuple(meta.phonemes)) == INVENTORY
    assert meta.architecture_id == generator_id_for(cfg, CODEC_ID, FACTORIZER_ID, INVENTORY.symbols)
    assert meta.generator_id.startswith("generator_tiny_test-") and meta.generator_id != meta.architecture_id
    assert torch.equal(_logits(model, b), _logits(loaded, b))
    assert torch.equal(model.generate(b.phonemes, b.phoneme_lengths, b.factors, b.lengths),
                       loaded.generate(b.phonemes, b.phoneme_lengths, b.factors, b.lengths))
    ids = {generator_id_for(cfg, CODEC_ID, FACTORIZER_ID, INVENTORY.symbols),
           generator_id_for(cfg, "codec_other", FACTORIZER_ID, INVENTORY.symbols),
           generator_id_for(cfg, CODEC_ID, "factorizer_other", INVENTORY.symbols),
           generator_id_for(cfg, CODEC_ID, FACTORIZER_ID, ("a", "b")),
           generator_id_for(cfg.with_phoneme_classes(4), CODEC_ID, FACTORIZER_ID, INVENTORY.symbols)}
    assert len(ids) == 5


def test_checkpoint_of_another_codec_or_factorizer_is_refused(saved):
    path = saved[0]
    with pytest.raises(GeneratorCheckpointError, match="makes codes of codec .* expected codec 'codec_other'"):
        load_generator_checkpoint(path, expected_codec_id="codec_other")
    with pytest.raises(GeneratorCheckpointError, match="reads the vectors of factorizer .* expected factorizer 'f2'"):
        load_generator_checkpoint(path, expected_factorizer_id="f2")


def _tampered(path: Path, tmp_path: Path, name: str, edit) -> Path:
    payload = torch.load(path, weights_only=True)
    edit(payload)
    return atomic_torch_save(payload, tmp_path / name)


def test_corrupt_or_tampered_checkpoints_fail_in_one_line(saved, tmp_path):
    path, model, cfg, _ = saved
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(path.read_bytes()[:200])
    cases = [
        (truncated, "not a readable checkpoint"),
        (tmp_path / "missing.pt", "no such checkpoint file"),
        (_tampered(path, tmp_path, "swapped.pt", lambda p: p.update(phonemes=p["phonemes"][::-1])),
         "does not match the config, codec id, factorizer id and phonemes"),
        (_tampered(path, tmp_path, "factorizer.pt", lambda p: p.update(factorizer_id="f2")),
         "does not match the config, codec id, factorizer id and phonemes"),
        (_tampered(path, tmp_path, "edited.pt", lambda p: p["state_dict"].update(
            {"heads.0.bias": p["state_dict"]["heads.0.bias"] + 1})), "weights do not match generator id"),
        (_tampered(path, tmp_path, "pruned.pt", lambda p: p["state_dict"].pop("heads.1.bias")),
         "weights do not fit generator .* 1 missing key"),
        (_tampered(path, tmp_path, "other.pt", lambda p: p.update(format="lsm-ctc")),
         "not a generator checkpoint \\(it is a 'lsm-ctc' checkpoint\\)"),
        (_tampered(path, tmp_path, "old.pt", lambda p: p.update(version=0)), "checkpoint format version 0"),
        (_tampered(path, tmp_path, "partial.pt", lambda p: p.pop("factorizer_id")),
         "generator checkpoint lacks factorizer_id"),
    ]
    for bad, message in cases:
        with pytest.raises(GeneratorCheckpointError, match=message) as err:
            load_generator_checkpoint(bad)
        assert "\n" not in str(err.value) and str(bad) in str(err.value)
    assert load_generator_checkpoint(path)[2].step == 3                     # the good file was not touched
    with pytest.raises(ValueError, match="needs 4 phoneme classes"):
        save_generator_checkpoint(tmp_path / "bad.pt", model, cfg, codec_id=CODEC_ID, factorizer_id=FACTORIZER_ID,
                                  phonemes=["a", "b"])
