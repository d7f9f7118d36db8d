"""A small CTC phoneme recognizer over codec codes: the downstream probe of issue #5.

Codes ``[B, T, S]`` (one FSQ index per stage and frame, any int dtype, e.g. the
training input's uint16) -> one embedding per stage, summed -> residual
depthwise-separable conv blocks (local context, cheap on CPU) -> optional
bidirectional transformer layers (offline recognizer: no causality;
``ctc_small`` has none, they cost more than its step budget on one CPU
thread) -> a linear head over the phoneme inventory + blank (id 0). Frames
keep the codec's rate (50 Hz is well above the <= 15 phonemes/s measured on
the seed voices).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.nn import functional as F

__all__ = ["CtcOutput", "CtcBatch", "CtcRecognizer", "greedy_decode"]


@dataclass
class CtcOutput:
    """Per-frame log-probabilities ``[B, T, classes]`` (log-softmax; 0 = blank) and valid frames ``[B]``."""

    log_probs: Tensor
    lengths: Tensor


@dataclass
class CtcBatch:
    """Training rows: codes ``[B, T, S]``, frames ``[B]``, targets ``[B, L]`` (class ids >= 1, padded with
    anything) and target lengths ``[B]``."""

    codes: Tensor
    lengths: Tensor
    targets: Tensor
    target_lengths: Tensor

    def __len__(self) -> int:
        return self.codes.shape[0]


def frame_mask(lengths: Tensor, frames: int) -> Tensor:
    """``[B, T]`` bool, True on valid frames."""
    return torch.arange(frames, device=lengths.device)[None, :] < lengths[:, None]


class _DepthwiseConv(nn.Module):
    """Depthwise conv along time on ``[B, T, C]`` as a sum of shifted, per-channel-scaled copies.

    Why not ``nn.Conv1d(groups=C)``: on one CPU thread this is ~1.7x faster forward + backward at C = 64..128
    (oneDNN's grouped conv is slow) and needs no transposes.
    """

    def __init__(self, dim: int, kernel_size: int, dilation: int = 1) -> None:
        super().__init__()
        self.kernel_size, self.dilation = int(kernel_size), int(dilation)
        self.weight = nn.Parameter(torch.randn(kernel_size, dim) / math.sqrt(kernel_size))
        self.bias = nn.Parameter(torch.zeros(dim))

    def forward(self, x: Tensor) -> Tensor:
        d, frames = self.dilation, x.shape[1]
        pad = d * (self.kernel_size // 2)
        xp = F.pad(x, (0, 0, pad, pad))
        out = xp[:, 0:frames] * self.weight[0]
        for k in range(1, self.kernel_size):
            out = out + xp[:, k * d:k * d + frames] * self.weight[k]
        return out + self.bias


class _ConvBlock(nn.Module):
    """Pre-norm residual block on ``[B, T, C]``: LayerNorm -> depthwise conv -> GELU -> pointwise linear (padding
    masked before the conv, so it never leaks into valid frames)."""

    def __init__(self, dim: int, kernel_size: int, dilation: int, dropout: float) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.depthwise = _DepthwiseConv(dim, kernel_size, dilation)
        self.pointwise = nn.Linear(dim, dim)
        self.act = nn.GELU()
        self.drop = nn.Dropout(dropout) if dropout > 0 else nn.Identity()

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        h = self.depthwise(self.norm(x) * mask[..., None])
        return x + self.drop(self.pointwise(self.act(h)))


class CtcRecognizer(nn.Module):
    """Codes -> per-frame phoneme log-probabilities for CTC.

    Args:
        num_stages, codebook_size: the codec's FSQ stages and codes per stage.
        num_classes: phoneme inventory size incl. blank (0) and unknown.
        hidden_dim, conv_layers, kernel_size: width and depth of the conv front end.
        dilation_cycle: conv block ``j`` is dilated ``2 ** (j % dilation_cycle)`` (1: no dilation).
        transformer_layers, num_heads, ffn_dim: the self-attention back end (0 layers: convs only).
        dropout: in every block.

    Example:
        >>> m = CtcRecognizer(num_stages=2, codebook_size=1000, num_classes=10, hidden_dim=16, num_heads=2).eval()
        >>> out = m(torch.zeros(3, 40, 2, dtype=torch.long), torch.tensor([40, 30, 5]))
        >>> tuple(out.log_probs.shape)
        (3, 40, 10)
    """

    def __init__(self, *, num_stages: int = 2, codebook_size: int = 1000, num_classes: int = 64,
                 hidden_dim: int = 128, conv_layers: int = 3, kernel_size: int = 5, dilation_cycle: int = 1,
                 transformer_layers: int = 1, num_heads: int = 4, ffn_dim: int = 256, dropout: float = 0.1) -> None:
        super().__init__()
        self.num_stages, self.codebook_size, self.num_classes = int(num_stages), int(codebook_size), int(num_classes)
        self.embed = nn.Embedding(self.num_stages * self.codebook_size, hidden_dim)
        self.register_buffer("stage_offset", torch.arange(self.num_stages) * self.codebook_size, persistent=False)
        self.convs = nn.ModuleList([_ConvBlock(hidden_dim, kernel_size, 2 ** (j % dilation_cycle), dropout)
                                    for j in range(conv_layers)])
        self.attention = nn.ModuleList([
            nn.TransformerEncoderLayer(hidden_dim, num_heads, ffn_dim, dropout, activation="gelu", batch_first=True,
                                       norm_first=True)
            for _ in range(transformer_layers)])
        self.norm = nn.LayerNorm(hidden_dim)
        self.head = nn.Linear(hidden_dim, self.num_classes)

    def forward(self, codes: Tensor, lengths: Tensor) -> CtcOutput:
        """Codes ``[B, T, S]`` with ``lengths [B]`` -> :class:`CtcOutput` (frames past a length are padding)."""
        if codes.dim() != 3 or codes.shape[-1] != self.num_stages:
            raise ValueError(f"expected codes [B, T, {self.num_stages}], got {list(codes.shape)}")
        if lengths.shape != (codes.shape[0],):
            raise ValueError(f"expected lengths [{codes.shape[0]}], got {list(lengths.shape)}")
        codes = codes.long()
        if codes.numel() and (int(codes.min()) < 0 or int(codes.max()) >= self.codebook_size):
            raise ValueError(f"codes must lie in [0, {self.codebook_size}); got [{int(codes.min())}, "
                             f"{int(codes.max())}]")
        lengths = lengths.long().to(codes.device)
        mask = frame_mask(lengths, codes.shape[1])
        x = self.embed(codes + self.stage_offset).sum(dim=2)
        for block in self.convs:
            x = block(x, mask)
        for layer in self.attention:
            x = layer(x, src_key_padding_mask=~mask)
        logits = self.head(self.norm(x))
        return CtcOutput(log_probs=torch.log_softmax(logits.float(), dim=-1), lengths=lengths)


def greedy_decode(out: CtcOutput, *, blank: int = 0) -> list[list[int]]:
    """Best path: argmax per frame, repeats merged, blanks dropped; one id list per row (within its length).

    Example:
        >>> lp = torch.log(torch.tensor([[[.1, .9, 0], [.1, .9, 0], [.9, .1, 0], [.1, .9, 0], [0, 0, 1]]]) + 1e-9)
        >>> greedy_decode(CtcOutput(lp, torch.tensor([4])))
        [[1, 1]]
    """
    best = out.log_probs.argmax(dim=-1).cpu()
    result = []
    for row, n in zip(best, out.lengths.tolist()):
        path = torch.unique_consecutive(row[:n]).tolist()
        result.append([i for i in path if i != blank])
    return result
