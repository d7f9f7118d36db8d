"""The generator's objective: cross entropy of each FSQ stage's codes over valid frames, plus top-1 accuracy."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from models.factorizer.layers import frame_mask
from models.generator.model import GeneratorBatch, GeneratorOutput

__all__ = ["GeneratorLosses", "GeneratorLoss"]


@dataclass
class GeneratorLosses:
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


class GeneratorLoss(nn.Module):
    """Cross entropy of the target codes per stage, averaged over valid frames only; total = weighted mean of
    the stages' terms. Accuracy: the share of valid frames whose argmax code is the target (no gradient).

    Example::

        out = model(batch.phonemes, batch.phoneme_lengths, batch.factors, batch.lengths, codes=batch.codes)
        losses = GeneratorLoss()(out, batch)         # GeneratorLosses(total, cross_entropy, accuracy, ...)
        losses.total.backward()

    Args:
        label_smoothing: of the cross entropy (0: none).
        stage_weights: one weight >= 0 per stage; None: equal weights.
    """

    def __init__(self, *, label_smoothing: float = 0.0, stage_weights: Sequence[float] | None = None) -> None:
        super().__init__()
        if not 0 <= label_smoothing < 1:
            raise ValueError(f"label_smoothing must lie in [0, 1), got {label_smoothing}")
        if stage_weights is not None and (any(w < 0 for w in stage_weights) or sum(stage_weights) <= 0):
            raise ValueError(f"stage_weights must be >= 0 with a positive sum, got {list(stage_weights)}")
        self.label_smoothing = float(label_smoothing)
        self.stage_weights = None if stage_weights is None else [float(w) for w in stage_weights]

    def forward(self, out: GeneratorOutput, batch: GeneratorBatch) -> GeneratorLosses:
        """Score one forward pass of ``batch``.

        Raises:
            ValueError: codes of another shape than the logits; stage weights for another number of stages.
        """
        rows, frames, stages, codebook = out.logits.shape
        if batch.codes.dim() != 3 or batch.codes.shape[0] != rows or batch.codes.shape[1] < frames or \
                batch.codes.shape[2] != stages:
            raise ValueError(f"expected codes [{rows}, >= {frames}, {stages}], got {list(batch.codes.shape)}")
        if self.stage_weights is not None and len(self.stage_weights) != stages:
            raise ValueError(f"{len(self.stage_weights)} stage weights for {stages} stages")
        valid = frame_mask(out.lengths, frames)[:, 0].bool()[..., None].expand(-1, -1, stages)   # [B, T, S]
        targets = batch.codes[:, :frames].long().to(out.logits.device)
        # padded frames get ignore_index rather than being cut out: indexing the logits would copy them (and
        # their gradient) once more, a large share of a CPU step at 1000 codes per stage
        ce = F.cross_entropy(out.logits.reshape(-1, codebook), targets.masked_fill(~valid, -100).reshape(-1),
                             ignore_index=-100, reduction="none", label_smoothing=self.label_smoothing)
        counts = valid.sum(dim=(0, 1)).clamp(min=1)
        ce = ce.view(rows, frames, stages).sum(dim=(0, 1)) / counts
        with torch.no_grad():
            accuracy = ((out.logits.argmax(dim=-1) == targets) & valid).sum(dim=(0, 1)) / counts
        weights = ce.new_tensor(self.stage_weights) if self.stage_weights is not None else torch.ones_like(ce)
        total = (weights * ce).sum() / weights.sum()
        return GeneratorLosses(total=total, cross_entropy=ce.mean(), accuracy=accuracy.mean(),
                               stage_cross_entropy=ce, stage_accuracy=accuracy)
