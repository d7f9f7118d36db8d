"""Train the CTC phoneme recognizer with Ray Train on the streaming training input, then score held-out sets.

Flow (driver -> Ray Train workers)::

    input config -> pipelines.train_input index (real + synthetic rows, pinned versions)
      -> espeak-ng phoneme targets for every (language, transcript) pair, the inventory (pipelines.ctc_targets)
      -> Ray Data: one shuffled plan per epoch, codes read per block (pipelines.train_input), streamed
      -> TorchTrainer workers: windows with their whole transcript -> CTC step (the shared loop,
         pipelines.train_loop: budget, checkpoints, metrics.jsonl, loss_curve.png)
      -> driver: final weights scored on every eval set (PER, pipelines.eval_ctc) -> eval.json

The recognizer id hashes the model config with the codec id and the phoneme
inventory. A re-run of the same command resumes from
``output_dir/checkpoints/latest.pt``: the table versions and inventory stored
there are reused, and the input skips the items already trained on, so the
run sees what an uninterrupted one would have.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from pipelines.phoneme_training import WholeRowRecipe, read_resume_state, resolve_job_paths, whole_rows
from pipelines.run_outputs import RunOutputs, checkpoint_paths
from pipelines.train_loop import fit_with_ray_train
from schemas.train_ctc import TrainCtcConfig

__all__ = ["TrainCtcSummary", "run_train_ctc", "EVAL_FILE"]

#: Per-set scores of the final weights, next to the checkpoints.
EVAL_FILE = "eval.json"


@dataclass
class TrainCtcSummary:
    """What a recognizer training run did, its held-out scores, and where its outputs are."""

    ctc_id: str
    codec_id: str
    output_dir: str
    start_step: int
    end_step: int
    train_seconds: float
    real_rows: int
    synthetic_per_epoch: int
    synthetic_pool: int
    num_phonemes: int
    versions: dict[str, int] = field(default_factory=dict)
    last_train: dict[str, float] = field(default_factory=dict)
    eval: dict[str, dict[str, float]] = field(default_factory=dict)
    already_complete: bool = False

    def format(self) -> str:
        paths = checkpoint_paths(self.output_dir)
        lines = [f"recognizer {self.ctc_id} (on codec {self.codec_id}): steps {self.start_step} -> {self.end_step} "
                 f"({self.train_seconds / 60:.1f} min of training in total)"
                 + ("; already complete, nothing to train" if self.already_complete else ""),
                 f"  input: {self.real_rows} real rows + {self.synthetic_per_epoch} synthetic per epoch (pool "
                 f"{self.synthetic_pool}); {self.num_phonemes} phonemes; versions "
                 + ", ".join(f"{k} {v}" for k, v in sorted(self.versions.items()))]
        if self.last_train:
            lines.append("  last train: " + ", ".join(f"{k} {v:.4f}" for k, v in self.last_train.items()))
        for name, scores in self.eval.items():
            lines.append(f"  eval {name}: PER {scores['per']:.3f} on {int(scores['rows'])} rows "
                         f"({int(scores['phonemes'])} phonemes), CTC loss {scores['loss']:.3f}")
        lines += [f"  checkpoint: {paths['latest']}", f"  metrics:    {paths['metrics']}",
                  f"  curve:      {paths['curve']}", f"  eval:       {self.output_dir.rstrip('/')}/{EVAL_FILE}"]
        return "\n".join(lines)


def _model_config(config: TrainCtcConfig, num_classes: int):
    from models.ctc.builders import resolve_ctc_config

    base = resolve_ctc_config(config.preset if config.model is None else config.model)
    return base.with_num_classes(num_classes)


def run_train_ctc(config: TrainCtcConfig, *, progress: Callable[[str], None] = print) -> TrainCtcSummary:
    """Train (or resume) the recognizer of ``config``, then score its eval sets; returns the summary.

    Raises:
        schemas.train_input.TrainInputError: the input cannot be built (no tables, bad filter, no rows).
        models.ctc.CtcCheckpointError: ``output_dir`` holds another recognizer, or a broken one.
        pipelines.phonemes.PhonemizeError: espeak-ng failed.
        pipelines.train_loop.TrainingError: the Ray Train run failed.
    """
    from models.ctc.checkpoint import CtcCheckpointError, ctc_id_for, load_ctc_checkpoint
    from pipelines.ctc_targets import build_phoneme_targets
    from pipelines.eval_ctc import load_eval_rows
    from pipelines.phonemes import PhonemeInventory, Phonemizer
    from pipelines.train_input import index_training_rows, synthetic_rows_per_epoch

    config = resolve_job_paths(config)
    tr = config.training
    outputs = RunOutputs(config.output_dir, config.input.storage)
    meta, versions, start_step, train_seconds = read_resume_state(outputs, load_ctc_checkpoint)
    inventory = PhonemeInventory(tuple(meta.phonemes)) if meta is not None else None
    index = index_training_rows(config.input, versions=versions)
    if meta is not None and meta.codec_id != index.codec_id:
        raise CtcCheckpointError(f"{outputs.paths['latest']}: was trained on codec {meta.codec_id!r}, this config "
                                 f"reads codec {index.codec_id!r}; use another output_dir")
    phonemizer = Phonemizer(cache_dir=config.phoneme_cache)
    targets = build_phoneme_targets(index.vocab, [index.real, index.synthetic], phonemizer, inventory=inventory)
    inventory = targets.inventory
    model_config = _model_config(config, inventory.num_classes)
    ctc_id = ctc_id_for(model_config, index.codec_id, inventory.symbols)
    if meta is not None:
        if meta.architecture_id != ctc_id:
            raise CtcCheckpointError(f"{outputs.paths['latest']}: holds recognizer {meta.architecture_id!r}, this "
                                     f"config trains {ctc_id!r}; use another output_dir")
        progress(f"resuming {ctc_id} from step {start_step} ({train_seconds / 60:.1f} min trained)")
    valid = load_eval_rows(config.input, config.valid_filter, inventory, phonemizer, max_rows=tr.valid_rows)
    phonemizer.save()
    summary = TrainCtcSummary(ctc_id=ctc_id, codec_id=index.codec_id, output_dir=config.output_dir,
                              start_step=start_step, end_step=start_step, train_seconds=train_seconds,
                              real_rows=index.n_real, synthetic_per_epoch=synthetic_rows_per_epoch(index),
                              synthetic_pool=index.n_synthetic, num_phonemes=len(inventory.symbols),
                              versions=dict(index.versions))
    budget_s = tr.max_minutes * 60 if tr.max_minutes is not None else math.inf
    if start_step >= tr.max_steps or train_seconds >= budget_s:
        summary.already_complete = True
    else:
        progress(index.format())
        if targets.skipped_languages:
            progress(f"no espeak-ng voice (rows have no targets): {targets.skipped_languages}")
        progress(f"training {ctc_id}: {len(inventory.symbols)} phonemes, {len(valid)} valid rows; steps "
                 f"{start_step} -> {tr.max_steps}" + (f" or {tr.max_minutes:g} min" if tr.max_minutes else ""))
        loop_config = {"config": config.model_dump(mode="json"), "model_config": model_config.model_dump(mode="json"),
                       "ctc_id": ctc_id, "codec_id": index.codec_id, "phonemes": list(inventory.symbols),
                       "versions": dict(index.versions), "start_step": start_step, "targets": targets,
                       "valid": valid}
        _fit(config, index, loop_config)
    model, _, meta = load_ctc_checkpoint(outputs.fetch(outputs.paths["latest"]), expected_codec_id=index.codec_id)
    summary.end_step, summary.ctc_id = meta.step, meta.ctc_id
    summary.train_seconds = float(meta.extra.get("train_seconds", train_seconds))
    history = outputs.read_metrics()
    last = next((r for r in reversed(history) if "total" in r), {})
    summary.last_train = {k: float(last[k]) for k in ("total", "kept", "valid_per") if k in last}
    summary.eval = _evaluate(config, model, inventory, phonemizer, outputs, meta, progress)
    return summary


def _evaluate(config: TrainCtcConfig, model, inventory, phonemizer, outputs: RunOutputs, meta,
              progress: Callable[[str], None]) -> dict[str, dict[str, float]]:
    """Score the final weights on every eval set (reusing eval.json when it is of these exact weights)."""
    from pipelines.eval_ctc import load_eval_rows, score_ctc

    uri = f"{config.output_dir.rstrip('/')}/{EVAL_FILE}"
    wanted = {s.name: s.model_dump(mode="json") for s in config.eval_sets}
    previous = outputs.read_text(uri)
    if previous:
        stored = json.loads(previous)
        if stored.get("ctc_id") == meta.ctc_id and stored.get("sets") == wanted:
            return stored["scores"]
    scores: dict[str, dict[str, float]] = {}
    for s in config.eval_sets:
        t0 = time.perf_counter()
        rows = load_eval_rows(config.input, s.filter, inventory, phonemizer, max_rows=s.max_rows)
        scores[s.name] = {**score_ctc(model, rows), "skipped": sum(rows.skipped.values())}
        progress(f"eval {s.name}: PER {scores[s.name]['per']:.3f} on {len(rows)} rows "
                 f"({time.perf_counter() - t0:.1f} s)")
    phonemizer.save()
    scratch = outputs.scratch(EVAL_FILE)
    scratch.write_text(json.dumps({"ctc_id": meta.ctc_id, "step": meta.step, "sets": wanted, "scores": scores},
                                  indent=2))
    outputs.publish(scratch, uri)
    return scores


def _fit(config: TrainCtcConfig, index, loop_config: dict[str, Any]) -> None:
    from pipelines.ray_env import init_ray

    init_ray(config.execution.ray_address)  # before any `import ray`: a local Ray must stay on loopback
    from pipelines.phoneme_training import stream_by_steps

    dataset = stream_by_steps(index, start_step=loop_config["start_step"], max_steps=config.training.max_steps,
                              batch_size=config.input.batch_size)
    fit_with_ray_train(train_loop_per_worker, loop_config, dataset, execution=config.execution,
                       output_dir=config.output_dir, run_name="train_ctc")


def train_loop_per_worker(loop_config: dict[str, Any]) -> None:
    """Ray Train entry point: every rank trains; rank 0 also validates, checkpoints and writes metrics."""
    from pipelines.phoneme_training import run_whole_row_worker

    run_whole_row_worker(loop_config, config_cls=TrainCtcConfig, recipe_cls=_CtcRecipe, id_key="ctc_id",
                         tag="train_ctc", ylabel="CTC loss (per target phoneme)", show=("kept",))


class _CtcRecipe(WholeRowRecipe):
    """The recognizer's model, step, validation and checkpoint for the shared loop."""

    def __init__(self, config: TrainCtcConfig, loop_config: dict[str, Any], outputs: RunOutputs, *,
                 world: int) -> None:
        from models.ctc.builders import build_ctc, build_ctc_loss
        from models.ctc.checkpoint import load_ctc_checkpoint
        from schemas.ctc import CtcModelConfig

        self.config = config
        self.model_config = CtcModelConfig.model_validate(loop_config["model_config"])
        self.targets = loop_config["targets"]
        self.loss_fn = build_ctc_loss()
        super().__init__(config.training, loop_config, outputs, world=world,
                         build=lambda: build_ctc(self.model_config), load_checkpoint=load_ctc_checkpoint)
        self.recognizer = self.net

    def train_step(self, batch: dict[str, Any], step: int) -> dict[str, float]:
        import numpy as np
        import torch

        from models.ctc.model import CtcBatch

        ids, target_lengths = self.targets.for_batch(batch)
        keep = whole_rows(batch, target_lengths)

        def loss_and_terms():
            frames = int(batch["lengths"][keep].max())
            codes = torch.from_numpy(batch["codes"][keep, :frames].astype(np.int64))
            lengths = torch.from_numpy(batch["lengths"][keep])
            ctc_batch = CtcBatch(codes, lengths, torch.from_numpy(ids[keep]), torch.from_numpy(target_lengths[keep]))
            return self.loss_fn(self.model(codes, lengths), ctc_batch), {}

        return self.step_with(step, len(keep), len(batch["lengths"]), loss_and_terms)

    def validate(self) -> dict[str, float]:
        from pipelines.eval_ctc import score_ctc

        valid = self.loop_config["valid"]
        if not len(valid):
            return {}
        scores = score_ctc(self.recognizer, valid)
        return {"total": scores["loss"], "per": scores["per"]}

    def save_checkpoint(self, path: Path, *, step: int, train_seconds: float, extra: dict[str, float]) -> None:
        from models.ctc.checkpoint import save_ctc_checkpoint

        save_ctc_checkpoint(path, self.recognizer, self.model_config, codec_id=self.loop_config["codec_id"],
                            phonemes=self.loop_config["phonemes"], step=step,
                            optimizer_state=self.optimizer.state_dict(),
                            extra={"train_seconds": train_seconds, "versions": self.loop_config["versions"],
                                   **extra})
