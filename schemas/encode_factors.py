"""Config of ``jobs/encode_factors.py``: which factorizer (and codec), which latents, how the stage runs, the index.

Validated at start-up (``schemas.curate.load_config(path, EncodeFactorsConfig)``);
unknown keys are errors that name the key. Relative paths (``lake_root``, the
checkpoints) resolve against ``$LSM_HOME``, else the working directory
(``schemas.storage.resolve_uri``), as in the encode job.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from schemas.encode import DEFAULT_CODEC_CHECKPOINT
from schemas.factors import FACTOR_DIMS
from schemas.storage import StorageConfig

__all__ = ["EncodeFactorsExecutionConfig", "FactorsIndexConfig", "EncodeFactorsConfig",
           "DEFAULT_FACTORIZER_CHECKPOINT", "PQ_MIN_ROWS"]

#: The shipped factorizer (repo-relative), trained on ``DEFAULT_CODEC_CHECKPOINT``'s latents.
DEFAULT_FACTORIZER_CHECKPOINT = "checkpoints/factorizer_default.pt"

#: Rows below which a PQ index cannot be trained: its codebooks have 2**8 centroids per sub-vector, and Lance
#: 14 then silently writes an index that covers no rows (measured: 255 rows -> 0 indexed, 256 -> 256).
PQ_MIN_ROWS = 256

FactorName = Literal["speaker", "style", "environment", "channel"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EncodeFactorsExecutionConfig(_Strict):
    """How the Ray Data stage runs. Defaults suit 2 cores; a cluster scales with ``concurrency: null``."""

    commit_every_segments: int = Field(default=20000, ge=1, description=(
        "latents rows per atomic commit of `factors` (the unit of resume after a kill); a row costs ~25 ms on "
        "one core with factorizer_default, so a chunk is a few minutes on 2 cores"))
    rows_per_batch: int = Field(default=256, ge=1, description=(
        "latents rows per stage call (one Lance take per call); each row is factorized on its own"))
    concurrency: int | None = Field(default=None, ge=1,
                                    description="factorizer actors; default: cluster CPUs / cpus_per_actor")
    cpus_per_actor: float = Field(default=1.0, gt=0)
    torch_threads: int | None = Field(default=1, ge=1, description=(
        "intra-op threads per actor (one thread per actor, one actor per core); None: torch's default"))
    rows_per_file: int = Field(default=16384, ge=1, description=(
        "lance-ray min_rows_per_file, which also sets rows per write task (DESIGN.md trap); a factors row is "
        "~0.5 kB plus 2 bytes per frame"))
    ray_address: str | None = Field(default=None, description="None: connect to RAY_ADDRESS or start local Ray")


class FactorsIndexConfig(_Strict):
    """The vector index on the factor columns, built or brought up to date at the end of every run that wrote.

    Index type follows the table's size: below :data:`PQ_MIN_ROWS` rows an exact ``IVF_FLAT`` index with one
    partition (a tiny table is a flat scan anyway, and PQ cannot be trained); from there ``IVF_PQ``, replacing
    the flat one the first time the table crosses the threshold. Later runs add their rows with
    ``optimize_indices()`` (DESIGN.md: otherwise new rows stay unindexed), retraining the partitions when a run
    at least doubled the table or the index has piled up ``max_delta_segments`` delta segments.
    """

    build: bool = Field(default=True, description="false: leave the index alone (search then scans rows exactly)")
    factors: list[FactorName] = Field(default_factory=lambda: ["speaker"], min_length=1, description=(
        "factors whose vector column gets an index; the others are searched exactly (a full scan)"))
    metric: Literal["cosine"] = Field(default="cosine", description=(
        "the vectors are unit-norm, so cosine, L2 and dot rank alike; one metric keeps index and queries in step "
        "(a query with another metric than the index's falls back to a brute-force scan)"))
    num_partitions: int | None = Field(default=None, ge=1, description=(
        "IVF partitions; None: sqrt(rows), at most rows / 256 (Lance trains no fewer rows per partition) "
        "-> 1 below 512 rows, 39 at 10k, 1000 at 1M"))
    num_sub_vectors: int | None = Field(default=None, ge=1, description=(
        "PQ sub-vectors; None: dim / 8 (8 for the 64-d speaker vector: 8 bytes a row, and 8 dims per "
        "sub-vector, the multiple Lance's SIMD distance kernels want); must divide the vector size"))
    max_delta_segments: int = Field(default=8, ge=1, description=(
        "delta segments appended by optimize_indices before a retrain merges them into one"))

    @model_validator(mode="after")
    def _check(self) -> "FactorsIndexConfig":
        if self.num_sub_vectors is not None:
            bad = {f: FACTOR_DIMS[f] for f in self.factors if FACTOR_DIMS[f] % self.num_sub_vectors}
            if bad:
                raise ValueError(f"num_sub_vectors {self.num_sub_vectors} must divide the vector size of every "
                                 f"indexed factor; it does not divide {bad}")
        return self


class EncodeFactorsConfig(_Strict):
    """The whole job: one codec's ``latents`` rows -> ``factors`` rows of one factorizer (+ the vector index)."""

    lake_root: str = "data/lake"
    factorizer_checkpoint: str = Field(default=DEFAULT_FACTORIZER_CHECKPOINT, description=(
        "factorizer checkpoint file (models.factorizer); its codec id selects the latents rows"))
    codec_checkpoint: str = Field(default=DEFAULT_CODEC_CHECKPOINT, description=(
        "the codec the factorizer reads (turns codes into its latent); must be the factorizer's codec"))
    factorizer_id: str | None = Field(default=None, description=(
        "if set, the checkpoint must be this factorizer (a mixed-up file fails before any work)"))
    segments_filter: str | None = Field(default=None, description=(
        "Lance SQL over `segments` choosing what to factorize (e.g. \"split = 'train'\"); None: every latents "
        "row of the codec"))
    execution: EncodeFactorsExecutionConfig = Field(default_factory=EncodeFactorsExecutionConfig)
    index: FactorsIndexConfig = Field(default_factory=FactorsIndexConfig)
    storage: StorageConfig = Field(default_factory=StorageConfig)
