"""Train the latent generator with Ray Train: phonemes + factor vectors -> the row's codec codes.

Flow (driver -> Ray Train workers)::

    input config (with factorizer_id) -> pipelines.train_input index (real + synthetic rows, factor rows)
      -> espeak-ng phoneme ids per (language, transcript) (pipelines.ctc_targets), the inventory
      -> Ray Data: one shuffled plan per epoch, codes + the four factor vectors read per block
      -> TorchTrainer workers: whole rows only -> models.generator (code cross-entropy per stage)
         (the shared loop, pipelines.train_loop: budget, checkpoints, metrics.jsonl, loss_curve.png)

The generator id hashes the config with the codec id, the factorizer id and
the inventory. A re-run of the same command resumes from
``output_dir/checkpoints/latest.pt`` with the table versions and inventory
stored there. ``jobs/generate.py`` samples new utterances from the result.
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
from schemas.train_generator import TrainGeneratorConfig

__all__ = ["TrainGeneratorSummary", "run_train_generator"]


@dataclass
class TrainGeneratorSummary:
    """What a generator training run did and where its outputs are."""

    generator_id: str
    codec_id: str
    factorizer_id: str
    output_dir: str
    start_step: int
    end_step: int
    train_seconds: float
    real_rows: int
    synthetic_per_epoch: int
    num_phonemes: int
    versions: dict[str, int] = field(default_factory=dict)
    last_train: dict[str, float] = field(default_factory=dict)
    last_valid: dict[str, float] = field(default_factory=dict)
    already_complete: bool = False

    def format(self) -> str:
        paths = checkpoint_paths(self.output_dir)
        lines = [f"generator {self.generator_id} (codec {self.codec_id}, factorizer {self.factorizer_id}): steps "
                 f"{self.start_step} -> {self.end_step} ({self.train_seconds / 60:.1f} min of training in total)"
                 + ("; already complete, nothing to do" if self.already_complete else ""),
                 f"  input: {self.real_rows} real rows + {self.synthetic_per_epoch} synthetic per epoch; "
                 f"{self.num_phonemes} phonemes; versions " + ", ".join(f"{k} {v}" for k, v in
                                                                       sorted(self.versions.items()))]
        if self.last_train:
            lines.append("  last train: " + ", ".join(f"{k} {v:.4f}" for k, v in self.last_train.items()))
        if self.last_valid:
            lines.append("  last valid: " + ", ".join(f"{k} {v:.4f}" for k, v in self.last_valid.items()))
        lines += [f"  checkpoint: {paths['latest']}", f"  metrics:    {paths['metrics']}",
                  f"  curve:      {paths['curve']}"]
        return "\n".join(lines)


def _model_config(config: TrainGeneratorConfig, num_classes: int):
    from models.generator.builders import resolve_generator_config

    base = resolve_generator_config(config.preset if config.model is None else config.model)
    return base.with_phoneme_classes(num_classes)


def valid_batches(config: TrainGeneratorConfig, targets, *, rows: int, batch_size: int) -> list[dict[str, np.ndarray]]:
    """Whole ``valid_filter`` rows with phonemes (at most ``rows``), read once with their factor vectors."""
    from dataclasses import replace

    from pipelines.ctc_targets import build_phoneme_targets
    from pipelines.phonemes import Phonemizer
    from pipelines.train_input import index_training_rows, plan_epoch, read_training_batch
    from schemas.train_input import TrainInputError

    cfg = config.input.model_copy(update={"real_filter": config.valid_filter, "synthetic_per_real": 0.0})
    try:
        index = index_training_rows(cfg)
    except TrainInputError as exc:
        if "for segments matching" in str(exc):
            return []
        raise
    index = replace(index, real=index.real.slice(0, rows))
    longest = int(np.max(np.asarray(index.real.column("num_frames")), initial=1))
    index = replace(index, config=index.config.model_copy(update={"max_frames": longest}))
    valid_targets = build_phoneme_targets(index.vocab, [index.real], Phonemizer(cache_dir=config.phoneme_cache),
                                          inventory=targets.inventory)
    plan = plan_epoch(index, 0).sort_by("item")
    sources = {name: (index.uris[name], index.versions[name]) for name in ("latents", "factors")}
    out = []
    for start in range(0, plan.num_rows, batch_size):
        part = plan.slice(start, batch_size)
        batch = read_training_batch({c: part.column(c).to_numpy() for c in part.column_names}, sources=sources,
                                    max_frames=longest, num_stages=index.num_stages, storage=index.config.storage)
        ids, lengths = valid_targets.for_batch(batch)
        keep = whole_rows(batch, lengths)
        if len(keep):
            out.append({**{k: v[keep] for k, v in batch.items()}, "phonemes": ids[keep],
                        "phoneme_lengths": lengths[keep]})
    return out


def run_train_generator(config: TrainGeneratorConfig, *,
                        progress: Callable[[str], None] = print) -> TrainGeneratorSummary:
    """Train (or resume) the generator of ``config``; returns the summary.

    Raises:
        schemas.train_input.TrainInputError: the input cannot be built (no tables, no factors, bad filter).
        models.generator.GeneratorCheckpointError: ``output_dir`` holds another generator, or a broken one.
        pipelines.phonemes.PhonemizeError: espeak-ng failed.
        pipelines.train_loop.TrainingError: the Ray Train run failed.
    """
    from models.generator.checkpoint import GeneratorCheckpointError, generator_id_for, load_generator_checkpoint
    from pipelines.ctc_targets import build_phoneme_targets
    from pipelines.phonemes import PhonemeInventory, Phonemizer
    from pipelines.train_input import index_training_rows, synthetic_rows_per_epoch

    config = resolve_job_paths(config)
    tr = config.training
    factorizer_id = config.input.factorizer_id
    outputs = RunOutputs(config.output_dir, config.input.storage)
    meta, versions, start_step, train_seconds = read_resume_state(outputs, load_generator_checkpoint)
    inventory = PhonemeInventory(tuple(meta.phonemes)) if meta is not None else None
    index = index_training_rows(config.input, versions=versions)
    if meta is not None and (meta.codec_id, meta.factorizer_id) != (index.codec_id, factorizer_id):
        raise GeneratorCheckpointError(f"{outputs.paths['latest']}: was trained on codec {meta.codec_id!r} and "
                                       f"factorizer {meta.factorizer_id!r}; this config reads codec "
                                       f"{index.codec_id!r}, factorizer {factorizer_id!r}; use another output_dir")
    phonemizer = Phonemizer(cache_dir=config.phoneme_cache)
    targets = build_phoneme_targets(index.vocab, [index.real, index.synthetic], phonemizer, inventory=inventory)
    phonemizer.save()
    model_config = _model_config(config, targets.inventory.num_classes)
    generator_id = generator_id_for(model_config, index.codec_id, factorizer_id, targets.inventory.symbols)
    if meta is not None:
        if meta.architecture_id != generator_id:
            raise GeneratorCheckpointError(f"{outputs.paths['latest']}: holds generator {meta.architecture_id!r}, "
                                           f"this config trains {generator_id!r}; use another output_dir")
        progress(f"resuming {generator_id} from step {start_step} ({train_seconds / 60:.1f} min trained)")
    summary = TrainGeneratorSummary(generator_id=generator_id, codec_id=index.codec_id, factorizer_id=factorizer_id,
                                    output_dir=config.output_dir, start_step=start_step, end_step=start_step,
                                    train_seconds=train_seconds, real_rows=index.n_real,
                                    synthetic_per_epoch=synthetic_rows_per_epoch(index),
                                    num_phonemes=len(targets.inventory.symbols), versions=dict(index.versions))
    budget_s = tr.max_minutes * 60 if tr.max_minutes is not None else math.inf
    if start_step >= tr.max_steps or train_seconds >= budget_s:
        summary.already_complete = True
        summary.generator_id = meta.generator_id
        return summary
    valid = valid_batches(config, targets, rows=tr.valid_rows, batch_size=config.input.batch_size)
    progress(index.format())
    progress(f"training {generator_id}: {len(targets.inventory.symbols)} phonemes, "
             f"{sum(len(b['lengths']) for b in valid)} valid rows; steps {start_step} -> {tr.max_steps}"
             + (f" or {tr.max_minutes:g} min" if tr.max_minutes else ""))
    loop_config = {"config": config.model_dump(mode="json"), "model_config": model_config.model_dump(mode="json"),
                   "generator_id": generator_id, "codec_id": index.codec_id, "factorizer_id": factorizer_id,
                   "phonemes": list(targets.inventory.symbols), "versions": dict(index.versions),
                   "start_step": start_step, "targets": targets, "valid": valid}
    from pipelines.ray_env import init_ray

    init_ray(config.execution.ray_address)  # before any `import ray`: a local Ray must stay on loopback
    from pipelines.phoneme_training import stream_by_steps

    dataset = stream_by_steps(index, start_step=start_step, max_steps=tr.max_steps, batch_size=config.input.batch_size)
    fit_with_ray_train(train_loop_per_worker, loop_config, dataset, execution=config.execution,
                       output_dir=config.output_dir, run_name="train_generator")
    _, _, meta = load_generator_checkpoint(outputs.fetch(outputs.paths["latest"]), expected_codec_id=index.codec_id)
    history = outputs.read_metrics()
    last = next((r for r in reversed(history) if "total" in r), {})
    summary.end_step, summary.generator_id = meta.step, meta.generator_id
    summary.train_seconds = float(meta.extra.get("train_seconds", train_seconds))
    summary.last_train = {k: float(last[k]) for k in ("total", "accuracy", "kept") if k in last}
    summary.last_valid = {k[len("valid_"):]: float(v) for k, v in meta.extra.items() if k.startswith("valid_")}
    return summary


def train_loop_per_worker(loop_config: dict[str, Any]) -> None:
    """Ray Train entry point: every rank trains; rank 0 also validates, checkpoints and writes metrics."""
    from pipelines.phoneme_training import run_whole_row_worker

    run_whole_row_worker(loop_config, config_cls=TrainGeneratorConfig, recipe_cls=GeneratorRecipe,
                         id_key="generator_id", tag="train_generator", ylabel="code cross-entropy", show=("accuracy", "kept"))


class GeneratorRecipe(WholeRowRecipe):
    """The generator's model, step, validation and checkpoint for the shared loop."""

    def __init__(self, config: TrainGeneratorConfig, loop_config: dict[str, Any], outputs: RunOutputs, *,
                 world: int) -> None:
        from models.generator.builders import build_generator, build_generator_loss
        from models.generator.checkpoint import load_generator_checkpoint
        from schemas.generator import GeneratorModelConfig

        self.config = config
        self.model_config = GeneratorModelConfig.model_validate(loop_config["model_config"])
        self.targets = loop_config["targets"]
        self.loss_fn = build_generator_loss(config.loss)
        super().__init__(config.training, loop_config, outputs, world=world,
                         build=lambda: build_generator(self.model_config), load_checkpoint=load_generator_checkpoint)
        self.generator = self.net

    @staticmethod
    def _batch(batch: dict[str, np.ndarray], ids: np.ndarray, lengths: np.ndarray, keep: np.ndarray):
        import torch

        from models.generator.model import FactorVectors, GeneratorBatch

        frames = int(batch["lengths"][keep].max())
        return GeneratorBatch(phonemes=torch.from_numpy(ids[keep]), phoneme_lengths=torch.from_numpy(lengths[keep]),
                              factors=FactorVectors.from_columns({k: v[keep] for k, v in batch.items()
                                                                  if k.endswith("_vector")}),
                              codes=torch.from_numpy(batch["codes"][keep, :frames].astype(np.int64)),
                              lengths=torch.from_numpy(batch["lengths"][keep]))

    def _losses(self, model, b):
        return self.loss_fn(model(b.phonemes, b.phoneme_lengths, b.factors, b.lengths, codes=b.codes), b)

    def train_step(self, batch: dict[str, Any], step: int) -> dict[str, float]:
        ids, lengths = self.targets.for_batch(batch)
        keep = whole_rows(batch, lengths)

        def loss_and_terms():
            losses = self._losses(self.model, self._batch(batch, ids, lengths, keep))
            return losses.total, losses.as_floats()

        return self.step_with(step, len(keep), len(batch["lengths"]), loss_and_terms)

    def validate(self) -> dict[str, float]:
        import torch

        valid = self.loop_config["valid"]
        if not valid:
            return {}
        self.generator.eval()
        total, accuracy, rows = 0.0, 0.0, 0
        with torch.no_grad():
            for batch in valid:
                keep = np.arange(len(batch["lengths"]))
                losses = self._losses(self.generator, self._batch(batch, batch["phonemes"], batch["phoneme_lengths"],
                                                                  keep))
                total += float(losses.total) * len(keep)
                accuracy += float(losses.accuracy) * len(keep)
                rows += len(keep)
        self.generator.train()
        return {"total": total / rows, "accuracy": accuracy / rows}

    def save_checkpoint(self, path: Path, *, step: int, train_seconds: float, extra: dict[str, float]) -> None:
        from models.generator.checkpoint import save_generator_checkpoint

        save_generator_checkpoint(path, self.generator, self.model_config, codec_id=self.loop_config["codec_id"],
                                  factorizer_id=self.loop_config["factorizer_id"],
                                  phonemes=self.loop_config["phonemes"], step=step,
                                  optimizer_state=self.optimizer.state_dict(),
                                  extra={"train_seconds": train_seconds, "versions": self.loop_config["versions"],
                                         **extra})
