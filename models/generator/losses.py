"""The generator's objective: cross entropy of each FSQ stage's codes over valid frames, plus top-1 accuracy."""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from models.code_loss import CodeLosses, check_loss_args, stage_code_loss
from models.factorizer.layers import frame_mask
from models.generator.model import GeneratorBatch, GeneratorOutput

__all__ = ["GeneratorLosses", "GeneratorLoss"]


#: The generator's loss terms (shared with every code-emitting model).
GeneratorLosses = CodeLosses


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
        self.stage_weights = check_loss_args(label_smoothing, stage_weights)
        self.label_smoothing = float(label_smoothing)

    def forward(self, out: GeneratorOutput, batch: GeneratorBatch) -> GeneratorLosses:
        """Score one forward pass of ``batch``.

        Raises:
            ValueError: codes of another shape than the logits; stage weights for another number of stages.
        """
        rows, frames, stages, codebook = out.logits.shape
        if batch.codes.dim() != 3 or batch.codes.shape[0] != rows or batch.codes.shape[1] < frames or \
                batch.codes.shape[2] != stages:
            raise ValueError(f"expected codes [{rows}, >= {frames}, {stages}], got {list(batch.codes.shape)}")
        valid = frame_mask(out.lengths, frames)[:, 0].bool()[..., None].expand(-1, -1, stages)   # [B, T, S]
        targets = batch.codes[:, :frames].long().to(out.logits.device)
        return stage_code_loss(out.logits, targets, valid, label_smoothing=self.label_smoothing,
                               stage_weights=self.stage_weights)
