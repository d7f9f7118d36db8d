"""The factorizer's objective: reconstruction, factor classification, a content adversary, swap consistency.

- Reconstruction: masked L1 + MSE between the decoded and the input latent.
- Classification: cross entropy per head on the rows whose label is known
  (``UNKNOWN_LABEL`` = -100 elsewhere); a batch with no labels for a head adds 0.
- Adversary: speaker cross entropy of the classifier on the content stream.
  The model reverses its gradient at the content, so one term both trains the
  adversary and pushes speaker information out of the content.
- Swap consistency: the latent decoded from row i's content with other rows'
  globals, encoded again, must give back the globals put in (1 - cosine) and
  row i's content (MSE). Targets are detached: the term teaches the decoder
  to render the factors it is given and the encoders to read them back, and
  cannot be lowered by collapsing the factors themselves.
- Parallel swap target: on rows that have a parallel partner (one sentence,
  another voice), A's content decoded with B's speaker vector must give B's
  latent warped onto A's frames (masked L1 + MSE, as reconstruction).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from models.factorizer.layers import frame_mask
from models.factorizer.model import FactorizerBatch, FactorizerOutput
from schemas.factorizer import FACTOR_NAMES, UNKNOWN_LABEL

__all__ = ["FactorizerLosses", "FactorizerLoss", "labelled_cross_entropy"]


@dataclass
class FactorizerLosses:
    """Weighted total (to backprop) and the unweighted terms (to log)."""

    total: Tensor
    recon_l1: Tensor
    recon_mse: Tensor
    speaker: Tensor
    style: Tensor
    environment: Tensor
    channel: Tensor
    adversary: Tensor
    swap_global: Tensor
    swap_content: Tensor
    parallel_l1: Tensor
    parallel_mse: Tensor

    def as_floats(self) -> dict[str, float]:
        """Plain floats for metric logging."""
        return {k: float(v.detach()) for k, v in vars(self).items()}


def labelled_cross_entropy(logits: Tensor | None, labels: Tensor | None, *, name: str = "labels") -> Tensor:
    """Mean cross entropy over rows whose label is not ``UNKNOWN_LABEL``; 0 (not NaN) when there are none.

    The 0 stays connected to ``logits`` (zero gradients): under DDP every head must take part in every
    step, even on a worker whose batch has no labels for it. No logits (no head): a plain 0.

    Raises:
        ValueError: a known label outside ``[0, classes)`` (the message names ``name`` and the range).
    """
    if logits is None:
        return torch.zeros(())
    known = None if labels is None else labels[labels != UNKNOWN_LABEL]
    if known is None or known.numel() == 0:
        return logits.sum() * 0.0
    labels = labels.to(device=logits.device, dtype=torch.long)
    if int(known.min()) < 0 or int(known.max()) >= logits.shape[-1]:
        raise ValueError(f"{name} labels must lie in [0, {logits.shape[-1]}) or be {UNKNOWN_LABEL} (unknown); "
                         f"got [{int(known.min())}, {int(known.max())}]")
    return F.cross_entropy(logits, labels, ignore_index=UNKNOWN_LABEL)


class FactorizerLoss(nn.Module):
    """Weighted sum of the factorizer's terms; every weight >= 0, 0 turns a term off.

    Example::

        loss_fn = FactorizerLoss()
        out = factorizer(batch.latent, batch.lengths, swap_cycle=loss_fn.uses_swap_cycle)
        losses = loss_fn(out, batch)          # FactorizerLosses(total, recon_l1, ...)
        losses.total.backward()
    """

    def __init__(self, *, recon_l1_weight: float = 1.0, recon_mse_weight: float = 1.0, speaker_weight: float = 0.1,
                 style_weight: float = 0.1, environment_weight: float = 0.1, channel_weight: float = 0.1,
                 adversary_weight: float = 0.05, swap_global_weight: float = 0.1,
                 swap_content_weight: float = 0.1, parallel_l1_weight: float = 0.0,
                 parallel_mse_weight: float = 0.0) -> None:
        super().__init__()
        self.recon_l1_weight = float(recon_l1_weight)
        self.recon_mse_weight = float(recon_mse_weight)
        self.class_weights = {"speaker": float(speaker_weight), "style": float(style_weight),
                              "environment": float(environment_weight), "channel": float(channel_weight)}
        self.adversary_weight = float(adversary_weight)
        self.swap_global_weight = float(swap_global_weight)
        self.swap_content_weight = float(swap_content_weight)
        self.parallel_l1_weight = float(parallel_l1_weight)
        self.parallel_mse_weight = float(parallel_mse_weight)

    @property
    def uses_swap_cycle(self) -> bool:
        """Whether the model must run its swap cycle (``forward(..., swap_cycle=True)``) for this loss."""
        return self.swap_global_weight > 0 or self.swap_content_weight > 0

    @property
    def uses_parallel(self) -> bool:
        """Whether the model should run the parallel swap pass on the batch's targets."""
        return self.parallel_l1_weight > 0 or self.parallel_mse_weight > 0

    def forward(self, output: FactorizerOutput, batch: FactorizerBatch) -> FactorizerLosses:
        """Score one forward pass of ``batch``.

        Raises:
            ValueError: the swap terms are weighted but ``output`` has no swap cycle; a label out of range.
        """
        if self.uses_swap_cycle and output.cycle is None:
            raise ValueError("swap consistency is weighted but the output has no swap cycle: call the model with "
                             "swap_cycle=loss_fn.uses_swap_cycle")
        latent = batch.latent.to(output.recon.dtype)
        mask = frame_mask(batch.lengths.to(latent.device), latent.shape[-1], latent.dtype)
        values = mask.sum() * latent.shape[1]
        diff = (output.recon - latent) * mask
        terms = {"recon_l1": diff.abs().sum() / values, "recon_mse": diff.pow(2).sum() / values}
        for name in FACTOR_NAMES:
            terms[name] = labelled_cross_entropy(getattr(output.logits, name), batch.labels(name), name=name)
        terms["adversary"] = labelled_cross_entropy(output.adversary_logits, batch.speaker, name="speaker")
        zero = latent.new_zeros(())
        terms["swap_global"], terms["swap_content"] = zero, zero
        if output.cycle is not None:
            cycle = output.cycle
            cosines = [(getattr(cycle.reencoded, name) * getattr(cycle.swapped, name).detach()).sum(-1)
                       for name in FACTOR_NAMES]
            terms["swap_global"] = 1 - torch.stack(cosines).mean()
            content = cycle.swapped.content.detach()
            terms["swap_content"] = ((cycle.reencoded_content_bounded - content).pow(2) * mask).sum() / (
                mask.sum() * content.shape[1])
        terms["parallel_l1"], terms["parallel_mse"] = zero, zero
        if output.parallel is not None:
            par = output.parallel
            par_mask = frame_mask(par.lengths.to(latent.device), par.target.shape[-1], latent.dtype)
            par_values = par_mask.sum() * par.target.shape[1]
            par_diff = (par.recon - par.target.to(par.recon.dtype)) * par_mask
            terms["parallel_l1"] = par_diff.abs().sum() / par_values
            terms["parallel_mse"] = par_diff.pow(2).sum() / par_values
        total = (self.recon_l1_weight * terms["recon_l1"] + self.recon_mse_weight * terms["recon_mse"]
                 + self.parallel_l1_weight * terms["parallel_l1"] + self.parallel_mse_weight * terms["parallel_mse"]
                 + sum(self.class_weights[name] * terms[name] for name in FACTOR_NAMES)
                 + self.adversary_weight * terms["adversary"]
                 + self.swap_global_weight * terms["swap_global"] + self.swap_content_weight * terms["swap_content"])
        return FactorizerLosses(total=total, **terms)
