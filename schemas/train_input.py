"""Config of the streaming training input (issue #5), and the pyarrow schema of its per-epoch plan.

The input feeds later trainers (generator, speech-to-speech, CTC recognizer)
with windows of codec codes from the lake: real ``latents`` rows chosen by a
SQL filter over ``segments`` (the split lives there), mixed with
``synthetic`` rows chosen by a SQL filter over ``synthetic`` (the gates'
verdict lives there), optionally joined with one factorizer's vectors from
``factors``. ``pipelines.train_input`` reads it; the driver turns it into one
plan table per epoch (:data:`TRAIN_PLAN_SCHEMA`), which Ray Data streams.

Why a ratio and not two datasets: the experiments of issue #5 compare seed
only (0), seed + recombined and seed + generated *at equal steps*, so an
epoch is always "every real row once" plus ``round(ratio x n_real)``
synthetic rows, shuffled together: the real part of an epoch is the same
whatever the ratio.

Validation errors are one line naming the key (:func:`parse_train_input_config`).
"""

from __future__ import annotations

from typing import Any, Literal

import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from schemas.codec import segments_filter
from schemas.factors import FACTOR_DIMS
from schemas.storage import StorageConfig

__all__ = ["TrainInputConfig", "TrainInputError", "parse_train_input_config", "LABELS", "SPLITS", "ORIGINS",
           "FACTOR_ROW_COLUMNS", "TRAIN_PLAN_SCHEMA"]

#: Labels every item carries as class indices (vocabularies in the index; ``schemas.factorizer.UNKNOWN_LABEL``
#: where unknown). For synthetic rows speaker/style/environment/channel are the plan's ``target_*`` labels;
#: language, text_id and transcript are the content segment's (content is never swapped).
LABELS: tuple[str, ...] = ("speaker", "language", "text_id", "transcript", "style", "environment", "channel")

#: ``split`` class index = position here (``schemas.segments.Split``); a synthetic row has its content segment's.
SPLITS: tuple[str, ...] = ("train", "valid", "test")

#: ``origin`` of an item = position here.
ORIGINS: tuple[str, ...] = ("real", "synthetic")

#: factor name -> plan column holding the row offset (in ``factors``) of the segment whose vector the item gets.
FACTOR_ROW_COLUMNS: dict[str, str] = {name: f"{name}_factor_row" for name in FACTOR_DIMS}


class TrainInputError(ValueError):
    """The training input cannot be built from this config and lake; one line, before any Ray work."""


class TrainInputConfig(BaseModel):
    """Which rows, mixed how, cut how, in which order.

    Example:
        >>> TrainInputConfig(codec_id="codec_x", synthetic_per_real=4).synthetic_filter
        'passed'
    """

    model_config = ConfigDict(extra="forbid")

    lake_root: str = "data/lake"
    storage: StorageConfig = Field(default_factory=StorageConfig)
    codec_id: str | None = Field(default=None, description="the codec whose codes to read (exact id)")
    codec_checkpoint: str | None = Field(default=None, description="or: a codec checkpoint naming that id")
    real_filter: str = Field(default=segments_filter(split="train"), description=(
        "Lance SQL over `segments` choosing real rows; default: the train split outside the held-out corpora "
        "(the real-recordings evaluation set, as for codec and factorizer training)"))
    synthetic_filter: str = Field(default="passed", description="Lance SQL over `synthetic` choosing synthetic rows")
    synthetic_per_real: float = Field(default=0.0, ge=0, description=(
        "synthetic rows per real row in an epoch (0: seed only); drawn without replacement, or every pool row "
        "k or k+1 times when the pool is smaller than round(ratio x n_real)"))
    lineage_splits: list[str] | None = Field(default_factory=lambda: ["train"], description=(
        "a synthetic row is used only if its content segment and every donor segment have one of these splits "
        "(no held-out audio leaks in through recombination); None: no check"))
    lineage_filter: str | None = Field(default=None, description=(
        "Lance SQL over `segments`: a synthetic row is used only if its content segment and every donor segment "
        "match it (e.g. the real_filter of a seed experiment, so no synthetic row carries audio from outside the "
        "seed); None: no such check (lineage_splits still applies)"))
    factorizer_id: str | None = Field(default=None, description=(
        "join this factorizer's vectors (from `factors`) to every item; None: codes and labels only"))
    max_frames: int = Field(default=200, ge=1, description="frames per item; longer rows are cropped")
    crop: Literal["random", "start"] = Field(default="random", description=(
        "where a longer row is cropped: a random start drawn per epoch, or always the first frames"))
    batch_size: int = Field(default=32, ge=1, description="items per batch handed to the trainer")
    seed: int = Field(default=0, ge=0)
    epochs: int = Field(default=1, ge=1)
    rows_per_block: int = Field(default=2048, ge=1, description=(
        "plan rows per Ray Data block: one Lance take per source table per block"))
    read_cpus: float = Field(default=0.5, gt=0, description="Ray CPUs per block-reading task")

    @model_validator(mode="after")
    def _one_codec(self) -> "TrainInputConfig":
        if (self.codec_id is None) == (self.codec_checkpoint is None):
            raise ValueError("give exactly one of codec_id or codec_checkpoint")
        if self.lineage_splits is not None and not self.lineage_splits:
            raise ValueError("lineage_splits: give at least one split, or null for no check")
        return self


def parse_train_input_config(data: dict[str, Any]) -> TrainInputConfig:
    """Validate a config mapping; the first problem becomes a one-line :class:`TrainInputError` naming the key."""
    try:
        return TrainInputConfig.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err["loc"]) or "(top level)"
        msg = "unknown key (not allowed)" if err["type"] == "extra_forbidden" else err["msg"]
        more = f" (and {len(exc.errors()) - 1} more)" if len(exc.errors()) > 1 else ""
        raise TrainInputError(f"train input config: {loc}: {msg}{more}".replace("\n", " ")) from None


#: One epoch's plan: a row per item, in the order the trainer sees them.
TRAIN_PLAN_SCHEMA = pa.schema(
    [
        pa.field("epoch", pa.int32(), nullable=False),
        pa.field("position", pa.int64(), nullable=False),      # 0-based place in the epoch
        pa.field("item", pa.int64(), nullable=False),          # TrainIndex row: real first, then synthetic
        pa.field("origin", pa.int8(), nullable=False),         # index into ORIGINS
        pa.field("row_offset", pa.int64(), nullable=False),    # in latents (real) or synthetic, pinned version
        pa.field("offset", pa.int32(), nullable=False),        # first frame of the window
        pa.field("length", pa.int32(), nullable=False),        # frames in the window (<= max_frames)
        pa.field("num_frames", pa.int32(), nullable=False),    # frames of the whole row (> length: cropped)
        pa.field("split", pa.int8(), nullable=False),          # index into SPLITS
        *(pa.field(name, pa.int32(), nullable=False) for name in LABELS),
        *(pa.field(col, pa.int64(), nullable=False) for col in FACTOR_ROW_COLUMNS.values()),  # -1: none
    ]
)
