"""Reconstruction losses: multi-resolution STFT (spectral convergence + log magnitude) and multi-resolution mel.

Why spectral and not waveform losses: a 1 kbps codec cannot keep phase, so a
sample-wise loss would punish plausible output and pull towards muffled
averages; magnitude losses at several resolutions trade time and frequency
detail. The mel filterbank is built here in torch (no torchaudio: there is no
CPU torchaudio wheel on this stack).

The adversarial terms (critics, least-squares and feature-matching losses) sit
apart in ``models.codec.discriminators`` and are off by default: on 2 CPU
cores the critics more than double the step cost, and GAN training needs
far more steps than a 60-90 minute budget buys (measured: bench/RESULTS.md,
codec notes).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

__all__ = ["CodecLosses", "MultiResolutionSTFTLoss", "MultiResolutionMelLoss", "CodecLoss", "mel_filterbank"]

_EPS = 1e-5


@dataclass
class CodecLosses:
    """Weighted total (to backprop) and the unweighted terms (to log)."""

    total: Tensor
    spectral_convergence: Tensor
    log_magnitude: Tensor
    mel: Tensor

    def as_floats(self) -> dict[str, float]:
        """Plain floats for metric logging."""
        return {k: float(v.detach()) for k, v in vars(self).items()}


def _hz_to_mel(hz: Tensor | float) -> Tensor:
    return 2595.0 * torch.log10(1.0 + torch.as_tensor(hz, dtype=torch.float64) / 700.0)


def _mel_to_hz(mel: Tensor) -> Tensor:
    return 700.0 * (10.0 ** (mel / 2595.0) - 1.0)


def mel_filterbank(*, n_fft: int, n_mels: int, sample_rate_hz: int, f_min_hz: float = 0.0,
                   f_max_hz: float | None = None) -> Tensor:
    """Triangular HTK-mel filters ``[n_mels, n_fft // 2 + 1]`` (unnormalized; a log-mel L1 ignores band gains)."""
    f_max_hz = sample_rate_hz / 2 if f_max_hz is None else f_max_hz
    mels = torch.linspace(float(_hz_to_mel(f_min_hz)), float(_hz_to_mel(f_max_hz)), n_mels + 2, dtype=torch.float64)
    edges = _mel_to_hz(mels)
    freqs = torch.linspace(0, sample_rate_hz / 2, n_fft // 2 + 1, dtype=torch.float64)
    lower, centre, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising = (freqs - lower) / (centre - lower)
    falling = (upper - freqs) / (upper - centre)
    return torch.clamp(torch.minimum(rising, falling), min=0).float()


def _magnitude(x: Tensor, n_fft: int, window: Tensor) -> Tensor:
    spec = torch.stft(x, n_fft, hop_length=n_fft // 4, win_length=n_fft, window=window, center=True,
                      return_complex=True)
    return spec.abs().clamp_min(_EPS)


class MultiResolutionSTFTLoss(nn.Module):
    """Mean over FFT sizes of spectral convergence ``||S - S'|| / ||S||`` and L1 of log magnitudes."""

    def __init__(self, *, fft_sizes: Sequence[int] = (256, 512, 1024)) -> None:
        super().__init__()
        self.fft_sizes = [int(n) for n in fft_sizes]
        for n in self.fft_sizes:
            self.register_buffer(f"window_{n}", torch.hann_window(n), persistent=False)

    def forward(self, recon: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
        """``[B, T]`` each -> (spectral convergence, log magnitude L1)."""
        sc, mag = recon.new_zeros(()), recon.new_zeros(())
        for n in self.fft_sizes:
            window = getattr(self, f"window_{n}")
            s_hat, s = _magnitude(recon, n, window), _magnitude(target, n, window)
            sc = sc + torch.linalg.vector_norm(s - s_hat) / torch.linalg.vector_norm(s).clamp_min(_EPS)
            mag = mag + (s.log() - s_hat.log()).abs().mean()
        return sc / len(self.fft_sizes), mag / len(self.fft_sizes)


class MultiResolutionMelLoss(nn.Module):
    """Mean over resolutions of the L1 distance of log-mel magnitudes."""

    def __init__(self, *, fft_sizes: Sequence[int] = (256, 512, 1024), mel_bins: Sequence[int] = (32, 64, 80),
                 sample_rate_hz: int = 16000) -> None:
        super().__init__()
        if len(fft_sizes) != len(mel_bins):
            raise ValueError("fft_sizes and mel_bins must have the same length")
        self.fft_sizes = [int(n) for n in fft_sizes]
        for n, m in zip(self.fft_sizes, mel_bins):
            self.register_buffer(f"window_{n}", torch.hann_window(n), persistent=False)
            self.register_buffer(f"mel_{n}", mel_filterbank(n_fft=n, n_mels=int(m), sample_rate_hz=sample_rate_hz),
                                 persistent=False)

    def log_mel(self, x: Tensor, n_fft: int) -> Tensor:
        """``[B, T]`` -> log mel magnitude ``[B, n_mels, frames]``."""
        mag = _magnitude(x, n_fft, getattr(self, f"window_{n_fft}"))
        return torch.matmul(getattr(self, f"mel_{n_fft}"), mag).clamp_min(_EPS).log()

    def forward(self, recon: Tensor, target: Tensor) -> Tensor:
        loss = recon.new_zeros(())
        for n in self.fft_sizes:
            loss = loss + (self.log_mel(recon, n) - self.log_mel(target, n)).abs().mean()
        return loss / len(self.fft_sizes)


class CodecLoss(nn.Module):
    """The codec's reconstruction objective as one module returning :class:`CodecLosses`.

    Example:
        >>> loss = CodecLoss()
        >>> x = torch.randn(2, 16000)
        >>> float(loss(x, x).total) < 1e-4
        True
    """

    def __init__(self, *, stft_fft_sizes: Sequence[int] = (256, 512, 1024),
                 mel_fft_sizes: Sequence[int] = (256, 512, 1024), mel_bins: Sequence[int] = (32, 64, 80),
                 spectral_convergence_weight: float = 1.0, log_magnitude_weight: float = 1.0,
                 mel_weight: float = 1.0, sample_rate_hz: int = 16000) -> None:
        super().__init__()
        self.stft = MultiResolutionSTFTLoss(fft_sizes=stft_fft_sizes)
        self.mel = MultiResolutionMelLoss(fft_sizes=mel_fft_sizes, mel_bins=mel_bins, sample_rate_hz=sample_rate_hz)
        self.weights = (float(spectral_convergence_weight), float(log_magnitude_weight), float(mel_weight))
        if not all(math.isfinite(w) and w >= 0 for w in self.weights):
            raise ValueError(f"loss weights must be finite and >= 0, got {self.weights}")

    def forward(self, recon: Tensor, target: Tensor) -> CodecLosses:
        """``recon``, ``target``: ``[B, T]`` waveforms of equal shape."""
        if recon.shape != target.shape:
            raise ValueError(f"recon {list(recon.shape)} and target {list(target.shape)} differ in shape")
        sc, mag = self.stft(recon, target)
        mel = self.mel(recon, target)
        w_sc, w_mag, w_mel = self.weights
        return CodecLosses(total=w_sc * sc + w_mag * mag + w_mel * mel, spectral_convergence=sc.detach(),
                           log_magnitude=mag.detach(), mel=mel.detach())
