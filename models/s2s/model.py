"""A small speech-to-speech model over codec codes: source codes ``[B, Ts, S]`` -> target codes ``[B, Tt, S]``.

Non-autoregressive, so one training step is one pass over the batch (cheap on CPU):

1. Encoder: one embedding per FSQ stage, summed -> residual depthwise-separable conv blocks (the recognizer's,
   ``models.ctc.model``: fast on one CPU thread) -> optional bidirectional self-attention layers.
2. Length change by *monotonic linear interpolation* (:func:`resample_frames`): target frame ``j`` of a row
   with ``Ls`` source and ``Lt`` target frames reads source position ``(j + 0.5) Ls / Lt - 0.5``. Why: the
   source and target voices speak the same words at different rates, and the recombined pairs carry no
   alignment; uniform stretching is the honest baseline, and the decoder's receptive field shifts
   boundaries locally. Each frame is also told its row's stretch, ``log(Lt / Ls)``.
3. Target voice: a speaker vector (``factors.speaker_vector``), projected, is added to every frame; without
   one, a learned target-voice embedding is (the default normalization task: one clean voice).
4. Decoder: residual conv blocks over the target frames, then one head per FSQ stage over its codes.

Frames past a row's length are padding: they never change the valid frames' outputs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from models.ctc.model import _ConvBlock, frame_mask

__all__ = ["S2SBatch", "S2SOutput", "S2SConversion", "SpeechToSpeech", "resample_frames", "target_lengths_for"]


@dataclass
class S2SBatch:
    """Training pairs: source codes ``[B, Ts, S]`` and frames ``[B]``; target codes ``[B, >= Tt, S]`` and frames
    ``[B]`` (any int dtype, e.g. the training input's uint16); optional target speaker vectors ``[B, dim]``
    (None: the model's fixed target voice)."""

    codes: Tensor
    lengths: Tensor
    target_codes: Tensor
    target_lengths: Tensor
    speaker: Tensor | None = None

    def __len__(self) -> int:
        return self.codes.shape[0]


@dataclass
class S2SOutput:
    """Logits ``[B, Tt, S, codebook_size]`` over each stage's codes, and valid target frames ``[B]``."""

    logits: Tensor
    lengths: Tensor


@dataclass
class S2SConversion:
    """Greedy codes ``[B, Tt, S]`` (int64, in ``[0, codebook_size)``, 0 past each row's length) and frames ``[B]``."""

    codes: Tensor
    lengths: Tensor


def target_lengths_for(lengths: Tensor, rate: float | Tensor = 1.0) -> Tensor:
    """Target frames ``lengths * rate`` rounded half up (at least 1): the output duration of a conversion.

    ``rate`` is target / source duration (> 1: slower speech), one float or one per row.

    Example:
        >>> target_lengths_for(torch.tensor([100, 7]), 1.5).tolist()
        [150, 11]
    """
    rate_t = torch.as_tensor(rate, dtype=torch.float64, device=lengths.device)
    if not bool(torch.isfinite(rate_t).all()) or bool((rate_t <= 0).any()):
        raise ValueError(f"rate must be finite and > 0, got {rate}")
    return torch.floor(lengths.double() * rate_t + 0.5).long().clamp(min=1)


def resample_frames(x: Tensor, lengths: Tensor, target_lengths: Tensor) -> Tensor:
    """Stretch each row of ``x [B, T, C]`` from its ``lengths[b]`` frames to ``target_lengths[b]`` by linear
    interpolation along time -> ``[B, max(target_lengths), C]``, zeros past each row's target length.

    Only a row's valid frames are read (positions are clamped to ``[0, length - 1]``), so padding never
    leaks in; equal lengths give back ``x`` exactly.

    Example:
        >>> x = torch.tensor([[[0.0], [2.0]]])
        >>> resample_frames(x, torch.tensor([2]), torch.tensor([4]))[0, :, 0].tolist()
        [0.0, 0.5, 1.5, 2.0]
    """
    if bool((lengths < 1).any()) or bool((target_lengths < 1).any()):
        raise ValueError("every row needs at least one source and one target frame")
    frames = int(target_lengths.max())
    ratio = (lengths.double() / target_lengths.double())[:, None]                                    # [B, 1]
    pos = (torch.arange(frames, device=x.device, dtype=torch.float64)[None, :] + 0.5) * ratio - 0.5
    pos = torch.minimum(pos.clamp(min=0), (lengths[:, None] - 1).double())                          # [B, Tt]
    left = pos.floor().long()
    right = torch.minimum(left + 1, lengths[:, None].long() - 1)
    frac = (pos - left.double()).to(x.dtype)[..., None]
    channels = x.shape[-1]
    at_left = torch.gather(x, 1, left[..., None].expand(-1, -1, channels))
    at_right = torch.gather(x, 1, right[..., None].expand(-1, -1, channels))
    out = at_left + frac * (at_right - at_left)
    return out * frame_mask(target_lengths, frames)[..., None]


class SpeechToSpeech(nn.Module):
    """Source codes -> per-frame logits over the target codes, for any target length.

    Args:
        num_stages, codebook_size: the codec's FSQ stages and codes per stage (source and target codec).
        hidden_dim: width of every layer.
        encoder_layers, decoder_layers: residual depthwise-separable conv blocks before / after the resampling.
        kernel_size: of the depthwise convs (odd).
        dilation_cycle: conv block ``j`` (of each stack) is dilated ``2 ** (j % dilation_cycle)``.
        transformer_layers, num_heads, ffn_dim: self-attention after the encoder convs (0 layers: none).
        speaker_dim: size of a target speaker vector (0: the fixed target voice only).
        dropout: in every block.

    Example:
        >>> m = SpeechToSpeech(num_stages=2, codebook_size=1000, hidden_dim=16, speaker_dim=0).eval()
        >>> out = m(torch.zeros(3, 40, 2, dtype=torch.long), torch.tensor([40, 30, 5]), torch.tensor([50, 30, 4]))
        >>> tuple(out.logits.shape)
        (3, 50, 2, 1000)
    """

    def __init__(self, *, num_stages: int = 2, codebook_size: int = 1000, hidden_dim: int = 96,
                 encoder_layers: int = 4, transformer_layers: int = 0, num_heads: int = 4, ffn_dim: int = 192,
                 decoder_layers: int = 4, kernel_size: int = 5, dilation_cycle: int = 3, speaker_dim: int = 64,
                 dropout: float = 0.0) -> None:
        super().__init__()
        self.num_stages, self.codebook_size = int(num_stages), int(codebook_size)
        self.speaker_dim = int(speaker_dim)
        self.embed = nn.Embedding(self.num_stages * self.codebook_size, hidden_dim)
        self.register_buffer("stage_offset", torch.arange(self.num_stages) * self.codebook_size, persistent=False)
        self.encoder = nn.ModuleList([_ConvBlock(hidden_dim, kernel_size, 2 ** (j % dilation_cycle), dropout)
                                      for j in range(encoder_layers)])
        self.attention = nn.ModuleList([
            nn.TransformerEncoderLayer(hidden_dim, num_heads, ffn_dim, dropout, activation="gelu", batch_first=True,
                                       norm_first=True)
            for _ in range(transformer_layers)])
        self.encoder_norm = nn.LayerNorm(hidden_dim)
        self.target_voice = nn.Parameter(torch.randn(hidden_dim) / math.sqrt(hidden_dim))
        self.speaker_proj = nn.Linear(self.speaker_dim, hidden_dim) if self.speaker_dim > 0 else None
        self.stretch_proj = nn.Linear(1, hidden_dim)
        self.decoder = nn.ModuleList([_ConvBlock(hidden_dim, kernel_size, 2 ** (j % dilation_cycle), dropout)
                                      for j in range(decoder_layers)])
        self.norm = nn.LayerNorm(hidden_dim)
        # no bias: with 2 x 1000 outputs per frame the head is ~80 % of a CPU step, and its bias costs a copy of the
        # logits forward and a reduction over them backward (~10 % of a step); the final LayerNorm's shift gives
        # the head a per-code offset all the same (``W @ beta``)
        self.head = nn.Linear(hidden_dim, self.num_stages * self.codebook_size, bias=False)

    def _check_codes(self, codes: Tensor, lengths: Tensor) -> Tensor:
        if codes.dim() != 3 or codes.shape[-1] != self.num_stages:
            raise ValueError(f"expected codes [B, T, {self.num_stages}], got {list(codes.shape)}")
        if lengths.shape != (codes.shape[0],):
            raise ValueError(f"expected lengths [{codes.shape[0]}], got {list(lengths.shape)}")
        if bool((lengths < 1).any()) or bool((lengths > codes.shape[1]).any()):
            raise ValueError(f"lengths must lie in [1, {codes.shape[1]}], got {lengths.tolist()}")
        codes = codes.long()
        if codes.numel() and (int(codes.min()) < 0 or int(codes.max()) >= self.codebook_size):
            raise ValueError(f"codes must lie in [0, {self.codebook_size}); got [{int(codes.min())}, "
                             f"{int(codes.max())}]")
        return codes

    def _voice(self, speaker: Tensor | None, rows: int) -> Tensor:
        """``[B, 1, hidden]``: the projected speaker vector, or the fixed target voice."""
        if speaker is None:
            return self.target_voice.expand(rows, -1)[:, None]
        if self.speaker_proj is None:
            raise ValueError("this model has no speaker conditioning (speaker_dim=0): pass speaker=None")
        if speaker.shape != (rows, self.speaker_dim):
            raise ValueError(f"expected speaker [{rows}, {self.speaker_dim}], got {list(speaker.shape)}")
        return self.speaker_proj(speaker.to(self.target_voice))[:, None]

    def forward(self, codes: Tensor, lengths: Tensor, target_lengths: Tensor,
                speaker: Tensor | None = None) -> S2SOutput:
        """Source codes ``[B, Ts, S]`` with ``lengths [B]`` -> :class:`S2SOutput` of ``max(target_lengths)``
        frames (frames past a row's target length are padding).

        Raises:
            ValueError: codes of another shape or out of range; lengths outside ``[1, Ts]``; a target length
                < 1; a speaker vector of another size (or to a model without speaker conditioning).
        """
        codes = self._check_codes(codes, lengths)
        lengths = lengths.long().to(codes.device)
        target_lengths = target_lengths.long().to(codes.device)
        if target_lengths.shape != lengths.shape:
            raise ValueError(f"expected target_lengths [{codes.shape[0]}], got {list(target_lengths.shape)}")
        mask = frame_mask(lengths, codes.shape[1])
        x = self.embed(codes + self.stage_offset).sum(dim=2)
        for block in self.encoder:
            x = block(x, mask)
        for layer in self.attention:
            x = layer(x, src_key_padding_mask=~mask)
        x = resample_frames(self.encoder_norm(x), lengths, target_lengths)
        frames = x.shape[1]
        stretch = torch.log(target_lengths.to(x.dtype) / lengths.to(x.dtype))[:, None, None]         # [B, 1, 1]
        x = x + self._voice(speaker, x.shape[0]) + self.stretch_proj(stretch)
        target_mask = frame_mask(target_lengths, frames)
        for block in self.decoder:
            x = block(x, target_mask)
        logits = self.head(self.norm(x)).view(x.shape[0], frames, self.num_stages, self.codebook_size)
        return S2SOutput(logits=logits, lengths=target_lengths)

    @torch.no_grad()
    def convert(self, codes: Tensor, lengths: Tensor, target_lengths: Tensor | None = None,
                rate: float | Tensor = 1.0, speaker: Tensor | None = None) -> S2SConversion:
        """Greedy conversion: the most likely code per stage and frame (call ``.eval()`` first).

        Args:
            target_lengths: output frames per row; None: ``lengths * rate``, rounded (:func:`target_lengths_for`).
            rate: target / source duration when ``target_lengths`` is None (1.0: same duration).
            speaker: target speaker vectors ``[B, speaker_dim]``; None: the fixed target voice.

        Returns:
            :class:`S2SConversion` (lengths are returned too: with a rate the caller did not choose them).

        Example::

            out = model.eval().convert(batch.codes, batch.lengths, rate=1.1)
            codes_uint16 = out.codes.to(torch.uint16)      # the latents table's dtype
        """
        if target_lengths is None:
            target_lengths = target_lengths_for(lengths.long(), rate)
        out = self(codes, lengths, target_lengths, speaker)
        best = out.logits.argmax(dim=-1)
        best = best * frame_mask(out.lengths, best.shape[1])[..., None]
        return S2SConversion(codes=best, lengths=out.lengths)
