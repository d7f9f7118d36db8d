"""Frame-rate encoder and decoder for the codec: an STFT front end and an inverse-STFT head (after Vocos).

Why: on 2 CPU cores the SEANet stacks spend most of their time at the
sample rate, where a conv with 8-32 channels is memory-bound, so the
encoder had to be narrow (8 channels at 16 kHz) and a training step cost
~0.5 s. Here every layer runs at 100 frames per second on 128-512 wide
ConvNeXt blocks (dense matmuls, what a CPU does best), and the waveform
comes from an inverse STFT of predicted log-magnitudes and phases instead of
being built up through four upsampling stages. The encoder reads log
magnitudes, the quantity the losses compare.

Both sides use "same" framing: ``T`` samples <-> ``T / hop`` frames exactly
(reflect-padded STFT without centring; overlap-add trimmed by
``(n_fft - hop) / 2`` on each side), so hop lengths line up with the SEANet
models and the codec's frame count does not change. Non-causal only: the
STFT window looks ``(n_fft - hop) / 2`` samples ahead.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

__all__ = ["ConvNeXtBlock", "SpectralEncoder", "ISTFTDecoder"]

_LOG_EPS = 1e-5
_MAX_LOG_MAGNITUDE = 4.6  # exp(4.6) ~ 100: Vocos' clip on the predicted magnitude, keeps early steps finite


class ConvNeXtBlock(nn.Module):
    """Depthwise conv (time) -> LayerNorm -> Linear -> GELU -> Linear, scaled, plus the identity. ``[B, C, T]``."""

    def __init__(self, dim: int, intermediate: int, *, kernel_size: int = 7, layer_scale: float = 0.1) -> None:
        super().__init__()
        self.dwconv = nn.Conv1d(dim, dim, kernel_size, padding=kernel_size // 2, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.pw1 = nn.Linear(dim, intermediate)
        self.pw2 = nn.Linear(intermediate, dim)
        self.gamma = nn.Parameter(torch.full((dim,), float(layer_scale)))

    def forward(self, x: Tensor) -> Tensor:
        y = self.dwconv(x).transpose(1, 2)
        y = self.pw2(F.gelu(self.pw1(self.norm(y))))
        return x + (self.gamma * y).transpose(1, 2)


def _stack(dim: int, intermediate: int, layers: int, kernel_size: int) -> nn.Sequential:
    return nn.Sequential(*[ConvNeXtBlock(dim, intermediate, kernel_size=kernel_size, layer_scale=1.0 / max(layers, 1))
                           for _ in range(layers)])


class _ChannelNorm(nn.Module):
    """LayerNorm over channels of ``[B, C, T]``."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim, eps=1e-6)

    def forward(self, x: Tensor) -> Tensor:
        return self.norm(x.transpose(1, 2)).transpose(1, 2)


class _StftFramed(nn.Module):
    """The "same" STFT framing both sides share: hop lengths, window, and the checks that make them fit."""

    def __init__(self, *, hop_length: int, frames_per_latent: int, n_fft: int, dimension: int) -> None:
        super().__init__()
        if frames_per_latent < 1 or hop_length % frames_per_latent:
            raise ValueError(f"hop_length {hop_length} is not a multiple of frames_per_latent {frames_per_latent}")
        self.hop_length = int(hop_length)
        self.frames_per_latent = frames_per_latent
        self.stft_hop = self.hop_length // frames_per_latent
        if (n_fft - self.stft_hop) % 2 or n_fft < self.stft_hop:
            raise ValueError(f"n_fft {n_fft} must be >= the STFT hop {self.stft_hop} with an even difference")
        self.n_fft = n_fft
        self.dimension = dimension
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)


