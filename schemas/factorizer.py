"""Config of the factorizer (model hyperparameters, loss weights) and the names of its factors.

The factorizer reads codec latents ``[B, D, T]`` and splits them into four
global vectors (speaker, style, environment, channel) and a quantized
frame-level content stream; its decoder puts any combination back together.
Only ``models.factorizer.builders`` turns these configs into modules; the
model code takes typed keyword arguments. Unknown keys are errors
(``extra="forbid"``). This module stays importable without torch.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = ["FACTOR_NAMES", "CLASS_COUNT_FIELDS", "UNKNOWN_LABEL", "MAX_CONTENT_CODEBOOK_SIZE",
           "FactorizerModelConfig", "FactorizerLossConfig"]

#: The global factors, in the order their vectors are concatenated (decoder conditioning, checkpoints, tables).
FACTOR_NAMES: tuple[str, ...] = ("speaker", "style", "environment", "channel")

#: Factor name -> the ``FactorizerModelConfig`` field holding its classifier's class count.
CLASS_COUNT_FIELDS: dict[str, str] = {"speaker": "num_speakers", "style": "num_styles",
                                      "environment": "num_environments", "channel": "num_channels"}

#: Class index of a row whose label for a head is unknown (what ``torch.nn.functional.cross_entropy`` ignores).
UNKNOWN_LABEL = -100

#: Content codes are stored like codec codes (uint16): one frame's index must fit.
MAX_CONTENT_CODEBOOK_SIZE = 1 << 16


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FactorizerModelConfig(_Strict):
    """Everything that fixes a factorizer's weights' shape and meaning; its hash (with the codec id) is the
    factorizer id.

    Class counts (``num_speakers`` ...) size the classifier heads (0 = no head). Presets carry placeholders;
    the training job sets them from the data's label vocabularies with :meth:`with_label_vocab`.
    """

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}$")
    latent_dim: int = Field(default=4, ge=1, description="channels of the codec latent (len of the codec's FSQ levels)")
    latent_bound: float = Field(default=1.25, gt=0, description=(
        "decoder output is tanh(.) x latent_bound; the 2-stage [8,5,5,5] codec grid spans [-1.2, 1.2]"))
    hidden_dim: int = Field(default=96, ge=1, description="channels of every conv stack")
    num_layers: int = Field(default=4, ge=1, description="residual blocks per stack (global, content, decoder)")
    kernel_size: int = Field(default=5, ge=1, description="odd; block j of a stack is dilated 2**j")
    content_dim: int = Field(default=4, ge=1, description="channels of the content stream (the bottleneck)")
    content_levels: list[int] = Field(default_factory=lambda: [5, 5, 5, 5], description=(
        "FSQ levels of each content channel; len == content_dim"))
    speaker_dim: int = Field(default=64, ge=1)
    style_dim: int = Field(default=16, ge=1)
    environment_dim: int = Field(default=16, ge=1)
    channel_dim: int = Field(default=16, ge=1)
    num_speakers: int = Field(default=0, ge=0, description="speaker classes (0: no speaker head, no adversary)")
    num_styles: int = Field(default=0, ge=0)
    num_environments: int = Field(default=0, ge=0)
    num_channels: int = Field(default=0, ge=0)
    dropout: float = Field(default=0.0, ge=0, lt=1)

    @model_validator(mode="after")
    def _check(self) -> "FactorizerModelConfig":
        if len(self.content_levels) != self.content_dim:
            raise ValueError(f"content_levels has {len(self.content_levels)} entries, content_dim is "
                             f"{self.content_dim}: give one level per content channel")
        if any(level < 2 for level in self.content_levels):
            raise ValueError(f"every content level must be >= 2, got {self.content_levels}")
        if math.prod(self.content_levels) > MAX_CONTENT_CODEBOOK_SIZE:
            raise ValueError(f"prod(content_levels) = {math.prod(self.content_levels)} does not fit uint16 codes")
        if self.kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd (centred padding), got {self.kernel_size}")
        return self

    @property
    def factor_dims(self) -> dict[str, int]:
        """Factor name -> vector size, in ``FACTOR_NAMES`` order."""
        return {name: getattr(self, f"{name}_dim") for name in FACTOR_NAMES}

    @property
    def num_classes(self) -> dict[str, int]:
        """Factor name -> classifier classes (0 = no head), in ``FACTOR_NAMES`` order."""
        return {name: getattr(self, CLASS_COUNT_FIELDS[name]) for name in FACTOR_NAMES}

    def with_label_vocab(self, label_vocab: Mapping[str, Sequence[str]]) -> "FactorizerModelConfig":
        """A validated copy whose class counts are the vocabularies' sizes (a factor without one gets no head).

        Why not ``model_copy(update=...)``: that skips validation.

        Example:
            >>> cfg = FactorizerModelConfig(name="f").with_label_vocab({"speaker": ["a", "b", "c"]})
            >>> cfg.num_classes
            {'speaker': 3, 'style': 0, 'environment': 0, 'channel': 0}
        """
        unknown = sorted(set(label_vocab) - set(FACTOR_NAMES))
        if unknown:
            raise ValueError(f"label vocab for unknown factor(s) {unknown}; factors are {list(FACTOR_NAMES)}")
        update = {field: len(label_vocab.get(name, ())) for name, field in CLASS_COUNT_FIELDS.items()}
        return FactorizerModelConfig.model_validate({**self.model_dump(), **update})


class FactorizerLossConfig(_Strict):
    """Weights of the factorizer's loss terms (0 switches a term off; the swap cycle then is not computed).

    Reconstruction terms are means over valid frames of latents in about [-1.2, 1.2]; the classification
    and adversary terms are cross entropies (~log(classes) at start), hence their smaller weights.
    """

    recon_l1_weight: float = Field(default=1.0, ge=0)
    recon_mse_weight: float = Field(default=1.0, ge=0)
    speaker_weight: float = Field(default=0.1, ge=0, description="speaker classifier CE on labelled rows")
    style_weight: float = Field(default=0.1, ge=0)
    environment_weight: float = Field(default=0.1, ge=0)
    channel_weight: float = Field(default=0.1, ge=0)
    adversary_weight: float = Field(default=0.05, ge=0, description=(
        "speaker CE of the content adversary; its gradient reaches the content encoder reversed"))
    swap_global_weight: float = Field(default=0.1, ge=0, description=(
        "1 - cosine between the global vectors decoded into a swapped latent and those re-encoded from it"))
    swap_content_weight: float = Field(default=0.1, ge=0, description=(
        "MSE between the content decoded into a swapped latent and the content re-encoded from it"))
    parallel_l1_weight: float = Field(default=0.0, ge=0, description=(
        "L1 between A's content decoded with B's speaker and B's latent warped onto A's frames, on rows with a "
        "parallel partner (training.parallel_pairs)"))
    parallel_mse_weight: float = Field(default=0.0, ge=0, description="MSE of the same parallel swap target")
