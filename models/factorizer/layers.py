"""Masked sequence layers of the factorizer: conv residual stacks (optionally FiLM-conditioned), attentive
statistics pooling, masked instance norm, gradient reversal, and the content adversary.

Every layer takes a frame mask ``[B, 1, T]`` (1 on valid frames) and leaves zeros beyond each row's
length, so a row's outputs do not depend on how far its batch was padded: a conv sees zeros past the
end exactly as it would with no padding at all, and pooling and normalization count valid frames only.
No BatchNorm anywhere for the same reason (it would mix rows).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

__all__ = ["frame_mask", "masked_mean", "masked_mean_std", "masked_instance_norm", "reverse_gradient",
           "ResidualBlock", "ConvStack", "AttentiveStatsPool", "ContentAdversary"]


def frame_mask(lengths: Tensor, num_frames: int, dtype: torch.dtype = torch.float32) -> Tensor:
    """Lengths ``[B]`` -> mask ``[B, 1, num_frames]`` with 1 on each row's first ``lengths[b]`` frames."""
    return (torch.arange(num_frames, device=lengths.device) < lengths[:, None]).unsqueeze(1).to(dtype)


def masked_mean(x: Tensor, mask: Tensor) -> Tensor:
    """Mean of ``x [B, C, T]`` over valid frames -> ``[B, C]``."""
    return (x * mask).sum(-1) / mask.sum(-1).clamp(min=1)


def masked_mean_std(x: Tensor, mask: Tensor, eps: float = 1e-5) -> tuple[Tensor, Tensor]:
    """Mean and standard deviation of ``x [B, C, T]`` over valid frames -> two ``[B, C]``."""
    mean = masked_mean(x, mask)
    var = masked_mean((x - mean.unsqueeze(-1)).pow(2), mask)
    return mean, torch.sqrt(var + eps)


def masked_instance_norm(x: Tensor, mask: Tensor, eps: float = 1e-5) -> Tensor:
    """Zero mean, unit variance over each row's valid frames, per channel; zeros beyond the length.

    Why on the content stream: a per-utterance offset or scale of a channel is
    exactly the kind of global information (voice, room, channel) content must
    not carry.
    """
    mean, std = masked_mean_std(x, mask, eps)
    return (x - mean.unsqueeze(-1)) / std.unsqueeze(-1) * mask


class _ReverseGradient(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, scale: float) -> Tensor:  # noqa: D102
        ctx.scale = scale
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None]:  # noqa: D102
        return -ctx.scale * grad, None


def reverse_gradient(x: Tensor, scale: float = 1.0) -> Tensor:
    """Identity forward, gradient times ``-scale`` backward (Ganin & Lempitsky 2015): what follows learns to
    predict a label, what precedes learns to hide it."""
    return _ReverseGradient.apply(x, scale)


class _ChannelNorm(nn.LayerNorm):
    """LayerNorm over channels of ``[B, C, T]``, per frame (so padding cannot leak into valid frames)."""

    def forward(self, x: Tensor) -> Tensor:
        return super().forward(x.transpose(1, 2)).transpose(1, 2)


