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

import json
import math
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from schemas.codec import TrainCodecConfig, segments_filter
from schemas.storage import StorageConfig, is_remote, resolve_uri

__all__ = ["TrainCodecSummary", "run_train_codec", "checkpoint_paths", "TrainingError"]

LATEST = "latest.pt"


class TrainingError(RuntimeError):
    """Training could not start or did not finish; the message says why in one line."""


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


def checkpoint_paths(output_dir: str) -> dict[str, str]:
    """Where a run's outputs go under ``output_dir``."""
    root = output_dir.rstrip("/")
    return {"dir": f"{root}/checkpoints", "latest": f"{root}/checkpoints/{LATEST}",
            "metrics": f"{root}/metrics.jsonl", "curve": f"{root}/loss_curve.png"}


# --------------------------------------------------------------------------------------------------------------
# Output storage: local paths or s3:// through fsspec, with atomic replaces.


class _Outputs:
    """Reads and writes a run's files under ``output_dir`` (local or remote)."""

    def __init__(self, output_dir: str, storage: StorageConfig) -> None:
        import fsspec

        self.root = output_dir.rstrip("/")
        self.paths = checkpoint_paths(self.root)
        self.remote = is_remote(self.root)
        if self.remote:
            self.fs, _ = fsspec.core.url_to_fs(self.root, **storage.fsspec_options())
        else:
            self.fs = fsspec.filesystem("file")
            Path(self.paths["dir"]).mkdir(parents=True, exist_ok=True)

    def exists(self, uri: str) -> bool:
        return bool(self.fs.exists(uri))

    def fetch(self, uri: str) -> Path:
        """A local path holding ``uri``'s bytes (the file itself when local)."""
        if not self.remote:
            return Path(uri)
        local = Path(tempfile.mkdtemp(prefix="lsm-ckpt-")) / Path(uri).name
        self.fs.get(uri, str(local))
        return local

    def publish(self, local: Path, uri: str) -> None:
        """Move a finished local file to ``uri`` atomically (rename locally; one PUT on S3)."""
        if self.remote:
            self.fs.put(str(local), uri)
            local.unlink(missing_ok=True)
        else:
            os.replace(local, uri)

    def scratch(self, name: str) -> Path:
        """A temp path to write ``name`` into before publishing (same directory when local: atomic rename)."""
        base = Path(tempfile.mkdtemp(prefix="lsm-out-")) if self.remote else Path(self.paths["dir"])
        return base / f".{name}.{os.getpid()}.tmp"

    def step_checkpoints(self) -> list[str]:
        found = [p for p in self.fs.ls(self.paths["dir"], detail=False) if Path(p).name.startswith("step_")]
        return sorted(("s3://" + p if self.remote and not p.startswith("s3://") else p) for p in found)

    def read_text(self, uri: str) -> str | None:
        return self.fs.cat_file(uri).decode() if self.exists(uri) else None


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
    config = config.model_copy(update={"lake_root": lake, "output_dir": output_dir})
    model_config = resolve_model_config(config)
    codec_id = codec_id_for(model_config)
    ex, tr = config.execution, config.training
    if tr.batch_size % ex.num_workers:
        raise ValueError(f"training.batch_size {tr.batch_size} must be a multiple of execution.num_workers "
                         f"{ex.num_workers}")

    outputs = _Outputs(output_dir, config.storage)
    start_step, train_seconds, pinned_version = 0, 0.0, None
    if outputs.exists(outputs.paths["latest"]):
        _, _, meta = load_checkpoint(outputs.fetch(outputs.paths["latest"]))
        if meta.codec_id != codec_id:
            raise CheckpointError(f"{outputs.paths['latest']}: holds codec {meta.codec_id!r}, this config trains "
                                  f"{codec_id!r}; use another output_dir (or delete it to start over)")
        start_step, train_seconds = meta.step, float(meta.extra.get("train_seconds", 0.0))
        pinned_version = meta.extra.get("segments_version")
        progress(f"resuming {codec_id} from step {start_step} ({train_seconds / 60:.1f} min trained)")

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
    history = _read_metrics(outputs)
    last_train = next((r for r in reversed(history) if "total" in r), {})
    summary.end_step = meta.step
    summary.train_seconds = float(meta.extra.get("train_seconds", train_seconds))
    summary.last_metrics = {k: float(last_train[k]) for k in ("total", "mel", "log_magnitude", "spectral_convergence")
                            if k in last_train}
    summary.last_valid = {k[len("valid_"):]: float(v) for k, v in meta.extra.items() if k.startswith("valid_")}
    return summary


