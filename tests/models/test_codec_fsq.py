"""Residual FSQ: exact code <-> latent round trip, uint16 codes, straight-through gradients, clear errors."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from models.codec import FSQ, ResidualFSQ
from tests.models import one_torch_thread  # noqa: F401  (autouse: one intra-op thread)


@pytest.mark.parametrize("levels,stages", [([8, 5, 5, 5], 1), ([8, 5, 5, 5], 2), ([8, 5, 5, 5], 4),
                                           ([2, 3, 4, 7], 3), ([8, 8, 8, 8, 4], 1)])
def test_codes_latent_round_trip_is_exact_on_grid_values(levels, stages):
    q = ResidualFSQ(levels=levels, stages=stages)
    codes = torch.randint(0, q.codebook_size, (3, 200, stages), generator=torch.Generator().manual_seed(0))
    latent = q.codes_to_latent(codes)
    assert torch.equal(q.latent_to_codes(latent), codes)
    assert torch.equal(q.codes_to_latent(q.latent_to_codes(latent)), latent)


def test_every_code_pair_is_a_distinct_latent():
    # Stages nest without overlap: all prod(levels)**stages sequences map to different latents.
    q = ResidualFSQ(levels=[4, 3], stages=2)
    codes = torch.tensor(list(itertools.product(range(q.codebook_size), repeat=2))).unsqueeze(0)  # [1, 144, 2]
    latent = q.codes_to_latent(codes)
    assert torch.unique(latent.transpose(1, 2), dim=1).shape[1] == q.codebook_size**2
    assert torch.equal(q.latent_to_codes(latent), codes)


def test_forward_codes_agree_with_latent_and_fit_uint16():
    q = ResidualFSQ(levels=[8, 5, 5, 5], stages=2)
    z = 3 * torch.randn(2, 4, 500, generator=torch.Generator().manual_seed(1))
    res = q(z)
    assert res.latent.shape == z.shape and res.codes.shape == (2, 500, 2) and res.codes.dtype == torch.int64
    assert 0 <= int(res.codes.min()) and int(res.codes.max()) < q.codebook_size <= 1 << 16
    assert torch.equal(res.codes.to(torch.uint16).long(), res.codes)
    assert torch.equal(q.latent_to_codes(res.latent), res.codes)
    assert torch.allclose(q.codes_to_latent(res.codes), res.latent, atol=1e-6)
    assert math.isclose(q.bits_per_frame, 2 * math.log2(1000))


def test_zero_maps_to_zero_and_quantization_error_is_below_half_a_step():
    q = ResidualFSQ(levels=[8, 5, 5, 5], stages=2)
    assert torch.equal(q(torch.zeros(1, 4, 3)).latent, torch.zeros(1, 4, 3))
    res = q(torch.randn(1, 4, 1000))
    finest_step = torch.tensor([1 / 4 / 8, 1 / 2 / 5, 1 / 2 / 5, 1 / 2 / 5]).view(1, 4, 1)
    assert bool(((res.latent - res.bounded).abs() <= finest_step / 2 + 1e-6).all())


def test_gradients_pass_straight_through():
    q = FSQ(levels=[8, 5, 5, 5])
    z = torch.randn(2, 4, 10, requires_grad=True)
    q(z).latent.sum().backward()
    assert z.grad is not None and bool((z.grad != 0).all())


def test_fewer_stages_decode_to_a_coarser_latent():
    q = ResidualFSQ(levels=[8, 5, 5, 5], stages=3)
    res = q(torch.randn(1, 4, 400))
    err = [float((q.codes_to_latent(res.codes[..., :k]) - res.latent).abs().mean()) for k in (1, 2, 3)]
    assert err[0] > err[1] > err[2] == 0.0


def test_bad_inputs_are_clear_errors():
    q = ResidualFSQ(levels=[8, 5, 5, 5], stages=2)
    with pytest.raises(ValueError, match=r"codes must lie in \[0, 1000\)"):
        q.codes_to_latent(torch.full((1, 3, 2), 1000))
    with pytest.raises(ValueError, match="expected codes"):
        q.codes_to_latent(torch.zeros(1, 3, 3, dtype=torch.long))
    with pytest.raises(ValueError, match=r"expected latent \[B, 4, T\]"):
        q(torch.zeros(1, 3, 5))
    with pytest.raises(ValueError, match="uint16"):
        ResidualFSQ(levels=[256, 257])
    with pytest.raises(ValueError, match=">= 2"):
        ResidualFSQ(levels=[8, 1])
