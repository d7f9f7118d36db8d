"""The factorizer: codec latents -> (content stream, speaker, style, environment, channel) -> latents.

Latents are the codec's quantized latent ``[B, D, T]`` (``SpeechCodec.codes_to_latent``)
with ``lengths [B]`` in frames; frames beyond a row's length are ignored.

- Global encoder: conv residual stack -> attentive statistics pooling -> one
  linear projection per factor, L2-normalized (cosine search in a vector index).
- Content encoder: conv residual stack -> ``C`` channels (C small) -> instance
  norm over time -> FSQ. The narrow, normalized, quantized stream is the
  information bottleneck that leaves global information to the global vectors.
- Decoder: content -> conv residual stack FiLM-conditioned on the concatenated
  global vectors -> ``tanh x latent_bound`` (stays in the codec grid's range).
- Classifier heads on the global vectors, and a speaker adversary on the content
  behind a gradient-reversal layer.

Recombination is :func:`swap_factors` then :meth:`Factorizer.decode`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields, replace

import torch
from torch import Tensor, nn
from torch.nn import functional as F
from torch.nn.utils.rnn import pad_sequence

from models.codec.fsq import FSQ
from models.factorizer.layers import AttentiveStatsPool, ContentAdversary, ConvStack, frame_mask, \
    masked_instance_norm, reverse_gradient
from schemas.factorizer import FACTOR_NAMES

__all__ = ["FactorizerEncoding", "FactorLogits", "SwapCycle", "ParallelSwap", "FactorizerOutput", "FactorizerBatch",
           "Factorizer", "swap_factors", "pad_latents"]

#: How far each factor's donor is rolled across the batch in the swap cycle: a different donor per factor,
#: so the decoder is trained on mixes (content A + speaker B + style C ...), as recombination uses it.
_SWAP_SHIFTS = {name: k + 1 for k, name in enumerate(FACTOR_NAMES)}


@dataclass
class FactorizerEncoding:
    """A batch of utterances split into factors.

    Attributes:
        content: quantized content ``[B, C, T]`` (on the content FSQ grid, zero beyond lengths).
        speaker, style, environment, channel: unit-norm vectors ``[B, dim]``.
        lengths: valid frames per row ``[B]`` (int64).
    """

    content: Tensor
    speaker: Tensor
    style: Tensor
    environment: Tensor
    channel: Tensor
    lengths: Tensor


@dataclass
class FactorLogits:
    """Classifier logits ``[B, classes]`` per factor; None where the model has no head for it."""

    speaker: Tensor | None = None
    style: Tensor | None = None
    environment: Tensor | None = None
    channel: Tensor | None = None


@dataclass
class SwapCycle:
    """The swap-consistency pass: decode content with other rows' globals, then encode the result again.

    Attributes:
        swapped: what was decoded (each row's own content, each factor from another row).
        recon: the decoded latent ``[B, D, T]``.
        reencoded: the factorizer's encoding of ``recon``.
        reencoded_content_bounded: the re-encoded content before FSQ rounding ``[B, C, T]`` (smooth target
            for a content loss).
    """

    swapped: FactorizerEncoding
    recon: Tensor
    reencoded: FactorizerEncoding
    reencoded_content_bounded: Tensor


@dataclass
class ParallelSwap:
    """The direct swap target pass: row A's content with the speaker of its parallel partner B, decoded.

    Attributes:
        rows: int64 ``[P]`` rows of the batch that have a partner.
        recon: the decoded latent ``[P, D, T]`` (A's frames).
        target: B's latent warped onto A's frames ``[P, D, T]`` (the ground truth of ``recon``).
        lengths: A's valid frames ``[P]``.
    """

    rows: Tensor
    recon: Tensor
    target: Tensor
    lengths: Tensor


@dataclass
class FactorizerOutput:
    """One training forward pass.

    Attributes:
        encoding: the factors of the input.
        recon: the input's reconstruction ``[B, D, T]`` from its own factors (zero beyond lengths).
        logits: classifier logits on the global vectors.
        adversary_logits: speaker logits from the content (gradient reversed into the content encoder), or None.
        cycle: the swap cycle, when asked for.
        parallel: the direct swap targets' pass, when the batch has parallel targets.
    """

    encoding: FactorizerEncoding
    recon: Tensor
    logits: FactorLogits
    adversary_logits: Tensor | None
    cycle: SwapCycle | None = None
    parallel: ParallelSwap | None = None


@dataclass
class FactorizerBatch:
    """Training rows: padded latents, their lengths and class labels (``UNKNOWN_LABEL`` = -100 where unknown).

    Attributes:
        latent: ``[B, D, T]`` float32, padded with anything (it is masked).
        lengths: ``[B]`` int64, each in ``[1, T]``.
        speaker, style, environment, channel: ``[B]`` int64 class indices, or None (all unknown).
        target: ``[B, D, T]`` a parallel partner's latent warped onto each row's frames (see
            ``pipelines.factorizer_pairs``), or None; read only where ``has_target``.
        has_target: ``[B]`` bool, or None (no row has a partner).
    """

    latent: Tensor
    lengths: Tensor
    speaker: Tensor | None = None
    style: Tensor | None = None
    environment: Tensor | None = None
    channel: Tensor | None = None
    target: Tensor | None = None
    has_target: Tensor | None = None

    def target_rows(self) -> Tensor | None:
        """Indices of the rows with a parallel target, or None when there are none."""
        if self.target is None or self.has_target is None or not bool(self.has_target.any()):
            return None
        return torch.nonzero(self.has_target, as_tuple=False)[:, 0]

    def __len__(self) -> int:
        return self.latent.shape[0]

    def labels(self, factor: str) -> Tensor | None:
        """The label column of one factor."""
        return getattr(self, factor)

    def to(self, device: torch.device | str) -> "FactorizerBatch":
        """A copy with every tensor on ``device``."""
        return FactorizerBatch(**{f.name: None if getattr(self, f.name) is None else getattr(self, f.name).to(device)
                                  for f in fields(self)})


def pad_latents(latents: Sequence[Tensor]) -> tuple[Tensor, Tensor]:
    """Latents ``[D, T_i]`` of different lengths -> zero-padded ``[B, D, max T]`` and lengths ``[B]``.

    Example:
        >>> latent, lengths = pad_latents([torch.zeros(4, 3), torch.zeros(4, 5)])
        >>> tuple(latent.shape), lengths.tolist()
        ((2, 4, 5), [3, 5])
    """
    if not latents:
        raise ValueError("no latents to pad")
    lengths = torch.tensor([x.shape[-1] for x in latents], dtype=torch.long)
    return pad_sequence([x.transpose(0, 1) for x in latents], batch_first=True).transpose(1, 2), lengths


def swap_factors(target: FactorizerEncoding, donor: FactorizerEncoding, factors: Sequence[str]) -> FactorizerEncoding:
    """``target`` with the named global factors taken from ``donor`` (content and lengths stay the target's).

    A donor of batch size 1 gives its vectors to every target row.

    Example:
        >>> f = Factorizer(hidden_dim=16, num_layers=1, kernel_size=3, content_levels=[5, 5]).eval()
        >>> a = f.encode(torch.randn(1, 4, 20), torch.tensor([20]))
        >>> b = f.encode(torch.randn(1, 4, 30), torch.tensor([30]))
        >>> mixed = swap_factors(a, b, ["speaker", "style"])    # A's words, B's voice and style
        >>> torch.equal(mixed.speaker, b.speaker), torch.equal(mixed.content, a.content), tuple(f.decode(mixed).shape)
        (True, True, (1, 4, 20))
    """
    unknown = [f for f in factors if f not in FACTOR_NAMES]
    if unknown:
        raise ValueError(f"cannot swap {unknown}: swappable factors are {list(FACTOR_NAMES)} (content stays "
                         "the target's; to keep another row's content, make it the target)")
    rows = target.content.shape[0]
    swapped = {}
    for name in factors:
        vec = getattr(donor, name)
        if vec.shape[0] not in (1, rows):
            raise ValueError(f"donor has {vec.shape[0]} rows for {name}, target has {rows} (give 1 or {rows})")
        swapped[name] = vec.expand(rows, -1)
    return replace(target, **swapped)


class Factorizer(nn.Module):
    """Splits codec latents into a content stream and global factor vectors, and puts any mix back together.

    Args:
        latent_dim: channels ``D`` of the codec latent.
        latent_bound: the decoder's output is ``tanh(.) x latent_bound``.
        hidden_dim, num_layers, kernel_size: size of each of the three conv stacks (global, content, decoder).
        content_levels: FSQ levels of each content channel (``C = len(content_levels)``).
        speaker_dim, style_dim, environment_dim, channel_dim: global vector sizes.
        num_speakers, num_styles, num_environments, num_channels: classifier classes (0 = no head);
            ``num_speakers > 0`` also adds the content adversary.
        dropout: inside the residual blocks.

    Example:
        >>> f = Factorizer(hidden_dim=16, num_layers=2, kernel_size=3, content_levels=[5, 5], num_speakers=3).eval()
        >>> enc = f.encode(torch.zeros(2, 4, 50), torch.tensor([50, 30]))
        >>> tuple(enc.content.shape), tuple(enc.speaker.shape), tuple(f.decode(enc).shape)
        ((2, 2, 50), (2, 64), (2, 4, 50))
    """

    def __init__(self, *, latent_dim: int = 4, latent_bound: float = 1.25, hidden_dim: int = 96, num_layers: int = 4,
                 kernel_size: int = 5, content_levels: Sequence[int] = (5, 5, 5, 5), speaker_dim: int = 64,
                 style_dim: int = 16, environment_dim: int = 16, channel_dim: int = 16, num_speakers: int = 0,
                 num_styles: int = 0, num_environments: int = 0, num_channels: int = 0,
                 dropout: float = 0.0) -> None:
        super().__init__()
        self.latent_dim = int(latent_dim)
        self.latent_bound = float(latent_bound)
        self.factor_dims = {"speaker": speaker_dim, "style": style_dim, "environment": environment_dim,
                            "channel": channel_dim}
        self.num_classes = {"speaker": num_speakers, "style": num_styles, "environment": num_environments,
                            "channel": num_channels}
        stack = dict(channels=hidden_dim, num_layers=num_layers, kernel_size=kernel_size, dropout=dropout)
        self.content_quantizer = FSQ(levels=content_levels)
        content_dim = self.content_quantizer.dim
        self.content_encoder = ConvStack(in_channels=latent_dim, **stack)
        self.content_proj = nn.Conv1d(hidden_dim, content_dim, 1)
        self.global_encoder = ConvStack(in_channels=latent_dim, **stack)
        self.pool = AttentiveStatsPool(channels=hidden_dim, attention_dim=max(hidden_dim // 2, 1))
        self.global_proj = nn.ModuleDict({name: nn.Linear(2 * hidden_dim, dim)
                                          for name, dim in self.factor_dims.items()})
        self.decoder = ConvStack(in_channels=content_dim, cond_dim=sum(self.factor_dims.values()), **stack)
        self.out_proj = nn.Conv1d(hidden_dim, latent_dim, 1)
        self.heads = nn.ModuleDict({name: nn.Linear(self.factor_dims[name], n)
                                    for name, n in self.num_classes.items() if n > 0})
        self.adversary = (ContentAdversary(content_dim=content_dim, hidden_dim=hidden_dim, num_classes=num_speakers)
                          if num_speakers > 0 else None)

    @property
    def content_dim(self) -> int:
        """Channels ``C`` of the content stream."""
        return self.content_quantizer.dim

    @property
    def content_codebook_size(self) -> int:
        """Distinct content codes per frame (prod of the content levels)."""
        return self.content_quantizer.codebook_size

    def _mask(self, latent: Tensor, lengths: Tensor) -> Tensor:
        if latent.dim() != 3 or latent.shape[1] != self.latent_dim:
            raise ValueError(f"expected latent [B, {self.latent_dim}, T], got {list(latent.shape)}")
        if lengths.shape != (latent.shape[0],):
            raise ValueError(f"expected lengths [{latent.shape[0]}], got {list(lengths.shape)}")
        if lengths.numel() and (int(lengths.min()) < 1 or int(lengths.max()) > latent.shape[-1]):
            raise ValueError(f"lengths must lie in [1, {latent.shape[-1]}], got {lengths.tolist()}")
        return frame_mask(lengths, latent.shape[-1], latent.dtype)

    def _encode(self, latent: Tensor, lengths: Tensor) -> tuple[FactorizerEncoding, Tensor]:
        """The encoding and the content before FSQ rounding (zero beyond lengths)."""
        mask = self._mask(latent, lengths)
        x = latent * mask
        z = masked_instance_norm(self.content_proj(self.content_encoder(x, mask)), mask)
        q = self.content_quantizer(z)
        pooled = self.pool(self.global_encoder(x, mask), mask)
        vectors = {name: F.normalize(proj(pooled), dim=-1) for name, proj in self.global_proj.items()}
        return FactorizerEncoding(content=q.latent * mask, lengths=lengths, **vectors), q.bounded * mask

    def encode(self, latent: Tensor, lengths: Tensor) -> FactorizerEncoding:
        """Latent ``[B, D, T]`` with ``lengths [B]`` -> its factors (differentiable; wrap in
        ``torch.inference_mode()`` for inference)."""
        return self._encode(latent, lengths)[0]

    def decode(self, encoding: FactorizerEncoding) -> Tensor:
        """Factors (any mix, see :func:`swap_factors`) -> latent ``[B, D, T]``, zero beyond lengths."""
        content = encoding.content
        if content.dim() != 3 or content.shape[1] != self.content_dim:
            raise ValueError(f"expected content [B, {self.content_dim}, T], got {list(content.shape)}")
        mask = frame_mask(encoding.lengths, content.shape[-1], content.dtype)
        cond = torch.cat([getattr(encoding, name) for name in FACTOR_NAMES], dim=-1)
        h = self.decoder(content * mask, mask, cond)
        return torch.tanh(self.out_proj(h)) * self.latent_bound * mask

    def classify(self, encoding: FactorizerEncoding) -> FactorLogits:
        """Classifier logits for every factor that has a head."""
        return FactorLogits(**{name: head(getattr(encoding, name)) for name, head in self.heads.items()})

    def forward(self, latent: Tensor, lengths: Tensor, *, swap_cycle: bool = False,
                parallel_target: Tensor | None = None, parallel_rows: Tensor | None = None) -> FactorizerOutput:
        """Encode, reconstruct, classify and (if ``swap_cycle``) run the swap cycle, for training.

        The swap cycle decodes each row's content with global vectors rolled across the batch (a different
        shift per factor) and encodes the result again; ``FactorizerLoss`` asks the re-encoded factors to
        equal those put in.

        ``parallel_target [B, D, T]`` and ``parallel_rows [P]``: for each listed row, its parallel partner's
        latent on the row's frames. The partner is encoded, its speaker vector replaces the row's, and the
        mix is decoded (``output.parallel``); ``FactorizerLoss`` compares it with the partner's latent. This
        is the one term that shows the decoder a voice change with its true result.
        """
        encoding = self.encode(latent, lengths)
        parallel = None
        if parallel_target is not None and parallel_rows is not None and parallel_rows.numel():
            rows = parallel_rows.to(device=latent.device, dtype=torch.long)
            sub_lengths = lengths[rows]
            target = parallel_target[rows]
            partner = self.encode(target, sub_lengths)
            own = FactorizerEncoding(content=encoding.content[rows], lengths=sub_lengths,
                                     **{name: getattr(encoding, name)[rows] for name in FACTOR_NAMES})
            parallel = ParallelSwap(rows=rows, recon=self.decode(replace(own, speaker=partner.speaker)),
                                    target=target * frame_mask(sub_lengths, target.shape[-1], target.dtype),
                                    lengths=sub_lengths)
        adversary_logits = None
        if self.adversary is not None:
            mask = frame_mask(lengths, latent.shape[-1], latent.dtype)
            adversary_logits = self.adversary(reverse_gradient(encoding.content), mask)
        cycle = None
        if swap_cycle:
            swapped = replace(encoding, **{name: torch.roll(getattr(encoding, name), shift, dims=0)
                                           for name, shift in _SWAP_SHIFTS.items()})
            swapped_recon = self.decode(swapped)
            reencoded, bounded = self._encode(swapped_recon, lengths)
            cycle = SwapCycle(swapped=swapped, recon=swapped_recon, reencoded=reencoded,
                              reencoded_content_bounded=bounded)
        return FactorizerOutput(encoding=encoding, recon=self.decode(encoding), logits=self.classify(encoding),
                                adversary_logits=adversary_logits, cycle=cycle, parallel=parallel)

    def content_to_codes(self, content: Tensor) -> Tensor:
        """Content ``[B, C, T]`` -> one code per frame ``[B, T]`` (int64, in ``[0, content_codebook_size)``)."""
        return self.content_quantizer.latent_to_codes(content)[..., 0]

    def codes_to_content(self, codes: Tensor) -> Tensor:
        """Content codes ``[B, T]`` (any int dtype) -> content ``[B, C, T]`` (exact inverse of content_to_codes)."""
        return self.content_quantizer.codes_to_latent(codes.unsqueeze(-1))
