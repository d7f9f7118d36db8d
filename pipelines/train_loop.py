"""The step loop every Ray Train worker runs, whatever the model: budget, logging, validation, checkpoints.

A training job supplies a *recipe* (torchtune's shape): an object that owns
the model and optimizer and knows how to take one step, validate and save
itself. This loop owns everything that must behave the same in every job:

- the budget: ``max_steps`` or ``max_minutes`` of training time (summed over
  resumes), whichever comes first; with several ranks the time check is
  all-reduced so every rank stops at the same step (or DDP's next
  all-reduce hangs);
- ``ray.train.report`` on the same steps on every rank (it is collective);
- rank 0: validation every ``valid_every_steps``, ``metrics.jsonl`` and the
  loss curve, and checkpoints every ``checkpoint_every_steps`` (``latest.pt``
  plus the last ``keep_checkpoints`` ``step_*.pt``) and at the end.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any, Iterable, Protocol

from pipelines.run_outputs import RunOutputs
from schemas.storage import is_remote

__all__ = ["TrainRecipe", "LoopSettings", "run_train_loop", "fit_with_ray_train", "TrainingError"]


class TrainingError(RuntimeError):
    """Training could not start or did not finish; the message says why in one line."""


class TrainRecipe(Protocol):
    """One model's training code, as the shared loop calls it."""

    def train_step(self, batch: dict[str, Any], step: int) -> dict[str, float]:
        """One optimizer step at 0-based ``step``; returns loss terms (``total`` among them)."""

    def validate(self) -> dict[str, float]:
        """Validation terms (``total`` among them); called on rank 0 only."""

    def save_checkpoint(self, path: Path, *, step: int, train_seconds: float, extra: dict[str, float]) -> None:
        """Write a resumable checkpoint (weights, optimizer, config, id, ``extra``) to ``path``."""


class LoopSettings(Protocol):
    """The fields of a job's ``training`` config that the loop reads."""

    max_steps: int
    max_minutes: float | None
    log_every_steps: int
    valid_every_steps: int
    checkpoint_every_steps: int
    keep_checkpoints: int


def run_train_loop(recipe: TrainRecipe, batches: Iterable[dict[str, Any]], outputs: RunOutputs,
                   settings: LoopSettings, *, start_step: int, train_seconds: float, rank: int, world: int,
                   title: str, tag: str, ylabel: str = "loss", show: tuple[str, ...] = ()) -> int:
    """Train from ``start_step`` until the budget is spent or ``batches`` runs out; returns the last step.

    Args:
        batches: this rank's batches, already in step order from ``start_step``.
        title: the loss curve's title (the model id).
        tag: prefix of progress lines, e.g. ``train_codec``.
        show: extra loss terms to print on progress lines.
    """
    import numpy as np
    import ray.train
    import torch
    import torch.distributed as dist

    step = start_step
    history = [r for r in outputs.read_metrics() if r["step"] <= step] if rank == 0 else []
    budget_s = settings.max_minutes * 60 if settings.max_minutes is not None else math.inf
    window: dict[str, list[float]] = {}
    last_valid: dict[str, float] = {}
    t_window, steps_in_window = time.perf_counter(), 0
    for batch in batches:
        if step >= settings.max_steps:
            break
        t0 = time.perf_counter()
        terms = recipe.train_step(batch, step)
        train_seconds += time.perf_counter() - t0
        step += 1
        steps_in_window += 1
        for k, v in terms.items():
            window.setdefault(k, []).append(v)
        out_of_time = train_seconds >= budget_s
        if world > 1:
            flag = torch.tensor([float(out_of_time)])
            dist.all_reduce(flag, op=dist.ReduceOp.MAX)
            out_of_time = bool(flag.item())
        finished = step >= settings.max_steps or out_of_time
        do_log = step % settings.log_every_steps == 0 or finished
        do_valid = step % settings.valid_every_steps == 0 or finished
        report: dict[str, float] = {}
        if do_log:
            elapsed = time.perf_counter() - t_window
            report = {k: float(np.mean(v)) for k, v in window.items()}
            report["steps_per_s"] = steps_in_window / max(elapsed, 1e-9)
            window, t_window, steps_in_window = {}, time.perf_counter(), 0
        if do_valid and rank == 0:
            last_valid = {f"valid_{k}": v for k, v in recipe.validate().items()}
            report.update(last_valid)  # metrics.jsonl: valid terms only on the steps that validated
        if do_log or do_valid:
            report.update(step=step, train_seconds=train_seconds)
            if rank == 0:
                history.append(report)
                _print_progress(tag, {**last_valid, **report}, settings.max_steps, budget_s, show)
            ray.train.report({**last_valid, **report})
        if rank == 0 and (step % settings.checkpoint_every_steps == 0 or finished):
            scratch = outputs.scratch(f"step_{step:07d}.pt")
            recipe.save_checkpoint(scratch, step=step, train_seconds=train_seconds, extra=dict(last_valid))
            outputs.publish_checkpoint(scratch, step, settings.keep_checkpoints)
            outputs.write_metrics(history)
            outputs.plot_curve(history, title=title, ylabel=ylabel)
        if finished:
            break
    return step


