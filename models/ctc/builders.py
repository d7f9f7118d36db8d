"""Config -> modules. The only place that reads ``schemas.ctc`` configs; everything else takes keyword args."""

from __future__ import annotations

from models.ctc.losses import CtcLoss
from models.ctc.model import CtcRecognizer
from schemas.ctc import CtcModelConfig

__all__ = ["build_ctc", "build_ctc_loss", "resolve_ctc_config"]


def resolve_ctc_config(config: CtcModelConfig | str) -> CtcModelConfig:
    """The model config named by a preset name or given in full (an unknown name is a KeyError)."""
    from models.ctc.presets import preset

    if isinstance(config, str):
        return preset(config)
    if isinstance(config, CtcModelConfig):
        return config
    raise TypeError(f"expected CtcModelConfig or a preset name, got {type(config).__name__}")


def build_ctc(config: CtcModelConfig | str) -> CtcRecognizer:
    """A freshly initialized :class:`CtcRecognizer` for a model config (or preset name).

    Example:
        >>> build_ctc("ctc_tiny_test").num_classes
        12
    """
    return CtcRecognizer(**resolve_ctc_config(config).model_dump(exclude={"name"}))


def build_ctc_loss() -> CtcLoss:
    """The recognizer's objective (CTC, blank 0)."""
    return CtcLoss()
