"""The recombination plan: which factor combinations to make, decided before any model runs.

A plan row says: take the content of ``content_segment_id`` and the speaker,
style, environment and channel of the named donor segments (a factor that is
not varied comes from the content segment itself). ``synth_id`` hashes that
recipe (plus the model ids and the seed), so a re-run of the same plan makes
the same ids and never duplicates a ``synthetic`` row.

``target_<factor>`` is the label the output should carry: the donor's label
for a varied factor, the content segment's own label otherwise.
``new_cell`` says whether the output's (speaker, environment) pair is absent
from the donor rows (the seed); null when either label is unknown.

Matching rules (``recombination.plan``):

- ``no_self_swap``: a varied factor's target must differ from the content
  segment's label; a null source label differs from every value.
- ``language_match``: the speaker donor's ``language`` equals the content
  segment's. Null is its own group: a source of unknown language takes speakers
  only from donors of unknown language (a known language never matches
  unknown, so cross-lingual swaps cannot slip in through missing labels).
"""

from __future__ import annotations

from typing import Literal

import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from schemas.storage import StorageConfig

__all__ = [
    "FACTORS", "Strategy", "PLAN_INPUT_COLUMNS", "DEFAULT_MAX_PLAN_ROWS", "PlanError",
    "RecombinePlanConfig", "PlanRow", "PLAN_SCHEMA", "GateConfig", "RecombineOutputConfig",
    "RecombineExecutionConfig", "RecombineConfig",
]

#: The factors a plan can vary, in canonical order (also the order of ``varied`` strings).
FACTORS: tuple[str, ...] = ("speaker", "style", "environment", "channel")
Strategy = Literal["cross_product", "random", "balanced"]

#: ``segments`` columns planning reads (metadata only, never ``audio``); each factor's label column has its name.
PLAN_INPUT_COLUMNS: tuple[str, ...] = ("segment_id", "duration_s", "language", *FACTORS)

#: Plans larger than this fail before anything is materialised (~5M rows is ~1 GB of plan in memory).
DEFAULT_MAX_PLAN_ROWS = 5_000_000


class PlanError(ValueError):
    """A plan cannot be made from these inputs (no sources, no donors, a bad filter, too large); one line."""


class RecombinePlanConfig(BaseModel):
    """What to recombine and how many: filters over ``segments``, the factors to vary, a strategy and a budget.

    Example:
        >>> RecombinePlanConfig(vary=["speaker", "environment"], strategy="balanced", budget=1000).donor_filter
        "split = 'train'"
    """

    model_config = ConfigDict(extra="forbid")

    source_filter: str = Field(default="split = 'train'", description=(
        "Lance SQL over `segments` choosing the content sources"))
    donor_filter: str | None = Field(default=None, description=(
        "Lance SQL over `segments` choosing rows that may donate a factor; None: same as source_filter"))
    vary: list[str] = Field(min_length=1, description=f"factors to vary, a subset of {', '.join(FACTORS)}")
    strategy: Strategy = "cross_product"
    budget: int | None = Field(default=None, ge=1, description=(
        "max plan rows; required for random and balanced, an optional cap for cross_product"))
    max_rows: int = Field(default=DEFAULT_MAX_PLAN_ROWS, ge=1, description=(
        "a cross_product larger than this fails before it is built (use random for a sample of it)"))
    no_self_swap: bool = Field(default=True, description="a varied factor's target differs from the source's label")
    language_match: bool = Field(default=True, description=(
        "the speaker donor's language equals the source's (null matches only null)"))
    donors_per_target: int = Field(default=1, ge=1, description=(
        "rows per combination of target values, each with other donor segments of those values"))
    seed: int = 0

    @field_validator("vary")
    @classmethod
    def _known_factors(cls, vary: list[str]) -> list[str]:
        unknown = [v for v in vary if v not in FACTORS]
        if unknown:
            raise ValueError(f"unknown factor(s) {', '.join(map(repr, unknown))} in vary: allowed are "
                             f"{', '.join(FACTORS)}")
        if len(set(vary)) != len(vary):
            raise ValueError(f"vary lists a factor twice: {vary}")
        return [f for f in FACTORS if f in vary]

    @model_validator(mode="after")
    def _budget_and_donors(self) -> "RecombinePlanConfig":
        if self.strategy in ("random", "balanced") and self.budget is None:
            raise ValueError(f"strategy {self.strategy!r} needs a budget (max plan rows)")
        if self.budget is not None and self.budget > self.max_rows:
            raise ValueError(f"budget {self.budget} is above max_rows {self.max_rows}")
        if self.donor_filter is None:
            self.donor_filter = self.source_filter
        return self


class PlanRow(BaseModel):
    """One row of a plan (see the module docstring for the meaning of the columns)."""

    model_config = ConfigDict(extra="forbid")

    synth_id: str
    content_segment_id: str
    speaker_segment_id: str
    style_segment_id: str
    environment_segment_id: str
    channel_segment_id: str
    source_speaker: str | None = None
    target_speaker: str | None = None
    source_style: str | None = None
    target_style: str | None = None
    source_environment: str | None = None
    target_environment: str | None = None
    source_channel: str | None = None
    target_channel: str | None = None
    language: str | None = None
    duration_s: float
    varied: str  # varied factors joined by "+", canonical order: "speaker+environment"
    new_cell: bool | None = None
    strategy: Strategy
    codec_id: str
    factorizer_id: str
    plan_seed: int