def _fit(config: TrainCodecConfig, codec_id: str, plan, start_step: int, index, valid_filter: str) -> None:
    from pipelines.ray_env import init_ray

    ex = config.execution
    init_ray(ex.ray_address)  # before any `import ray`: a local Ray must be told to stay on loopback first
    import ray.data
    import ray.train
    from ray.data import ExecutionOptions
    from ray.train.torch import TorchTrainer

    from pipelines.codec_data import read_crops
    remaining = plan.from_step(start_step)
    blocks = [remaining.slice(i, ex.crops_per_block) for i in range(0, remaining.num_rows, ex.crops_per_block)]
    crops = ray.data.from_arrow(blocks).map_batches(
        read_crops, batch_format="numpy", batch_size=None, num_cpus=ex.data_cpus_per_task,
        fn_kwargs={"uri": index.uri, "version": index.version, "crop_samples": plan.crop_samples,
                   "storage": config.storage})
    loop_config = {"config": config.model_dump(mode="json"), "codec_id": codec_id, "start_step": start_step,
                   "segments_version": index.version, "valid_filter": valid_filter}
    storage_path = None if is_remote(config.output_dir) else str(Path(config.output_dir) / "ray_train")
    trainer = TorchTrainer(
        train_loop_per_worker, train_loop_config=loop_config,
        scaling_config=ray.train.ScalingConfig(num_workers=ex.num_workers,
                                               resources_per_worker={"CPU": ex.cpus_per_worker}),
        run_config=ray.train.RunConfig(name=f"train_codec-{codec_id}-{time.strftime('%Y%m%dT%H%M%S')}",
                                       storage_path=storage_path),
        datasets={"train": crops},
        dataset_config=ray.train.DataConfig(execution_options=ExecutionOptions(preserve_order=True)),
    )
    try:
        result = trainer.fit()
    except Exception as exc:  # Ray wraps the worker's exception; keep its first line
        text = str(exc).strip().splitlines()
        raise TrainingError(f"Ray Train run failed: {text[-1] if text else type(exc).__name__}") from exc
    if getattr(result, "error", None):
        raise TrainingError(f"Ray Train run failed: {result.error}")


# --------------------------------------------------------------------------------------------------------------
# Worker.


def train_loop_per_worker(loop_config: dict[str, Any]) -> None:
    """Ray Train entry point: every rank trains; rank 0 also validates, checkpoints and writes metrics."""
    import numpy as np
    import ray.train
    import torch
    import torch.distributed as dist

    from models.codec.builders import build_codec, build_codec_loss, resolve_model_config
    from models.codec.checkpoint import load_checkpoint
    from models.codec.recipe import lr_at, make_optimizer, set_learning_rate, train_step, validate
    from pipelines.codec_data import read_valid_clips

    config = TrainCodecConfig.model_validate(loop_config["config"])
    tr, ex = config.training, config.execution
    if ex.torch_threads:
        torch.set_num_threads(ex.torch_threads)
    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    model_config = resolve_model_config(config)
    torch.manual_seed(tr.seed)  # same initial weights on every rank and every run of this config
    codec = build_codec(model_config)
    loss_fn = build_codec_loss(config.loss)
    optimizer = make_optimizer(codec, learning_rate=tr.learning_rate, betas=tuple(tr.betas),
                               weight_decay=tr.weight_decay)
    outputs = _Outputs(config.output_dir, config.storage)
    step, train_seconds = int(loop_config["start_step"]), 0.0
    if step > 0:
        restored, _, meta = load_checkpoint(outputs.fetch(outputs.paths["latest"]), loop_config["codec_id"])
        codec.load_state_dict(restored.state_dict())
        if meta.optimizer_state:
            optimizer.load_state_dict(meta.optimizer_state)
        train_seconds = float(meta.extra.get("train_seconds", 0.0))
    model = ray.train.torch.prepare_model(codec) if world > 1 else codec

    history: list[dict] = []
    valid = None
    if rank == 0:
        history = [r for r in _read_metrics(outputs) if r["step"] <= step]
        valid = torch.from_numpy(read_valid_clips(config.lake_root, config.storage, loop_config["valid_filter"],
                                                  clips=tr.valid_clips, crop_s=tr.valid_crop_s))

    def save(extra_metrics: dict[str, float]) -> None:
        from models.codec.checkpoint import save_checkpoint

        name = f"step_{step:07d}.pt"
        scratch = outputs.scratch(name)
        save_checkpoint(scratch, codec, model_config, step=step, optimizer_state=optimizer.state_dict(),
                        extra={"train_seconds": train_seconds, "segments_version": loop_config["segments_version"],
                               **extra_metrics})
        # latest.pt first: a kill between the two writes still leaves a resumable latest
        latest_scratch = outputs.scratch(LATEST)
        latest_scratch.write_bytes(scratch.read_bytes())
        outputs.publish(latest_scratch, outputs.paths["latest"])
        outputs.publish(scratch, f"{outputs.paths['dir']}/{name}")
        for old in outputs.step_checkpoints()[:-tr.keep_checkpoints]:
            outputs.fs.rm(old)
        _write_metrics(outputs, history)
        _plot_curve(outputs, history, title=loop_config["codec_id"])

    budget_s = tr.max_minutes * 60 if tr.max_minutes is not None else math.inf
    local_batch = tr.batch_size // world
    shard = ray.train.get_dataset_shard("train")
    window: dict[str, list[float]] = {}
    last_valid: dict[str, float] = {}
    t_window = time.perf_counter()
    steps_in_window = 0
    for batch in shard.iter_batches(batch_size=local_batch, batch_format="numpy", prefetch_batches=4,
                                    drop_last=True):
        if step >= tr.max_steps:
            break
        t0 = time.perf_counter()
        set_learning_rate(optimizer, lr_at(step, base=tr.learning_rate, warmup_steps=tr.lr_warmup_steps,
                                           total_steps=tr.max_steps))
        terms = train_step(model, loss_fn, optimizer, torch.tensor(batch["audio"]),
                           grad_clip_norm=tr.grad_clip_norm, latent_penalty_weight=config.loss.latent_penalty_weight,
                           latent_bound=config.loss.latent_bound)
        train_seconds += time.perf_counter() - t0
        step += 1
        steps_in_window += 1
        for k, v in terms.items():
            window.setdefault(k, []).append(v)
        out_of_time = train_seconds >= budget_s
        if world > 1:  # every rank must stop at the same step, or DDP's next all-reduce hangs
            flag = torch.tensor([float(out_of_time)])
            dist.all_reduce(flag, op=dist.ReduceOp.MAX)
            out_of_time = bool(flag.item())
        finished = step >= tr.max_steps or out_of_time
        do_log = step % tr.log_every_steps == 0 or finished
        do_valid = step % tr.valid_every_steps == 0 or finished
        report: dict[str, float] = {}
        if do_log:
            elapsed = time.perf_counter() - t_window
            report = {k: float(np.mean(v)) for k, v in window.items()}
            report.update(lr=optimizer.param_groups[0]["lr"], steps_per_s=steps_in_window / max(elapsed, 1e-9))
            window, t_window, steps_in_window = {}, time.perf_counter(), 0
        if do_valid and rank == 0:
            last_valid = {f"valid_{k}": v for k, v in validate(codec, loss_fn, valid).items()}
            report.update(last_valid)  # metrics.jsonl: valid terms only on the steps that validated
        if do_log or do_valid:  # the same condition on every rank: ray.train.report is collective
            report.update(step=step, train_seconds=train_seconds)
            if rank == 0:
                history.append(report)
                _print_progress({**last_valid, **report}, tr.max_steps, budget_s)
            ray.train.report({**last_valid, **report})
        if rank == 0 and (step % tr.checkpoint_every_steps == 0 or finished):
            save(dict(last_valid))
        if finished:
            break


