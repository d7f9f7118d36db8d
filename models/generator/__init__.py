"""A small steerable latent generator (issue #5 item 2): phonemes + speaker, style, environment, channel vectors
-> codec FSQ codes, non-autoregressive over time.

Build from a preset sized for the inventory, train with :class:`GeneratorLoss`, sample with ``generate``::

    cfg = generator_small().with_phoneme_classes(inventory.num_classes)
    model, loss_fn = build_generator(cfg), build_generator_loss()
    factors = FactorVectors.from_columns(batch)              # the training input's <factor>_vector columns
    out = model(phonemes, phoneme_lengths, factors, lengths, codes=codes)   # logits [B, T, S, codebook]
    losses = loss_fn(out, GeneratorBatch(phonemes, phoneme_lengths, factors, codes, lengths))
    codes = model.eval().generate(phonemes, phoneme_lengths, factors.replace(speaker=voice), lengths)

Phoneme ids come from ``pipelines.phonemes.PhonemeInventory`` (0 = blank/pad, 1 = unknown); the factor vectors
from one factorizer, whose id the checkpoint records.
"""

from __future__ import annotations

from models.generator.builders import build_generator, build_generator_loss, resolve_generator_config
from models.generator.checkpoint import (GeneratorCheckpointError, GeneratorCheckpointMeta, generator_id_for,
                                         load_generator_checkpoint, save_generator_checkpoint)
from models.generator.losses import GeneratorLoss, GeneratorLosses
from models.generator.model import FactorVectors, GeneratorBatch, GeneratorOutput, LatentGenerator, uniform_alignment
from models.generator.presets import PRESETS, generator_small, generator_tiny_test, preset

__all__ = [
    "LatentGenerator", "FactorVectors", "GeneratorBatch", "GeneratorOutput", "uniform_alignment",
    "GeneratorLoss", "GeneratorLosses", "PRESETS", "preset", "generator_small", "generator_tiny_test",
    "build_generator", "build_generator_loss", "resolve_generator_config", "GeneratorCheckpointError",
    "GeneratorCheckpointMeta", "generator_id_for", "save_generator_checkpoint", "load_generator_checkpoint",
]
