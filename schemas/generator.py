"""Config of the steerable latent generator (issue #5 item 2): phonemes + factor vectors -> codec FSQ codes.

The generator reads a phoneme sequence (ids of a ``pipelines.phonemes.PhonemeInventory``: 0 = blank/pad,
1 = unknown) and the four global factor vectors of one factorizer (``schemas.factors.FACTOR_DIMS``) and
emits one code per FSQ stage and frame of one codec. Only ``models.generator.builders`` turns these configs
into modules; the model takes typed keyword arguments. Unknown keys are errors. This module stays importable
without torch.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

from schemas.factors import FACTOR_DIMS

__all__ = ["GeneratorModelConfig", "GeneratorLossConfig"]


class GeneratorModelConfig(BaseModel):
    """Everything that fixes a generator's weights' shape and meaning; its hash (with the codec id, the
    factorizer id and the phoneme inventory) is the generator's architecture id.

    ``phoneme_classes`` (inventory symbols + blank + unknown) is a placeholder in presets; set it from the
    training inventory with :meth:`with_phoneme_classes`. The factor sizes default to the ``factors`` table's
    (:data:`schemas.factors.FACTOR_DIMS`), which every factorizer written there produces.
    """

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}$")
    num_stages: int = Field(default=2, ge=1, description="FSQ stages of the codec (codes per frame)")
    codebook_size: int = Field(default=1000, ge=2, description="codes per stage (prod of the codec's FSQ levels)")
    phoneme_classes: int = Field(default=64, ge=3, description="phoneme ids incl. blank/pad (0) and unknown (1)")
    speaker_dim: int = Field(default=FACTOR_DIMS["speaker"], ge=1)
    style_dim: int = Field(default=FACTOR_DIMS["style"], ge=1)
    environment_dim: int = Field(default=FACTOR_DIMS["environment"], ge=1)
    channel_dim: int = Field(default=FACTOR_DIMS["channel"], ge=1)
    hidden_dim: int = Field(default=96, ge=1)
    encoder_layers: int = Field(default=3, ge=0, description="residual conv blocks over phonemes")
    encoder_attention_layers: int = Field(default=1, ge=0, description="self-attention layers over phonemes")
    num_heads: int = Field(default=2, ge=1)
    ffn_dim: int = Field(default=192, ge=1)
    decoder_layers: int = Field(default=4, ge=1, description="FiLM-conditioned residual conv blocks over frames, "
                                                            "dilated 1, 2, 4, ...")
    kernel_size: int = Field(default=5, ge=1, description="odd; of every conv")
    stage_conditioning: bool = Field(default=True, description="stage s's head also sees the codes of stages < s "
                                                               "(teacher-forced in training, sampled in order)")
    dropout: float = Field(default=0.0, ge=0, lt=1)

    @model_validator(mode="after")
    def _check(self) -> "GeneratorModelConfig":
        if self.kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd (centred padding), got {self.kernel_size}")
        if self.encoder_attention_layers and self.hidden_dim % self.num_heads:
            raise ValueError(f"hidden_dim {self.hidden_dim} is not divisible by num_heads {self.num_heads}")
        return self

    @property
    def factor_dims(self) -> dict[str, int]:
        """Factor name -> vector size, in ``FACTOR_DIMS`` order."""
        return {name: getattr(self, f"{name}_dim") for name in FACTOR_DIMS}

    def with_phoneme_classes(self, phoneme_classes: int) -> "GeneratorModelConfig":
        """A copy sized for an inventory of ``phoneme_classes`` ids (``PhonemeInventory.num_classes``)."""
        return GeneratorModelConfig.model_validate({**self.model_dump(), "phoneme_classes": int(phoneme_classes)})


class GeneratorLossConfig(BaseModel):
    """The generator's objective: masked cross entropy per stage on the target codes."""

    model_config = ConfigDict(extra="forbid")

    label_smoothing: float = Field(default=0.0, ge=0, lt=1)
    stage_weights: list[float] | None = Field(default=None, description="one weight >= 0 per stage (None: all 1); "
                                                                         "total = weighted mean of stage CEs")

    @model_validator(mode="after")
    def _check(self) -> "GeneratorLossConfig":
        if self.stage_weights is not None and (any(w < 0 for w in self.stage_weights) or sum(self.stage_weights) <= 0):
            raise ValueError(f"stage_weights must be >= 0 with a positive sum, got {self.stage_weights}")
        return self
