"""Config of ``jobs/eval_codec.py``: which codecs, on which held-out clips, where the report goes.

Validated at start-up (``schemas.curate.load_config(path, EvalCodecConfig)``);
unknown keys are errors that name the key. Baseline names are checked
against ``pipelines.eval.BASELINES`` when the run starts (this module stays
importable without the eval stack).

The default sets are the two held-out sets of ``schemas.codec``: ``test``
(the test split outside the held-out corpora) and ``real_holdout`` (every
split of the held-out corpora: real recordings that codec training never
reads). A set may instead give a Lance SQL ``filter`` of its own.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from schemas.codec import DEFAULT_HOLDOUT_CORPORA, segments_filter
from schemas.storage import StorageConfig

__all__ = ["CheckpointSpec", "EvalSetSpec", "EvalOutputConfig", "EvalExecutionConfig", "EvalCodecConfig",
           "RESULTS_MARKER"]

#: ``<!-- codec-eval:begin -->`` ... ``<!-- codec-eval:end -->`` in ``output.results_md``.
RESULTS_MARKER = "codec-eval"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CheckpointSpec(_Strict):
    """A codec checkpoint to evaluate; a bare string in YAML is its path.

    ``name`` labels its rows (default: the model config's name, plus ``@<step>`` when two checkpoints share it).
    """

    path: str
    name: str | None = Field(default=None, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.@+-]{0,63}$")

    @model_validator(mode="before")
    @classmethod
    def _from_path(cls, value: Any) -> Any:
        return {"path": value} if isinstance(value, str) else value


class EvalSetSpec(_Strict):
    """One held-out set: the segments that ``split``/``holdout`` (see ``schemas.codec.segments_filter``) or ``filter`` select.

    Clips shorter than ``EvalCodecConfig.min_clip_s`` are left out. With ``max_clips`` the set is the first
    clips in ``segment_id`` order (ids are content hashes, so this is a fixed pseudo-random sample).
    """

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,31}$")
    split: str | None = None
    holdout: bool = False
    filter: str | None = Field(default=None, description="Lance SQL over segments; replaces split/holdout")
    max_clips: int | None = Field(default=None, ge=1)

    @model_validator(mode="after")
    def _one_selection(self) -> "EvalSetSpec":
        if self.filter is not None and (self.split is not None or self.holdout):
            raise ValueError(f"set {self.name!r}: give either `filter` or `split`/`holdout`, not both")
        if self.filter is None and self.split is None and not self.holdout:
            raise ValueError(f"set {self.name!r}: give `split`, `holdout: true` or a `filter`")
        return self

    def segments_filter(self, holdout_corpora: list[str]) -> str:
        """The Lance SQL that selects this set's segments (before the minimum duration)."""
        if self.filter is not None:
            return self.filter
        return segments_filter(split=self.split, holdout_corpora=holdout_corpora, holdout=self.holdout)


class EvalOutputConfig(_Strict):
    """Where results go; relative paths resolve against ``$LSM_HOME``, else the cwd."""

    report_md: str = "bench/codec_eval.md"
    chart_png: str = Field(default="bench/codec_eval.png", description="bar chart over all held-out clips")
    scores_jsonl: str = Field(default="bench/out/codec_eval_scores.jsonl", description="one line per clip x codec")
    results_md: str | None = Field(default="bench/RESULTS.md", description=(
        f"also replace the section between <!-- {RESULTS_MARKER}:begin --> and <!-- {RESULTS_MARKER}:end --> "
        "of this file (appended when the markers are absent); null: leave it alone"))


class EvalExecutionConfig(_Strict):
    """Ray tasks over chunks of clips; each task runs every codec on its clips."""

    clips_per_task: int = Field(default=4, ge=1)
    num_cpus_per_task: float = Field(default=1.0, gt=0)
    torch_threads: int = Field(default=1, ge=1, description="intra-op threads per task (1 per CPU)")
    num_cpus: int | None = Field(default=None, ge=1, description="CPUs of a local Ray started here; None: all")
    ray_address: str | None = Field(default=None, description="None: connect to RAY_ADDRESS or start local Ray")


def _default_sets() -> list[EvalSetSpec]:
    return [EvalSetSpec(name="test", split="test"), EvalSetSpec(name="real_holdout", holdout=True)]


class EvalCodecConfig(_Strict):
    """The whole codec evaluation: checkpoints and baselines, scored on held-out sets."""

    lake_root: str = "data/lake"
    checkpoints: list[CheckpointSpec] = Field(
        default_factory=lambda: [CheckpointSpec(path="checkpoints/codec_50hz_2x8555.pt")])
    baselines: list[str] | None = Field(default=None, description="names in pipelines.eval.BASELINES; None: all")
    sets: list[EvalSetSpec] = Field(default_factory=_default_sets, min_length=1)
    holdout_corpora: list[str] = Field(default_factory=lambda: list(DEFAULT_HOLDOUT_CORPORA))
    min_clip_s: float = Field(default=0.5, ge=0.25, description="PESQ needs >= 0.25 s, STOI ~0.4 s of speech")
    with_dnsmos: bool = Field(default=True, description="DNSMOS on every decoded clip (~0.4 s CPU per 9 s window)")
    include_input: bool = Field(default=True, description=(
        "also score the unprocessed clips as codec 'input' (the DNSMOS of the references: the ceiling)"))
    output: EvalOutputConfig = Field(default_factory=EvalOutputConfig)
    execution: EvalExecutionConfig = Field(default_factory=EvalExecutionConfig)
    storage: StorageConfig = Field(default_factory=StorageConfig)

    @model_validator(mode="after")
    def _check(self) -> "EvalCodecConfig":
        names = [s.name for s in self.sets]
        if len(set(names)) != len(names) or "all" in names:
            raise ValueError(f"set names must be unique and not 'all' (the union), got {names}")
        if not self.checkpoints and self.baselines == []:
            raise ValueError("nothing to evaluate: no checkpoints and no baselines")
        labels = [c.name for c in self.checkpoints if c.name]
        if len(set(labels)) != len(labels):
            raise ValueError(f"checkpoint names must be unique, got {labels}")
        if any(s.holdout for s in self.sets) and not self.holdout_corpora:
            raise ValueError("a set with `holdout: true` needs at least one name in holdout_corpora")
        return self
