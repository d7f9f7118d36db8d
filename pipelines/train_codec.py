"""Train the speech codec with Ray Train on crops streamed from the Lance ``segments`` table.

Flow (driver -> Ray Train workers)::

    segments (train split, held-out corpora excluded, pinned version)
      -> crop plan for the whole run (pipelines.codec_data; metadata only)
      -> Ray Data: read_crops (FLAC blob -> 1 s crop), streamed to the workers
      -> TorchTrainer workers: models.codec.recipe.train_step, DDP when > 1 worker
      -> rank 0: validation on fixed valid-split clips, checkpoints, metrics.jsonl, loss_curve.png

Why checkpoints live in ``output_dir`` in the codec's own format rather than
only in Ray's storage: the encode and eval jobs load them without Ray, the
codec id travels inside, and a re-run of the same command finds
``checkpoints/latest.pt`` and resumes from its step with the exact crops it
would have seen (the plan is a pure function of the seed). A kill loses at
most ``checkpoint_every_steps`` steps. The same holds for an ``s3://``
output_dir (written through fsspec), so a cluster run needs no code change.

The budget is ``max_steps`` or ``max_minutes`` of training time (summed over
resumes), whichever comes first; the learning-rate schedule is laid out over
``max_steps``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from pipelines.run_outputs import RunOutputs, checkpoint_paths
from pipelines.train_loop import TrainingError, fit_with_ray_train
from schemas.codec import TrainCodecConfig, segments_filter
from schemas.storage import resolve_uri

__all__ = ["TrainCodecSummary", "run_train_codec", "checkpoint_paths", "TrainingError"]


@dataclass
class TrainCodecSummary:
    """What a training run did and where its outputs are."""

    codec_id: str
    output_dir: str
    start_step: int
    end_step: int
    train_seconds: float
    train_hours_of_audio: float
    segments_version: int
    last_metrics: dict[str, float] = field(default_factory=dict)
    last_valid: dict[str, float] = field(default_factory=dict)
    already_complete: bool = False

    def format(self) -> str:
        paths = checkpoint_paths(self.output_dir)
        lines = [f"codec {self.codec_id}: steps {self.start_step} -> {self.end_step} "
                 f"({self.train_seconds / 60:.1f} min of training in total)"
                 + ("; already complete, nothing to do" if self.already_complete else ""),
                 f"  trained on {self.train_hours_of_audio:.2f} h of segments (table version {self.segments_version})"]
        if self.last_metrics:
            lines.append("  last train losses: " + ", ".join(f"{k} {v:.4f}" for k, v in self.last_metrics.items()))
        if self.last_valid:
            lines.append("  last valid losses: " + ", ".join(f"{k} {v:.4f}" for k, v in self.last_valid.items()))
        lines += [f"  checkpoint: {paths['latest']}", f"  metrics:    {paths['metrics']}",
                  f"  curve:      {paths['curve']}"]
        return "\n".join(lines)


# --------------------------------------------------------------------------------------------------------------
# Driver.


def run_train_codec(config: TrainCodecConfig, *, progress: Callable[[str], None] = print) -> TrainCodecSummary:
    """Train (or resume training) the codec described by ``config``; returns where everything went.

    Raises:
        FileNotFoundError: no ``segments`` table.
        ValueError: no training or validation segments match, or the batch does not split over the workers.
        models.codec.CheckpointError: ``output_dir`` holds a checkpoint of another codec, or a broken one.
        TrainingError: the Ray Train run failed.
    """
    from models.codec.builders import resolve_model_config
    from models.codec.checkpoint import CheckpointError, codec_id_for, load_checkpoint
    from pipelines.codec_data import index_segments, make_crop_plan

    lake = resolve_uri(config.lake_root)
    output_dir = resolve_uri(config.output_dir)
    init_from = resolve_uri(config.init_from) if config.init_from else None
    config = config.model_copy(update={"lake_root": lake, "output_dir": output_dir, "init_from": init_from})
    model_config = resolve_model_config(config)
    codec_id = codec_id_for(model_config)
    ex, tr = config.execution, config.training
    if tr.batch_size % ex.num_workers:
        raise ValueError(f"training.batch_size {tr.batch_size} must be a multiple of execution.num_workers "
                         f"{ex.num_workers}")

    outputs = RunOutputs(output_dir, config.storage)
    start_step, train_seconds, pinned_version = 0, 0.0, None
    if outputs.exists(outputs.paths["latest"]):
        _, _, meta = load_checkpoint(outputs.fetch(outputs.paths["latest"]))
        if meta.architecture_id != codec_id:
            raise CheckpointError(f"{outputs.paths['latest']}: holds codec {meta.architecture_id!r}, this config trains "
                                  f"{codec_id!r}; use another output_dir (or delete it to start over)")
        start_step, train_seconds = meta.step, float(meta.extra.get("train_seconds", 0.0))
        pinned_version = meta.extra.get("segments_version")
        progress(f"resuming {codec_id} from step {start_step} ({train_seconds / 60:.1f} min trained)")
    elif init_from:  # checked here, before Ray starts: a misfit is one clear line, not a failed worker
        from models.codec.builders import build_codec

        load_init_weights(init_from, build_codec(model_config))
        progress(f"starting {codec_id} from the weights of {init_from}")

    index = index_segments(lake, config.storage, segments_filter(split=config.train_split,
                                                                  holdout_corpora=config.holdout_corpora),
                           version=pinned_version)
    valid_filter = segments_filter(split=config.valid_split, holdout_corpora=config.holdout_corpora)
    budget_s = tr.max_minutes * 60 if tr.max_minutes is not None else math.inf
    summary = TrainCodecSummary(codec_id=codec_id, output_dir=output_dir, start_step=start_step, end_step=start_step,
                                train_seconds=train_seconds, train_hours_of_audio=index.hours,
                                segments_version=index.version)
    if start_step >= tr.max_steps or train_seconds >= budget_s:
        summary.already_complete = True
        return summary

    plan = make_crop_plan(index, steps=tr.max_steps, batch_size=tr.batch_size, crop_s=tr.crop_s, seed=tr.seed)
    progress(f"training {codec_id} ({model_config.bitrate_bps:.0f} bps) on {index.hours:.2f} h of "
             f"{config.train_split} segments (version {index.version}), steps {start_step} -> {tr.max_steps}"
             + (f" or {tr.max_minutes:g} min" if tr.max_minutes else ""))
    _fit(config, codec_id, plan, start_step, index, valid_filter)
    # The run's record is what rank 0 wrote, not Ray's result object (which holds only the last report).
    _, _, meta = load_checkpoint(outputs.fetch(outputs.paths["latest"]))
    history = outputs.read_metrics()
    last_train = next((r for r in reversed(history) if "total" in r), {})
    summary.end_step = meta.step
    summary.train_seconds = float(meta.extra.get("train_seconds", train_seconds))
    summary.last_metrics = {k: float(last_train[k]) for k in ("total", "mel", "log_magnitude", "spectral_convergence")
                            if k in last_train}
    summary.last_valid = {k[len("valid_"):]: float(v) for k, v in meta.extra.items() if k.startswith("valid_")}
    return summary


def load_init_weights(path: str, codec) -> dict:
    """The state dict of the ``init_from`` checkpoint at ``path``, checked tensor by tensor against ``codec``.

    Raises:
        models.codec.CheckpointError: unreadable, or a tensor missing, extra or of another shape (named).
    """
    from models.codec.checkpoint import CheckpointError, load_checkpoint

    restored, _, meta = load_checkpoint(path)
    have, want = restored.state_dict(), codec.state_dict()
    problems = [f"{k}: missing" for k in want if k not in have] + [f"{k}: not in this model" for k in have if k not in want]
    problems += [f"{k}: {tuple(have[k].shape)} != {tuple(v.shape)}" for k, v in want.items()
                 if k in have and have[k].shape != v.shape]
    if problems:
        raise CheckpointError(f"init_from {path} ({meta.architecture_id}) does not fit this model: "
                              + "; ".join(problems[:5]) + (f" (+{len(problems) - 5} more)" if len(problems) > 5 else ""))
    return have


def _fit(config: TrainCodecConfig, codec_id: str, plan, start_step: int, index, valid_filter: str) -> None:
    from pipelines.ray_env import init_ray

    ex = config.execution
    init_ray(ex.ray_address)  # before any `import ray`: a local Ray must be told to stay on loopback first
    import ray.data

    from pipelines.codec_data import read_crops
    remaining = plan.from_step(start_step)
    blocks = [remaining.slice(i, ex.crops_per_block) for i in range(0, remaining.num_rows, ex.crops_per_block)]
    crops = ray.data.from_arrow(blocks).map_batches(
        read_crops, batch_format="numpy", batch_size=None, num_cpus=ex.data_cpus_per_task,
        fn_kwargs={"uri": index.uri, "version": index.version, "crop_samples": plan.crop_samples,
                   "storage": config.storage})
    loop_config = {"config": config.model_dump(mode="json"), "codec_id": codec_id, "start_step": start_step,
                   "segments_version": index.version, "valid_filter": valid_filter}
    fit_with_ray_train(train_loop_per_worker, loop_config, crops, execution=ex, output_dir=config.output_dir,
                       run_name=f"train_codec-{codec_id}")


# --------------------------------------------------------------------------------------------------------------
# Worker.


def train_loop_per_worker(loop_config: dict[str, Any]) -> None:
    """Ray Train entry point: every rank trains; rank 0 also validates, checkpoints and writes metrics."""
    import ray.train
    import torch

    from pipelines.train_loop import run_train_loop

    config = TrainCodecConfig.model_validate(loop_config["config"])
    if config.execution.torch_threads:
        torch.set_num_threads(config.execution.torch_threads)
    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    outputs = RunOutputs(config.output_dir, config.storage)
    recipe = _CodecRecipe(config, loop_config, outputs, rank=rank, world=world)
    shard = ray.train.get_dataset_shard("train")
    batches = shard.iter_batches(batch_size=config.training.batch_size // world, batch_format="numpy",
                                 prefetch_batches=4, drop_last=True)
    run_train_loop(recipe, batches, outputs, config.training, start_step=recipe.start_step,
                   train_seconds=recipe.train_seconds, rank=rank, world=world, title=loop_config["codec_id"],
                   tag="train_codec", ylabel="loss (multi-res STFT + mel)", show=("mel",))


class _CodecRecipe:
    """The codec's model, optimizer, step, validation and checkpoint, for :func:`pipelines.train_loop.run_train_loop`."""

    def __init__(self, config: TrainCodecConfig, loop_config: dict[str, Any], outputs: RunOutputs, *,
                 rank: int, world: int) -> None:
        import ray.train
        import torch

        from models.codec.builders import build_codec, build_codec_critics, build_codec_loss, resolve_model_config
        from models.codec.checkpoint import load_checkpoint
        from models.codec.recipe import Adversary, freeze_all_but_decoder, make_optimizer
        from pipelines.codec_data import read_valid_clips

        tr = config.training
        self.config, self.loop_config = config, loop_config
        self.model_config = resolve_model_config(config)
        torch.manual_seed(tr.seed)  # same initial weights on every rank and every run of this config
        self.codec = build_codec(self.model_config)
        if tr.decoder_only:
            freeze_all_but_decoder(self.codec)
        self.loss_fn = build_codec_loss(config.loss)
        self.optimizer = make_optimizer(self.codec, learning_rate=tr.learning_rate, betas=tuple(tr.betas),
                                        weight_decay=tr.weight_decay)
        critics = build_codec_critics(config.loss)
        self.adversary = None if critics is None else Adversary(
            critics, make_optimizer(critics, learning_rate=tr.critic_learning_rate, betas=tuple(tr.betas)),
            config.loss.adversarial_weight, config.loss.feature_matching_weight)
        self.start_step, self.train_seconds = int(loop_config["start_step"]), 0.0
        if self.start_step > 0:
            restored, _, meta = load_checkpoint(outputs.fetch(outputs.paths["latest"]))
            self.codec.load_state_dict(restored.state_dict())
            if meta.optimizer_state:
                self.optimizer.load_state_dict(meta.optimizer_state)
            if self.adversary is not None and "critics" in meta.extra:  # absent: critics added on a resume, start fresh
                self.adversary.critics.load_state_dict(meta.extra["critics"])
                self.adversary.optimizer.load_state_dict(meta.extra["critic_optimizer"])
            self.train_seconds = float(meta.extra.get("train_seconds", 0.0))
        elif config.init_from:
            self.codec.load_state_dict(load_init_weights(config.init_from, self.codec))
        self.model = ray.train.torch.prepare_model(self.codec) if world > 1 else self.codec
        self.valid = None
        if rank == 0:
            self.valid = torch.from_numpy(read_valid_clips(config.lake_root, config.storage,
                                                           loop_config["valid_filter"], clips=tr.valid_clips,
                                                           crop_s=tr.valid_crop_s))

    def train_step(self, batch: dict[str, Any], step: int) -> dict[str, float]:
        import torch

        from models.codec.recipe import lr_at, set_learning_rate, train_step

        tr, loss = self.config.training, self.config.loss
        set_learning_rate(self.optimizer, lr_at(step, base=tr.learning_rate, warmup_steps=tr.lr_warmup_steps,
                                                total_steps=tr.max_steps))
        terms = train_step(self.model, self.loss_fn, self.optimizer, torch.tensor(batch["audio"]),
                           grad_clip_norm=tr.grad_clip_norm, latent_penalty_weight=loss.latent_penalty_weight,
                           latent_bound=loss.latent_bound, f0_weight=loss.f0_weight,
                           consistency_weight=loss.consistency_weight,
                           consistency_noise_dbfs=tuple(loss.consistency_noise_dbfs),
                           noise_seed=tr.seed * 1_000_003 + step, adversary=self.adversary)
        return {**terms, "lr": self.optimizer.param_groups[0]["lr"]}

    def validate(self) -> dict[str, float]:
        from models.codec.recipe import validate

        return validate(self.codec, self.loss_fn, self.valid)

    def save_checkpoint(self, path: Path, *, step: int, train_seconds: float, extra: dict[str, float]) -> None:
        from models.codec.checkpoint import save_checkpoint

        critics = {} if self.adversary is None else {  # training state only: export_checkpoint drops it
            "critics": self.adversary.critics.state_dict(), "critic_optimizer": self.adversary.optimizer.state_dict()}
        save_checkpoint(path, self.codec, self.model_config, step=step, optimizer_state=self.optimizer.state_dict(),
                        extra={"train_seconds": train_seconds,
                               "segments_version": self.loop_config["segments_version"], **extra, **critics})