class ResidualBlock(nn.Module):
    """Pre-norm residual unit: norm -> GELU -> dilated conv -> (FiLM) -> GELU -> dropout -> 1x1 conv.

    Args:
        channels: input = output channels.
        kernel_size: odd; padding keeps the length.
        dilation: of the wide conv.
        dropout: after the second activation.
        cond_dim: size of a per-row conditioning vector turned into a scale and shift of the hidden
            features (FiLM, Perez et al. 2018); 0 = unconditioned.
    """

    def __init__(self, *, channels: int, kernel_size: int, dilation: int = 1, dropout: float = 0.0,
                 cond_dim: int = 0) -> None:
        super().__init__()
        self.norm = _ChannelNorm(channels)
        self.conv = nn.Conv1d(channels, channels, kernel_size, dilation=dilation,
                              padding=dilation * (kernel_size - 1) // 2)
        self.film = nn.Linear(cond_dim, 2 * channels) if cond_dim > 0 else None
        self.dropout = nn.Dropout(dropout)
        self.proj = nn.Conv1d(channels, channels, 1)

    def forward(self, x: Tensor, mask: Tensor, cond: Tensor | None = None) -> Tensor:
        """``x [B, C, T]`` (zero beyond lengths) -> same shape, zero beyond lengths."""
        h = self.conv(F.gelu(self.norm(x)) * mask)  # the norm's bias is nonzero on padding: mask before the conv
        if self.film is not None:
            if cond is None:
                raise ValueError("this block is FiLM-conditioned: pass cond [B, cond_dim]")
            scale, shift = self.film(cond).unsqueeze(-1).chunk(2, dim=1)
            h = h * (1 + scale) + shift
        return (x + self.proj(self.dropout(F.gelu(h)))) * mask


class ConvStack(nn.Module):
    """Input conv -> ``num_layers`` residual blocks dilated 1, 2, 4, ... -> norm -> GELU.

    With kernel 5 and 4 layers one stack sees 61 frames (1.2 s at 50 Hz).
    """

    def __init__(self, *, in_channels: int, channels: int, num_layers: int, kernel_size: int,
                 dropout: float = 0.0, cond_dim: int = 0) -> None:
        super().__init__()
        self.inp = nn.Conv1d(in_channels, channels, kernel_size, padding=(kernel_size - 1) // 2)
        self.blocks = nn.ModuleList(
            ResidualBlock(channels=channels, kernel_size=kernel_size, dilation=2 ** j, dropout=dropout,
                          cond_dim=cond_dim)
            for j in range(num_layers))
        self.norm = _ChannelNorm(channels)

    def forward(self, x: Tensor, mask: Tensor, cond: Tensor | None = None) -> Tensor:
        """``x [B, in_channels, T]`` -> ``[B, channels, T]``, zero beyond lengths."""
        h = self.inp(x * mask) * mask
        for block in self.blocks:
            h = block(h, mask, cond)
        return F.gelu(self.norm(h)) * mask


class AttentiveStatsPool(nn.Module):
    """Attention-weighted mean and standard deviation over valid frames (Okabe et al. 2018, per channel as
    in ECAPA-TDNN): ``[B, C, T]`` -> ``[B, 2C]``.

    Why not a plain mean: voiced frames say more about a voice than pauses do; the
    attention learns which frames to trust, per channel.
    """

    def __init__(self, *, channels: int, attention_dim: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.attention = nn.Sequential(nn.Conv1d(channels, attention_dim, 1), nn.Tanh(),
                                       nn.Conv1d(attention_dim, channels, 1))
        self.eps = float(eps)

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        scores = self.attention(x).masked_fill(mask == 0, float("-inf"))
        weights = torch.softmax(scores, dim=-1)
        mean = (weights * x).sum(-1)
        var = (weights * (x - mean.unsqueeze(-1)).pow(2)).sum(-1)
        return torch.cat([mean, torch.sqrt(var + self.eps)], dim=1)


class ContentAdversary(nn.Module):
    """Speaker classifier on the content stream: a per-frame MLP, masked mean and std over time, a linear layer.

    Why the per-frame MLP before pooling: the content is instance-normalized,
    so its plain mean and std are ~0 and ~1 for every utterance; statistics of
    nonlinear features (e.g. which codes an utterance uses) are what could still
    give a speaker away. The caller reverses the gradient at the input.
    """

    def __init__(self, *, content_dim: int, hidden_dim: int, num_classes: int) -> None:
        super().__init__()
        self.frames = nn.Sequential(nn.Conv1d(content_dim, hidden_dim, 1), nn.GELU(),
                                    nn.Conv1d(hidden_dim, hidden_dim, 1), nn.GELU())
        self.head = nn.Linear(2 * hidden_dim, num_classes)

    def forward(self, content: Tensor, mask: Tensor) -> Tensor:
        """Content ``[B, C, T]`` -> logits ``[B, num_classes]``."""
        mean, std = masked_mean_std(self.frames(content), mask)
        return self.head(torch.cat([mean, std], dim=1))