def _print_progress(report: dict[str, float], max_steps: int, budget_s: float) -> None:
    step, rate, spent = int(report["step"]), report.get("steps_per_s", 0.0), report["train_seconds"]
    left_s = (max_steps - step) / rate if rate > 0 else math.inf
    left_s = min(left_s, budget_s - spent)
    print(f"[train_codec] step {step}/{max_steps}  loss {report.get('total', math.nan):.4f}  "
          f"mel {report.get('mel', math.nan):.4f}  valid {report.get('valid_total', math.nan):.4f}  "
          f"{rate:.2f} steps/s  {spent / 60:.1f} min trained  ~{left_s / 60:.0f} min left", flush=True)


def _read_metrics(outputs: _Outputs) -> list[dict]:
    text = outputs.read_text(outputs.paths["metrics"])
    return [json.loads(line) for line in (text or "").splitlines() if line.strip()]


def _write_metrics(outputs: _Outputs, history: list[dict]) -> None:
    scratch = outputs.scratch("metrics.jsonl")
    scratch.write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in history))
    outputs.publish(scratch, outputs.paths["metrics"])


def _plot_curve(outputs: _Outputs, history: list[dict], *, title: str) -> None:
    """Train loss (per logged window) and valid loss against step, log scale."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    train = [(r["step"], r["total"]) for r in history if "total" in r]
    valid = [(r["step"], r["valid_total"]) for r in history if "valid_total" in r]
    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    if train:
        ax.plot(*zip(*train), lw=0.8, label="train (mean per log window)")
    if valid:
        ax.plot(*zip(*valid), "o-", ms=3, label="valid (fixed clips)")
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("loss (multi-res STFT + mel)")
    ax.set_title(title)
    ax.grid(alpha=0.3, which="both")
    ax.legend()
    fig.tight_layout()
    scratch = outputs.scratch("loss_curve.png")
    fig.savefig(scratch, format="png")
    plt.close(fig)
    outputs.publish(scratch, outputs.paths["curve"])
