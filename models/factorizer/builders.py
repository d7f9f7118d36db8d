"""Config -> modules. The only place that reads ``schemas.factorizer`` configs; everything else takes keyword args."""

from __future__ import annotations

from schemas.factorizer import FactorizerLossConfig, FactorizerModelConfig

from models.factorizer.losses import FactorizerLoss
from models.factorizer.model import Factorizer

__all__ = ["build_factorizer", "build_factorizer_loss", "resolve_model_config"]


def resolve_model_config(config: FactorizerModelConfig | str) -> FactorizerModelConfig:
    """The model config named by a preset name or given in full.

    Raises:
        KeyError: an unknown preset name (the message lists the known ones).
    """
    from models.factorizer.presets import preset

    if isinstance(config, str):
        return preset(config)
    if isinstance(config, FactorizerModelConfig):
        return config
    raise TypeError(f"expected FactorizerModelConfig or a preset name, got {type(config).__name__}")


def build_factorizer(config: FactorizerModelConfig | str) -> Factorizer:
    """A freshly initialized :class:`Factorizer` for a model config (or preset name).

    Example:
        >>> f = build_factorizer("factorizer_tiny_test")
        >>> f.content_dim, f.latent_dim
        (2, 4)
    """
    cfg = resolve_model_config(config)
    return Factorizer(**cfg.model_dump(exclude={"name", "content_dim"}))


def build_factorizer_loss(config: FactorizerLossConfig | None = None) -> FactorizerLoss:
    """The factorizer objective for a loss config (defaults when None)."""
    return FactorizerLoss(**(config or FactorizerLossConfig()).model_dump())
