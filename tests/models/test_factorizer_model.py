"""Factorizer: shapes, gradients, padding invariance, the content bottleneck, swaps, losses and a few real steps."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from models.codec.fsq import FSQ
from models.factorizer import (PRESETS, FactorizerBatch, FactorizerLoss, build_factorizer, build_factorizer_loss,
                               factorizer_default, factorizer_tiny_test, labelled_cross_entropy, make_optimizer,
                               pad_latents, preset, swap_factors, train_step, validate)
from models.factorizer.layers import reverse_gradient
from schemas.factorizer import FACTOR_NAMES, UNKNOWN_LABEL
from tests.models import one_torch_thread  # noqa: F401  (autouse: one intra-op thread)


def _latent(batch: int, frames: int, seed: int = 0) -> torch.Tensor:
    """Codec-like latents: on the 2-stage [8,5,5,5] grid, smooth over a few frames (as speech latents are)."""
    g = torch.Generator().manual_seed(seed)
    raw = torch.nn.functional.avg_pool1d(torch.randn(batch, 4, frames + 4, generator=g), 5, stride=1)
    grid = FSQ(levels=[8, 5, 5, 5])
    return grid.codes_to_latent(grid.latent_to_codes(raw.clamp(-1.1, 0.8)))


def _batch(seed: int = 0) -> FactorizerBatch:
    cfg = factorizer_tiny_test()
    lengths = torch.tensor([40, 25, 33, 12])
    return FactorizerBatch(latent=_latent(4, 40, seed), lengths=lengths, speaker=torch.tensor([0, 1, 2, UNKNOWN_LABEL]),
                           style=torch.tensor([0, 1, UNKNOWN_LABEL, 1]), environment=torch.tensor([1, 0, 1, 0]),
                           channel=torch.tensor([0, 0, 1, 1]) % cfg.num_channels)


def test_shapes_dtypes_and_padding_zeros():
    torch.manual_seed(0)
    cfg = factorizer_tiny_test()
    model = build_factorizer(cfg).eval()
    batch = _batch()
    with torch.no_grad():
        out = model(batch.latent, batch.lengths, swap_cycle=True)
    enc, (B, D, T) = out.encoding, batch.latent.shape
    assert enc.content.shape == (B, cfg.content_dim, T) and enc.content.dtype == torch.float32
    for name, dim in cfg.factor_dims.items():
        assert getattr(enc, name).shape == (B, dim)
        assert getattr(out.logits, name).shape == (B, cfg.num_classes[name])
    assert out.adversary_logits.shape == (B, cfg.num_speakers)
    assert out.recon.shape == (B, D, T) and out.recon.dtype == torch.float32
    assert float(out.recon.abs().max()) <= cfg.latent_bound
    assert out.cycle.recon.shape == (B, D, T) and out.cycle.reencoded.content.shape == enc.content.shape
    for row, length in enumerate(batch.lengths.tolist()):  # nothing beyond a row's length
        assert not out.recon[row, :, length:].any() and not enc.content[row, :, length:].any()
    assert torch.equal(enc.lengths, batch.lengths)


def test_global_vectors_are_unit_norm_and_content_lies_on_the_fsq_grid():
    torch.manual_seed(0)
    model = build_factorizer(factorizer_tiny_test()).eval()
    batch = _batch()
    with torch.no_grad():
        enc = model.encode(batch.latent, batch.lengths)
    for name in FACTOR_NAMES:
        assert torch.allclose(getattr(enc, name).norm(dim=-1), torch.ones(4), atol=1e-6)
    codes = model.content_to_codes(enc.content)
    assert codes.shape == (4, 40) and int(codes.min()) >= 0 and int(codes.max()) < model.content_codebook_size == 25
    assert torch.allclose(model.codes_to_content(codes), enc.content, atol=1e-6)
    assert len(torch.unique(codes[0])) > 3  # the bottleneck is in use at init


def test_gradients_reach_every_parameter():
    torch.manual_seed(0)
    model = build_factorizer(factorizer_tiny_test())
    loss_fn = build_factorizer_loss()
    batch = _batch()
    loss_fn(model(batch.latent, batch.lengths, swap_cycle=True), batch).total.backward()
    dead = [n for n, p in model.named_parameters() if p.grad is None or not bool(p.grad.abs().sum() > 0)]
    assert dead == []
    groups = {n.split(".")[0] for n, _ in model.named_parameters()}
    assert groups == {"content_encoder", "content_proj", "global_encoder", "pool", "global_proj", "decoder",
                      "out_proj", "heads", "adversary"}


def test_gradient_reversal_flips_the_sign_only_backwards():
    x = torch.randn(3, requires_grad=True)
    y = reverse_gradient(x, 0.5)
    assert torch.equal(y, x)
    y.sum().backward()
    assert torch.equal(x.grad, torch.full((3,), -0.5))


def test_padding_does_not_change_a_rows_outputs():
    torch.manual_seed(0)
    model = build_factorizer(factorizer_tiny_test()).eval()
    short, long = _latent(1, 17, seed=1), _latent(1, 45, seed=2)
    latent, lengths = pad_latents([short[0], long[0]])
    latent[0, :, 17:] = 5.0  # garbage in the padding must not matter either
    with torch.no_grad():
        alone, batched = model(short, torch.tensor([17])), model(latent, lengths)
    for name in ("content", *FACTOR_NAMES):
        a, b = getattr(alone.encoding, name), getattr(batched.encoding, name)[:1]
        assert torch.allclose(a, b[..., :a.shape[-1]] if name == "content" else b, atol=1e-5), name
    assert torch.allclose(alone.recon, batched.recon[:1, :, :17], atol=1e-5)
    for name in FACTOR_NAMES:
        assert torch.allclose(getattr(alone.logits, name), getattr(batched.logits, name)[:1], atol=1e-5)
    assert torch.allclose(alone.adversary_logits, batched.adversary_logits[:1], atol=1e-5)


def test_swap_factors_takes_exactly_the_named_factors():
    torch.manual_seed(0)
    model = build_factorizer(factorizer_tiny_test()).eval()
    with torch.no_grad():
        a = model.encode(_latent(2, 20, seed=1), torch.tensor([20, 15]))
        b = model.encode(_latent(2, 30, seed=2), torch.tensor([30, 30]))
    mixed = swap_factors(a, b, ["speaker", "environment"])
    assert torch.equal(mixed.speaker, b.speaker) and torch.equal(mixed.environment, b.environment)
    assert torch.equal(mixed.style, a.style) and torch.equal(mixed.channel, a.channel)
    assert torch.equal(mixed.content, a.content) and torch.equal(mixed.lengths, a.lengths)
    assert swap_factors(a, b, []) == a
    one = swap_factors(a, replace(b, speaker=b.speaker[1:]), ["speaker"])
    assert torch.equal(one.speaker, b.speaker[1:].expand(2, -1))  # a single donor row serves every target row
    with torch.no_grad():
        assert model.decode(mixed).shape == (2, 4, 20)
    with pytest.raises(ValueError, match=r"cannot swap \['content'\]"):
        swap_factors(a, b, ["content"])
    three = model.encode(_latent(3, 10), torch.tensor([10, 10, 10]))
    with pytest.raises(ValueError, match="donor has 3 rows for style, target has 2"):
        swap_factors(a, three, ["style"])


def test_a_few_steps_lower_the_loss():
    torch.manual_seed(0)
    model, loss_fn = build_factorizer(factorizer_tiny_test()), build_factorizer_loss()
    batch = _batch()
    opt = make_optimizer(model, learning_rate=1e-2)
    before = validate(model, loss_fn, [batch])
    history = [train_step(model, loss_fn, opt, batch, grad_clip_norm=1.0) for _ in range(20)]
    after = validate(model, loss_fn, [batch])
    assert after["total"] < 0.6 * before["total"], (before, after)
    assert after["recon_l1"] < 0.7 * before["recon_l1"] and after["speaker"] < before["speaker"]
    assert all(h["grad_norm"] > 0 and h["content_codes_used"] > 1 for h in history)


def test_parallel_targets_train_the_voice_change_and_cost_nothing_without_them():
    """Rows 1 and 3 have a partner: another voice's latent on their frames. Steps on the parallel term alone
    move A's-content-plus-B's-speaker towards B; a batch without partners runs no parallel pass."""
    torch.manual_seed(0)
    model = build_factorizer(factorizer_tiny_test())
    loss_fn = FactorizerLoss(parallel_l1_weight=1.0, parallel_mse_weight=1.0, recon_l1_weight=0, recon_mse_weight=0,
                             swap_global_weight=0, swap_content_weight=0)
    assert loss_fn.uses_parallel and not build_factorizer_loss().uses_parallel
    plain = _batch()
    batch = replace(plain, target=_latent(4, 40, seed=9), has_target=torch.tensor([False, True, False, True]))
    out = model(batch.latent, batch.lengths, parallel_target=batch.target, parallel_rows=batch.target_rows())
    assert out.parallel.rows.tolist() == [1, 3] and tuple(out.parallel.recon.shape) == (2, 4, 40)
    assert not out.parallel.target[0, :, 25:].any()  # masked past row 1's 25 frames
    opt = make_optimizer(model, learning_rate=1e-2)
    before = validate(model, loss_fn, [batch])
    for _ in range(20):
        train_step(model, loss_fn, opt, batch, grad_clip_norm=1.0)
    after = validate(model, loss_fn, [batch])
    assert after["parallel_l1"] < 0.8 * before["parallel_l1"], (before, after)
    assert plain.target_rows() is None and validate(model, loss_fn, [plain])["parallel_l1"] == 0.0


def test_validate_reports_accuracy_on_labelled_rows_and_restores_the_mode():
    torch.manual_seed(0)
    model, loss_fn = build_factorizer(factorizer_tiny_test()), build_factorizer_loss()
    batch = _batch()
    unlabelled = FactorizerBatch(latent=batch.latent, lengths=batch.lengths)
    metrics = validate(model, loss_fn, [batch, unlabelled])
    assert model.training
    for name in (*FACTOR_NAMES, "adversary"):
        assert 0.0 <= metrics[f"{name}_accuracy"] <= 1.0
    assert {"total", "recon_l1", "swap_global", "swap_content"} <= set(metrics)
    only_unlabelled = validate(model.eval(), loss_fn, [unlabelled])
    assert not model.training and not any(k.endswith("_accuracy") for k in only_unlabelled)
    # no labelled row: no loss figure either (a 0 would read as a perfect head), reconstruction still there
    assert not set(only_unlabelled) & {*FACTOR_NAMES, "adversary"} and "recon_l1" in only_unlabelled
    assert {*FACTOR_NAMES, "adversary"} <= set(metrics)


def test_cross_entropy_ignores_unknown_labels_and_is_zero_without_any():
    logits = torch.randn(4, 3, requires_grad=True)
    none_known = labelled_cross_entropy(logits, torch.full((4,), UNKNOWN_LABEL))
    assert float(none_known.detach()) == 0.0
    none_known.backward()
    assert torch.equal(logits.grad, torch.zeros(4, 3))  # zero gradients, still part of the graph
    assert labelled_cross_entropy(logits, None).grad_fn is not None  # a head without labels still takes part
    assert float(labelled_cross_entropy(None, None)) == 0.0
    labels = torch.tensor([2, UNKNOWN_LABEL, 0, UNKNOWN_LABEL])
    expected = torch.nn.functional.cross_entropy(logits[[0, 2]], labels[[0, 2]])
    assert torch.allclose(labelled_cross_entropy(logits, labels), expected)
    with pytest.raises(ValueError, match=r"speaker labels must lie in \[0, 3\) or be -100 \(unknown\); got \[0, 3\]"):
        labelled_cross_entropy(logits, torch.tensor([0, 3, 1, 1]), name="speaker")


def test_loss_without_labels_is_finite_and_needs_the_cycle_it_weights():
    torch.manual_seed(0)
    model, batch = build_factorizer(factorizer_tiny_test()), _batch()
    unlabelled = FactorizerBatch(latent=batch.latent, lengths=batch.lengths)
    losses = build_factorizer_loss()(model(batch.latent, batch.lengths, swap_cycle=True), unlabelled)
    assert all(float(losses.as_floats()[name]) == 0.0 for name in (*FACTOR_NAMES, "adversary"))
    assert torch.isfinite(losses.total) and float(losses.total.detach()) > 0
    with pytest.raises(ValueError, match="has no swap cycle"):
        FactorizerLoss()(model(batch.latent, batch.lengths), batch)
    no_swap = FactorizerLoss(swap_global_weight=0, swap_content_weight=0)
    assert not no_swap.uses_swap_cycle and float(no_swap(model(batch.latent, batch.lengths), batch).swap_global) == 0


def test_bad_inputs_are_clear_errors():
    model = build_factorizer(factorizer_tiny_test())
    with pytest.raises(ValueError, match=r"expected latent \[B, 4, T\], got \[2, 3, 10\]"):
        model.encode(torch.zeros(2, 3, 10), torch.tensor([10, 10]))
    with pytest.raises(ValueError, match=r"lengths must lie in \[1, 10\], got \[10, 0\]"):
        model.encode(torch.zeros(2, 4, 10), torch.tensor([10, 0]))
    with pytest.raises(ValueError, match=r"expected lengths \[2\]"):
        model.encode(torch.zeros(2, 4, 10), torch.tensor([10]))
    with pytest.raises(KeyError, match="unknown factorizer preset 'nope'; known: factorizer_default"):
        preset("nope")


def test_default_preset_size_and_shapes():
    cfg = factorizer_default()
    model = build_factorizer(cfg).eval()
    assert 300_000 <= sum(p.numel() for p in model.parameters()) <= 1_000_000
    assert set(PRESETS) == {"factorizer_default", "factorizer_tiny_test"}
    with torch.no_grad():
        out = model(_latent(2, 60), torch.tensor([60, 41]))
    assert out.recon.shape == (2, 4, 60) and out.encoding.speaker.shape == (2, 64)
    assert out.encoding.content.shape == (2, 4, 60)
