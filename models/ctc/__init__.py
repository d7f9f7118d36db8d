"""A small CTC phoneme recognizer on codec codes: the downstream probe of issue #5 (PER of seed vs. synthetic).

Build from a preset sized for the inventory, train with :class:`CtcLoss`, decode greedily::

    cfg = ctc_small().with_num_classes(inventory.num_classes)
    model, loss_fn = build_ctc(cfg), build_ctc_loss()
    out = model(codes, lengths)                               # CtcOutput: log_probs [B, T, classes]
    loss = loss_fn(out, CtcBatch(codes, lengths, targets, target_lengths))
    hyps = [inventory.decode(ids) for ids in greedy_decode(out)]

Targets come from ``pipelines.phonemes`` (espeak-ng phonemes, ``PhonemeInventory``, ``phoneme_error_rate``).
"""

from __future__ import annotations

from models.ctc.builders import build_ctc, build_ctc_loss, resolve_ctc_config
from models.ctc.checkpoint import (CtcCheckpointError, CtcCheckpointMeta, ctc_id_for, load_ctc_checkpoint,
                                   save_ctc_checkpoint)
from models.ctc.losses import CtcLoss, infeasible_rows
from models.ctc.model import CtcBatch, CtcOutput, CtcRecognizer, greedy_decode
from models.ctc.presets import PRESETS, ctc_small, ctc_tiny_test, preset

__all__ = [
    "CtcRecognizer", "CtcOutput", "CtcBatch", "greedy_decode", "CtcLoss", "infeasible_rows",
    "PRESETS", "preset", "ctc_small", "ctc_tiny_test", "build_ctc", "build_ctc_loss", "resolve_ctc_config",
    "CtcCheckpointError", "CtcCheckpointMeta", "ctc_id_for", "save_ctc_checkpoint", "load_ctc_checkpoint",
]
