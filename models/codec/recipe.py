"""The codec training recipe: optimizer, learning-rate schedule, one step, validation. No Ray here.

``pipelines/train_codec.py`` calls these from each Ray Train worker; a plain
loop (tests, notebooks) calls them the same way::

    codec, loss_fn = build_codec("codec_tiny_test"), build_codec_loss()
    opt = make_optimizer(codec, learning_rate=1e-3)
    for step, batch in enumerate(batches):
        set_learning_rate(opt, lr_at(step, base=1e-3, warmup_steps=100, total_steps=1000))
        metrics = train_step(codec, loss_fn, opt, batch, grad_clip_norm=1.0)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from models.codec.discriminators import CodecCritics, critic_loss, feature_matching_loss, generator_adv_loss
from models.codec.losses import CodecLoss
from models.codec.pitch import estimate_pitch

__all__ = ["make_optimizer", "lr_at", "set_learning_rate", "train_step", "validate", "latent_penalty", "f0_loss",
           "noise_consistency", "Adversary", "adversarial_terms", "freeze_all_but_decoder"]


def latent_penalty(z: Tensor, bound: float) -> Tensor:
    """``mean(relu(|z| - bound)^2)``: keeps the pre-quantization latent where FSQ's tanh still has a slope.

    Why: the straight-through gradient reaches ``z`` through ``tanh``; once
    ``|z|`` is large the slope is ~0, yet Adam rescales even vanishing
    gradients to full-size steps, so ``z`` drifts further out and the codes
    freeze (measured here: ``|z|`` ~ 60 and one code per stage after 1k
    steps). This term's gradient does not pass through the tanh.
    """
    return torch.relu(z.abs() - bound).pow(2).mean()


def f0_loss(f0_hz: Tensor, wav: Tensor, *, hop: int) -> Tensor:
    """L1 between log predicted f0 ``[B, N]`` and the YIN f0 of ``wav [B, T]`` on its voiced frames (0 if none)."""
    track = estimate_pitch(wav.detach(), hop=hop)
    frames = min(track.f0_hz.shape[-1], f0_hz.shape[-1])
    voiced = track.voiced[:, :frames]
    if not bool(voiced.any()):
        return f0_hz.sum() * 0.0
    return (torch.log(f0_hz[:, :frames][voiced]) - torch.log(track.f0_hz[:, :frames][voiced])).abs().mean()


def make_optimizer(model: nn.Module, *, learning_rate: float, betas: tuple[float, float] = (0.8, 0.99),
                   weight_decay: float = 0.0) -> torch.optim.Optimizer:
    """AdamW with the betas audio codecs use (0.8, 0.99: faster-moving first moment than the default)."""
    return torch.optim.AdamW(model.parameters(), lr=learning_rate, betas=betas, weight_decay=weight_decay)


def lr_at(step: int, *, base: float, warmup_steps: int, total_steps: int, floor: float = 0.1) -> float:
    """Linear warm-up to ``base``, then cosine decay to ``floor * base`` at ``total_steps``.

    Example:
        >>> [round(lr_at(s, base=1.0, warmup_steps=10, total_steps=110), 3) for s in (0, 9, 10, 60, 110)]
        [0.1, 1.0, 1.0, 0.55, 0.1]
    """
    if step < warmup_steps:
        return base * (step + 1) / warmup_steps
    span = max(total_steps - warmup_steps, 1)
    progress = min(max(step - warmup_steps, 0) / span, 1.0)
    return base * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress)))


def set_learning_rate(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr


def noise_consistency(model: nn.Module, batch: Tensor, clean_latent: Tensor, *, noise_dbfs: tuple[float, float],
                      seed: int) -> Tensor:
    """MSE between the pre-quantization latent of ``batch`` plus faint white noise and the clean one (detached).

    Why: codes should not move when inaudible noise is added (a band-limited clip's empty bins are where a
    spectral encoder sees it most; ``bench/codec_robustness.py``). Each clip gets noise of an RMS drawn
    uniformly in dBFS from ``noise_dbfs``; ``seed`` fixes the draw, so a resumed run repeats it.
    """
    gen = torch.Generator().manual_seed(seed)
    low, high = noise_dbfs
    level = torch.rand(batch.shape[0], 1, generator=gen) * (high - low) + low
    noisy = batch + torch.pow(10.0, level / 20.0) * torch.randn(batch.shape, generator=gen)
    return torch.mean((getattr(model, "module", model)._encode_latent(noisy) - clean_latent.detach()) ** 2)


@dataclass
class Adversary:
    """The critics and their optimizer, with the weights of their two terms in the codec's loss."""

    critics: CodecCritics
    optimizer: torch.optim.Optimizer
    adversarial_weight: float
    feature_matching_weight: float


