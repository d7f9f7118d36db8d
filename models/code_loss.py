"""Per-stage cross entropy of FSQ codes over valid frames: the objective of every model that emits codes.

The generator (phonemes -> codes) and the speech-to-speech model (codes ->
codes) both end in one ``codebook``-way head per codec stage and train it the
same way, so the loss, its result and its argument checks live here once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor
from torch.nn import functional as F

__all__ = ["CodeLosses", "check_loss_args", "stage_code_loss"]


@dataclass
class CodeLosses:
    """Weighted total (to backprop) and the unweighted terms (to log); per-stage terms are ``[S]``."""

    total: Tensor
    cross_entropy: Tensor
    accuracy: Tensor
    stage_cross_entropy: Tensor
    stage_accuracy: Tensor

    def as_floats(self) -> dict[str, float]:
        """Plain floats for metric logging (per-stage terms as ``cross_entropy_stage0``, ...)."""
        out = {name: float(getattr(self, name).detach()) for name in ("total", "cross_entropy", "accuracy")}
        for s, (ce, acc) in enumerate(zip(self.stage_cross_entropy.tolist(), self.stage_accuracy.tolist())):
            out[f"cross_entropy_stage{s}"], out[f"accuracy_stage{s}"] = ce, acc
        return out


def check_loss_args(label_smoothing: float, stage_weights: Sequence[float] | None) -> list[float] | None:
    """Validated stage weights (floats) for a code loss; raises ValueError on bad arguments."""
    if not 0 <= label_smoothing < 1:
        raise ValueError(f"label_smoothing must lie in [0, 1), got {label_smoothing}")
    if stage_weights is not None and (any(w < 0 for w in stage_weights) or sum(stage_weights) <= 0):
        raise ValueError(f"stage_weights must be >= 0 with a positive sum, got {list(stage_weights)}")
    return None if stage_weights is None else [float(w) for w in stage_weights]


def stage_code_loss(logits: Tensor, targets: Tensor, valid: Tensor, *, label_smoothing: float = 0.0,
                    stage_weights: Sequence[float] | None = None) -> CodeLosses:
    """Loss of ``logits [B, T, S, codebook]`` against ``targets [B, T, S]`` on ``valid [B, T, S]`` frames.

    Raises:
        ValueError: stage weights for another number of stages.
    """
    rows, frames, stages, codebook = logits.shape
    if stage_weights is not None and len(stage_weights) != stages:
        raise ValueError(f"{len(stage_weights)} stage weights for {stages} stages")
    # padded frames get ignore_index rather than being cut out: indexing the logits would copy them (and
    # their gradient) once more, a large share of a CPU step at 1000 codes per stage
    ce = F.cross_entropy(logits.reshape(-1, codebook), targets.masked_fill(~valid, -100).reshape(-1),
                         ignore_index=-100, reduction="none", label_smoothing=label_smoothing)
    counts = valid.sum(dim=(0, 1)).clamp(min=1)
    ce = ce.view(rows, frames, stages).sum(dim=(0, 1)) / counts
    with torch.no_grad():
        accuracy = ((logits.argmax(dim=-1) == targets) & valid).sum(dim=(0, 1)) / counts
    weights = ce.new_tensor(stage_weights) if stage_weights is not None else torch.ones_like(ce)
    total = (weights * ce).sum() / weights.sum()
    return CodeLosses(total=total, cross_entropy=ce.mean(), accuracy=accuracy.mean(), stage_cross_entropy=ce,
                      stage_accuracy=accuracy)
