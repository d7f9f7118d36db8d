"""What the phoneme-driven trainers (CTC recognizer, generator) share: streaming the input by steps, whole rows.

Both train on whole rows of the streaming training input with espeak-ng
phoneme sequences of each row's transcript, so both need the same two
things: the epochs a run of ``max_steps`` consumes (resuming mid-epoch at
``start_step``), and which items of a batch are usable (the window is the
whole row, and the row has phonemes).
"""

from __future__ import annotations

import numpy as np

__all__ = ["stream_by_steps", "whole_rows", "WholeRowRecipe", "run_whole_row_worker", "resolve_job_paths",
           "read_resume_state"]


def stream_by_steps(index, *, start_step: int, max_steps: int, batch_size: int):
    """A Ray Dataset of the plan items steps ``start_step .. max_steps`` read (``batch_size`` items a step).

    Item ``k`` of the run is item ``k mod n`` of epoch ``k // n`` (``n`` items per epoch), so a resumed run reads
    exactly what an uninterrupted one would have. Ray must be initialized (``pipelines.ray_env.init_ray``).
    """
    from pipelines.train_input import make_training_dataset, synthetic_rows_per_epoch

    per_epoch = index.n_real + synthetic_rows_per_epoch(index)
    consumed = start_step * batch_size
    first, position = divmod(consumed, per_epoch)
    last = (max_steps * batch_size + per_epoch - 1) // per_epoch
    return make_training_dataset(index, list(range(first, max(last, first + 1))), start_position=position)


def whole_rows(batch: dict, target_lengths: np.ndarray) -> np.ndarray:
    """Indices of the items whose window is the whole row and whose row has phonemes.

    Why: a window cut from a longer row has only part of the row's transcript (``num_frames > lengths``), so
    neither a CTC loss nor a phoneme-to-frame alignment may use it; a row without phonemes has nothing to learn.
    """
    return np.flatnonzero((np.asarray(batch["num_frames"]) == np.asarray(batch["lengths"])) & (target_lengths > 0))


class WholeRowRecipe:
    """Model, AdamW, resume and the optimizer step that the whole-row trainers share (the loop's recipe shape).

    A subclass builds its model through ``build`` (after the seed is set, so every rank and every run of a
    config starts from the same weights), and calls :meth:`step_with` with the items it keeps and a function
    giving the loss (and terms to log) on them.

    Attributes:
        net: the bare model (checkpoints, validation); ``model`` is it wrapped for DDP when ``world > 1``.
    """

    def __init__(self, training, loop_config: dict, outputs, *, world: int, build, load_checkpoint) -> None:
        import ray.train
        import torch

        from models.factorizer.recipe import make_optimizer

        self.training, self.loop_config = training, loop_config
        torch.manual_seed(training.seed)
        self.net = build()
        self.optimizer = make_optimizer(self.net, learning_rate=training.learning_rate,
                                        weight_decay=training.weight_decay, betas=tuple(training.betas))
        self.start_step, self.train_seconds = int(loop_config["start_step"]), 0.0
        if self.start_step > 0:
            restored, _, meta = load_checkpoint(outputs.fetch(outputs.paths["latest"]))
            self.net.load_state_dict(restored.state_dict())
            if meta.optimizer_state:
                self.optimizer.load_state_dict(meta.optimizer_state)
            self.train_seconds = float(meta.extra.get("train_seconds", 0.0))
        self.model = ray.train.torch.prepare_model(self.net) if world > 1 else self.net

    def step_with(self, step: int, kept: int, total: int, loss_and_terms) -> dict[str, float]:
        """One optimizer step at ``step``: warm-up + cosine lr, ``loss_and_terms()`` -> (loss, terms), clipping.

        With ``kept == 0`` the loss is a zero that touches every parameter: every rank must still step, or
        DDP's next all-reduce hangs.
        """
        import torch

        from models.codec.recipe import lr_at, set_learning_rate

        tr = self.training
        set_learning_rate(self.optimizer, lr_at(step, base=tr.learning_rate, warmup_steps=tr.lr_warmup_steps,
                                                total_steps=tr.max_steps))
        self.model.train()
        self.optimizer.zero_grad(set_to_none=True)
        if kept:
            loss, terms = loss_and_terms()
        else:
            loss, terms = sum(p.sum() * 0.0 for p in self.model.parameters()), {}
        loss.backward()
        if tr.grad_clip_norm:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), tr.grad_clip_norm)
        self.optimizer.step()
        return {"total": float(loss.detach()), **{k: v for k, v in terms.items() if k != "total"},
                "kept": kept / max(total, 1), "lr": self.optimizer.param_groups[0]["lr"]}


def run_whole_row_worker(loop_config: dict, *, config_cls, recipe_cls, id_key: str, tag: str, ylabel: str,
                         show: tuple[str, ...]) -> None:
    """The body of a whole-row trainer's Ray Train entry point: threads, recipe, this rank's shard, the loop.

    Every rank trains; rank 0 also validates, checkpoints and writes metrics (``pipelines.train_loop``).
    """
    import ray.train
    import torch

    from pipelines.run_outputs import RunOutputs
    from pipelines.train_loop import run_train_loop

    config = config_cls.model_validate(loop_config["config"])
    if config.execution.torch_threads:
        torch.set_num_threads(config.execution.torch_threads)
    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    outputs = RunOutputs(config.output_dir, config.input.storage)
    recipe = recipe_cls(config, loop_config, outputs, world=world)
    shard = ray.train.get_dataset_shard("train")
    batches = shard.iter_batches(batch_size=config.input.batch_size // world, batch_format="numpy",
                                 prefetch_batches=4, drop_last=True)
    run_train_loop(recipe, batches, outputs, config.training, start_step=recipe.start_step,
                   train_seconds=recipe.train_seconds, rank=rank, world=world, title=loop_config[id_key],
                   tag=tag, ylabel=ylabel, show=show)


def resolve_job_paths(config):
    """A whole-row trainer's config with lake, codec checkpoint, output dir (and phoneme cache, if it has one)
    resolved against $LSM_HOME, else the cwd."""
    from schemas.storage import resolve_uri

    inp = config.input
    inp = inp.model_copy(update={"lake_root": resolve_uri(inp.lake_root),
                                 "codec_checkpoint": resolve_uri(inp.codec_checkpoint) if inp.codec_checkpoint
                                 else None})
    update = {"input": inp, "output_dir": resolve_uri(config.output_dir)}
    if getattr(config, "phoneme_cache", None):
        update["phoneme_cache"] = resolve_uri(config.phoneme_cache)
    return config.model_copy(update=update)


def read_resume_state(outputs, load_checkpoint):
    """(meta, pinned table versions, start step, train seconds) of ``latest.pt``; (None, None, 0, 0.0) if none."""
    if not outputs.exists(outputs.paths["latest"]):
        return None, None, 0, 0.0
    _, _, meta = load_checkpoint(outputs.fetch(outputs.paths["latest"]))
    versions = {k: int(v) for k, v in (meta.extra.get("versions") or {}).items()}
    return meta, versions, meta.step, float(meta.extra.get("train_seconds", 0.0))
