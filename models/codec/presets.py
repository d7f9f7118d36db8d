"""Named codec presets: zero-argument functions returning the model config (all <= 1.2 kbps at 16 kHz).

Why presets return configs, not modules: the config is what a checkpoint
stores and what the codec id hashes, so a preset stays reproducible by name;
``build_codec(preset_fn())`` (or ``build_codec("name")``) makes the module.

Sizes are set for 2 CPU cores: a narrow encoder (>= 100x real time per core,
so encoding never bottlenecks curation) and a wider decoder, where quality
is made.
"""

from __future__ import annotations

from collections.abc import Callable

from schemas.codec import CodecModelConfig, FSQConfig, SEANetConfig, SpectralConfig, SpectralSideConfig

__all__ = ["codec_50hz_2x8555", "codec_50hz_2x8555_stft", "codec_50hz_2x8555_harmonic", "codec_25hz_4x8555", "codec_50hz_1x8555", "codec_tiny_test",
           "codec_tiny_stft_test", "PRESETS", "preset"]

_LEVELS = [8, 5, 5, 5]  # 1000 codes per stage, ~9.97 bits; the FSQ paper's recommended 2^10 set


def _encoder() -> SEANetConfig:
    return SEANetConfig(channels=8, max_channels=256, dimension=64, residual_layers=1)


def _decoder() -> SEANetConfig:
    return SEANetConfig(channels=32, max_channels=256, dimension=64, residual_layers=1)


def codec_50hz_2x8555() -> CodecModelConfig:
    """50 Hz x 2 stages x levels [8,5,5,5]: ~997 bps."""
    return CodecModelConfig(name="codec_50hz_2x8555", strides=[4, 4, 4, 5], encoder=_encoder(), decoder=_decoder(),
                            fsq=FSQConfig(levels=_LEVELS, stages=2))


def codec_50hz_2x8555_stft() -> CodecModelConfig:
    """50 Hz x 2 stages x levels [8,5,5,5] (~997 bps) with the STFT encoder and inverse-STFT decoder.

    Same bit rate and frames as ``codec_50hz_2x8555``; every layer runs at the
    100 Hz STFT frame rate (4.4 M parameters: encoder 4 ConvNeXt blocks x 128,
    decoder 8 x 256), so a training step costs ~0.75x the SEANet one on a core. The encoder reads bins up to
    7 kHz above a 1e-2 floor, so a resample round trip or 16-bit requantization leaves its codes alone
    (``SpectralConfig.encoder_max_hz``; the decoder still makes the whole band).
    """
    return CodecModelConfig(name="codec_50hz_2x8555_stft", strides=[4, 4, 4, 5], fsq=FSQConfig(levels=_LEVELS, stages=2),
                            spectral=SpectralConfig(n_fft=640, frames_per_latent=2, dimension=64,
                                                    encoder=SpectralSideConfig(dim=128, intermediate=384, layers=4),
                                                    decoder=SpectralSideConfig(dim=256, intermediate=768, layers=8),
                                                    encoder_max_hz=7000.0, encoder_log_floor=1e-2))


def codec_50hz_2x8555_harmonic() -> CodecModelConfig:
    """``codec_50hz_2x8555_stft`` with the harmonic-plus-noise head (80 sines at k x f0 + noise): train with
    ``loss.f0_weight`` > 0. Not yet trained here (see ``models/codec/harmonic.py`` for why it exists)."""
    stft = codec_50hz_2x8555_stft()
    spectral = stft.spectral.model_copy(update={"decoder_head": "harmonic", "harmonics": 80})
    return stft.model_copy(update={"name": "codec_50hz_2x8555_harmonic", "spectral": spectral})


def codec_25hz_4x8555() -> CodecModelConfig:
    """25 Hz x 4 stages x levels [8,5,5,5]: ~997 bps, half the frames (cheaper for downstream sequence models)."""
    return CodecModelConfig(name="codec_25hz_4x8555", strides=[4, 4, 5, 8], encoder=_encoder(), decoder=_decoder(),
                            fsq=FSQConfig(levels=_LEVELS, stages=4))


def codec_50hz_1x8555() -> CodecModelConfig:
    """50 Hz x 1 stage x levels [8,5,5,5]: ~498 bps."""
    return CodecModelConfig(name="codec_50hz_1x8555", strides=[4, 4, 4, 5], encoder=_encoder(), decoder=_decoder(),
                            fsq=FSQConfig(levels=_LEVELS, stages=1))


def codec_tiny_test() -> CodecModelConfig:
    """A few thousand parameters at 50 Hz x 2 stages: for tests and smoke runs, not for audio."""
    tiny = SEANetConfig(channels=2, max_channels=16, dimension=8, residual_layers=1)
    return CodecModelConfig(name="codec_tiny_test", strides=[2, 4, 5, 8], encoder=tiny, decoder=tiny,
                            fsq=FSQConfig(levels=_LEVELS, stages=2))


def codec_tiny_stft_test() -> CodecModelConfig:
    """The spectral architecture at a few thousand parameters: for tests, not for audio."""
    side = SpectralSideConfig(dim=8, intermediate=16, layers=1, kernel_size=3)
    return CodecModelConfig(name="codec_tiny_stft_test", strides=[2, 4, 5, 8], fsq=FSQConfig(levels=_LEVELS, stages=2),
                            spectral=SpectralConfig(n_fft=160, frames_per_latent=2, dimension=8, encoder=side,
                                                    decoder=side))


#: name -> preset function.
PRESETS: dict[str, Callable[[], CodecModelConfig]] = {
    fn.__name__: fn for fn in (codec_50hz_2x8555, codec_50hz_2x8555_stft, codec_50hz_2x8555_harmonic,
                               codec_25hz_4x8555, codec_50hz_1x8555,
                               codec_tiny_test, codec_tiny_stft_test)
}


def preset(name: str) -> CodecModelConfig:
    """The config of preset ``name``; an unknown name is a KeyError listing the known ones."""
    try:
        return PRESETS[name]()
    except KeyError:
        raise KeyError(f"unknown codec preset {name!r}; known: {', '.join(sorted(PRESETS))}") from None
