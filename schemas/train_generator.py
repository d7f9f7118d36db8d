"""Config of ``jobs/train_generator.py``: the steerable latent generator on the lake's codes and factor vectors.

The generator maps a row's phonemes (espeak-ng, of its transcript) and its
four factor vectors (one factorizer's, from ``factors``; for a synthetic row
the vectors put in) to the row's codec codes. The ``input`` block is the
streaming training input; it must name the factorizer (``input.factorizer_id``).
Windows are never cropped for the same reason as the recognizer's
(``schemas.train_ctc``): the phoneme-to-frame alignment spans the whole row.
"""

from __future__ import annotations

from pydantic import Field, model_validator

from schemas.codec import _Strict, segments_filter
from schemas.generator import GeneratorLossConfig, GeneratorModelConfig
from schemas.train_ctc import CtcExecutionConfig, CtcTrainingConfig
from schemas.train_input import TrainInputConfig

__all__ = ["TrainGeneratorConfig", "SHIPPED_FACTORIZER_ID"]

#: The factorizer whose vectors the demo lake's `factors` table holds (checkpoints/factorizer_default.pt).
SHIPPED_FACTORIZER_ID = "factorizer_default-c7523103155f-wdac23304bf"


class TrainGeneratorConfig(_Strict):
    """The whole job: which rows (``input``), which generator, for how long, written where."""

    input: TrainInputConfig = Field(default_factory=lambda: TrainInputConfig(
        codec_checkpoint="checkpoints/codec_50hz_2x8555.pt", factorizer_id=SHIPPED_FACTORIZER_ID, max_frames=500,
        crop="start", batch_size=16))
    valid_filter: str = Field(default=segments_filter(split="valid"), description=(
        "Lance SQL over `segments`: rows scored during training (code cross-entropy and accuracy)"))
    output_dir: str = Field(default="data/checkpoints/generator", description=(
        "checkpoints/, metrics.jsonl and loss_curve.png go here (a path or s3:// URI); a re-run resumes"))
    phoneme_cache: str | None = "data/cache/phonemes"
    preset: str | None = Field(default="generator_small", description="a name from models.generator.presets.PRESETS")
    model: GeneratorModelConfig | None = None
    loss: GeneratorLossConfig = Field(default_factory=GeneratorLossConfig)
    training: CtcTrainingConfig = Field(default_factory=lambda: CtcTrainingConfig(max_steps=3000, learning_rate=2e-3))
    execution: CtcExecutionConfig = Field(default_factory=CtcExecutionConfig)

    @model_validator(mode="after")
    def _check(self) -> "TrainGeneratorConfig":
        if (self.preset is None) == (self.model is None):
            raise ValueError("give exactly one of preset or model")
        if self.input.factorizer_id is None:
            raise ValueError("input.factorizer_id: the generator is conditioned on factor vectors; name the "
                             "factorizer whose `factors` rows to read")
        if self.input.epochs != 1:
            raise ValueError("input.epochs: leave at 1; training.max_steps decides how many epochs are streamed")
        if self.input.batch_size % self.execution.num_workers:
            raise ValueError(f"input.batch_size {self.input.batch_size} must be a multiple of execution.num_workers "
                             f"{self.execution.num_workers}")
        return self
