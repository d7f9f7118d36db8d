"""Named recognizer presets: zero-argument functions returning the model config.

``num_classes`` is a placeholder; the training job sizes it from the phoneme inventory
(``config.with_num_classes(inventory.num_classes)``). Stages and codebook size fit ``codec_50hz_2x8555``.
"""

from __future__ import annotations

from collections.abc import Callable

from schemas.ctc import CtcModelConfig

__all__ = ["ctc_small", "ctc_tiny_test", "PRESETS", "preset"]


def ctc_small() -> CtcModelConfig:
    """~0.16 M parameters (0.13 M of them the code embedding): 64 channels, 5 depthwise-separable conv blocks
    (k=5, dilations 1, 2, 4, 1, 2: 41 frames = 0.82 s receptive field at 50 Hz), no attention, no dropout.

    Sized for the step budget: > 20 training steps/s on one CPU thread at batch 16 x 200 frames with 60-phoneme
    targets (``bench/ctc_speed.py``); ~40 % of a step is ``F.ctc_loss`` itself. Attention layers or dropout
    each cost ~25 % of the budget here (dropout's RNG is slow on CPU)."""
    return CtcModelConfig(name="ctc_small", num_stages=2, codebook_size=1000, num_classes=64, hidden_dim=64,
                          conv_layers=5, kernel_size=5, dilation_cycle=3, transformer_layers=0, num_heads=4,
                          ffn_dim=128, dropout=0.0)


def ctc_tiny_test() -> CtcModelConfig:
    """A few thousand parameters plus the embedding: for tests and smoke runs."""
    return CtcModelConfig(name="ctc_tiny_test", num_stages=2, codebook_size=1000, num_classes=12, hidden_dim=32,
                          conv_layers=2, kernel_size=3, transformer_layers=1, num_heads=2, ffn_dim=64, dropout=0.0)


#: name -> preset function.
PRESETS: dict[str, Callable[[], CtcModelConfig]] = {fn.__name__: fn for fn in (ctc_small, ctc_tiny_test)}


def preset(name: str) -> CtcModelConfig:
    """The config of preset ``name``; an unknown name is a KeyError listing the known ones."""
    try:
        return PRESETS[name]()
    except KeyError:
        raise KeyError(f"unknown ctc preset {name!r}; known: {', '.join(sorted(PRESETS))}") from None
