"""A small steerable latent generator: phonemes + speaker, style, environment, channel vectors -> FSQ codes.

Non-autoregressive over time, so one training step is one pass over the batch (cheap on CPU):

1. Phoneme encoder: embedding + sinusoidal positions -> residual conv blocks -> self-attention layers
   (phoneme sequences are short, ~60 per 200 frames, so attention costs little here).
2. Length regulation by a *uniform monotonic alignment*: frame ``t`` of a row with ``T`` frames and ``L``
   phonemes reads phoneme ``floor((t + 0.5) L / T)``. Why: the corpus has no phoneme timings, and an
   alignment learned from nothing is a research project; uniform spacing is the honest baseline, and the
   frame decoder's receptive field lets it shift boundaries locally. Each frame also sees where it lies
   inside its phoneme and the row's frames per phoneme (its speaking rate).
3. Conditioning: the four factor vectors, concatenated, make one conditioning vector that is added to every
   frame and scales and shifts every decoder block (FiLM), so each block can steer by voice, style, room
   and channel.
4. Frame decoder: FiLM-conditioned residual conv blocks, dilated 1, 2, 4, ...
5. One head per FSQ stage over its ``codebook_size`` codes. With ``stage_conditioning`` stage ``s`` also sees
   embeddings of the codes of stages ``< s`` (teacher-forced in training, sampled in order by
   :meth:`LatentGenerator.generate`): residual FSQ stages quantize what earlier stages left, so a later
   stage's code is much more predictable given the earlier ones.

The frame count is an input (the caller decides the duration); a duration model is future work.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from models.factorizer.layers import ConvStack, frame_mask
from schemas.factors import FACTOR_DIMS, VECTOR_COLUMNS

__all__ = ["FactorVectors", "GeneratorBatch", "GeneratorOutput", "LatentGenerator", "uniform_alignment"]

_FRAMES_PER_PHONEME = 4.0  # ~50 Hz / 12 phonemes/s: centres the log-rate feature


@dataclass
class FactorVectors:
    """The global factors of a batch, each ``[B, dim]`` float (one factorizer's vectors, as in ``factors``)."""

    speaker: Tensor
    style: Tensor
    environment: Tensor
    channel: Tensor

    @classmethod
    def from_columns(cls, batch: Mapping[str, Any]) -> "FactorVectors":
        """From a training-input batch's ``<factor>_vector`` columns (numpy ``[B, dim]`` or tensors).

        Raises:
            KeyError: a vector column is missing (the batch was read without factors).
        """
        missing = [column for column in VECTOR_COLUMNS.values() if column not in batch]
        if missing:
            raise KeyError(f"batch lacks factor vector column(s) {', '.join(missing)} (read it with factors)")
        return cls(**{name: torch.as_tensor(batch[column], dtype=torch.float32)
                      for name, column in VECTOR_COLUMNS.items()})

    def replace(self, **vectors: Tensor) -> "FactorVectors":
        """A copy with some factors swapped (steering: ``factors.replace(speaker=other.speaker)``)."""
        return dataclasses.replace(self, **vectors)

    def concatenated(self) -> Tensor:
        """``[B, sum of dims]``, in ``FACTOR_DIMS`` order."""
        return torch.cat([getattr(self, name).float() for name in FACTOR_DIMS], dim=-1)


@dataclass
class GeneratorBatch:
    """Training rows: phoneme ids ``[B, L]`` (0-padded) and counts ``[B]``, factor vectors, target codes
    ``[B, T, S]`` (any int dtype, e.g. the training input's uint16) and frame counts ``[B]``."""

    phonemes: Tensor
    phoneme_lengths: Tensor
    factors: FactorVectors
    codes: Tensor
    lengths: Tensor

    def __len__(self) -> int:
        return self.codes.shape[0]


@dataclass
class GeneratorOutput:
    """Per-frame, per-stage code logits ``[B, T, S, codebook_size]`` and valid frames ``[B]``."""

    logits: Tensor
    lengths: Tensor


def uniform_alignment(phoneme_lengths: Tensor, lengths: Tensor, num_frames: int) -> tuple[Tensor, Tensor]:
    """Phoneme index ``[B, T]`` of every frame and the frame's position inside that phoneme ``[B, T]`` in [0, 1].

    Frame ``t`` reads phoneme ``floor((t + 0.5) * L_b / T_b)``: every phoneme gets ``T_b / L_b`` frames, in
    order. Frames past a row's length repeat its last phoneme (they are masked downstream).

    Example:
        >>> uniform_alignment(torch.tensor([2]), torch.tensor([5]), 6)[0].tolist()
        [[0, 0, 1, 1, 1, 1]]
    """
    t = torch.arange(num_frames, device=lengths.device, dtype=torch.float32) + 0.5
    pos = t[None, :] * (phoneme_lengths.float() / lengths.float())[:, None]
    index = torch.minimum(pos.floor().long(), (phoneme_lengths.long() - 1)[:, None])
    return index, (pos - index).clamp(0.0, 1.0)


def _sinusoids(length: int, dim: int, device: torch.device) -> Tensor:
    """``[length, dim]`` sinusoidal positions (Vaswani et al. 2017): tells attention the phoneme order."""
    pos = torch.arange(length, device=device, dtype=torch.float32)[:, None]
    freq = torch.exp(torch.arange(0, dim, 2, device=device, dtype=torch.float32) * (-math.log(1e4) / dim))
    out = torch.zeros(length, dim, device=device)
    out[:, 0::2] = torch.sin(pos * freq)
    out[:, 1::2] = torch.cos(pos * freq)[:, : dim // 2]
    return out


class LatentGenerator(nn.Module):
    """Phonemes + factor vectors + frame counts -> per-frame code logits of each FSQ stage.

    Args:
        num_stages, codebook_size: the codec's FSQ stages and codes per stage.
        phoneme_classes: phoneme ids incl. blank/pad (0) and unknown (1): ``PhonemeInventory.num_classes``.
        speaker_dim, style_dim, environment_dim, channel_dim: sizes of the factor vectors.
        hidden_dim: width of every layer.
        encoder_layers, encoder_attention_layers, num_heads, ffn_dim: the phoneme encoder.
        decoder_layers: FiLM-conditioned conv blocks over frames (dilations 1, 2, 4, ...).
        kernel_size: odd; of every conv.
        stage_conditioning: stage ``s`` sees the codes of stages ``< s``.
        dropout: in every block.

    Example:
        >>> m = LatentGenerator(codebook_size=10, phoneme_classes=8, hidden_dim=16, encoder_attention_layers=0,
        ...                     decoder_layers=1).eval()
        >>> f = FactorVectors(torch.zeros(2, 64), torch.zeros(2, 16), torch.zeros(2, 16), torch.zeros(2, 16))
        >>> codes = m.generate(torch.tensor([[2, 3, 4], [5, 6, 0]]), torch.tensor([3, 2]), f, torch.tensor([9, 7]))
        >>> tuple(codes.shape)
        (2, 9, 2)
    """

    def __init__(self, *, num_stages: int = 2, codebook_size: int = 1000, phoneme_classes: int = 64,
                 speaker_dim: int = FACTOR_DIMS["speaker"], style_dim: int = FACTOR_DIMS["style"],
                 environment_dim: int = FACTOR_DIMS["environment"], channel_dim: int = FACTOR_DIMS["channel"],
                 hidden_dim: int = 96, encoder_layers: int = 3, encoder_attention_layers: int = 1, num_heads: int = 2,
                 ffn_dim: int = 192, decoder_layers: int = 4, kernel_size: int = 5, stage_conditioning: bool = True,
                 dropout: float = 0.0) -> None:
        super().__init__()
        self.num_stages, self.codebook_size = int(num_stages), int(codebook_size)
        self.phoneme_classes, self.hidden_dim = int(phoneme_classes), int(hidden_dim)
        self.factor_dims = {"speaker": int(speaker_dim), "style": int(style_dim),
                            "environment": int(environment_dim), "channel": int(channel_dim)}
        h = self.hidden_dim
        self.phoneme_embed = nn.Embedding(self.phoneme_classes, h)
        self.encoder = ConvStack(in_channels=h, channels=h, num_layers=encoder_layers, kernel_size=kernel_size,
                                 dropout=dropout)
        self.attention = nn.ModuleList([
            nn.TransformerEncoderLayer(h, num_heads, ffn_dim, dropout, activation="gelu", batch_first=True,
                                       norm_first=True)
            for _ in range(encoder_attention_layers)])
        self.position = nn.Linear(2, h)
        self.condition = nn.Sequential(nn.Linear(sum(self.factor_dims.values()), h), nn.GELU())
        self.condition_in = nn.Linear(h, h)
        self.decoder = ConvStack(in_channels=h, channels=h, num_layers=decoder_layers, kernel_size=kernel_size,
                                 dropout=dropout, cond_dim=h)
        self.stage_in = nn.ModuleList([nn.Linear(h, h) for _ in range(self.num_stages)])
        self.heads = nn.ModuleList([nn.Linear(h, self.codebook_size) for _ in range(self.num_stages)])
        conditioned = bool(stage_conditioning) and self.num_stages > 1
        self.stage_embed = nn.Embedding((self.num_stages - 1) * self.codebook_size, h) if conditioned else None
        self.register_buffer("stage_offset", torch.arange(max(self.num_stages - 1, 1)) * self.codebook_size,
                             persistent=False)

    # -- inputs ---------------------------------------------------------------------------------------------------

    def _check(self, phonemes: Tensor, phoneme_lengths: Tensor, factors: FactorVectors, lengths: Tensor,
               codes: Tensor | None) -> None:
        if phonemes.dim() != 2:
            raise ValueError(f"expected phonemes [B, L], got {list(phonemes.shape)}")
        rows, width = phonemes.shape
        for name, t in (("phoneme_lengths", phoneme_lengths), ("lengths", lengths)):
            if t.shape != (rows,):
                raise ValueError(f"expected {name} [{rows}], got {list(t.shape)}")
        if phonemes.numel() and (int(phonemes.min()) < 0 or int(phonemes.max()) >= self.phoneme_classes):
            raise ValueError(f"phoneme ids must lie in [0, {self.phoneme_classes}); got [{int(phonemes.min())}, "
                             f"{int(phonemes.max())}]")
        if rows and (int(phoneme_lengths.min()) < 1 or int(phoneme_lengths.max()) > width):
            raise ValueError(f"phoneme_lengths must lie in [1, {width}] (every row needs a phoneme)")
        if rows and int(lengths.min()) < 1:
            raise ValueError("lengths (frames to generate) must be >= 1")
        for name, dim in self.factor_dims.items():
            vector = getattr(factors, name)
            if vector.shape != (rows, dim):
                raise ValueError(f"expected {name} vectors [{rows}, {dim}], got {list(vector.shape)}")
        if codes is not None:
            if codes.dim() != 3 or codes.shape[0] != rows or codes.shape[2] != self.num_stages:
                raise ValueError(f"expected codes [{rows}, T, {self.num_stages}], got {list(codes.shape)}")
            if rows and codes.shape[1] < int(lengths.max()):
                raise ValueError(f"codes have {codes.shape[1]} frames, lengths ask for up to {int(lengths.max())}")
            if codes.numel() and (int(codes.min()) < 0 or int(codes.max()) >= self.codebook_size):
                raise ValueError(f"codes must lie in [0, {self.codebook_size}); got [{int(codes.min())}, "
                                 f"{int(codes.max())}]")

    # -- the network ----------------------------------------------------------------------------------------------

    def _encode_phonemes(self, phonemes: Tensor, phoneme_lengths: Tensor) -> Tensor:
        """Phoneme states ``[B, L, H]`` (zero past each row's count)."""
        mask = frame_mask(phoneme_lengths, phonemes.shape[1])                       # [B, 1, L]
        x = self.phoneme_embed(phonemes) + _sinusoids(phonemes.shape[1], self.hidden_dim, phonemes.device)
        x = self.encoder(x.transpose(1, 2), mask).transpose(1, 2)
        for layer in self.attention:
            x = layer(x, src_key_padding_mask=mask[:, 0] == 0)
        return x * mask.transpose(1, 2)

    def _trunk(self, phonemes: Tensor, phoneme_lengths: Tensor, factors: FactorVectors, lengths: Tensor,
               num_frames: int) -> tuple[Tensor, Tensor]:
        """Decoder states ``[B, T, H]`` and the frame mask ``[B, 1, T]``."""
        states = self._encode_phonemes(phonemes, phoneme_lengths)
        index, within = uniform_alignment(phoneme_lengths, lengths, num_frames)
        x = states.gather(1, index[..., None].expand(-1, -1, self.hidden_dim))    # [B, T, H]
        rate = torch.log(lengths.float() / phoneme_lengths.float() / _FRAMES_PER_PHONEME)
        x = x + self.position(torch.stack([2 * within - 1, rate[:, None].expand_as(within)], dim=-1))
        cond = self.condition(factors.concatenated().to(x.device))
        x = x + self.condition_in(cond)[:, None, :]
        mask = frame_mask(lengths, num_frames)
        return self.decoder(x.transpose(1, 2), mask, cond).transpose(1, 2), mask

    def _stage_logits(self, h: Tensor, stage: int, previous: Tensor | None) -> Tensor:
        """Logits ``[B, T, K]`` of one stage; ``previous``: summed embeddings of the codes of earlier stages."""
        z = self.stage_in[stage](h)
        if previous is not None:
            z = z + previous
        return self.heads[stage](F.gelu(z))

    def _embed_stage(self, codes: Tensor, stage: int) -> Tensor:
        return self.stage_embed(codes + self.stage_offset[stage])

    def forward(self, phonemes: Tensor, phoneme_lengths: Tensor, factors: FactorVectors, lengths: Tensor,
                codes: Tensor | None = None) -> GeneratorOutput:
        """Code logits for ``lengths`` frames per row (frames past a length are padding).

        Args:
            codes: target codes ``[B, T, S]`` (``T >= max(lengths)``; fixes ``T``): with stage conditioning,
                stage ``s`` is teacher-forced on their stages ``< s``. Needed only with stage conditioning.

        Raises:
            ValueError: badly shaped or out-of-range inputs; no codes for a stage-conditioned model.
        """
        codes = None if codes is None else codes.long()   # uint16 has few ops
        self._check(phonemes, phoneme_lengths, factors, lengths, codes)
        if self.stage_embed is not None and codes is None:
            raise ValueError("this generator conditions stage s on the codes of stages < s: pass the target codes "
                             "(teacher forcing) or sample with generate()")
        device = phonemes.device
        phoneme_lengths, lengths = phoneme_lengths.long().to(device), lengths.long().to(device)
        num_frames = codes.shape[1] if codes is not None else int(lengths.max())
        h, _ = self._trunk(phonemes.long(), phoneme_lengths, factors, lengths, num_frames)
        logits, previous = [], None
        for s in range(self.num_stages):
            logits.append(self._stage_logits(h, s, previous))
            if self.stage_embed is not None and s < self.num_stages - 1:
                step = self._embed_stage(codes[..., s].to(device), s)
                previous = step if previous is None else previous + step
        return GeneratorOutput(logits=torch.stack(logits, dim=2).float(), lengths=lengths)

    @torch.no_grad()
    def generate(self, phonemes: Tensor, phoneme_lengths: Tensor, factors: FactorVectors, lengths: Tensor, *,
                 temperature: float = 0.0, top_k: int | None = None,
                 generator: torch.Generator | None = None) -> Tensor:
        """Codes ``[B, max(lengths), S]`` (long, 0 past each row's length), stage by stage.

        Args:
            temperature: 0 = greedy (argmax); > 0 samples from ``softmax(logits / temperature)``.
            top_k: sample among the ``top_k`` likeliest codes only.
            generator: for reproducible sampling.

        Call ``model.eval()`` first if the model has dropout.

        Raises:
            ValueError: bad inputs; a negative temperature or ``top_k < 1``.
        """
        if temperature < 0 or (top_k is not None and top_k < 1):
            raise ValueError(f"temperature must be >= 0 and top_k >= 1, got {temperature}, {top_k}")
        self._check(phonemes, phoneme_lengths, factors, lengths, None)
        device = phonemes.device
        phoneme_lengths, lengths = phoneme_lengths.long().to(device), lengths.long().to(device)
        h, mask = self._trunk(phonemes.long(), phoneme_lengths, factors, lengths, int(lengths.max()))
        codes = torch.zeros(*h.shape[:2], self.num_stages, dtype=torch.long, device=device)
        previous = None
        for s in range(self.num_stages):
            codes[..., s] = _pick(self._stage_logits(h, s, previous), temperature, top_k, generator)
            if self.stage_embed is not None and s < self.num_stages - 1:
                step = self._embed_stage(codes[..., s], s)
                previous = step if previous is None else previous + step
        return codes * mask[:, 0, :, None].long()


def _pick(logits: Tensor, temperature: float, top_k: int | None, generator: torch.Generator | None) -> Tensor:
    """Codes ``[B, T]`` from logits ``[B, T, K]``: argmax at temperature 0, else a (top-k) sample."""
    if temperature == 0:
        return logits.argmax(dim=-1)
    scaled = logits.float() / temperature
    if top_k is not None and top_k < scaled.shape[-1]:
        kth = scaled.topk(top_k, dim=-1).values[..., -1:]
        scaled = scaled.masked_fill(scaled < kth, float("-inf"))
    probs = torch.softmax(scaled, dim=-1).reshape(-1, scaled.shape[-1])
    return torch.multinomial(probs, 1, generator=generator).view(logits.shape[:-1])
