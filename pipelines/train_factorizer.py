"""Train the factorizer with Ray Train on one codec's ``latents``, labelled from ``segments``.

Flow (driver -> Ray Train workers)::

    codec checkpoint -> codec id -> latents rows of that codec (pinned version) + segment labels
      -> label vocabularies (train split) -> window plan for the whole run (pipelines.factorizer_data)
      -> Ray Data: read_windows (codes of a block's rows, one take), streamed to the workers
      -> TorchTrainer workers: codes -> codec latent -> models.factorizer.recipe.train_step
      -> rank 0: validation on fixed valid-split rows, checkpoints, metrics.jsonl, loss_curve.png
         (the shared loop, pipelines.train_loop)

The factorizer id hashes the model config (whose class counts are the
vocabularies' sizes) with the codec id, so the same config on another
codec's latents is another factorizer. A re-run of the same command resumes
from ``output_dir/checkpoints/latest.pt`` with the vocabularies and the
latents version stored in it, so it sees exactly the windows an
uninterrupted run would have seen.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from pipelines.run_outputs import RunOutputs, checkpoint_paths
from pipelines.train_loop import fit_with_ray_train
from schemas.codec import segments_filter
from schemas.storage import resolve_uri
from schemas.train_factorizer import TrainFactorizerConfig

__all__ = ["TrainFactorizerSummary", "run_train_factorizer"]


@dataclass
class TrainFactorizerSummary:
    """What a factorizer training run did and where its outputs are.

    ``factorizer_id`` is the full id (weights digest included) of the latest checkpoint once training ran.
    """

    factorizer_id: str
    codec_id: str
    output_dir: str
    start_step: int
    end_step: int
    train_seconds: float
    train_hours: float
    train_rows: int
    latents_version: int
    vocab_sizes: dict[str, int] = field(default_factory=dict)
    last_metrics: dict[str, float] = field(default_factory=dict)
    last_valid: dict[str, float] = field(default_factory=dict)
    already_complete: bool = False
    parallel_pairs: int = 0

    def format(self) -> str:
        paths = checkpoint_paths(self.output_dir)
        lines = [f"factorizer {self.factorizer_id} (on codec {self.codec_id}): steps {self.start_step} -> "
                 f"{self.end_step} ({self.train_seconds / 60:.1f} min of training in total)"
                 + ("; already complete, nothing to do" if self.already_complete else ""),
                 f"  trained on {self.train_rows} latents rows, {self.train_hours:.2f} h (latents version "
                 f"{self.latents_version}); classes: "
                 + ", ".join(f"{k} {v}" for k, v in self.vocab_sizes.items())
                 + (f"; {self.parallel_pairs} parallel pairs as direct swap targets" if self.parallel_pairs else "")]
        if self.last_metrics:
            lines.append("  last train losses: " + ", ".join(f"{k} {v:.4f}" for k, v in self.last_metrics.items()))
        if self.last_valid:
            lines.append("  last valid: " + ", ".join(f"{k} {v:.4f}" for k, v in self.last_valid.items()))
        lines += [f"  checkpoint: {paths['latest']}", f"  metrics:    {paths['metrics']}",
                  f"  curve:      {paths['curve']}"]
        return "\n".join(lines)


def _model_config(config: TrainFactorizerConfig, latent_dim: int, vocab: dict[str, list[str]]):
    from models.factorizer.builders import resolve_model_config

    base = resolve_model_config(config.preset if config.model is None else config.model)
    return base.model_copy(update={"latent_dim": latent_dim}).with_label_vocab(vocab)


def run_train_factorizer(config: TrainFactorizerConfig, *,
                         progress: Callable[[str], None] = print) -> TrainFactorizerSummary:
    """Train (or resume training) the factorizer described by ``config``; returns where everything went.

    Raises:
        models.codec.CheckpointError: the codec checkpoint is missing or broken.
        models.factorizer.FactorizerCheckpointError: ``output_dir`` holds another factorizer, or a broken one.
        FileNotFoundError / ValueError: no tables, or no latents of this codec for the splits (encode first).
        pipelines.train_loop.TrainingError: the Ray Train run failed.
    """
    from models.codec.checkpoint import load_checkpoint
    from models.factorizer.checkpoint import (FactorizerCheckpointError, factorizer_id_for,
                                              load_factorizer_checkpoint)
    from pipelines.factorizer_data import index_latents, make_window_plan
    from pipelines.factorizer_pairs import find_training_pairs

    lake = resolve_uri(config.lake_root)
    output_dir = resolve_uri(config.output_dir)
    codec_path = resolve_uri(config.codec_checkpoint)
    config = config.model_copy(update={"lake_root": lake, "output_dir": output_dir, "codec_checkpoint": codec_path})
    codec, _, codec_meta = load_checkpoint(codec_path)
    codec_id, latent_dim = codec_meta.codec_id, codec.quantizer.dim
    tr = config.training
    if tr.batch_size % config.execution.num_workers:
        raise ValueError(f"training.batch_size {tr.batch_size} must be a multiple of execution.num_workers "
                         f"{config.execution.num_workers}")

    outputs = RunOutputs(output_dir, config.storage)
    start_step, train_seconds, vocab, latents_version = 0, 0.0, None, None
    if outputs.exists(outputs.paths["latest"]):
        _, _, meta = load_factorizer_checkpoint(outputs.fetch(outputs.paths["latest"]))
        if meta.codec_id != codec_id:
            raise FactorizerCheckpointError(f"{outputs.paths['latest']}: was trained on codec {meta.codec_id!r}, "
                                            f"this config names codec {codec_id!r}; use another output_dir")
        vocab, latents_version = meta.label_vocab, meta.extra.get("latents_version")
        expected = factorizer_id_for(_model_config(config, latent_dim, vocab), codec_id)
        if meta.architecture_id != expected:
            raise FactorizerCheckpointError(f"{outputs.paths['latest']}: holds factorizer {meta.architecture_id!r}, "
                                            f"this config trains {expected!r}; use another output_dir")
        start_step, train_seconds = meta.step, float(meta.extra.get("train_seconds", 0.0))
        progress(f"resuming {meta.architecture_id} from step {start_step} ({train_seconds / 60:.1f} min trained)")

    train_filter = segments_filter(split=config.train_split, holdout_corpora=config.holdout_corpora)
    valid_filter = segments_filter(split=config.valid_split, holdout_corpora=config.holdout_corpora)
    train = index_latents(lake, config.storage, codec_id=codec_id, vocab=vocab, min_count=tr.min_label_count,
                          latents_version=latents_version,
                          segments_filter=train_filter)
    valid = index_latents(lake, config.storage, codec_id=codec_id, vocab=train.vocab,
                          latents_version=train.version,
                          segments_filter=valid_filter)
    model_config = _model_config(config, latent_dim, train.vocab)
    factorizer_id = factorizer_id_for(model_config, codec_id)
    budget_s = tr.max_minutes * 60 if tr.max_minutes is not None else math.inf
    summary = TrainFactorizerSummary(factorizer_id=factorizer_id, codec_id=codec_id, output_dir=output_dir,
                                     start_step=start_step, end_step=start_step, train_seconds=train_seconds,
                                     train_hours=train.hours, train_rows=len(train), latents_version=train.version,
                                     vocab_sizes={k: len(v) for k, v in train.vocab.items()})
    if start_step >= tr.max_steps or train_seconds >= budget_s:
        summary.already_complete = True
        summary.factorizer_id = meta.factorizer_id  # the full id (with the weights digest) of what is there
        return summary

    pairs = find_training_pairs(lake, config.storage, segment_ids=train.segment_ids, num_frames=train.num_frames,
                                frame_rate_hz=train.frame_rate_hz, max_pairs=tr.parallel_pairs, seed=tr.seed,
                                segments_filter=train_filter, progress=progress)
    summary.parallel_pairs = len(pairs)
    valid_pairs = find_training_pairs(lake, config.storage, segment_ids=valid.segment_ids, num_frames=valid.num_frames,
                                      frame_rate_hz=valid.frame_rate_hz, seed=tr.seed,
                                      max_pairs=min(tr.parallel_pairs, tr.valid_rows),
                                      segments_filter=valid_filter, progress=progress)
    plan = make_window_plan(train, steps=tr.max_steps, batch_size=tr.batch_size, max_frames=tr.max_frames,
                            seed=tr.seed, pairs=pairs, pairs_per_batch=tr.pairs_per_batch)
    progress(f"training {factorizer_id} on codec {codec_id}'s latents: {len(train)} {config.train_split} rows "
             f"({train.hours:.2f} h, latents version {train.version}), {len(valid)} {config.valid_split} rows; "
             f"classes {summary.vocab_sizes}; steps {start_step} -> {tr.max_steps}"
             + (f" or {tr.max_minutes:g} min" if tr.max_minutes else "")
             + (f"; {tr.pairs_per_batch} of {tr.batch_size} windows per step from {len(pairs)} parallel pairs"
                if len(pairs) and tr.pairs_per_batch else ""))
    loop_config = {"config": config.model_dump(mode="json"), "model_config": model_config.model_dump(mode="json"),
                   "factorizer_id": factorizer_id, "codec_id": codec_id, "vocab": train.vocab,
                   "start_step": start_step, "latents_uri": train.uri, "latents_version": train.version,
                   "valid_index": valid, "valid_pairs": valid_pairs}
    _fit(config, plan, loop_config)
    _, _, meta = load_factorizer_checkpoint(outputs.fetch(outputs.paths["latest"]))
    history = outputs.read_metrics()
    last_train = next((r for r in reversed(history) if "total" in r), {})
    summary.end_step, summary.factorizer_id = meta.step, meta.factorizer_id
    summary.train_seconds = float(meta.extra.get("train_seconds", train_seconds))
    summary.last_metrics = {k: float(last_train[k]) for k in ("total", "recon_l1", "swap_global", "parallel_l1")
                            if k in last_train}
    summary.last_valid = {k[len("valid_"):]: float(v) for k, v in meta.extra.items() if k.startswith("valid_")}
    return summary


def _fit(config: TrainFactorizerConfig, plan, loop_config: dict[str, Any]) -> None:
    from pipelines.ray_env import init_ray

    ex = config.execution
    init_ray(ex.ray_address)  # before any `import ray`: a local Ray must be told to stay on loopback first
    import ray.data

    from pipelines.factorizer_data import read_windows

    remaining = plan.from_step(loop_config["start_step"])
    blocks = [remaining.slice(i, ex.crops_per_block) for i in range(0, remaining.num_rows, ex.crops_per_block)]
    windows = ray.data.from_arrow(blocks).map_batches(
        read_windows, batch_format="numpy", batch_size=None, num_cpus=ex.data_cpus_per_task,
        fn_kwargs={"uri": loop_config["latents_uri"], "version": loop_config["latents_version"],
                   "max_frames": plan.max_frames, "storage": config.storage})
    fit_with_ray_train(train_loop_per_worker, loop_config, windows, execution=ex, output_dir=config.output_dir,
                       run_name="train_factorizer")


def train_loop_per_worker(loop_config: dict[str, Any]) -> None:
    """Ray Train entry point: every rank trains; rank 0 also validates, checkpoints and writes metrics."""
    import ray.train
    import torch

    from pipelines.train_loop import run_train_loop

    config = TrainFactorizerConfig.model_validate(loop_config["config"])
    if config.execution.torch_threads:
        torch.set_num_threads(config.execution.torch_threads)
    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    outputs = RunOutputs(config.output_dir, config.storage)
    recipe = _FactorizerRecipe(config, loop_config, outputs, rank=rank, world=world)
    shard = ray.train.get_dataset_shard("train")
    batches = shard.iter_batches(batch_size=config.training.batch_size // world, batch_format="numpy",
                                 prefetch_batches=4, drop_last=True)
    run_train_loop(recipe, batches, outputs, config.training, start_step=recipe.start_step,
                   train_seconds=recipe.train_seconds, rank=rank, world=world, title=loop_config["factorizer_id"],
                   tag="train_factorizer", ylabel="loss (recon + heads + swap cycle [+ parallel])",
                   show=("recon_l1", "speaker"))


class _FactorizerRecipe:
    """The factorizer's model, optimizer, step, validation and checkpoint for the shared loop."""

    def __init__(self, config: TrainFactorizerConfig, loop_config: dict[str, Any], outputs: RunOutputs, *,
                 rank: int, world: int) -> None:
        import ray.train
        import torch

        from models.codec.checkpoint import load_checkpoint
        from models.factorizer.builders import build_factorizer, build_factorizer_loss
        from models.factorizer.checkpoint import load_factorizer_checkpoint
        from models.factorizer.recipe import make_optimizer
        from pipelines.factorizer_data import read_index_rows, read_pair_rows
        from schemas.factorizer import FactorizerModelConfig

        tr = config.training
        self.config, self.loop_config = config, loop_config
        self.model_config = FactorizerModelConfig.model_validate(loop_config["model_config"])
        self.codec, _, _ = load_checkpoint(config.codec_checkpoint, expected_codec_id=loop_config["codec_id"])
        torch.manual_seed(tr.seed)  # same initial weights on every rank and every run of this config
        self.factorizer = build_factorizer(self.model_config)
        self.loss_fn = build_factorizer_loss(config.loss)
        self.optimizer = make_optimizer(self.factorizer, learning_rate=tr.learning_rate,
                                        weight_decay=tr.weight_decay, betas=tuple(tr.betas))
        self.start_step, self.train_seconds = int(loop_config["start_step"]), 0.0
        if self.start_step > 0:
            restored, _, meta = load_factorizer_checkpoint(outputs.fetch(outputs.paths["latest"]))
            self.factorizer.load_state_dict(restored.state_dict())
            if meta.optimizer_state:
                self.optimizer.load_state_dict(meta.optimizer_state)
            self.train_seconds = float(meta.extra.get("train_seconds", 0.0))
        self.model = ray.train.torch.prepare_model(self.factorizer) if world > 1 else self.factorizer
        self.valid: list = []
        if rank == 0 and len(loop_config["valid_index"]):
            windows = read_index_rows(loop_config["valid_index"], config.storage, rows=tr.valid_rows,
                                      max_frames=tr.max_frames)
            self.valid = [self._batch({k: v[i:i + tr.batch_size] for k, v in windows.items()})
                          for i in range(0, len(windows["lengths"]), tr.batch_size)]
        self.valid_parallel: list = []
        valid_pairs = loop_config.get("valid_pairs")
        if rank == 0 and valid_pairs is not None and len(valid_pairs) and self.loss_fn.uses_parallel:
            windows = read_pair_rows(loop_config["valid_index"], valid_pairs, config.storage,
                                     max_frames=tr.max_frames)
            self.valid_parallel = [self._batch({k: v[i:i + tr.batch_size] for k, v in windows.items()})
                                   for i in range(0, len(windows["lengths"]), tr.batch_size)]

    def _batch(self, batch: dict[str, Any]):
        """Numpy window batch -> FactorizerBatch (codes -> the codec's quantized latent)."""
        import torch

        from models.factorizer.model import FactorizerBatch
        from schemas.factorizer import FACTOR_NAMES

        codes = torch.from_numpy(batch["codes"].astype("int64"))
        latent = self.codec.codes_to_latent(codes)
        labels = {name: torch.from_numpy(batch[name].astype("int64")) for name in FACTOR_NAMES}
        target = has_target = None
        if "has_target" in batch:
            target = self.codec.codes_to_latent(torch.from_numpy(batch["target_codes"].astype("int64")))
            has_target = torch.from_numpy(batch["has_target"].astype(bool))
        return FactorizerBatch(latent=latent, lengths=torch.from_numpy(batch["lengths"].astype("int64")),
                               target=target, has_target=has_target, **labels)

    def train_step(self, batch: dict[str, Any], step: int) -> dict[str, float]:
        from models.factorizer.recipe import lr_at, set_learning_rate, train_step

        tr = self.config.training
        set_learning_rate(self.optimizer, lr_at(step, base=tr.learning_rate, warmup_steps=tr.lr_warmup_steps,
                                                total_steps=tr.max_steps))
        terms = train_step(self.model, self.loss_fn, self.optimizer, self._batch(batch),
                           grad_clip_norm=tr.grad_clip_norm)
        return {**terms, "lr": self.optimizer.param_groups[0]["lr"]}

    def validate(self) -> dict[str, float]:
        from models.factorizer.recipe import validate

        metrics = validate(self.factorizer, self.loss_fn, self.valid) if self.valid else {}
        for name in ("parallel_l1", "parallel_mse"):  # plain valid rows have no partner: 0 would read as perfect
            metrics.pop(name, None)
        if self.valid_parallel:  # held-apart voices' direct swaps: what the parallel term buys off the training set
            par = validate(self.factorizer, self.loss_fn, self.valid_parallel)
            metrics.update({"parallel_l1": par["parallel_l1"], "parallel_mse": par["parallel_mse"]})
        return metrics

    def save_checkpoint(self, path: Path, *, step: int, train_seconds: float, extra: dict[str, float]) -> None:
        from models.factorizer.checkpoint import save_factorizer_checkpoint

        save_factorizer_checkpoint(path, self.factorizer, self.model_config, codec_id=self.loop_config["codec_id"],
                                   label_vocab=self.loop_config["vocab"], step=step,
                                   optimizer_state=self.optimizer.state_dict(),
                                   extra={"train_seconds": train_seconds,
                                          "latents_version": self.loop_config["latents_version"], **extra})
