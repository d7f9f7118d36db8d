"""Slim adversarial critics for the codec: multi-period (HiFi-GAN) and multi-resolution spectrogram (UnivNet/Vocos).

Why: magnitude losses alone leave the decoder with blurred harmonics and an
incoherent phase (``bench/codec_oracles.py``: the true magnitude with a random
phase scores PESQ-WB 1.50, with a consistent phase 3.59). A critic that looks
at the waveform folded by its periods (MPD) punishes incoherent periodicity,
one that looks at magnitude spectrograms at several resolutions (MRD)
punishes smearing. Both are the published designs cut to CPU size: 16-64
channels instead of 32-1024 (220 k parameters in all). Even so, a
decoder-only fine-tune of the spectral codec with them ran 0.75 steps/s on 2
cores against ~4.8 without, and 2466 steps made every held-out score worse
(bench/RESULTS.md, codec notes): off by default.

Losses are least squares (HiFi-GAN's): the critic pushes real outputs to 1 and
generated ones to 0; the generator pushes its outputs to 1 and matches the
critics' hidden features on real audio (feature matching, L1).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.nn import functional as F
from torch.nn.utils.parametrizations import weight_norm

__all__ = ["CriticOutput", "PeriodCritic", "SpectrogramCritic", "CodecCritics", "critic_loss", "generator_adv_loss",
           "feature_matching_loss"]

_SLOPE = 0.1


@dataclass
class CriticOutput:
    """The critics' verdict: one score map per critic, and each critic's hidden feature maps (for feature matching)."""

    scores: list[Tensor]
    features: list[list[Tensor]]


def _score(convs: nn.ModuleList, out: nn.Module, x: Tensor) -> tuple[Tensor, list[Tensor]]:
    """Leaky-ReLU conv stack, then the score conv: (flattened scores, every layer's output for feature matching)."""
    feats = []
    for conv in convs:
        x = F.leaky_relu(conv(x), _SLOPE)
        feats.append(x)
    x = out(x)
    feats.append(x)
    return x.flatten(1), feats


class PeriodCritic(nn.Module):
    """HiFi-GAN's period discriminator: the waveform folded to ``[B, 1, T / p, p]``, 2-D convs along time only."""

    def __init__(self, period: int, *, channels: Sequence[int] = (16, 32, 64, 64)) -> None:
        super().__init__()
        self.period = int(period)
        chans = [1, *channels]
        self.convs = nn.ModuleList(
            weight_norm(nn.Conv2d(cin, cout, (5, 1), (3, 1) if i < len(channels) - 1 else (1, 1), padding=(2, 0)))
            for i, (cin, cout) in enumerate(zip(chans[:-1], chans[1:])))
        self.out = weight_norm(nn.Conv2d(chans[-1], 1, (3, 1), padding=(1, 0)))

    def forward(self, wav: Tensor) -> tuple[Tensor, list[Tensor]]:
        b, t = wav.shape
        pad = (-t) % self.period
        x = F.pad(wav, (0, pad), mode="reflect") if pad else wav
        return _score(self.convs, self.out, x.view(b, 1, -1, self.period))


class SpectrogramCritic(nn.Module):
    """A 2-D conv critic on one resolution's log-compressed magnitude spectrogram ``[B, 1, F, frames]``."""

    def __init__(self, n_fft: int, *, channels: int = 16) -> None:
        super().__init__()
        self.n_fft = int(n_fft)
        self.register_buffer("window", torch.hann_window(self.n_fft), persistent=False)
        c = channels
        self.convs = nn.ModuleList([
            weight_norm(nn.Conv2d(1, c, (3, 9), padding=(1, 4))),
            weight_norm(nn.Conv2d(c, c, (3, 9), stride=(2, 2), padding=(1, 4))),
            weight_norm(nn.Conv2d(c, c, (3, 9), stride=(2, 1), padding=(1, 4))),
            weight_norm(nn.Conv2d(c, c, (3, 3), padding=(1, 1))),
        ])
        self.out = weight_norm(nn.Conv2d(c, 1, (3, 3), padding=(1, 1)))

    def forward(self, wav: Tensor) -> tuple[Tensor, list[Tensor]]:
        spec = torch.stft(wav, self.n_fft, hop_length=self.n_fft // 4, window=self.window, center=True,
                          return_complex=True).abs()
        return _score(self.convs, self.out, torch.log1p(spec).unsqueeze(1))  # log1p: bounded near silence


class CodecCritics(nn.Module):
    """All critics together: periods (2, 3, 5, 7, 11) and spectrogram resolutions (256, 512, 1024) by default.

    Example:
        >>> critics = CodecCritics(periods=(2, 3), fft_sizes=(256,))
        >>> out = critics(torch.randn(2, 4000))
        >>> len(out.scores), len(out.features)
        (3, 3)
    """

    def __init__(self, *, periods: Sequence[int] = (2, 3, 5, 7, 11), fft_sizes: Sequence[int] = (256, 512, 1024),
                 period_channels: Sequence[int] = (16, 32, 64, 64), spectrogram_channels: int = 16) -> None:
        super().__init__()
        if not periods and not fft_sizes:
            raise ValueError("CodecCritics needs at least one period or one FFT size")
        self.critics = nn.ModuleList([PeriodCritic(p, channels=period_channels) for p in periods]
                                     + [SpectrogramCritic(n, channels=spectrogram_channels) for n in fft_sizes])

    def forward(self, wav: Tensor) -> CriticOutput:
        """``wav [B, T]`` -> every critic's scores and features."""
        scores, features = [], []
        for critic in self.critics:
            s, f = critic(wav)
            scores.append(s)
            features.append(f)
        return CriticOutput(scores, features)


def critic_loss(real: CriticOutput, fake: CriticOutput) -> Tensor:
    """Least-squares critic loss, summed over critics: ``mean((1 - D(x))^2) + mean(D(G(z))^2)``."""
    return sum(torch.mean((1 - r) ** 2) + torch.mean(f ** 2) for r, f in zip(real.scores, fake.scores))


def generator_adv_loss(fake: CriticOutput) -> Tensor:
    """Least-squares generator loss, averaged over critics: ``mean((1 - D(G(z)))^2)``."""
    return sum(torch.mean((1 - f) ** 2) for f in fake.scores) / len(fake.scores)


def feature_matching_loss(real: CriticOutput, fake: CriticOutput) -> Tensor:
    """Mean L1 between the critics' hidden features on real (detached) and generated audio."""
    terms = [torch.mean(torch.abs(r.detach() - f)) for rf, ff in zip(real.features, fake.features)
             for r, f in zip(rf, ff)]
    return sum(terms) / len(terms)