def _label_pair(factor: str) -> list[pa.Field]:
    return [pa.field(f"source_{factor}", pa.string(), nullable=True),
            pa.field(f"target_{factor}", pa.string(), nullable=True)]


PLAN_SCHEMA = pa.schema(
    [
        pa.field("synth_id", pa.string(), nullable=False),
        pa.field("content_segment_id", pa.string(), nullable=False),
        *(pa.field(f"{f}_segment_id", pa.string(), nullable=False) for f in FACTORS),
        *(field for f in FACTORS for field in _label_pair(f)),
        pa.field("language", pa.string(), nullable=True),
        pa.field("duration_s", pa.float64(), nullable=False),
        pa.field("varied", pa.string(), nullable=False),
        pa.field("new_cell", pa.bool_(), nullable=True),
        pa.field("strategy", pa.string(), nullable=False),
        pa.field("codec_id", pa.string(), nullable=False),
        pa.field("factorizer_id", pa.string(), nullable=False),
        pa.field("plan_seed", pa.int64(), nullable=False),
    ]
)


# --------------------------------------------------------------------------------------------------------------
# The recombine job: plan + models + gates + outputs.


class GateConfig(BaseModel):
    """Quality gates on every output; scores are always stored, these thresholds only set ``passed``.

    NaN (not judged) fails a gate. Defaults were set from the shipped models on the seed corpus (bench/RESULTS.md).
    """

    model_config = ConfigDict(extra="forbid")

    speaker_judge: bool = Field(default=True, description=(
        "judge speaker similarity with Resemblyzer on decoded audio (independent of our models); off: the "
        "factorizer's own re-encoded speaker vector decides (faster, but the model grades itself)"))
    dnsmos: bool = Field(default=False, description="score DNSMOS on decoded audio (~0.3 s of CPU per output)")
    speaker_margin: float = Field(default=0.0, description=(
        "speaker gate: similarity to the target speaker minus similarity to the source speaker must reach this"))
    min_content_agreement: float = Field(default=0.3, ge=0, le=1, description=(
        "content gate: share of frames whose content code survives the round trip"))
    min_factor_sim: float = Field(default=0.5, ge=-1, le=1, description=(
        "style/environment/channel gates (varied factors only): cosine of re-encoded vs target vector"))
    min_dnsmos: float = Field(default=1.5, ge=1, le=5, description="naturalness gate, when dnsmos is on")


class RecombineOutputConfig(BaseModel):
    """What each output row carries besides codes, and the HTML report."""

    model_config = ConfigDict(extra="forbid")

    audio: bool = Field(default=False, description="also store FLAC audio (codes always; audio is 60x larger)")
    report_path: str | None = Field(default="data/reports/recombine.html", description=(
        "self-contained HTML report with a grid of spectrograms and players; None: no report"))
    report_rows: int = Field(default=4, ge=1, description="source utterances (rows) in the report grid")
    report_columns: int = Field(default=5, ge=1, description="targets (columns) per source in the report grid")


class RecombineExecutionConfig(BaseModel):
    """How the Ray Data stage runs. Defaults suit 2 cores; a cluster scales with ``concurrency: null``."""

    model_config = ConfigDict(extra="forbid")

    commit_every_rows: int = Field(default=2000, ge=1, description=(
        "plan rows per atomic commit of `synthetic` (the unit of resume after a kill)"))
    rows_per_batch: int = Field(default=32, ge=1, description="plan rows per stage call (factorized together)")
    concurrency: int | None = Field(default=None, ge=1, description="actors; default: cluster CPUs / cpus_per_actor")
    cpus_per_actor: float = Field(default=1.0, gt=0)
    torch_threads: int | None = Field(default=1, ge=1)
    rows_per_file: int = Field(default=4096, ge=1, description="lance-ray min_rows_per_file")
    ray_address: str | None = Field(default=None, description="None: connect to RAY_ADDRESS or start local Ray")


class RecombineConfig(BaseModel):
    """The whole recombine job: a plan over ``segments``, executed with a codec and a factorizer into ``synthetic``."""

    model_config = ConfigDict(extra="forbid")

    lake_root: str = "data/lake"
    codec_checkpoint: str = "checkpoints/codec_50hz_2x8555.pt"
    factorizer_checkpoint: str = "checkpoints/factorizer_default.pt"
    plan: RecombinePlanConfig
    gates: GateConfig = Field(default_factory=GateConfig)
    output: RecombineOutputConfig = Field(default_factory=RecombineOutputConfig)
    execution: RecombineExecutionConfig = Field(default_factory=RecombineExecutionConfig)
    storage: StorageConfig = Field(default_factory=StorageConfig)
