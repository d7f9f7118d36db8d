"""Config of the CTC phoneme recognizer on codec codes (issue #5's downstream probe).

The recognizer reads FSQ codes ``[B, T, stages]`` of one codec and emits
per-frame logits over a phoneme inventory plus the CTC blank. Only
``models.ctc.builders`` turns this config into a module; the model takes typed
keyword arguments. Unknown keys are errors. This module stays importable
without torch.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = ["CtcModelConfig"]


class CtcModelConfig(BaseModel):
    """Everything that fixes a recognizer's weights' shape and meaning; its hash (with the codec id and the
    phoneme inventory) is the recognizer's architecture id.

    ``num_classes`` (inventory symbols + blank + unknown) is a placeholder in presets; set it from the
    training inventory with :meth:`with_num_classes`.
    """

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}$")
    num_stages: int = Field(default=2, ge=1, description="FSQ stages of the codec (codes per frame)")
    codebook_size: int = Field(default=1000, ge=2, description="codes per stage (prod of the codec's FSQ levels)")
    num_classes: int = Field(default=64, ge=2, description="output classes incl. blank (id 0)")
    hidden_dim: int = Field(default=128, ge=1)
    conv_layers: int = Field(default=3, ge=0, description="residual depthwise-separable conv blocks")
    kernel_size: int = Field(default=5, ge=1, description="odd; of the depthwise convs")
    dilation_cycle: int = Field(default=1, ge=1, description="conv block j is dilated 2 ** (j % dilation_cycle)")
    transformer_layers: int = Field(default=1, ge=0, description="bidirectional self-attention layers after the convs")
    num_heads: int = Field(default=4, ge=1)
    ffn_dim: int = Field(default=256, ge=1)
    dropout: float = Field(default=0.1, ge=0, lt=1)

    @model_validator(mode="after")
    def _check(self) -> "CtcModelConfig":
        if self.kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd (centred padding), got {self.kernel_size}")
        if self.transformer_layers and self.hidden_dim % self.num_heads:
            raise ValueError(f"hidden_dim {self.hidden_dim} is not divisible by num_heads {self.num_heads}")
        return self

    def with_num_classes(self, num_classes: int) -> "CtcModelConfig":
        """A copy sized for an inventory of ``num_classes`` classes (``PhonemeInventory.num_classes``)."""
        return CtcModelConfig.model_validate({**self.model_dump(), "num_classes": int(num_classes)})
