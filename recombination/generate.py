"""Generation as a recombination maker: content's phonemes + donors' factor vectors -> new codes, via the generator.

Where :func:`recombination.swap.recombine` decodes the content *stream* of A
with the donors' vectors, this samples fresh codes from the generator given
A's phonemes (of its transcript) and the donors' vectors, for as many frames
as A has. The output is the same :class:`recombination.swap.Recombined`
(codes, vectors put in, A's content stream, and the factorizer's re-encoding
of the new codes), so the gates (:func:`recombination.swap.latent_scores`,
:mod:`recombination.gates`) judge generated rows exactly as swapped ones:
does the output carry the target speaker, environment..., and A's content.

No Ray and no IO here; ``pipelines.recombine_stage`` feeds it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch

from recombination.swap import Recombined, SegmentFactors
from schemas.factorizer import FACTOR_NAMES

__all__ = ["generate_rows"]


@torch.inference_mode()
def generate_rows(generator, factorizer, codec, factors: SegmentFactors, *, content_rows: Sequence[int],
                  donor_rows: Mapping[str, Sequence[int]], phonemes: Sequence[Sequence[int]],
                  temperature: float = 0.0, seed: int = 0) -> Recombined:
    """One output per plan row: ``phonemes[b]`` spoken with factor ``f`` of ``factors[donor_rows[f][b]]``.

    A factor missing from ``donor_rows`` comes from the content row itself. ``temperature`` 0 is greedy; above
    0 sampling is seeded by ``seed`` (the same batch gives the same codes).
    """
    from models.generator.model import FactorVectors

    rows = torch.as_tensor(list(content_rows), dtype=torch.int64)
    lengths = factors.lengths[rows]
    put_in = {name: factors.vectors[name][torch.as_tensor(list(donor_rows.get(name, content_rows)),
                                                          dtype=torch.int64)] for name in FACTOR_NAMES}
    ids = torch.zeros(len(phonemes), max(len(p) for p in phonemes), dtype=torch.int64)
    for i, p in enumerate(phonemes):
        ids[i, :len(p)] = torch.as_tensor(list(p), dtype=torch.int64)
    phoneme_lengths = torch.as_tensor([len(p) for p in phonemes], dtype=torch.int64)
    rng = torch.Generator().manual_seed(int(seed)) if temperature > 0 else None
    codes = generator.generate(ids, phoneme_lengths, FactorVectors(**put_in), lengths, temperature=temperature,
                               generator=rng)
    check = factorizer.encode(codec.codes_to_latent(codes), lengths)
    frames = int(lengths.max())
    out = [codes[b, :int(lengths[b])].numpy().astype(np.uint16) for b in range(len(rows))]
    return Recombined(codes=out, lengths=lengths, put_in=put_in, content=factors.content[rows, :, :frames],
                      check={name: getattr(check, name) for name in FACTOR_NAMES}, check_content=check.content)
