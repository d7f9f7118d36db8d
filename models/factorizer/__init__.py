"""The factorizer: codec latents -> content stream + speaker, style, environment and channel vectors -> latents.

Build from a preset, train with :class:`FactorizerLoss`, recombine with :func:`swap_factors`::

    model, loss_fn = build_factorizer(factorizer_default()), build_factorizer_loss()
    out = model(latent, lengths, swap_cycle=loss_fn.uses_swap_cycle)   # FactorizerOutput
    losses = loss_fn(out, FactorizerBatch(latent=latent, lengths=lengths, speaker=speaker_ids))
    a, b = model.encode(latent_a, lengths_a), model.encode(latent_b, lengths_b)
    latent_mix = model.decode(swap_factors(a, b, ["speaker"]))          # A's content and style, B's voice
"""

from __future__ import annotations

from models.factorizer.builders import build_factorizer, build_factorizer_loss, resolve_model_config
from models.factorizer.checkpoint import (
    FactorizerCheckpointError,
    FactorizerCheckpointMeta,
    export_factorizer_checkpoint,
    factorizer_id_for,
    load_factorizer_checkpoint,
    save_factorizer_checkpoint,
)
from models.factorizer.losses import FactorizerLoss, FactorizerLosses, labelled_cross_entropy
from models.factorizer.model import (
    Factorizer,
    FactorizerBatch,
    FactorizerEncoding,
    FactorizerOutput,
    FactorLogits,
    SwapCycle,
    pad_latents,
    swap_factors,
)
from models.factorizer.presets import PRESETS, factorizer_default, factorizer_tiny_test, preset
from models.factorizer.recipe import lr_at, make_optimizer, set_learning_rate, train_step, validate

__all__ = [
    "Factorizer", "FactorizerEncoding", "FactorizerOutput", "FactorLogits", "SwapCycle", "FactorizerBatch",
    "swap_factors", "pad_latents",
    "FactorizerLoss", "FactorizerLosses", "labelled_cross_entropy",
    "PRESETS", "preset", "factorizer_default", "factorizer_tiny_test",
    "build_factorizer", "build_factorizer_loss", "resolve_model_config",
    "FactorizerCheckpointError", "FactorizerCheckpointMeta", "factorizer_id_for", "save_factorizer_checkpoint",
    "load_factorizer_checkpoint", "export_factorizer_checkpoint",
    "make_optimizer", "lr_at", "set_learning_rate", "train_step", "validate",
]
