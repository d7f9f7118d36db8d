"""Named factorizer presets: zero-argument functions returning the model config.

Why configs, not modules: the config is what a checkpoint stores and what the
factorizer id hashes (with the codec id), so a preset stays reproducible by
name; ``build_factorizer(preset_fn())`` makes the module.

Class counts here are placeholders that give every head a shape; the training
job replaces them with the sizes of the data's label vocabularies
(``config.with_label_vocab(vocab)``).
"""

from __future__ import annotations

from collections.abc import Callable

from schemas.factorizer import FactorizerModelConfig

__all__ = ["factorizer_default", "factorizer_tiny_test", "PRESETS", "preset"]


def factorizer_default() -> FactorizerModelConfig:
    """For the 4-d, 50 Hz codec latents (``codec_50hz_2x8555``): ~0.8 M parameters, 96 channels, 4 blocks per
    stack (1.2 s receptive field), content 4 x 5 levels (625 codes per frame, <= 464 bps at 50 Hz)."""
    return FactorizerModelConfig(
        name="factorizer_default", latent_dim=4, latent_bound=1.25, hidden_dim=96, num_layers=4, kernel_size=5,
        content_dim=4, content_levels=[5, 5, 5, 5], speaker_dim=64, style_dim=16, environment_dim=16,
        channel_dim=16, num_speakers=16, num_styles=4, num_environments=4, num_channels=4, dropout=0.0)


def factorizer_tiny_test() -> FactorizerModelConfig:
    """~10 k parameters: for tests and smoke runs, not for real factors."""
    return FactorizerModelConfig(
        name="factorizer_tiny_test", latent_dim=4, latent_bound=1.25, hidden_dim=16, num_layers=2, kernel_size=3,
        content_dim=2, content_levels=[5, 5], speaker_dim=8, style_dim=4, environment_dim=4, channel_dim=4,
        num_speakers=3, num_styles=2, num_environments=2, num_channels=2, dropout=0.0)


#: name -> preset function.
PRESETS: dict[str, Callable[[], FactorizerModelConfig]] = {
    fn.__name__: fn for fn in (factorizer_default, factorizer_tiny_test)
}


def preset(name: str) -> FactorizerModelConfig:
    """The config of preset ``name``; an unknown name is a KeyError listing the known ones."""
    try:
        return PRESETS[name]()
    except KeyError:
        raise KeyError(f"unknown factorizer preset {name!r}; known: {', '.join(sorted(PRESETS))}") from None
