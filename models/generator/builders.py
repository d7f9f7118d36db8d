"""Config -> modules. The only place that reads ``schemas.generator`` configs; everything else takes keyword args."""

from __future__ import annotations

from models.generator.losses import GeneratorLoss
from models.generator.model import LatentGenerator
from schemas.generator import GeneratorLossConfig, GeneratorModelConfig

__all__ = ["build_generator", "build_generator_loss", "resolve_generator_config"]


def resolve_generator_config(config: GeneratorModelConfig | str) -> GeneratorModelConfig:
    """The model config named by a preset name or given in full (an unknown name is a KeyError)."""
    from models.generator.presets import preset

    if isinstance(config, str):
        return preset(config)
    if isinstance(config, GeneratorModelConfig):
        return config
    raise TypeError(f"expected GeneratorModelConfig or a preset name, got {type(config).__name__}")


def build_generator(config: GeneratorModelConfig | str) -> LatentGenerator:
    """A freshly initialized :class:`LatentGenerator` for a model config (or preset name).

    Example:
        >>> build_generator("generator_tiny_test").codebook_size
        1000
    """
    return LatentGenerator(**resolve_generator_config(config).model_dump(exclude={"name"}))


def build_generator_loss(config: GeneratorLossConfig | None = None) -> GeneratorLoss:
    """The generator's objective (per-stage code cross entropy); default: no smoothing, equal stage weights."""
    return GeneratorLoss(**(config or GeneratorLossConfig()).model_dump())
