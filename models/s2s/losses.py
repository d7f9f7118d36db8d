"""The S2S objective: cross entropy of each FSQ stage's target codes over valid target frames, plus top-1 accuracy."""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from models.code_loss import CodeLosses, check_loss_args, stage_code_loss
from models.ctc.model import frame_mask
from models.s2s.model import S2SBatch, S2SOutput

__all__ = ["S2SLosses", "S2SLoss"]


#: The speech-to-speech model's loss terms (shared with every code-emitting model).
S2SLosses = CodeLosses


class S2SLoss(nn.Module):
    """Cross entropy of the target codes per stage, averaged over valid target frames only; total = weighted
    mean of the stages' terms. Accuracy: the share of valid frames whose argmax code is the target (no
    gradient).

    Example::

        out = model(batch.codes, batch.lengths, batch.target_lengths, batch.speaker)
        losses = S2SLoss()(out, batch)          # S2SLosses(total, cross_entropy, accuracy, ...)
        losses.total.backward()

    Args:
        label_smoothing: of the cross entropy (0: none).
        stage_weights: one weight >= 0 per stage; None: equal weights.
    """

    def __init__(self, *, label_smoothing: float = 0.0, stage_weights: Sequence[float] | None = None) -> None:
        super().__init__()
        self.stage_weights = check_loss_args(label_smoothing, stage_weights)
        self.label_smoothing = float(label_smoothing)

    def forward(self, out: S2SOutput, batch: S2SBatch) -> S2SLosses:
        """Score one forward pass of ``batch``.

        Raises:
            ValueError: target codes of another shape than the logits, or out of range; stage weights for
                another number of stages.
        """
        rows, frames, stages, codebook = out.logits.shape
        codes = batch.target_codes
        if codes.dim() != 3 or codes.shape[0] != rows or codes.shape[1] < frames or codes.shape[2] != stages:
            raise ValueError(f"expected target codes [{rows}, >= {frames}, {stages}], got {list(codes.shape)}")
        valid = frame_mask(out.lengths, frames)[..., None].expand(-1, -1, stages)                   # [B, Tt, S]
        targets = codes[:, :frames].long().to(out.logits.device)
        bad = valid & ((targets < 0) | (targets >= codebook))
        if bool(bad.any()):
            raise ValueError(f"target codes must lie in [0, {codebook}) on valid frames")
        return stage_code_loss(out.logits, targets, valid, label_smoothing=self.label_smoothing,
                               stage_weights=self.stage_weights)
