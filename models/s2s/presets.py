"""Named S2S presets: zero-argument functions returning the model config.

Stages and codebook size fit ``codec_50hz_2x8555`` (50 Hz, 2 FSQ stages x 1000 codes).
"""

from __future__ import annotations

from collections.abc import Callable

from schemas.s2s import S2SModelConfig

__all__ = ["s2s_small", "s2s_tiny_test", "PRESETS", "preset"]


def s2s_small() -> S2SModelConfig:
    """~0.22 M parameters (0.19 M of them the code embedding and the 2 x 1000-way head): 48 channels, 5 + 5
    depthwise-separable conv blocks around the resampling (k=5, dilations 1, 2, 4, 1, 2: 41 frames = 0.82 s
    receptive field per stack at 50 Hz), no attention, no dropout, speaker conditioning (64-dim vectors).

    Sized for the step budget: ~6.5 training steps/s on one CPU thread at batch 16 x 200 source -> 200 target
    frames with speaker vectors (5.2-6.8 over runs on the shared 2-core machine, while ``ctc_small`` measured
    16-21; ``bench/s2s_speed.py``). The output head and its softmax over 2 x 1000 codes per frame are ~75 % of
    a step, so width costs the most: 64 channels gave ~4-6 steps/s here, an attention layer ~-20 %."""
    return S2SModelConfig(name="s2s_small", num_stages=2, codebook_size=1000, hidden_dim=48, encoder_layers=5,
                          transformer_layers=0, num_heads=4, ffn_dim=96, decoder_layers=5, kernel_size=5,
                          dilation_cycle=3, speaker_dim=64, dropout=0.0)


def s2s_tiny_test() -> S2SModelConfig:
    """~16 k parameters plus the 0.13 M embedding and head, one attention layer: for tests and smoke runs."""
    return S2SModelConfig(name="s2s_tiny_test", num_stages=2, codebook_size=1000, hidden_dim=32, encoder_layers=2,
                          transformer_layers=1, num_heads=2, ffn_dim=64, decoder_layers=2, kernel_size=3,
                          dilation_cycle=2, speaker_dim=64, dropout=0.0)


#: name -> preset function.
PRESETS: dict[str, Callable[[], S2SModelConfig]] = {fn.__name__: fn for fn in (s2s_small, s2s_tiny_test)}


def preset(name: str) -> S2SModelConfig:
    """The config of preset ``name``; an unknown name is a KeyError listing the known ones."""
    try:
        return PRESETS[name]()
    except KeyError:
        raise KeyError(f"unknown s2s preset {name!r}; known: {', '.join(sorted(PRESETS))}") from None
