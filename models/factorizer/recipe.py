"""The factorizer training recipe: optimizer, one step, validation. No Ray here.

The learning-rate schedule is the codec's (``lr_at``, ``set_learning_rate``
from ``models.codec.recipe``, re-exported). A plain loop::

    model, loss_fn = build_factorizer("factorizer_tiny_test"), build_factorizer_loss()
    opt = make_optimizer(model, learning_rate=1e-3)
    for step, batch in enumerate(batches):          # FactorizerBatch
        set_learning_rate(opt, lr_at(step, base=1e-3, warmup_steps=100, total_steps=1000))
        metrics = train_step(model, loss_fn, opt, batch, grad_clip_norm=1.0)
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor, nn

from models.codec.recipe import lr_at, set_learning_rate
from models.factorizer.losses import FactorizerLoss
from models.factorizer.model import Factorizer, FactorizerBatch, FactorizerOutput
from schemas.factorizer import FACTOR_NAMES, UNKNOWN_LABEL

__all__ = ["make_optimizer", "lr_at", "set_learning_rate", "train_step", "validate"]


def _unwrap(model: nn.Module) -> Factorizer:
    """The factorizer inside a DDP wrapper (or the model itself)."""
    return getattr(model, "module", model)


def make_optimizer(model: nn.Module, *, learning_rate: float, weight_decay: float = 0.0,
                   betas: tuple[float, float] = (0.9, 0.99)) -> torch.optim.Optimizer:
    """AdamW; weight decay only on conv and linear weights, not on biases and norm gains (as in nanoGPT).

    Why: decaying a LayerNorm gain or a bias towards 0 does not regularize, it only fights the norm.
    """
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [{"params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay},
              {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=learning_rate, betas=betas)


def _forward(model: nn.Module, loss_fn: FactorizerLoss, batch: FactorizerBatch) -> FactorizerOutput:
    rows = batch.target_rows() if loss_fn.uses_parallel else None
    if rows is None:
        return model(batch.latent, batch.lengths, swap_cycle=loss_fn.uses_swap_cycle)
    return model(batch.latent, batch.lengths, swap_cycle=loss_fn.uses_swap_cycle, parallel_target=batch.target,
                 parallel_rows=rows)


def train_step(model: nn.Module, loss_fn: FactorizerLoss, optimizer: torch.optim.Optimizer, batch: FactorizerBatch,
               *, grad_clip_norm: float | None) -> dict[str, float]:
    """One optimizer step; returns the loss terms, ``grad_norm`` (before clipping) and ``content_codes_used``
    (distinct content codes on valid frames: near 1 means a dead bottleneck).

    ``model`` may be DDP-wrapped.
    """
    model.train()
    out = _forward(model, loss_fn, batch)
    losses = loss_fn(out, batch)
    optimizer.zero_grad(set_to_none=True)
    losses.total.backward()
    grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip_norm or float("inf"))
    optimizer.step()
    return {**losses.as_floats(), "grad_norm": float(grad_norm),
            "content_codes_used": float(_codes_used(_unwrap(model), out))}


def _codes_used(model: Factorizer, out: FactorizerOutput) -> int:
    enc = out.encoding
    codes = model.content_to_codes(enc.content.detach())
    valid = torch.arange(codes.shape[-1], device=codes.device) < enc.lengths[:, None]
    return len(torch.unique(codes[valid]))


def _correct(logits: Tensor | None, labels: Tensor | None) -> tuple[int, int]:
    """(correct, labelled) over rows with a known label."""
    if logits is None or labels is None:
        return 0, 0
    known = labels != UNKNOWN_LABEL
    return int((logits.argmax(-1)[known] == labels[known]).sum()), int(known.sum())


@torch.no_grad()
def validate(model: nn.Module, loss_fn: FactorizerLoss, batches: Iterable[FactorizerBatch]) -> dict[str, float]:
    """Mean loss terms over ``batches`` (weighted by rows) in eval mode, plus ``<factor>_accuracy`` for each
    head and ``adversary_accuracy`` (the content adversary's speaker accuracy: near chance is the goal),
    each over labelled rows. A head's loss and accuracy are left out where no row was labelled (unseen
    speakers in a valid split: a 0 there would read as perfect). The model's train/eval mode is restored.
    """
    was_training = model.training
    model.eval()
    sums: dict[str, float] = {}
    counts = {name: [0, 0] for name in (*FACTOR_NAMES, "adversary")}
    rows = 0
    try:
        for batch in batches:
            out = _forward(model, loss_fn, batch)
            for name, value in loss_fn(out, batch).as_floats().items():
                sums[name] = sums.get(name, 0.0) + value * len(batch)
            rows += len(batch)
            pairs = [(getattr(out.logits, name), batch.labels(name)) for name in FACTOR_NAMES]
            for name, (logits, labels) in zip((*FACTOR_NAMES, "adversary"), [*pairs, (out.adversary_logits,
                                                                                     batch.speaker)]):
                correct, labelled = _correct(logits, labels)
                counts[name][0] += correct
                counts[name][1] += labelled
    finally:
        model.train(was_training)
    if rows == 0:
        raise ValueError("validate got no batches")
    metrics = {name: total / rows for name, total in sums.items()}
    metrics.update({f"{name}_accuracy": correct / labelled for name, (correct, labelled) in counts.items() if labelled})
    for name, (_, labelled) in counts.items():  # a head with no labelled row scores 0: not a result, leave it out
        if not labelled:
            metrics.pop(name, None)
    return metrics
