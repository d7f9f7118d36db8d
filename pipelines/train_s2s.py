"""Train the speech-to-speech model with Ray Train on pairs of the streaming training input.

Flow (driver -> Ray Train workers)::

    input config + target_filter -> pipelines.s2s_pairs (source items with a target-voice row of their text,
      pinned versions; items without one dropped)
      -> Ray Data: one shuffled plan per epoch, source codes read per block (pipelines.train_input), streamed
      -> TorchTrainer workers: whole source rows + their target's codes (one Lance take per batch)
         -> S2S step (the shared loop, pipelines.train_loop: budget, checkpoints, metrics.jsonl, loss_curve.png)
      -> rank 0 validates on the pairs of the valid_filter rows (loss, code accuracy)
      -> driver: the final weights judged on held-out real and synthetic inputs (pipelines.eval_s2s: PER by a
         separately trained recognizer, target-voice similarity, environment removed) -> eval.json

The model id hashes the model config with the codec id. A re-run of the same command resumes from
``output_dir/checkpoints/latest.pt``: the table versions stored there are reused (so are the pairs), and the
input skips the items already trained on, so the run sees what an uninterrupted one would have.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from pipelines.phoneme_training import WholeRowRecipe, read_resume_state, resolve_job_paths, whole_rows
from pipelines.run_outputs import RunOutputs, checkpoint_paths
from pipelines.train_loop import fit_with_ray_train
from schemas.train_s2s import TrainS2SConfig

__all__ = ["TrainS2SSummary", "run_train_s2s", "S2SRecipe", "EVAL_FILE"]

#: The held-out evaluation of the final weights, in ``output_dir``.
EVAL_FILE = "eval.json"


@dataclass
class TrainS2SSummary:
    """What an S2S training run did, its last scores, and where its outputs are."""

    s2s_id: str
    codec_id: str
    target_voice: str
    output_dir: str
    start_step: int
    end_step: int
    train_seconds: float
    real_pairs: int
    synthetic_per_epoch: int
    synthetic_pool: int
    target_rows: int
    valid_pairs: int
    versions: dict[str, int] = field(default_factory=dict)
    dropped: dict[str, int] = field(default_factory=dict)
    last_train: dict[str, float] = field(default_factory=dict)
    last_valid: dict[str, float] = field(default_factory=dict)
    eval: dict[str, Any] = field(default_factory=dict)
    already_complete: bool = False

    def format(self) -> str:
        paths = checkpoint_paths(self.output_dir)
        dropped = ", ".join(f"{k} {v}" for k, v in self.dropped.items() if v)
        lines = [f"s2s model {self.s2s_id} (on codec {self.codec_id}, target voice {self.target_voice}): steps "
                 f"{self.start_step} -> {self.end_step} ({self.train_seconds / 60:.1f} min of training in total)"
                 + ("; already complete, nothing to train" if self.already_complete else ""),
                 f"  pairs: {self.real_pairs} real + {self.synthetic_per_epoch} synthetic per epoch (pool "
                 f"{self.synthetic_pool}) -> {self.target_rows} target rows; {self.valid_pairs} valid pairs; "
                 "versions " + ", ".join(f"{k} {v}" for k, v in sorted(self.versions.items()))]
        if dropped:
            lines.append(f"  dropped: {dropped}")
        if self.last_train:
            lines.append("  last train: " + ", ".join(f"{k} {v:.4f}" for k, v in self.last_train.items()))
        if self.last_valid:
            lines.append("  last valid: " + ", ".join(f"{k} {v:.4f}" for k, v in self.last_valid.items()))
        for name, scores in (self.eval.get("sets") or {}).items():
            from pipelines.eval_s2s import format_line

            lines.append(f"  eval {name}: {format_line(scores)}")
        lines += [f"  checkpoint: {paths['latest']}", f"  metrics:    {paths['metrics']}",
                  f"  curve:      {paths['curve']}"]
        if self.eval:
            lines.append(f"  eval:       {self.output_dir.rstrip('/')}/{EVAL_FILE}")
        return "\n".join(lines)


def model_config_for(config: TrainS2SConfig):
    """The model the job trains: the preset or given config; without speaker conditioning, ``speaker_dim`` 0.

    Why 0: the speaker projection would never see an input (dead weights in every checkpoint, and unused
    parameters that DDP refuses).

    Raises:
        ValueError: ``condition_on_target_speaker`` with a model of ``speaker_dim`` 0.
    """
    from models.s2s.builders import resolve_s2s_config

    base = resolve_s2s_config(config.preset if config.model is None else config.model)
    if not config.condition_on_target_speaker:
        return base.model_copy(update={"speaker_dim": 0})
    if base.speaker_dim == 0:
        raise ValueError(f"condition_on_target_speaker needs a model with speaker conditioning; {base.name!r} has "
                         "speaker_dim 0")
    return base


def _pairing(config: TrainS2SConfig) -> dict[str, Any]:
    """What fixes the pairs besides the tables (stored in the checkpoint; a resume must not change it)."""
    pairing = {"target_filter": config.target_filter, "target_voice": config.target_voice,
               "condition_on_target_speaker": config.condition_on_target_speaker}
    if config.synthetic_target_filter is not None:  # absent when unset: checkpoints from before it still resume
        pairing["synthetic_target_filter"] = config.synthetic_target_filter
    return pairing


def run_train_s2s(config: TrainS2SConfig, *, progress: Callable[[str], None] = print) -> TrainS2SSummary:
    """Train (or resume) the S2S model of ``config``; returns the summary.

    Raises:
        schemas.train_input.TrainInputError: the pairs cannot be built (no tables, bad filter, no pairs).
        models.s2s.S2SCheckpointError: ``output_dir`` holds another model or pairing, or a broken checkpoint.
        pipelines.train_loop.TrainingError: the Ray Train run failed.
    """
    from models.s2s.checkpoint import S2SCheckpointError, load_s2s_checkpoint, s2s_id_for
    from pipelines.s2s_pairs import index_s2s_pairs, pair_targets, read_valid_pairs
    from pipelines.train_input import synthetic_rows_per_epoch

    config = resolve_job_paths(config)
    tr = config.training
    outputs = RunOutputs(config.output_dir, config.input.storage)
    latest = outputs.paths["latest"]
    start_step, train_seconds, meta, versions = 0, 0.0, None, None
    if outputs.exists(latest):
        _, _, meta = load_s2s_checkpoint(outputs.fetch(latest))
        versions = {k: int(v) for k, v in (meta.extra.get("versions") or {}).items()}
        start_step, train_seconds = meta.step, float(meta.extra.get("train_seconds", 0.0))
    index = index_s2s_pairs(config.input, config.target_filter, versions=versions,
                            synthetic_target_filter=config.synthetic_target_filter)
    if config.eval is not None:  # a missing or mismatched recognizer fails now, not after the training
        from pipelines.eval_s2s import load_recognizer

        load_recognizer(config.eval.recognizer_checkpoint, config.input.storage, index.codec_id)
    model_config = model_config_for(config)
    s2s_id = s2s_id_for(model_config, index.codec_id)
    if meta is not None:
        if meta.codec_id != index.codec_id:
            raise S2SCheckpointError(f"{latest}: was trained on codec {meta.codec_id!r}, this config reads codec "
                                     f"{index.codec_id!r}; use another output_dir")
        if meta.architecture_id != s2s_id:
            raise S2SCheckpointError(f"{latest}: holds s2s model {meta.architecture_id!r}, this config trains "
                                     f"{s2s_id!r}; use another output_dir")
        stored = meta.extra.get("pairing") or {}
        if stored != _pairing(config):
            raise S2SCheckpointError(f"{latest}: was trained on pairs {stored}, this config makes "
                                     f"{_pairing(config)}; use another output_dir")
        progress(f"resuming {s2s_id} from step {start_step} ({train_seconds / 60:.1f} min trained)")
    with_speaker = config.condition_on_target_speaker
    valid = read_valid_pairs(config.input, config.valid_filter, config.target_filter, versions=index.versions,
                             rows=tr.valid_rows, batch_size=config.input.batch_size, with_speaker=with_speaker,
                             synthetic_target_filter=config.synthetic_target_filter)
    targets = pair_targets(index)
    keys = set(index.real.column("target_key").to_pylist()) | set(index.synthetic.column("target_key").to_pylist())
    summary = TrainS2SSummary(s2s_id=s2s_id, codec_id=index.codec_id, target_voice=config.target_voice,
                              output_dir=config.output_dir, start_step=start_step, end_step=start_step,
                              train_seconds=train_seconds, real_pairs=index.n_real,
                              synthetic_per_epoch=synthetic_rows_per_epoch(index), synthetic_pool=index.n_synthetic,
                              target_rows=len(keys), valid_pairs=sum(len(b["lengths"]) for b in valid),
                              versions=dict(index.versions), dropped=dict(index.dropped))
    budget_s = tr.max_minutes * 60 if tr.max_minutes is not None else math.inf
    if start_step >= tr.max_steps or train_seconds >= budget_s:
        summary.already_complete = True
    else:
        progress(index.format())
        progress(f"training {s2s_id} toward {config.target_voice}: {summary.target_rows} target rows, "
                 f"{summary.valid_pairs} valid pairs; steps {start_step} -> {tr.max_steps}"
                 + (f" or {tr.max_minutes:g} min" if tr.max_minutes else ""))
        loop_config = {"config": config.model_dump(mode="json"), "model_config": model_config.model_dump(mode="json"),
                       "s2s_id": s2s_id, "codec_id": index.codec_id, "versions": dict(index.versions),
                       "pairing": _pairing(config), "start_step": start_step, "targets": targets, "valid": valid}
        _fit(config, index, loop_config)
    model, _, meta = load_s2s_checkpoint(outputs.fetch(latest), expected_codec_id=index.codec_id)
    summary.end_step, summary.s2s_id = meta.step, meta.s2s_id
    summary.train_seconds = float(meta.extra.get("train_seconds", train_seconds))
    history = outputs.read_metrics()
    last = next((r for r in reversed(history) if "total" in r), {})
    summary.last_train = {k: float(last[k]) for k in ("total", "accuracy", "kept") if k in last}
    summary.last_valid = {k[len("valid_"):]: float(v) for k, v in meta.extra.items() if k.startswith("valid_")}
    if config.eval is not None:
        summary.eval = _evaluate(config, model, meta, outputs, progress)
    return summary


def _evaluate(config: TrainS2SConfig, model, meta, outputs: RunOutputs,
              progress: Callable[[str], None]) -> dict[str, Any]:
    """Judge the final weights (``pipelines.eval_s2s``); eval.json is reused when it is of these exact weights,
    the same eval block and the same recognizer file."""
    import json

    from pipelines.eval_s2s import EVAL_VERSION, evaluate_s2s, load_recognizer

    uri = f"{config.output_dir.rstrip('/')}/{EVAL_FILE}"
    wanted = {**config.eval.model_dump(mode="json"), "target_filter": config.target_filter, "version": EVAL_VERSION}
    recognizer = load_recognizer(config.eval.recognizer_checkpoint, config.input.storage, meta.codec_id)
    previous = outputs.read_text(uri)
    if previous:
        stored = json.loads(previous)
        if (stored.get("s2s_id"), stored.get("recognizer"), stored.get("eval")) == (meta.s2s_id, recognizer[1].ctc_id,
                                                                                    wanted):
            return stored
    result = {**evaluate_s2s(config, model, meta, recognizer=recognizer, progress=progress), "step": meta.step,
              "eval": wanted}
    scratch = outputs.scratch(EVAL_FILE)
    scratch.write_text(json.dumps(result, indent=2))
    outputs.publish(scratch, uri)
    return result


def _fit(config: TrainS2SConfig, index, loop_config: dict[str, Any]) -> None:
    from pipelines.ray_env import init_ray

    init_ray(config.execution.ray_address)  # before any `import ray`: a local Ray must stay on loopback
    from pipelines.phoneme_training import stream_by_steps

    dataset = stream_by_steps(index, start_step=loop_config["start_step"], max_steps=config.training.max_steps,
                              batch_size=config.input.batch_size)
    fit_with_ray_train(train_loop_per_worker, loop_config, dataset, execution=config.execution,
                       output_dir=config.output_dir, run_name="train_s2s")


def train_loop_per_worker(loop_config: dict[str, Any]) -> None:
    """Ray Train entry point: every rank trains; rank 0 also validates, checkpoints and writes metrics."""
    from pipelines.phoneme_training import run_whole_row_worker

    run_whole_row_worker(loop_config, config_cls=TrainS2SConfig, recipe_cls=S2SRecipe, id_key="s2s_id",
                         tag="train_s2s", ylabel="target code cross-entropy", show=("accuracy", "kept"))


class S2SRecipe(WholeRowRecipe):
    """The S2S model's step (whole source rows -> their target's codes), validation and checkpoint."""

    def __init__(self, config: TrainS2SConfig, loop_config: dict[str, Any], outputs: RunOutputs, *,
                 world: int) -> None:
        from models.s2s.builders import build_s2s, build_s2s_loss
        from models.s2s.checkpoint import load_s2s_checkpoint
        from schemas.s2s import S2SModelConfig

        self.config = config
        self.model_config = S2SModelConfig.model_validate(loop_config["model_config"])
        self.targets = loop_config["targets"]
        self.loss_fn = build_s2s_loss()
        super().__init__(config.training, loop_config, outputs, world=world,
                         build=lambda: build_s2s(self.model_config), load_checkpoint=load_s2s_checkpoint)
        self.s2s = self.net

    def keep(self, batch: dict[str, np.ndarray]) -> np.ndarray:
        """Items whose source window is the whole row and whose target fits ``input.max_frames``."""
        frames = self.targets.num_frames[np.asarray(batch["item"], dtype=np.int64)]
        return whole_rows(batch, np.where(frames <= self.config.input.max_frames, frames, 0))

    def _losses(self, model, pairs: dict[str, np.ndarray]):
        import torch

        from models.s2s.model import S2SBatch

        frames = int(pairs["lengths"].max())
        speaker = pairs.get("speaker")
        b = S2SBatch(codes=torch.from_numpy(pairs["codes"][:, :frames].astype(np.int64)),
                     lengths=torch.from_numpy(pairs["lengths"].astype(np.int64)),
                     target_codes=torch.from_numpy(pairs["target_codes"].astype(np.int64)),
                     target_lengths=torch.from_numpy(pairs["target_lengths"].astype(np.int64)),
                     speaker=None if speaker is None else torch.from_numpy(speaker))
        return self.loss_fn(model(b.codes, b.lengths, b.target_lengths, b.speaker), b)

    def train_step(self, batch: dict[str, Any], step: int) -> dict[str, float]:
        from pipelines.s2s_pairs import read_target_codes, read_target_speakers

        keep = self.keep(batch)

        def loss_and_terms():
            items = batch["item"][keep]
            target_codes, target_lengths = read_target_codes(self.targets, items)
            pairs = {"codes": batch["codes"][keep], "lengths": batch["lengths"][keep],
                     "target_codes": target_codes, "target_lengths": target_lengths}
            if self.config.condition_on_target_speaker:
                pairs["speaker"] = read_target_speakers(self.targets, items)
            losses = self._losses(self.model, pairs)
            return losses.total, losses.as_floats()

        return self.step_with(step, len(keep), len(batch["lengths"]), loss_and_terms)

    def validate(self) -> dict[str, float]:
        import torch

        valid = self.loop_config["valid"]
        if not valid:
            return {}
        self.s2s.eval()
        total, accuracy, rows = 0.0, 0.0, 0
        with torch.no_grad():
            for pairs in valid:
                losses = self._losses(self.s2s, pairs)
                n = len(pairs["lengths"])
                total, accuracy, rows = total + float(losses.total) * n, accuracy + float(losses.accuracy) * n, rows + n
        self.s2s.train()
        return {"total": total / rows, "accuracy": accuracy / rows}

    def save_checkpoint(self, path: Path, *, step: int, train_seconds: float, extra: dict[str, float]) -> None:
        from models.s2s.checkpoint import save_s2s_checkpoint

        pairing = self.loop_config["pairing"]
        save_s2s_checkpoint(path, self.s2s, self.model_config, codec_id=self.loop_config["codec_id"],
                            target_voice=pairing["target_voice"],
                            factorizer_id=self.config.input.factorizer_id if self.config.condition_on_target_speaker
                            else None, step=step, optimizer_state=self.optimizer.state_dict(),
                            extra={"train_seconds": train_seconds, "versions": self.loop_config["versions"],
                                   "pairing": pairing, **extra})
