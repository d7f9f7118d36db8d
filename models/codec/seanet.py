"""SEANet-style strided conv encoder and decoder for 16 kHz mono (after audiocraft's ``SEANetEncoder``).

Why no LSTM (EnCodec has one): on 2 CPU cores it dominates both training and
encode time; dilated residual units give the receptive field instead. Why
the ``causal`` flag: streaming use needs every output to depend on the past
only (left padding, transposed convs trimmed on the right); the non-causal
default pads both sides and sounds slightly better.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torch.nn import functional as F

__all__ = ["SEANetEncoder", "SEANetDecoder", "ResidualUnit"]


def _norm(module: nn.Module, weight_norm: bool) -> nn.Module:
    return nn.utils.parametrizations.weight_norm(module) if weight_norm else module


class _Conv1d(nn.Module):
    """Conv1d that pads itself: output length ``ceil(T / stride)``, causal (left-only) or centred padding."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, *, stride: int = 1, dilation: int = 1,
                 causal: bool = False, weight_norm: bool = True) -> None:
        super().__init__()
        self.conv = _norm(nn.Conv1d(in_channels, out_channels, kernel_size, stride=stride, dilation=dilation),
                          weight_norm)
        self.stride = stride
        self.effective_kernel = (kernel_size - 1) * dilation + 1
        self.causal = causal

    def forward(self, x: Tensor) -> Tensor:
        pad_total = self.effective_kernel - self.stride
        length = x.shape[-1]
        # Extra right padding so the last partial window still makes a frame (audiocraft's rule).
        frames = math.ceil((length - self.effective_kernel + pad_total) / self.stride + 1)
        extra = (frames - 1) * self.stride + self.effective_kernel - (length + pad_total)
        left = pad_total if self.causal else pad_total - pad_total // 2
        return self.conv(F.pad(x, (left, pad_total - left + extra)))


class _ConvTranspose1d(nn.Module):
    """ConvTranspose1d giving exactly ``T * stride`` samples; causal trims only on the right."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, *, stride: int,
                 causal: bool = False, weight_norm: bool = True) -> None:
        super().__init__()
        self.convtr = _norm(nn.ConvTranspose1d(in_channels, out_channels, kernel_size, stride=stride), weight_norm)
        self.trim = kernel_size - stride
        self.causal = causal

    def forward(self, x: Tensor) -> Tensor:
        y = self.convtr(x)
        right = self.trim if self.causal else self.trim // 2
        left = self.trim - right
        return y[..., left:y.shape[-1] - right]


class ResidualUnit(nn.Module):
    """ELU -> dilated conv (C -> C/compress) -> ELU -> 1x1 conv (-> C), plus the identity."""

    def __init__(self, channels: int, *, kernel_size: int = 3, dilation: int = 1, compress: int = 2,
                 causal: bool = False, weight_norm: bool = True) -> None:
        super().__init__()
        hidden = max(1, channels // compress)
        self.block = nn.Sequential(
            nn.ELU(),
            _Conv1d(channels, hidden, kernel_size, dilation=dilation, causal=causal, weight_norm=weight_norm),
            nn.ELU(),
            _Conv1d(hidden, channels, 1, causal=causal, weight_norm=weight_norm),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.block(x)


def _widths(channels: int, max_channels: int, n: int) -> list[int]:
    """Channels at each resolution, 0 (input rate) .. n (frame rate): doubling, capped."""
    return [min(channels * 2**i, max_channels) for i in range(n + 1)]


class SEANetEncoder(nn.Module):
    """Waveform ``[B, 1, T]`` -> latent ``[B, dimension, ceil(T / hop_length)]``.

    Args:
        channels: width after the first conv; doubles after every stride (capped at ``max_channels``).
        dimension: output channels.
        strides: downsampling factors, first to last; their product is the hop length (320 -> 50 Hz at 16 kHz).
        residual_layers: residual units before each downsampling; unit j has dilation ``dilation_base**j``.
        causal: left padding only, so frame f depends on samples before ``(f + 1) * hop_length`` only.
        weight_norm: weight-normalized convs (faster, steadier training without batch norm).

    Example:
        >>> enc = SEANetEncoder(channels=8, dimension=32, strides=(2, 4, 5, 8))
        >>> enc(torch.zeros(1, 1, 16000)).shape
        torch.Size([1, 32, 50])
    """

    def __init__(self, *, channels: int = 16, max_channels: int = 256, dimension: int = 64,
                 strides: Sequence[int] = (2, 4, 5, 8), residual_layers: int = 1, dilation_base: int = 2,
                 kernel_size: int = 7, residual_kernel_size: int = 3, compress: int = 2, causal: bool = False,
                 weight_norm: bool = True) -> None:
        super().__init__()
        self.dimension = dimension
        self.strides = [int(s) for s in strides]
        self.hop_length = math.prod(self.strides)
        widths = _widths(channels, max_channels, len(self.strides))
        common = dict(causal=causal, weight_norm=weight_norm)
        layers: list[nn.Module] = [_Conv1d(1, widths[0], kernel_size, **common)]
        for i, stride in enumerate(self.strides):
            layers += [ResidualUnit(widths[i], kernel_size=residual_kernel_size, dilation=dilation_base**j,
                                    compress=compress, **common) for j in range(residual_layers)]
            layers += [nn.ELU(), _Conv1d(widths[i], widths[i + 1], 2 * stride, stride=stride, **common)]
        layers += [nn.ELU(), _Conv1d(widths[-1], dimension, kernel_size, **common)]
        self.model = nn.Sequential(*layers)

    def forward(self, wav: Tensor) -> Tensor:
        return self.model(wav)


class SEANetDecoder(nn.Module):
    """Latent ``[B, dimension, F]`` -> waveform ``[B, 1, F * hop_length]``; mirrors :class:`SEANetEncoder`.

    ``strides`` are given in the encoder's order (first to last downsampling); the decoder
    upsamples in reverse. Other arguments as for the encoder.
    """

    def __init__(self, *, channels: int = 16, max_channels: int = 256, dimension: int = 64,
                 strides: Sequence[int] = (2, 4, 5, 8), residual_layers: int = 1, dilation_base: int = 2,
                 kernel_size: int = 7, residual_kernel_size: int = 3, compress: int = 2, causal: bool = False,
                 weight_norm: bool = True) -> None:
        super().__init__()
        self.dimension = dimension
        self.strides = [int(s) for s in strides]
        self.hop_length = math.prod(self.strides)
        widths = _widths(channels, max_channels, len(self.strides))
        common = dict(causal=causal, weight_norm=weight_norm)
        layers: list[nn.Module] = [_Conv1d(dimension, widths[-1], kernel_size, **common)]
        for i in reversed(range(len(self.strides))):
            stride = self.strides[i]
            layers += [nn.ELU(), _ConvTranspose1d(widths[i + 1], widths[i], 2 * stride, stride=stride, **common)]
            layers += [ResidualUnit(widths[i], kernel_size=residual_kernel_size, dilation=dilation_base**j,
                                    compress=compress, **common) for j in range(residual_layers)]
        layers += [nn.ELU(), _Conv1d(widths[0], 1, kernel_size, **common)]
        self.model = nn.Sequential(*layers)

    def forward(self, latent: Tensor) -> Tensor:
        return self.model(latent)
