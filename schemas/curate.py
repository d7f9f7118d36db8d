"""Config of ``jobs/curate.py``: sources, segmentation, filters, splits, execution.

Validated at start-up, before any work; unknown keys are errors that name
the key (``extra="forbid"`` on every block).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from schemas.storage import StorageConfig

__all__ = [
    "SourceSpec", "SegmentationConfig", "FilterConfig", "SplitConfig", "ExecutionConfig", "CurateConfig",
    "load_config", "AUDIO_EXTENSIONS",
]

#: Listed as audio. Includes containers libsndfile cannot decode (m4a, aac, wma, ...): they are listed so
#: they end as ``unsupported_format`` rejects instead of being skipped without a trace.
AUDIO_EXTENSIONS: tuple[str, ...] = ("wav", "flac", "ogg", "oga", "opus", "mp3", "aiff", "aif", "au", "caf",
                                     "m4a", "aac", "mp4", "wma", "amr", "webm", "mka", "mkv", "3gp", "ac3", "spx", "c2")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SourceSpec(_Strict):
    """One place raw audio comes from.

    ``folder``: every audio file under ``uri`` (local or ``s3://``), labels joined
    from ``labels_manifest`` by relative path when given. ``webdataset``: every
    ``.tar`` shard under ``uri`` (or one shard); labels from each sample's
    ``.json`` member. ``manifest``: a JSONL file of :class:`schemas.labels.ManifestRow`.
    """

    kind: Literal["folder", "webdataset", "manifest"]
    uri: str
    labels_manifest: str | None = None
    extensions: list[str] = Field(default_factory=lambda: list(AUDIO_EXTENSIONS))


class SegmentationConfig(_Strict):
    """Voice activity detection and cutting (see ``pipelines.audio.segment``)."""

    vad: Literal["webrtc", "silero", "energy"] = "webrtc"
    aggressiveness: int = Field(default=2, ge=0, le=3)
    min_segment_s: float = Field(default=0.5, gt=0)
    max_segment_s: float = Field(default=20.0, gt=0)
    max_pause_s: float = Field(default=0.8, ge=0)
    pad_s: float = Field(default=0.15, ge=0)

    @model_validator(mode="after")
    def _check_lengths(self) -> "SegmentationConfig":
        if self.min_segment_s >= self.max_segment_s:
            raise ValueError(f"min_segment_s ({self.min_segment_s}) must be < max_segment_s ({self.max_segment_s})")
        return self


class FilterConfig(_Strict):
    """Quality thresholds; a segment failing any is a ``rejects`` row with the reason."""

    min_snr_db: float | None = 3.0
    max_clipping_ratio: float | None = 0.02
    max_silence_ratio: float | None = 0.85
    min_loudness_lufs: float | None = -55.0
    max_loudness_lufs: float | None = 0.0
    min_bandwidth_hz: float | None = None


class SplitConfig(_Strict):
    """Train/valid/test assignment, stable per speaker (hash of speaker id and salt)."""

    valid_percent: float = Field(default=5.0, ge=0, le=100)
    test_percent: float = Field(default=5.0, ge=0, le=100)
    salt: str = "lsm-v1"
    test_speakers: list[str] = Field(default_factory=list)
    valid_speakers: list[str] = Field(default_factory=list)


class ExecutionConfig(_Strict):
    """How the Ray pipeline runs. Defaults suit a laptop and scale on a cluster unchanged."""

    commit_every_sources: int = Field(default=4000, ge=1, description="sources per atomic commit (resume unit)")
    sources_per_batch: int = Field(default=128, ge=1, description="listed units per stage call (amortizes Ray overhead)")
    concurrency: int | None = Field(default=None, ge=1, description="curation tasks at once; default = cluster CPUs")
    num_cpus_per_worker: float = Field(default=1.0, gt=0)
    max_source_s: float = Field(default=4 * 3600, gt=0, description="longer inputs are rejected (too_long)")
    ray_address: str | None = Field(default=None, description="None: connect to RAY_ADDRESS or start local Ray")


class CurateConfig(_Strict):
    """The whole curation job."""

    lake_root: str = "data/lake"
    sources: list[SourceSpec] = Field(min_length=1)
    segmentation: SegmentationConfig = Field(default_factory=SegmentationConfig)
    filters: FilterConfig = Field(default_factory=FilterConfig)
    split: SplitConfig = Field(default_factory=SplitConfig)
    dedup: bool = True
    execution: ExecutionConfig = Field(default_factory=ExecutionConfig)
    storage: StorageConfig = Field(default_factory=StorageConfig)

    @model_validator(mode="after")
    def _check_split(self) -> "CurateConfig":
        if self.split.valid_percent + self.split.test_percent > 100:
            raise ValueError("split.valid_percent + split.test_percent must be <= 100")
        return self


def load_config(path: str | Path, model: type[BaseModel] = CurateConfig) -> BaseModel:
    """Read YAML and validate it; raises ``ConfigError`` with one readable line per problem."""
    from pydantic import ValidationError

    path = Path(path)
    if not path.exists():
        raise ConfigError(f"config file not found: {path}")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: top level must be a mapping, got {type(raw).__name__}")
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            loc = ".".join(str(p) for p in err["loc"]) or "(top level)"
            msg = "unknown key (not allowed)" if err["type"] == "extra_forbidden" else err["msg"]
            lines.append(f"  {loc}: {msg}")
        raise ConfigError(f"{path}: invalid config\n" + "\n".join(lines)) from None


class ConfigError(ValueError):
    """A config that cannot be used; the message names every bad key."""


__all__.append("ConfigError")
