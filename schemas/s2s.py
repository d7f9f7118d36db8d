"""Config of the speech-to-speech model (issue #5 item 3): codec FSQ codes in -> codec FSQ codes out.

The model reads the codes ``[B, Ts, stages]`` of one codec and emits codes of the same codec for a target
of ``Tt`` frames (same frame rate, not the same length: voices speak at different rates). Its default task
is voice/environment normalization (any speaker, room or channel -> the same words in one clean target
voice); with ``speaker_dim > 0`` it can also be steered to any voice by a speaker vector of the ``factors``
table (:data:`schemas.factors.FACTOR_DIMS`). Only ``models.s2s.builders`` turns this config into a module;
the model takes typed keyword arguments. Unknown keys are errors. This module stays importable without torch.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

from schemas.factors import FACTOR_DIMS

__all__ = ["S2SModelConfig"]


class S2SModelConfig(BaseModel):
    """Everything that fixes an S2S model's weights' shape and meaning; its hash (with the codec id) is the
    model's architecture id.

    ``speaker_dim`` is 0 (normalization only: one learned target voice) or the ``factors`` table's speaker
    vector size (a vector steers the output voice; without one, the learned target voice is used).
    """

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}$")
    num_stages: int = Field(default=2, ge=1, description="FSQ stages of the codec (codes per frame)")
    codebook_size: int = Field(default=1000, ge=2, description="codes per stage (prod of the codec's FSQ levels)")
    hidden_dim: int = Field(default=96, ge=1)
    encoder_layers: int = Field(default=4, ge=0, description="residual depthwise-separable conv blocks on the source")
    transformer_layers: int = Field(default=0, ge=0, le=4,
                                    description="bidirectional self-attention layers after the encoder convs")
    num_heads: int = Field(default=4, ge=1)
    ffn_dim: int = Field(default=192, ge=1)
    decoder_layers: int = Field(default=4, ge=1, description="residual conv blocks on the resampled target frames")
    kernel_size: int = Field(default=5, ge=1, description="odd; of the depthwise convs")
    dilation_cycle: int = Field(default=3, ge=1, description="conv block j is dilated 2 ** (j % dilation_cycle)")
    speaker_dim: int = Field(default=FACTOR_DIMS["speaker"], ge=0,
                             description="size of a target speaker vector (0: fixed target voice only)")
    dropout: float = Field(default=0.0, ge=0, lt=1)

    @model_validator(mode="after")
    def _check(self) -> "S2SModelConfig":
        if self.kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd (centred padding), got {self.kernel_size}")
        if self.transformer_layers and self.hidden_dim % self.num_heads:
            raise ValueError(f"hidden_dim {self.hidden_dim} is not divisible by num_heads {self.num_heads}")
        if self.speaker_dim not in (0, FACTOR_DIMS["speaker"]):
            raise ValueError(f"speaker_dim must be 0 or the factors table's {FACTOR_DIMS['speaker']}, "
                             f"got {self.speaker_dim}")
        return self