def _print_progress(tag: str, report: dict[str, float], max_steps: int, budget_s: float,
                    show: tuple[str, ...]) -> None:
    step, rate, spent = int(report["step"]), report.get("steps_per_s", 0.0), report["train_seconds"]
    left_s = (max_steps - step) / rate if rate > 0 else math.inf
    left_s = min(left_s, budget_s - spent)
    extra = "".join(f"  {k} {report.get(k, math.nan):.4f}" for k in show)
    print(f"[{tag}] step {step}/{max_steps}  loss {report.get('total', math.nan):.4f}{extra}  "
          f"valid {report.get('valid_total', math.nan):.4f}  {rate:.2f} steps/s  {spent / 60:.1f} min trained  "
          f"~{left_s / 60:.0f} min left", flush=True)


def fit_with_ray_train(train_loop_per_worker: Any, loop_config: dict[str, Any], dataset: Any, *, execution: Any,
                       output_dir: str, run_name: str) -> None:
    """Run ``train_loop_per_worker`` on a ``TorchTrainer`` fed by ``dataset`` (streamed in plan order).

    ``execution`` gives ``num_workers`` and ``cpus_per_worker`` (fractional CPUs leave room for the Ray Data
    readers on a small machine). Ray must be initialized already (``pipelines.ray_env.init_ray``). The
    dataset's scheduling loop backs off while the trainer is the bottleneck (``pipelines.ray_idle``).

    Raises:
        TrainingError: the run failed (the worker's error, first line).
    """
    import ray.train
    from ray.data import ExecutionOptions
    from ray.train.torch import TorchTrainer

    from pipelines.ray_idle import install as install_idle_backoff

    install_idle_backoff(dataset.context)  # else the input's coordinator spins a core while the trainer works
    storage_path = None if is_remote(output_dir) else str(Path(output_dir) / "ray_train")
    trainer = TorchTrainer(
        train_loop_per_worker, train_loop_config=loop_config,
        scaling_config=ray.train.ScalingConfig(num_workers=execution.num_workers,
                                               resources_per_worker={"CPU": execution.cpus_per_worker}),
        run_config=ray.train.RunConfig(name=f"{run_name}-{time.strftime('%Y%m%dT%H%M%S')}",
                                       storage_path=storage_path),
        datasets={"train": dataset},
        dataset_config=ray.train.DataConfig(execution_options=ExecutionOptions(preserve_order=True)),
    )
    try:
        result = trainer.fit()
    except Exception as exc:  # Ray wraps the worker's exception; keep its first line
        text = str(exc).strip().splitlines()
        raise TrainingError(f"Ray Train run failed: {text[-1] if text else type(exc).__name__}") from exc
    if getattr(result, "error", None):
        raise TrainingError(f"Ray Train run failed: {result.error}")
