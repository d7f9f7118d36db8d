"""Config of ``jobs/train_ctc.py``: a CTC phoneme recognizer on codec codes, fed by the streaming training input.

The recognizer is issue #5's downstream probe: the amplification experiment
trains it on seed only, seed + recombined and seed + generated rows (the
``input`` block's ``real_filter`` / ``synthetic_filter`` / ``synthetic_per_real``)
at equal steps and compares phoneme error rates on held-out sets
(``eval_sets``). Targets are espeak-ng phonemes of each row's transcript
(``pipelines.ctc_targets``); the inventory comes from the training rows and
is stored in the checkpoint.

Why windows are not cropped for CTC: a window cut from a longer row has only
part of the row's transcript, and CTC would learn to emit phonemes that are
not there. The step drops such windows (``num_frames > lengths``), and rows
without phonemes; ``input.max_frames`` should cover nearly every row (the
default, 500 frames = 10 s at 50 Hz, covers the seed corpus' segments).
"""

from __future__ import annotations

from pydantic import Field, model_validator

from schemas.codec import _Strict, segments_filter
from schemas.ctc import CtcModelConfig
from schemas.train_input import TrainInputConfig

__all__ = ["CtcTrainingConfig", "CtcExecutionConfig", "CtcEvalSet", "TrainCtcConfig", "default_eval_sets"]


class CtcTrainingConfig(_Strict):
    """Budget and optimizer; training stops at whichever of max_steps / max_minutes comes first."""

    max_steps: int = Field(default=3000, ge=1)
    max_minutes: float | None = Field(default=None, gt=0, description="training-time budget; None: steps only")
    learning_rate: float = Field(default=2e-3, gt=0)
    betas: tuple[float, float] = (0.9, 0.98)
    weight_decay: float = Field(default=1e-4, ge=0)
    grad_clip_norm: float | None = Field(default=1.0, gt=0)
    lr_warmup_steps: int = Field(default=200, ge=0)
    checkpoint_every_steps: int = Field(default=500, ge=1)
    valid_every_steps: int = Field(default=500, ge=1)
    log_every_steps: int = Field(default=50, ge=1)
    seed: int = Field(default=0, ge=0, description="initial weights; the input's order has its own input.seed")
    keep_checkpoints: int = Field(default=2, ge=1, description="step checkpoints kept besides latest.pt")
    valid_rows: int = Field(default=200, ge=1, description="validation rows scored (loss and PER) at each validation")


class CtcExecutionConfig(_Strict):
    """How Ray Train runs it; the defaults suit 2 cores (a fractional worker leaves room for the input readers)."""

    num_workers: int = Field(default=1, ge=1)
    cpus_per_worker: float = Field(default=1.0, gt=0)
    torch_threads: int | None = Field(default=1, ge=1, description="intra-op threads per worker; None: torch's")
    ray_address: str | None = Field(default=None, description="None: connect to RAY_ADDRESS or start local Ray")


class CtcEvalSet(_Strict):
    """A named evaluation set: real rows chosen by SQL over ``segments`` (PER over their whole rows)."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")
    filter: str = Field(description="Lance SQL over `segments`")
    max_rows: int | None = Field(default=None, ge=1, description="score at most this many rows (the first by id)")


def default_eval_sets() -> list[CtcEvalSet]:
    """The test split (unseen speakers) and the real recordings (held-out corpora, every split)."""
    return [CtcEvalSet(name="test", filter=segments_filter(split="test")),
            CtcEvalSet(name="real_holdout", filter=segments_filter(split=None, holdout=True))]


class TrainCtcConfig(_Strict):
    """The whole job: which rows (``input``), which recognizer, for how long, scored on what, written where."""

    input: TrainInputConfig = Field(default_factory=lambda: TrainInputConfig(
        codec_checkpoint="checkpoints/codec_50hz_2x8555.pt", max_frames=500, crop="start", batch_size=16))
    valid_filter: str = Field(default=segments_filter(split="valid"), description=(
        "Lance SQL over `segments`: the rows scored during training (loss and PER)"))
    eval_sets: list[CtcEvalSet] = Field(default_factory=default_eval_sets, description=(
        "scored with the final weights after training (PER by set in the summary and metrics)"))
    output_dir: str = Field(default="data/checkpoints/ctc", description=(
        "checkpoints/, metrics.jsonl, loss_curve.png and eval.json go here (a path or s3:// URI); a re-run resumes"))
    phoneme_cache: str | None = Field(default="data/cache/phonemes", description=(
        "folder of the espeak-ng phoneme cache (local); None: in memory only"))
    preset: str | None = Field(default="ctc_small", description="a name from models.ctc.presets.PRESETS")
    model: CtcModelConfig | None = Field(default=None, description="a full model config instead of a preset")
    training: CtcTrainingConfig = Field(default_factory=CtcTrainingConfig)
    execution: CtcExecutionConfig = Field(default_factory=CtcExecutionConfig)

    @model_validator(mode="after")
    def _check(self) -> "TrainCtcConfig":
        if (self.preset is None) == (self.model is None):
            raise ValueError("give exactly one of preset or model")
        if self.input.epochs != 1:
            raise ValueError("input.epochs: leave at 1; training.max_steps decides how many epochs are streamed")
        if self.input.batch_size % self.execution.num_workers:
            raise ValueError(f"input.batch_size {self.input.batch_size} must be a multiple of execution.num_workers "
                             f"{self.execution.num_workers}")
        names = [s.name for s in self.eval_sets]
        if len(set(names)) != len(names):
            raise ValueError(f"eval_sets: names must be unique, got {names}")
        return self
