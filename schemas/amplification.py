"""Config of ``jobs/experiment_amplification.py``: does training on recombined data beat the seed alone?

The experiment (issue #5, item 4) builds its own seed with a known gap:

- ``pool_filter`` chooses the real rows the experiment may use (default: the
  English synthesizer voices of the train split, parallel text, 19 voices);
- ``holdout.speaker_fraction`` of the pool's speakers lose every row in
  ``holdout.environments``: those speaker x environment cells are missing
  from the seed, and their real rows are the ``heldout_cells`` evaluation set;
- recombination (factor gates only by default: the Resemblyzer judge costs
  20x the swap) is run on the seed alone (content and every donor from the
  seed), with the balanced strategy, which fills the missing cells first;
- the same recognizer (``models.ctc``) is trained at equal steps on the seed
  alone, on seed + k x recombined rows for every ``ratios`` k, and on seed +
  generated rows when ``generated_filter`` finds any, each for every seed in
  ``seeds``; every model is scored on the held-out cells, on unseen speakers
  and on real recordings.

A synthetic row is used only if its content and every donor segment are seed
rows (``lineage_filter``), so no held-out audio reaches training through
recombination.
"""

from __future__ import annotations

from pydantic import Field, model_validator

from schemas.codec import _Strict
from schemas.ctc import CtcModelConfig
from schemas.recombine import GateConfig
from schemas.storage import StorageConfig
from schemas.train_ctc import CtcEvalSet, CtcExecutionConfig, CtcTrainingConfig

__all__ = ["HoldoutConfig", "AmplificationConfig"]

_POOL = "split = 'train' AND language = 'en' AND corpus IN ('espeak-ng', 'flite', 'festival')"


class HoldoutConfig(_Strict):
    """Which speaker x environment cells the seed lacks."""

    speaker_fraction: float = Field(default=0.5, gt=0, lt=1, description=(
        "share of the pool's speakers (drawn with `seed`) whose rows in `environments` leave the seed"))
    environments: list[str] = Field(default_factory=lambda: ["room", "noise", "room+noise"], min_length=1)
    seed: int = Field(default=0, ge=0)


class AmplificationConfig(_Strict):
    """The whole experiment: seed, recombination, conditions, recognizer budget, evaluation and outputs."""

    lake_root: str = "data/lake"
    storage: StorageConfig = Field(default_factory=StorageConfig)
    codec_checkpoint: str = "checkpoints/codec_50hz_2x8555.pt"
    codec_id: str | None = Field(default=None, description=(
        "read this codec's latents instead of the checkpoint's (only with recombine: false)"))
    factorizer_checkpoint: str = "checkpoints/factorizer_default.pt"
    pool_filter: str = Field(default=_POOL, description="Lance SQL over `segments`: the real rows the experiment uses")
    holdout: HoldoutConfig = Field(default_factory=HoldoutConfig)
    recombine: bool = Field(default=True, description=(
        "run recombination on the seed first (a re-run makes nothing new)"))
    recombine_budget: int | None = Field(default=None, ge=1, description=(
        "plan rows; None: 1.5 x max(ratios) x seed rows (room for the rows the gates reject)"))
    gates: GateConfig = Field(default_factory=lambda: GateConfig(speaker_judge=False))
    recombined_filter: str = Field(default="passed AND strategy <> 'generated'", description=(
        "Lance SQL over `synthetic`: the recombined rows (their lineage is checked against the seed as well)"))
    generated_filter: str | None = Field(default="passed AND strategy = 'generated'", description=(
        "Lance SQL over `synthetic`: rows of the generator (jobs/generate.py); none found: condition (c) is "
        "reported as not run"))
    ratios: list[float] = Field(default_factory=lambda: [0.0, 1.0, 4.0, 16.0], min_length=1, description=(
        "synthetic rows per seed row of the recombined conditions (0 = the seed alone)"))
    generated_ratio: float = Field(default=1.0, gt=0)
    seeds: list[int] = Field(default_factory=lambda: [0, 1, 2], min_length=1, description=(
        "one training per condition per seed (input order and initial weights)"))
    preset: str = "ctc_small"
    model: CtcModelConfig | None = Field(default=None, description="a full recognizer config instead of the preset")
    batch_size: int = Field(default=16, ge=1)
    max_frames: int = Field(default=500, ge=8, description="longer rows are skipped (a crop loses transcript)")
    training: CtcTrainingConfig = Field(default_factory=lambda: CtcTrainingConfig(
        max_steps=2000, checkpoint_every_steps=1000, valid_every_steps=1000, log_every_steps=250, valid_rows=100))
    execution: CtcExecutionConfig = Field(default_factory=CtcExecutionConfig)
    valid_filter: str = Field(default="split = 'valid' AND language = 'en'", description=(
        "rows scored during training (model selection is not done: the last step is scored)"))
    eval_sets: list[CtcEvalSet] = Field(default_factory=lambda: [
        CtcEvalSet(name="unseen_speakers", filter="split = 'test' AND language = 'en'"),
        CtcEvalSet(name="real_recordings", filter=(
            "language = 'en' AND corpus IN ('tuxpaint', 'pocketsphinx', 'alsa', 'codec2', 'linphone')"))],
        description="scored besides `heldout_cells` (the real rows of the cells the seed lacks)")
    phoneme_cache: str | None = "data/cache/phonemes"
    output_dir: str = Field(default="data/experiments/amplification", description=(
        "one folder per trained model (resumable), results.json and the chart"))
    results_md: str | None = Field(default="bench/RESULTS.md", description=(
        "markdown file whose `amplification` section is (re)written; None: do not write"))
    chart: str | None = Field(default="bench/amplification.png", description="the PNG chart; None: not drawn")

    @model_validator(mode="after")
    def _check(self) -> "AmplificationConfig":
        if 0.0 not in self.ratios:
            raise ValueError("ratios must include 0 (the seed alone is the baseline)")
        if len(set(self.ratios)) != len(self.ratios) or len(set(self.seeds)) != len(self.seeds):
            raise ValueError("ratios and seeds must not repeat")
        if any(r < 0 for r in self.ratios):
            raise ValueError("ratios must be >= 0")
        if self.codec_id is not None and self.recombine:
            raise ValueError("codec_id: recombination needs the codec itself; give codec_checkpoint only")
        if "heldout_cells" in {s.name for s in self.eval_sets}:
            raise ValueError("eval_sets: `heldout_cells` is the experiment's own set; use another name")
        return self
