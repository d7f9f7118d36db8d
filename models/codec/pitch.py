"""Batched YIN pitch estimation in torch: the f0 target for a harmonic decoder.

Why here and in torch: a decoder that synthesizes harmonics from a predicted
f0 learns pitch badly from spectral losses alone (the loss surface in f0 is
full of local minima at octave and harmonic errors), so training supervises
f0 directly with the input's own pitch. YIN (de Cheveigné & Kawahara, 2002)
is a few array operations, runs on the training batch in the training
process, and needs no model or download.

Frames are "same" framed like the spectral codec: frame ``i`` is centred on
sample ``i * hop + hop / 2``, so ``T`` samples give ``T / hop`` frames.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor
from torch.nn import functional as F

__all__ = ["PitchTrack", "estimate_pitch"]


@dataclass
class PitchTrack:
    """Per-frame pitch of a batch.

    Attributes:
        f0_hz: ``[B, frames]``; 0 where unvoiced.
        voiced: ``[B, frames]`` bool: a periodic frame (YIN's normalized difference dipped below the threshold).
        aperiodicity: ``[B, frames]`` the normalized difference at the chosen lag (0 = perfectly periodic).
    """

    f0_hz: Tensor
    voiced: Tensor
    aperiodicity: Tensor


@torch.no_grad()
def estimate_pitch(wav: Tensor, *, sample_rate_hz: int = 16000, hop: int = 160, f0_min_hz: float = 60.0,
                   f0_max_hz: float = 500.0, window: int = 400, threshold: float = 0.15,
                   min_energy_db: float = -60.0) -> PitchTrack:
    """YIN f0 of ``wav [B, T]`` every ``hop`` samples (``T // hop`` frames).

    Example:
        >>> t = torch.arange(16000) / 16000
        >>> track = estimate_pitch(0.5 * torch.sin(2 * torch.pi * 200 * t)[None])
        >>> round(float(track.f0_hz[0, 50]))
        200
    """
    if wav.dim() != 2:
        raise ValueError(f"expected [B, T], got {list(wav.shape)}")
    lag_max = int(sample_rate_hz / f0_min_hz)
    lag_min = max(2, int(sample_rate_hz / f0_max_hz))
    frames = wav.shape[-1] // hop
    span = window + lag_max
    left = span // 2 - hop // 2
    x = F.pad(wav.float(), (left, span - left))
    segs = x.unfold(-1, span, hop)[:, :frames]  # [B, N, span]; frame i starts at i*hop - left (centre i*hop + hop/2)
    head = segs[..., :window]
    # d(tau) = sum_j (x_j - x_{j+tau})^2 over the window = e(0) + e(tau) - 2 r(tau)
    n_fft = 1 << (span + window - 1).bit_length()
    corr = torch.fft.irfft(torch.fft.rfft(segs, n_fft) * torch.conj(torch.fft.rfft(head, n_fft)), n_fft)[..., :lag_max + 1]
    sq = F.pad(segs.square().cumsum(-1), (1, 0))
    lags = torch.arange(lag_max + 1)
    energy = sq[..., lags + window] - sq[..., lags]  # sum of x^2 over [tau, tau + window)
    diff = (energy[..., :1] + energy - 2 * corr).clamp(min=0)
    cum = diff[..., 1:].cumsum(-1)
    norm = torch.ones_like(diff)
    norm[..., 1:] = diff[..., 1:] * lags[1:] / cum.clamp(min=1e-12)
    search = norm[..., lag_min:]
    below = search < threshold
    first = torch.where(below.any(-1), below.float().argmax(-1), search.argmin(-1))
    # From the first dip below the threshold, walk to its local minimum: within a quarter of that lag, so the
    # search never reaches the dip at twice the period (an octave error).
    reach = torch.arange(0, lag_max // 4 + 1)
    idx = (first[..., None] + reach).clamp(max=search.shape[-1] - 1)
    window_vals = torch.gather(search, -1, idx).masked_fill(reach > (first[..., None] + lag_min) // 4, float("inf"))
    best = torch.gather(idx, -1, window_vals.argmin(-1, keepdim=True)).squeeze(-1)
    aper = torch.gather(search, -1, best[..., None]).squeeze(-1)
    # Parabolic interpolation of the lag between its neighbours.
    lo = torch.gather(search, -1, (best - 1).clamp(min=0)[..., None]).squeeze(-1)
    hi = torch.gather(search, -1, (best + 1).clamp(max=search.shape[-1] - 1)[..., None]).squeeze(-1)
    denom = lo - 2 * aper + hi
    shift = torch.where(denom.abs() > 1e-9, 0.5 * (lo - hi) / denom, torch.zeros_like(denom)).clamp(-0.5, 0.5)
    lag = (best + lag_min).float() + shift
    level_db = 10 * torch.log10(head.square().mean(-1) + 1e-12)
    voiced = (aper < threshold) & (level_db > min_energy_db)
    f0 = torch.where(voiced, sample_rate_hz / lag, torch.zeros_like(lag))
    return PitchTrack(f0_hz=f0, voiced=voiced, aperiodicity=aper)
