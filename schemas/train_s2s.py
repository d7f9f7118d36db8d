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

__all__ = ["TrainS2SConfig", "S2SEvalConfig", "S2SEvalSet", "DEFAULT_SOURCE_FILTER", "DEFAULT_TARGET_FILTER",
           "default_s2s_eval_sets"]

#: English synthesizer voices of the train split: the corpora that speak the target voice's sentences.
DEFAULT_SOURCE_FILTER = "split = 'train' AND language = 'en' AND corpus IN ('espeak-ng', 'flite', 'festival')"
#: The one clean target voice of the demo lake: its neutral, clean-channel rows (30 rows, 30 sentences).
DEFAULT_TARGET_FILTER = ("speaker = 'flite:slt' AND environment = 'clean' AND channel = 'clean' "
                         "AND style = 'neutral'")


class S2SEvalSet(_Strict):
    """A named held-out input set: real rows chosen by SQL over ``segments``, converted and scored whole."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")
    filter: str = Field(description="Lance SQL over `segments`")
    max_rows: int | None = Field(default=200, ge=1, description="score at most this many rows (the first by id)")


def default_s2s_eval_sets() -> list[S2SEvalSet]:
    """Held-out real speech (corpora no training reads), held-out synthesizer voices (the test split), and the
    test split's room/noise renderings in every language (English alone has few: the environment question)."""
    return [S2SEvalSet(name="real_holdout", filter="language = 'en' AND " + segments_filter(split=None, holdout=True)),
            S2SEvalSet(name="synthetic_holdout", filter=DEFAULT_SOURCE_FILTER.replace("'train'", "'test'")),
            S2SEvalSet(name="synthetic_holdout_not_clean", filter=(
                "split = 'test' AND environment <> 'clean' AND corpus IN ('espeak-ng', 'flite', 'festival')"))]


class S2SEvalConfig(_Strict):
    """How the trained model is judged (``pipelines.eval_s2s``): by models it never trained with.

    - content kept: phoneme error rate of a separately trained CTC recognizer (``jobs/train_ctc.py``) on the
      converted codes, against the SOURCE row's transcript (beside its PER on the unconverted source);
    - target-voice similarity: Resemblyzer cosine of the decoded output to the target voice's centroid
      (beside the source's, and the target rows' own leave-one-out similarity: the ceiling);
    - content kept, with no model: for rows whose sentence the target voice recorded, the share of outputs
      closer (DTW mel distance) to that recording than to its recording of another sentence;
    - environment removed: share of outputs that an environment probe (logistic regression on the pooled codec
      latent, fitted on ``probe_filter`` rows) calls ``clean``, among sources that are not clean; and DNSMOS
      BAK (background noise, 1-5) of source and output.
    """

    recognizer_checkpoint: str = Field(default="data/checkpoints/ctc_en/checkpoints/latest.pt", description=(
        "a jobs/train_ctc.py checkpoint of the same codec (configs/train_ctc_en.yaml; a path or s3:// URI)"))
    sets: list[S2SEvalSet] = Field(default_factory=default_s2s_eval_sets)
    rate: float = Field(default=1.0, gt=0, description="output duration / source duration of a conversion")
    probe_filter: str = Field(default="split = 'train' AND environment IS NOT NULL", description=(
        "Lance SQL over `segments`: real rows the environment probe is fitted on"))
    probe_rows: int = Field(default=3000, ge=10, description="at most this many probe rows (the first by id)")
    target_rows: int = Field(default=40, ge=2, description="target-voice rows in the speaker centroid")
    speaker_judge: bool = Field(default=True, description="score target-voice similarity (Resemblyzer)")
    text_references: bool = Field(default=True, description=(
        "for rows whose sentence the target voice recorded: is the output closer (DTW mel distance) to that "
        "recording than to the voice's recording of another sentence (content kept, judged with no model)"))
    dnsmos: bool = Field(default=True, description="score DNSMOS BAK/OVRL of sources and outputs")

    @model_validator(mode="after")
    def _check(self) -> "S2SEvalConfig":
        names = [s.name for s in self.sets]
        if len(set(names)) != len(names):
            raise ValueError(f"eval.sets: names must be unique, got {names}")
        return self


class TrainS2SConfig(_Strict):
    """The whole job: which source items (``input``), toward which voice, which model, how long, written where."""

    input: TrainInputConfig = Field(default_factory=lambda: TrainInputConfig(
        codec_checkpoint="checkpoints/codec_50hz_2x8555.pt", real_filter=DEFAULT_SOURCE_FILTER,
        synthetic_filter="passed", synthetic_per_real=1.0, max_frames=500, crop="start", batch_size=16))
    target_filter: str = Field(default=DEFAULT_TARGET_FILTER, description=(
        "Lance SQL over `segments`: the real rows of the target voice (first by segment_id per language + text_id)"))
    synthetic_target_filter: str | None = Field(default=None, description=(
        "Lance SQL over `synthetic`: recombined rows that are targets too (the target voice speaking their "
        "content segment's sentence, e.g. \"passed AND target_speaker = 'flite:slt' AND target_environment = "
        "'clean'\"), for sentences the voice never recorded; real target rows come first. None: real targets only"))
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
    eval: S2SEvalConfig | None = Field(default_factory=S2SEvalConfig, description=(
        "held-out evaluation after training (eval.json in output_dir); null: none"))
    phoneme_cache: str | None = Field(default="data/cache/phonemes", description=(
        "folder of the espeak-ng phoneme cache used by the evaluation (local); None: in memory only"))

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
        if self.eval is not None and self.input.codec_checkpoint is None:
            raise ValueError("eval needs input.codec_checkpoint (outputs are decoded to audio to be judged); "
                             "or set eval: null")
        return self
