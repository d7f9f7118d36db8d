"""Config of ``jobs/train_factorizer.py``: which codec's latents, which model, for how long, where checkpoints go.

The factorizer trains on the ``latents`` rows of exactly one codec (named by
its checkpoint, whose codec id selects the rows and is stored in the
factorizer checkpoint), so recombination can refuse a factorizer that was
trained on another codec's latents.
"""

from __future__ import annotations

from pydantic import Field, model_validator

from schemas.codec import DEFAULT_HOLDOUT_CORPORA, CodecExecutionConfig, _Strict
from schemas.factorizer import FactorizerLossConfig, FactorizerModelConfig
from schemas.storage import StorageConfig

__all__ = ["FactorizerTrainingConfig", "FactorizerExecutionConfig", "TrainFactorizerConfig"]


class FactorizerTrainingConfig(_Strict):
    """Budget and optimizer; training stops at whichever of max_steps / max_minutes comes first."""

    max_steps: int = Field(default=6000, ge=1)
    max_minutes: float | None = Field(default=None, gt=0, description="training-time budget; None: steps only")
    batch_size: int = Field(default=32, ge=1, description="windows per step (global, split across workers)")
    max_frames: int = Field(default=200, ge=8, description="frames per window (4 s at 50 Hz); longer rows are cropped")
    learning_rate: float = Field(default=1e-3, gt=0)
    betas: tuple[float, float] = (0.9, 0.99)
    weight_decay: float = Field(default=1e-4, ge=0)
    grad_clip_norm: float | None = Field(default=1.0, gt=0)
    lr_warmup_steps: int = Field(default=200, ge=0)
    checkpoint_every_steps: int = Field(default=500, ge=1)
    valid_every_steps: int = Field(default=500, ge=1)
    log_every_steps: int = Field(default=50, ge=1)
    seed: int = 0
    keep_checkpoints: int = Field(default=3, ge=1, description="step checkpoints kept besides latest.pt")
    valid_rows: int = Field(default=256, ge=1, description="valid-split rows scored at each validation")
    min_label_count: int = Field(default=5, ge=1, description=(
        "a label seen fewer times in the training split is treated as unknown (no class of its own)"))
    parallel_pairs: int = Field(default=0, ge=0, description=(
        "direct swap targets: up to this many training pairs of two voices speaking one sentence, DTW-aligned "
        "once at start-up (pipelines.factorizer_pairs); 0: none. Weighted by loss.parallel_*_weight"))
    pairs_per_batch: int = Field(default=0, ge=0, description=(
        "windows of each step that are the A side of a parallel pair (of batch_size; 0 with parallel_pairs 0)"))

    @model_validator(mode="after")
    def _pairs_fit(self) -> "FactorizerTrainingConfig":
        if self.pairs_per_batch > self.batch_size:
            raise ValueError(f"pairs_per_batch {self.pairs_per_batch} exceeds batch_size {self.batch_size}")
        if (self.parallel_pairs > 0) != (self.pairs_per_batch > 0):
            raise ValueError("give parallel_pairs and pairs_per_batch together (both > 0 to use parallel swap "
                             "targets, both 0 not to)")
        return self


class FactorizerExecutionConfig(CodecExecutionConfig):
    """As the codec's; windows are tiny (codes, not audio), so blocks hold more of them."""

    crops_per_block: int = Field(default=2048, ge=1, description="windows per Ray Data block")


class TrainFactorizerConfig(_Strict):
    """The whole factorizer training job."""

    lake_root: str = "data/lake"
    codec_checkpoint: str = Field(default="checkpoints/codec_50hz_2x8555.pt", description=(
        "the codec whose latents to train on (its codec id selects the latents rows)"))
    output_dir: str = Field(default="data/checkpoints/factorizer", description=(
        "checkpoints/, metrics.jsonl and loss_curve.png go here (a path or s3:// URI); a re-run resumes from it"))
    train_split: str = "train"
    valid_split: str = "valid"
    holdout_corpora: list[str] = Field(default_factory=lambda: list(DEFAULT_HOLDOUT_CORPORA), description=(
        "corpora never read for training or validation (the real-recordings evaluation set)"))
    storage: StorageConfig = Field(default_factory=StorageConfig)
    preset: str | None = Field(default=None, description="a name from models.factorizer.presets.PRESETS")
    model: FactorizerModelConfig | None = None
    loss: FactorizerLossConfig = Field(default_factory=FactorizerLossConfig)
    training: FactorizerTrainingConfig = Field(default_factory=FactorizerTrainingConfig)
    execution: FactorizerExecutionConfig = Field(default_factory=FactorizerExecutionConfig)

    @model_validator(mode="after")
    def _one_model(self) -> "TrainFactorizerConfig":
        if (self.preset is None) == (self.model is None):
            raise ValueError("give exactly one of `preset` (a preset name) or `model` (a full model config)")
        weighted = self.loss.parallel_l1_weight > 0 or self.loss.parallel_mse_weight > 0
        if weighted != (self.training.parallel_pairs > 0):
            raise ValueError("loss.parallel_l1_weight / parallel_mse_weight and training.parallel_pairs go "
                             "together: weight the parallel term and give pairs, or neither")
        return self
