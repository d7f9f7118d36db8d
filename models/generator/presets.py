"""Named generator presets: zero-argument functions returning the model config.

``phoneme_classes`` is a placeholder; the training job sizes it from the phoneme inventory
(``config.with_phoneme_classes(inventory.num_classes)``). Stages and codebook size fit ``codec_50hz_2x8555``
(2 stages x 1000 codes); factor sizes are the ``factors`` table's (``schemas.factors.FACTOR_DIMS``).
"""

from __future__ import annotations

from collections.abc import Callable

from schemas.generator import GeneratorModelConfig

__all__ = ["generator_small", "generator_tiny_test", "PRESETS", "preset"]


def generator_small() -> GeneratorModelConfig:
    """~0.31 M parameters (0.15 M of them the code heads and the stage-code embedding): 48 channels, phoneme
    encoder of 2 conv blocks + 1 self-attention layer, frame decoder of 4 FiLM-conditioned conv blocks (k=5,
    dilations 1, 2, 4, 8: 65 frames = 1.3 s receptive field at 50 Hz), no dropout.

    Sized for the step budget at batch 16 x 200 frames with 60 phonemes on one CPU thread (forward + loss +
    backward + AdamW on random inputs, as ``bench/ctc_speed.py`` does for the recognizer): ~7 steps per CPU
    second (best of 5 rounds of 5 steps), 4.9-5.5 steps/s wall clock while another training job shared this
    2-core machine. More than half of a step is the two 1000-way heads and their softmax: the same trunk with
    10 codes per stage runs ~15 steps per CPU second, so the width of the trunk matters less than it seems
    (runs on the shared machine varied by +-25 %, too much to rank widths 40-64 more finely)."""
    return GeneratorModelConfig(name="generator_small", num_stages=2, codebook_size=1000, phoneme_classes=64,
                                hidden_dim=48, encoder_layers=2, encoder_attention_layers=1, num_heads=2,
                                ffn_dim=96, decoder_layers=4, kernel_size=5, stage_conditioning=True, dropout=0.0)


def generator_tiny_test() -> GeneratorModelConfig:
    """~11 k parameters plus 50 k in the code heads and stage-code embedding: for tests and smoke runs."""
    return GeneratorModelConfig(name="generator_tiny_test", num_stages=2, codebook_size=1000, phoneme_classes=12,
                                hidden_dim=16, encoder_layers=1, encoder_attention_layers=1, num_heads=2, ffn_dim=32,
                                decoder_layers=2, kernel_size=3, stage_conditioning=True, dropout=0.0)


#: name -> preset function.
PRESETS: dict[str, Callable[[], GeneratorModelConfig]] = {fn.__name__: fn for fn in (generator_small,
                                                                                    generator_tiny_test)}


def preset(name: str) -> GeneratorModelConfig:
    """The config of preset ``name``; an unknown name is a KeyError listing the known ones."""
    try:
        return PRESETS[name]()
    except KeyError:
        raise KeyError(f"unknown generator preset {name!r}; known: {', '.join(sorted(PRESETS))}") from None
