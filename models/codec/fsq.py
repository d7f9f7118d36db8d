"""Finite Scalar Quantization (Mentzer et al. 2023) with residual stages.

FSQ bounds each latent dimension with a tanh and rounds it to one of
``levels[d]`` values, passing gradients straight through the rounding. No
codebook is learned, so nothing can collapse and no commitment loss is needed.

Residual stages here refine a dimension's grid: stage s rounds the residual
left by stages < s on a grid ``levels[d]`` times finer (step ``L**-s / (L//2)``).
Why this scale and not ``(L-1)**-s`` (as some implementations use): with
``L**-s`` the stage grids nest without overlap, so the S stages together form
one uniform grid of ``L**S`` values per dimension, every code sequence is a
different latent (no wasted bits), and ``latent_to_codes`` is the exact inverse
of ``codes_to_latent``. Dropping the last stages still gives a coarser but
valid latent (stages are coarse to fine), which keeps bitrate scalable.

Codes: per stage, the digits of all dimensions combined in mixed radix,
``index = sum_d digit_d * prod(levels[:d])``, in ``[0, prod(levels))``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

__all__ = ["QuantizedResult", "ResidualFSQ", "FSQ"]


@dataclass
class QuantizedResult:
    """What the quantizer hands the decoder side.

    Attributes:
        latent: quantized latent ``[B, D, T]``; gradients pass straight through to ``bounded``.
        codes: stage indices ``[B, T, S]`` (int64, each in ``[0, codebook_size)``).
        bounded: the tanh-bounded latent before rounding ``[B, D, T]`` (for diagnostics).
    """

    latent: Tensor
    codes: Tensor
    bounded: Tensor


class ResidualFSQ(nn.Module):
    """FSQ with ``stages`` residual stages over ``len(levels)`` latent dimensions.

    Args:
        levels: values per dimension (e.g. ``[8, 5, 5, 5]``: 1000 codes per stage); ``prod(levels) <= 65536``.
        stages: residual stages (1 = plain FSQ).
        eps: widens the tanh range slightly so the extreme levels are reachable (as in the FSQ paper).

    Example:
        >>> q = ResidualFSQ(levels=[8, 5, 5, 5], stages=2)
        >>> res = q(torch.randn(1, 4, 10))
        >>> torch.equal(q.latent_to_codes(q.codes_to_latent(res.codes)), res.codes)
        True
    """

    def __init__(self, *, levels: Sequence[int], stages: int = 1, eps: float = 1e-3) -> None:
        super().__init__()
        if not levels or any(int(level) < 2 for level in levels):
            raise ValueError(f"levels must be a non-empty list of ints >= 2, got {list(levels)}")
        if stages < 1:
            raise ValueError(f"stages must be >= 1, got {stages}")
        if math.prod(levels) > 1 << 16:
            raise ValueError(f"prod(levels) = {math.prod(levels)} does not fit uint16 codes")
        self.levels = [int(level) for level in levels]
        self.stages = int(stages)
        self.eps = float(eps)
        L = torch.tensor(self.levels, dtype=torch.float64)
        lo = -torch.floor(L / 2)
        hi = lo + L - 1
        step = torch.stack([L.pow(-s) / torch.floor(L / 2) for s in range(self.stages)])  # [S, D]
        # Centre of the values stages > s can still add: stage s rounds around it so the nest stays exact
        # (zero for odd levels; even levels' grids are asymmetric, e.g. {-4..3}/4).
        rest = torch.stack([step[s + 1:].sum(0) for s in range(self.stages)])
        centre_after = (lo + hi) / 2 * rest
        total_lo, total_hi = (lo * step).sum(0), (hi * step).sum(0)
        centre = (total_lo + total_hi) / 2
        half = (total_hi - total_lo) / 2 * (1 + self.eps)
        basis = torch.tensor([math.prod(self.levels[:d]) for d in range(len(self.levels))], dtype=torch.int64)
        # Derived from (levels, stages, eps): not saved in checkpoints, rebuilt by the constructor.
        for name, value in [("_L", L), ("_lo", lo), ("_hi", hi), ("_step", step), ("_centre_after", centre_after),
                            ("_centre", centre), ("_half", half), ("_shift", torch.atanh(-centre / half))]:
            self.register_buffer(name, value.float(), persistent=False)
        self.register_buffer("_basis", basis, persistent=False)

    @property
    def dim(self) -> int:
        """Latent dimensions quantized (the projection size in front of the quantizer)."""
        return len(self.levels)

    @property
    def codebook_size(self) -> int:
        """Distinct indices per stage (prod(levels))."""
        return math.prod(self.levels)

    @property
    def bits_per_frame(self) -> float:
        """stages x log2(prod(levels))."""
        return self.stages * math.log2(self.codebook_size)

    def bound(self, z: Tensor) -> Tensor:
        """Squash ``z [..., D]`` into the grid's range; 0 maps to 0 (a grid value)."""
        return self._centre + self._half * torch.tanh(z + self._shift)

    def _digits(self, x: Tensor) -> Tensor:
        """Nearest-grid digits of ``x [..., D]`` per stage -> ``[..., S, D]`` (float, in ``[lo, hi]``)."""
        digits = []
        residual = x
        for s in range(self.stages):
            d = torch.round((residual - self._centre_after[s]) / self._step[s]).clamp(self._lo, self._hi)
            residual = residual - d * self._step[s]
            digits.append(d)
        return torch.stack(digits, dim=-2)

    def _digits_to_codes(self, digits: Tensor) -> Tensor:
        return ((digits - self._lo).long() * self._basis).sum(-1)

    def forward(self, z: Tensor) -> QuantizedResult:
        """Quantize ``z [B, D, T]``; the latent carries straight-through gradients."""
        if z.dim() != 3 or z.shape[1] != self.dim:
            raise ValueError(f"expected latent [B, {self.dim}, T], got {list(z.shape)}")
        bounded = self.bound(z.transpose(1, 2))  # [B, T, D]
        with torch.no_grad():
            digits = self._digits(bounded)
            quantized = (digits * self._step).sum(-2)
        latent = bounded + (quantized - bounded).detach()
        return QuantizedResult(latent=latent.transpose(1, 2), codes=self._digits_to_codes(digits),
                               bounded=bounded.transpose(1, 2))

    def codes_to_latent(self, codes: Tensor) -> Tensor:
        """Codes ``[B, T, S']`` (any int dtype, ``S' <= stages``) -> latent ``[B, D, T]``.

        With fewer stages than trained, the missing fine stages are filled with the centre of
        their range (the best guess without them).
        """
        if codes.dim() != 3 or not 1 <= codes.shape[-1] <= self.stages:
            raise ValueError(f"expected codes [B, T, S] with 1 <= S <= {self.stages}, got {list(codes.shape)}")
        codes = codes.long()
        if codes.numel() and (int(codes.min()) < 0 or int(codes.max()) >= self.codebook_size):
            raise ValueError(f"codes must lie in [0, {self.codebook_size}); got [{int(codes.min())}, {int(codes.max())}]")
        used = codes.shape[-1]
        digits = (codes.unsqueeze(-1) // self._basis) % self._L.long() + self._lo.long()  # [B, T, S', D]
        latent = (digits.float() * self._step[:used]).sum(-2)
        if used < self.stages:
            latent = latent + self._centre_after[used - 1]
        return latent.transpose(1, 2)

    def latent_to_codes(self, latent: Tensor) -> Tensor:
        """Latent ``[B, D, T]`` -> codes ``[B, T, S]`` of its nearest grid point (exact on grid values).

        Any latent works (e.g. one recombined in latent space); values beyond the grid clamp to its edge.
        """
        if latent.dim() != 3 or latent.shape[1] != self.dim:
            raise ValueError(f"expected latent [B, {self.dim}, T], got {list(latent.shape)}")
        with torch.no_grad():
            return self._digits_to_codes(self._digits(latent.transpose(1, 2).float()))


class FSQ(ResidualFSQ):
    """Plain single-stage FSQ (``ResidualFSQ`` with ``stages=1``)."""

    def __init__(self, *, levels: Sequence[int], eps: float = 1e-3) -> None:
        super().__init__(levels=levels, stages=1, eps=eps)
