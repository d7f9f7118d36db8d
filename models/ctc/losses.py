"""CTC loss of the recognizer, with frame and target lengths."""

from __future__ import annotations

from torch import Tensor, nn
from torch.nn import functional as F

from models.ctc.model import CtcBatch, CtcOutput

__all__ = ["CtcLoss", "infeasible_rows"]


class CtcLoss(nn.Module):
    """``F.ctc_loss`` (blank 0) averaged over rows, each row's loss divided by its target length.

    ``zero_infinity``: a row whose target cannot fit its frames (more labels + repeats than frames) would give
    an infinite loss and NaN gradients; it contributes 0 instead (count such rows with
    :func:`infeasible_rows` if it matters).

    Example::

        loss = CtcLoss()(model(batch.codes, batch.lengths), batch)
        loss.backward()
    """

    def __init__(self, *, blank: int = 0, zero_infinity: bool = True) -> None:
        super().__init__()
        self.blank, self.zero_infinity = int(blank), bool(zero_infinity)

    def forward(self, out: CtcOutput, batch: CtcBatch) -> Tensor:
        targets = batch.targets.long().to(out.log_probs.device)
        if targets.numel() and int(targets.min()) < 0:
            raise ValueError("targets must be class ids >= 0 (pad with any valid id, lengths mark the end)")
        return F.ctc_loss(out.log_probs.transpose(0, 1), targets, out.lengths, batch.target_lengths.long(),
                          blank=self.blank, reduction="mean", zero_infinity=self.zero_infinity)


def infeasible_rows(lengths: Tensor, targets: Tensor, target_lengths: Tensor) -> Tensor:
    """``[B]`` bool: rows whose target needs more frames than they have (labels + adjacent repeats)."""
    need = target_lengths.clone()
    for i, n in enumerate(target_lengths.tolist()):
        row = targets[i, :n]
        need[i] = n + int((row[1:] == row[:-1]).sum()) if n > 1 else n
    return need > lengths