class SpectralEncoder(_StftFramed):
    """Waveform ``[B, 1, T]`` (T a multiple of ``hop_length``) -> latent ``[B, dimension, T / hop_length]``.

    Args:
        hop_length: samples per latent frame (320 -> 50 Hz at 16 kHz).
        frames_per_latent: STFT frames per latent frame; the STFT hop is ``hop_length / frames_per_latent``.
        n_fft: STFT size (Hann window of the same length); ``(n_fft - stft hop)`` must be even.
        dim, intermediate, layers, kernel_size: the ConvNeXt stack at the STFT frame rate.
        dimension: output channels.
        max_bin: bins ``>= max_bin`` read as silence (``log_floor``); None: every bin.
        log_floor: added to magnitudes before the log.

    Example:
        >>> enc = SpectralEncoder(hop_length=320, dim=32, intermediate=64, layers=1, dimension=16)
        >>> enc(torch.zeros(2, 1, 16000)).shape
        torch.Size([2, 16, 50])
    """

    def __init__(self, *, hop_length: int = 320, frames_per_latent: int = 2, n_fft: int = 640, dim: int = 128,
                 intermediate: int = 384, layers: int = 4, kernel_size: int = 7, dimension: int = 64,
                 max_bin: int | None = None, log_floor: float = _LOG_EPS) -> None:
        super().__init__(hop_length=hop_length, frames_per_latent=frames_per_latent, n_fft=n_fft, dimension=dimension)
        bins = n_fft // 2 + 1
        if max_bin is not None and not 0 < max_bin <= bins:
            raise ValueError(f"max_bin {max_bin} outside 1..{bins}")
        self.max_bin = bins if max_bin is None else int(max_bin)  # bins from here up read as the floor
        self.log_floor = float(log_floor)
        self.embed = nn.Conv1d(n_fft // 2 + 1, dim, kernel_size, padding=kernel_size // 2)
        self.norm = _ChannelNorm(dim)
        self.blocks = _stack(dim, intermediate, layers, kernel_size)
        self.down = nn.Conv1d(dim, dimension, 2 * frames_per_latent, stride=frames_per_latent,
                              padding=frames_per_latent // 2) if frames_per_latent > 1 else nn.Conv1d(dim, dimension, 1)

    def log_magnitude(self, wav: Tensor) -> Tensor:
        """``[B, 1, T]`` -> ``[B, n_fft / 2 + 1, T / stft_hop]`` natural-log magnitudes ("same" framing)."""
        pad = (self.n_fft - self.stft_hop) // 2
        x = F.pad(wav, (pad, pad), mode="reflect" if wav.shape[-1] > pad else "constant").squeeze(1)
        spec = torch.stft(x, self.n_fft, self.stft_hop, window=self.window, center=False, return_complex=True)
        magnitude = spec.abs()
        if self.max_bin < magnitude.shape[1]:  # the band a resample round trip leaves alone (SpectralConfig)
            magnitude = F.pad(magnitude[:, :self.max_bin], (0, 0, 0, magnitude.shape[1] - self.max_bin))
        return torch.log(magnitude + self.log_floor)

    def forward(self, wav: Tensor) -> Tensor:
        x = self.blocks(self.norm(self.embed(self.log_magnitude(wav))))
        frames = wav.shape[-1] // self.hop_length
        return self.down(x)[..., :frames]


class ISTFTDecoder(_StftFramed):
    """Latent ``[B, dimension, F]`` -> waveform ``[B, 1, F * hop_length]`` through an inverse STFT.

    The latent is upsampled to the STFT frame rate (transposed conv), run
    through ConvNeXt blocks, and projected to a log-magnitude and a phase per
    bin; the waveform is their inverse STFT with "same" overlap-add.

    Example:
        >>> dec = ISTFTDecoder(hop_length=320, dim=32, intermediate=64, layers=1, dimension=16)
        >>> dec(torch.zeros(2, 16, 50)).shape
        torch.Size([2, 1, 16000])
    """

    def __init__(self, *, hop_length: int = 320, frames_per_latent: int = 2, n_fft: int = 640, dim: int = 256,
                 intermediate: int = 768, layers: int = 8, kernel_size: int = 7, dimension: int = 64) -> None:
        super().__init__(hop_length=hop_length, frames_per_latent=frames_per_latent, n_fft=n_fft, dimension=dimension)
        self.embed = nn.Conv1d(dimension, dim, kernel_size, padding=kernel_size // 2)
        self.up = (nn.ConvTranspose1d(dim, dim, 2 * frames_per_latent, stride=frames_per_latent)
                   if frames_per_latent > 1 else nn.Identity())
        self.norm = _ChannelNorm(dim)
        self.blocks = _stack(dim, intermediate, layers, kernel_size)
        self.final_norm = nn.LayerNorm(dim, eps=1e-6)
        self.head = nn.Linear(dim, 2 * (n_fft // 2 + 1))

    def _upsample(self, x: Tensor, frames: int) -> Tensor:
        if self.frames_per_latent == 1:
            return x
        y = self.up(x)  # (F - 1) * r + 2r samples: trim r / 2 on the left, keep F * r
        left = self.frames_per_latent // 2
        return y[..., left:left + frames * self.frames_per_latent]

    def features(self, latent: Tensor) -> Tensor:
        """``[B, dimension, F]`` -> head inputs ``[B, F * frames_per_latent, dim]`` at the STFT frame rate."""
        x = self.blocks(self.norm(self._upsample(self.embed(latent), latent.shape[-1])))
        return self.final_norm(x.transpose(1, 2))

    def forward(self, latent: Tensor) -> Tensor:
        out = self.head(self.features(latent)).transpose(1, 2)  # [B, 2 * bins, frames * r]
        log_mag, phase = out.chunk(2, dim=1)
        mag = torch.exp(log_mag.clamp(max=_MAX_LOG_MAGNITUDE))
        return self.istft(torch.polar(mag, phase)).unsqueeze(1)

    def istft(self, spec: Tensor) -> Tensor:
        """Complex ``[B, bins, N]`` -> ``[B, N * stft_hop]``: windowed overlap-add, trimmed to "same" length."""
        n_fft, hop = self.n_fft, self.stft_hop
        pad = (n_fft - hop) // 2
        count = spec.shape[-1]
        frames = torch.fft.irfft(spec, n_fft, dim=1) * self.window[None, :, None]  # [B, n_fft, N]
        size = (count - 1) * hop + n_fft
        y = F.fold(frames, output_size=(1, size), kernel_size=(1, n_fft), stride=(1, hop))[:, 0, 0]
        envelope = F.fold(self.window.square()[None, :, None].expand(1, n_fft, count), output_size=(1, size),
                          kernel_size=(1, n_fft), stride=(1, hop))[0, 0, 0]
        return (y / envelope.clamp(min=1e-8))[:, pad:size - pad]
