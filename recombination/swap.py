"""Recombination in latent space: factorize a batch of segments, mix their factors per plan row, back to codes.

Content of A + speaker of B + style of C + environment of D + channel of E:

1. every distinct segment of the batch is factorized once (codes -> codec
   latent -> ``Factorizer.encode``), in one padded batch (the factorizer
   masks padding, so a segment's factors do not depend on its neighbours);
2. per plan row, the content stream of A and the global vectors of the
   donors make one ``FactorizerEncoding``;
3. the factorizer decodes it to a codec latent, which snaps to the codec's
   FSQ grid (``latent_to_codes``): the output is codes, like a ``latents`` row;
4. the stored codes are re-encoded by the factorizer (``check``), which the
   gates compare with what was put in.

No Ray and no IO here; ``pipelines.recombine_stage`` feeds it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from schemas.factorizer import FACTOR_NAMES

__all__ = ["SegmentFactors", "Recombined", "factorize_codes", "recombine", "latent_scores"]


@dataclass
class SegmentFactors:
    """Factors of a batch of distinct segments (row ``i`` = ``codes[i]`` given to :func:`factorize_codes`)."""

    content: Tensor                  # [N, C, T] quantized content, zero past lengths
    vectors: dict[str, Tensor]       # factor -> [N, dim], unit norm
    lengths: Tensor                  # [N] frames


@dataclass
class Recombined:
    """The outputs of a batch of plan rows."""

    codes: list[np.ndarray]          # per row, uint16 [frames, stages]
    lengths: Tensor                  # [B]
    put_in: dict[str, Tensor]        # factor -> [B, dim]: the vectors each row was made from
    content: Tensor                  # [B, C, T]: the content each row was made from
    check: dict[str, Tensor]         # factor -> [B, dim]: the vectors re-encoded from the stored codes
    check_content: Tensor            # [B, C, T]: the content re-encoded from the stored codes


def _pad_codes(codes: Sequence[np.ndarray]) -> tuple[Tensor, Tensor]:
    lengths = torch.tensor([len(c) for c in codes], dtype=torch.int64)
    stages = codes[0].shape[1]
    out = torch.zeros(len(codes), int(lengths.max()), stages, dtype=torch.int64)
    for i, c in enumerate(codes):
        out[i, :len(c)] = torch.from_numpy(c.astype(np.int64))
    return out, lengths


@torch.inference_mode()
def factorize_codes(factorizer, codec, codes: Sequence[np.ndarray]) -> SegmentFactors:
    """Codes of N segments (each ``[frames, stages]``) -> their factors."""
    padded, lengths = _pad_codes(codes)
    enc = factorizer.encode(codec.codes_to_latent(padded), lengths)
    return SegmentFactors(content=enc.content, vectors={name: getattr(enc, name) for name in FACTOR_NAMES},
                          lengths=lengths)


@torch.inference_mode()
def recombine(factorizer, codec, factors: SegmentFactors, *, content_rows: Sequence[int],
              donor_rows: Mapping[str, Sequence[int]]) -> Recombined:
    """Make one output per plan row: content of ``factors[content_rows[b]]``, factor ``f`` of ``donor_rows[f][b]``.

    A factor missing from ``donor_rows`` comes from the content row itself.
    """
    from models.factorizer.model import FactorizerEncoding

    rows = torch.as_tensor(list(content_rows), dtype=torch.int64)
    lengths = factors.lengths[rows]
    frames = int(lengths.max())
    content = factors.content[rows, :, :frames]
    put_in = {name: factors.vectors[name][torch.as_tensor(list(donor_rows.get(name, content_rows)),
                                                          dtype=torch.int64)] for name in FACTOR_NAMES}
    latent = factorizer.decode(FactorizerEncoding(content=content, lengths=lengths, **put_in))
    codes = codec.latent_to_codes(latent)                       # [B, T, S] int64, nearest grid point
    check = factorizer.encode(codec.codes_to_latent(codes), lengths)
    out = [codes[b, :int(lengths[b])].numpy().astype(np.uint16) for b in range(len(rows))]
    return Recombined(codes=out, lengths=lengths, put_in=put_in, content=content,
                      check={name: getattr(check, name) for name in FACTOR_NAMES}, check_content=check.content)


def _cos(a: Tensor, b: Tensor) -> np.ndarray:
    return torch.nn.functional.cosine_similarity(a.float(), b.float(), dim=-1).numpy()


@torch.inference_mode()
def latent_scores(factorizer, out: Recombined, source_speaker: Tensor) -> dict[str, np.ndarray]:
    """The factorizer's own check of each output: re-encoded factors vs the ones put in.

    Returns per-row float32 arrays: ``factor_speaker_target_sim``,
    ``factor_speaker_source_sim`` (vs the content row's own speaker vector),
    ``factor_{style,environment,channel}_sim`` and ``content_agreement``
    (share of valid frames whose content code is unchanged).
    """
    scores = {"factor_speaker_target_sim": _cos(out.check["speaker"], out.put_in["speaker"]),
              "factor_speaker_source_sim": _cos(out.check["speaker"], source_speaker)}
    for name in ("style", "environment", "channel"):
        scores[f"factor_{name}_sim"] = _cos(out.check[name], out.put_in[name])
    same = factorizer.content_to_codes(out.check_content) == factorizer.content_to_codes(out.content)
    valid = torch.arange(same.shape[-1])[None] < out.lengths[:, None]
    scores["content_agreement"] = ((same & valid).sum(-1).float() / out.lengths.float()).numpy()
    return {k: v.astype(np.float32) for k, v in scores.items()}
