"""Config of ``jobs/train_s2s.py``: the speech-to-speech model on pairs of codec-code rows (issue #5 item 3).

Default task, normalization: any speaker in any environment -> the same words in ONE clean target voice.
A pair's source is any item of the streaming training input (the ``input`` block: real rows, and synthetic
rows at ``synthetic_per_real``); its target is the REAL row of the target voice (``target_filter``, SQL over
``segments``) with the same ``(language, text_id)``, read from ``latents`` at the pinned version
(``pipelines.s2s_pairs``). Items whose text the target voice never spoke are dropped from the index, and so
is the target row itself (a pair of a row with itself teaches copying).

Why whole rows: the target is the whole sentence, so a source window cut from a longer row would not hold
all of its words. The step drops cropped windows (``num_frames > lengths``) and pairs whose target is
longer than ``input.max_frames`` (the default, 500 frames = 10 s at 50 Hz, covers the seed sentences).
"""

from __future__ import annotations

from pydantic import Field, model_validator

from schemas.codec import _Strict, segments_filter
from schemas.s2s import S2SModelConfig
from schemas.train_ctc import CtcExecutionConfig, CtcTrainingConfig
from schemas.train_input import TrainInputConfig

__all__ = ["TrainS2SConfig", "DEFAULT_SOURCE_FILTER", "DEFAULT_TARGET_FILTER"]

#: English synthesizer voices of the train split: the corpora that speak the target voice's sentences.
DEFAULT_SOURCE_FILTER = "split = 'train' AND language = 'en' AND corpus IN ('espeak-ng', 'flite', 'festival')"
#: The one clean target voice of the demo lake (35 rows, 30 sentences).
DEFAULT_TARGET_FILTER = "speaker = 'flite:slt' AND environment = 'clean'"


class TrainS2SConfig(_Strict):
    """The whole job: which source items (``input``), toward which voice, which model, how long, written where."""

    input: TrainInputConfig = Field(default_factory=lambda: TrainInputConfig(
        codec_checkpoint="checkpoints/codec_50hz_2x8555.pt", real_filter=DEFAULT_SOURCE_FILTER,
        synthetic_filter="passed", synthetic_per_real=1.0, max_frames=500, crop="start", batch_size=16))
    target_filter: str = Field(default=DEFAULT_TARGET_FILTER, description=(
        "Lance SQL over `segments`: the real rows of the target voice (first by segment_id per language + text_id)"))
    target_voice: str = Field(default="flite_slt", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:+-]{0,63}$", description=(
        "name of the target voice, stored in the checkpoint (what 'normalized' means for this model)"))
    condition_on_target_speaker: bool = Field(default=False, description=(
        "feed the target row's speaker vector (input.factorizer_id's `factors`); false: the model's learned "
        "target-voice embedding (and no speaker projection: speaker_dim 0)"))
    valid_filter: str = Field(default=segments_filter(split="valid"), description=(
        "Lance SQL over `segments`: real rows whose pairs are scored during training (loss, code accuracy)"))
    output_dir: str = Field(default="data/checkpoints/s2s", description=(
        "checkpoints/, metrics.jsonl and loss_curve.png go here (a path or s3:// URI); a re-run resumes"))
    preset: str | None = Field(default="s2s_small", description="a name from models.s2s.presets.PRESETS")
    model: S2SModelConfig | None = Field(default=None, description="a full model config instead of a preset")
    training: CtcTrainingConfig = Field(default_factory=lambda: CtcTrainingConfig(max_steps=2000, learning_rate=2e-3))
    execution: CtcExecutionConfig = Field(default_factory=CtcExecutionConfig)

    @model_validator(mode="after")
    def _check(self) -> "TrainS2SConfig":
        if (self.preset is None) == (self.model is None):
            raise ValueError("give exactly one of preset or model")
        if self.input.epochs != 1:
            raise ValueError("input.epochs: leave at 1; training.max_steps decides how many epochs are streamed")
        if self.input.batch_size % self.execution.num_workers:
            raise ValueError(f"input.batch_size {self.input.batch_size} must be a multiple of execution.num_workers "
                             f"{self.execution.num_workers}")
        if self.condition_on_target_speaker and self.input.factorizer_id is None:
            raise ValueError("condition_on_target_speaker needs input.factorizer_id (the speaker vectors' factorizer)")
        return self
