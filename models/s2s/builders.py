"""Config -> modules. The only place that reads ``schemas.s2s`` configs; everything else takes keyword args."""

from __future__ import annotations

from collections.abc import Sequence

from models.s2s.losses import S2SLoss
from models.s2s.model import SpeechToSpeech
from schemas.s2s import S2SModelConfig

__all__ = ["build_s2s", "build_s2s_loss", "resolve_s2s_config"]


def resolve_s2s_config(config: S2SModelConfig | str) -> S2SModelConfig:
    """The model config named by a preset name or given in full (an unknown name is a KeyError)."""
    from models.s2s.presets import preset

    if isinstance(config, str):
        return preset(config)
    if isinstance(config, S2SModelConfig):
        return config
    raise TypeError(f"expected S2SModelConfig or a preset name, got {type(config).__name__}")


def build_s2s(config: S2SModelConfig | str) -> SpeechToSpeech:
    """A freshly initialized :class:`SpeechToSpeech` for a model config (or preset name).

    Example:
        >>> build_s2s("s2s_tiny_test").codebook_size
        1000
    """
    return SpeechToSpeech(**resolve_s2s_config(config).model_dump(exclude={"name"}))


def build_s2s_loss(*, label_smoothing: float = 0.0, stage_weights: Sequence[float] | None = None) -> S2SLoss:
    """The S2S objective (per-stage cross entropy over valid target frames)."""
    return S2SLoss(label_smoothing=label_smoothing, stage_weights=stage_weights)
