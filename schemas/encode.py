"""Config of ``jobs/encode.py``: which codec checkpoint, which segments, how the Ray stage runs.

Validated at start-up (``schemas.curate.load_config(path, EncodeConfig)``);
unknown keys are errors that name the key. Relative paths (``lake_root``,
``checkpoint``) resolve against ``$LSM_HOME``, else the working directory
(``schemas.storage.resolve_uri``), as in curation.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from schemas.storage import StorageConfig

__all__ = ["EncodeExecutionConfig", "EncodeConfig", "DEFAULT_CODEC_CHECKPOINT"]

#: The shipped codec (repo-relative): 50 Hz x 2 FSQ stages of [8,5,5,5], ~1 kbps.
DEFAULT_CODEC_CHECKPOINT = "checkpoints/codec_50hz_2x8555.pt"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EncodeExecutionConfig(_Strict):
    """How the Ray Data stage runs. Defaults suit 2 cores; a cluster scales with ``concurrency: null``."""

    commit_every_segments: int = Field(default=4000, ge=1, description=(
        "segments per atomic commit of `latents` (the unit of resume after a kill; ~3 h of audio at the seed "
        "corpus' 2.7 s mean)"))
    segments_per_batch: int = Field(default=64, ge=1, description=(
        "segments per stage call (one blob read per call); each segment is encoded on its own"))
    concurrency: int | None = Field(default=None, ge=1,
                                    description="encode actors; default: cluster CPUs / cpus_per_actor")
    cpus_per_actor: float = Field(default=1.0, gt=0)
    torch_threads: int | None = Field(default=1, ge=1, description=(
        "intra-op threads per actor; 1 thread per actor and one actor per core beats fewer, wider actors for "
        "small convs; None: torch's default"))
    rows_per_file: int = Field(default=4096, ge=1, description=(
        "lance-ray min_rows_per_file, which also sets rows per write task (DESIGN.md trap)"))
    ray_address: str | None = Field(default=None, description="None: connect to RAY_ADDRESS or start local Ray")


class EncodeConfig(_Strict):
    """The whole encode job: segments of the lake -> ``latents`` rows of one codec."""

    lake_root: str = "data/lake"
    checkpoint: str = Field(default=DEFAULT_CODEC_CHECKPOINT, description="codec checkpoint file (models.codec)")
    codec_id: str | None = Field(default=None, description=(
        "if set, the checkpoint must be this codec (a mixed-up file fails before any work)"))
    segments_filter: str | None = Field(default=None, description=(
        "Lance SQL over `segments` choosing what to encode (e.g. \"split = 'train'\"); None: every segment"))
    execution: EncodeExecutionConfig = Field(default_factory=EncodeExecutionConfig)
    storage: StorageConfig = Field(default_factory=StorageConfig)