def adversarial_terms(adversary: Adversary, recon: Tensor, batch: Tensor) -> tuple[Tensor, dict[str, float]]:
    """Update the critics once on (``batch``, detached ``recon``), then return the codec's weighted adversarial loss.

    The critics step first (HiFi-GAN's order) and are then asked again, so the
    codec is judged by the critics as they are after their step; their
    verdict on real audio only feeds feature matching, so it runs without a graph.
    """
    critics = adversary.critics
    d_loss = critic_loss(critics(batch), critics(recon.detach()))
    adversary.optimizer.zero_grad(set_to_none=True)
    d_loss.backward()
    adversary.optimizer.step()
    with torch.no_grad():
        real = critics(batch)
    fake = critics(recon)
    adv, fm = generator_adv_loss(fake), feature_matching_loss(real, fake)
    total = adversary.adversarial_weight * adv + adversary.feature_matching_weight * fm
    return total, {"critic": float(d_loss.detach()), "adversarial": float(adv.detach()),
                   "feature_matching": float(fm.detach())}


def freeze_all_but_decoder(model: nn.Module) -> None:
    """Stop gradients to the encoder and quantizer (the optimizer then skips them: they get no gradient).

    Why: a decoder-only fine-tune keeps every code the codec gives, so the
    ``latents`` table and every model trained on it stay valid.
    """
    codec = getattr(model, "module", model)
    for name, param in codec.named_parameters():
        param.requires_grad_(name.startswith("decoder."))
    if not any(p.requires_grad for p in codec.parameters()):
        raise ValueError("the codec has no parameters under `decoder.` to train")


def train_step(model: nn.Module, loss_fn: CodecLoss, optimizer: torch.optim.Optimizer, batch: Tensor, *,
               grad_clip_norm: float | None, latent_penalty_weight: float = 0.0,
               latent_bound: float = 2.0, f0_weight: float = 0.0, consistency_weight: float = 0.0,
               consistency_noise_dbfs: tuple[float, float] = (-90.0, -70.0), noise_seed: int = 0,
               adversary: Adversary | None = None) -> dict[str, float]:
    """One optimizer step on ``batch [B, T]``; returns the loss terms, ``latent_penalty``, ``grad_norm``
    (before clipping) and ``codes_used`` (distinct first-stage codes in the batch: 1 means a dead bottleneck);
    with a harmonic decoder and ``f0_weight > 0`` also ``f0`` (see :func:`f0_loss`); with
    ``consistency_weight > 0`` also ``consistency`` (see :func:`noise_consistency`, drawn from ``noise_seed``);
    with an ``adversary`` also ``critic``, ``adversarial`` and ``feature_matching`` (see :func:`adversarial_terms`).

    ``model`` may be DDP-wrapped (its forward returns a ``CodecOutput`` either way).
    """
    model.train()
    out = model(batch)
    losses = loss_fn(out.recon, batch)
    penalty = latent_penalty(out.unquantized, latent_bound)
    total = losses.total + latent_penalty_weight * penalty
    extra: dict[str, float] = {}
    if consistency_weight > 0:
        consistency = noise_consistency(model, batch, out.unquantized, noise_dbfs=consistency_noise_dbfs,
                                        seed=noise_seed)
        total = total + consistency_weight * consistency
        extra["consistency"] = float(consistency.detach())
    if f0_weight > 0 and out.f0_hz is not None:
        pitch = f0_loss(out.f0_hz, batch, hop=getattr(model, "module", model).decoder.stft_hop)  # DDP wraps in .module
        total = total + f0_weight * pitch
        extra["f0"] = float(pitch.detach())
    if adversary is not None:
        adversarial, terms = adversarial_terms(adversary, out.recon, batch)
        total = total + adversarial
        extra.update(terms)
    optimizer.zero_grad(set_to_none=True)
    total.backward()
    params = [p for p in model.parameters() if p.requires_grad]
    if grad_clip_norm is not None:
        grad_norm = float(torch.nn.utils.clip_grad_norm_(params, grad_clip_norm))
    else:
        grad_norm = float(torch.sqrt(sum((p.grad.detach() ** 2).sum() for p in params if p.grad is not None)))
    optimizer.step()
    return {**losses.as_floats(), "latent_penalty": float(penalty.detach()), "grad_norm": grad_norm,
            "codes_used": float(len(torch.unique(out.codes[..., 0]))), **extra}


@torch.no_grad()
def validate(model: nn.Module, loss_fn: CodecLoss, clips: Tensor, *, batch_size: int = 16) -> dict[str, float]:
    """Mean loss terms over fixed clips ``[N, T]`` in eval mode (the codec's real quantized path)."""
    model.eval()
    sums: dict[str, float] = {}
    for start in range(0, len(clips), batch_size):
        batch = clips[start:start + batch_size]
        terms = loss_fn(model(batch).recon, batch).as_floats()
        for name, value in terms.items():
            sums[name] = sums.get(name, 0.0) + value * len(batch)
    model.train()
    return {name: total / len(clips) for name, total in sums.items()}
