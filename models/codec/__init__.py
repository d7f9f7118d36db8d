"""The speech codec: a SEANet or STFT encoder/decoder around residual Finite Scalar Quantization.

Build from a preset, train with :class:`CodecLoss` in a plain torch loop, save and
load with the codec id that keys the ``latents`` table::

    codec = build_codec(codec_50hz_2x8555())
    out = codec(wav)                       # CodecOutput(recon, codes, latent, unquantized)
    losses = build_codec_loss()(out.recon, wav)   # CodecLosses(total, ...)
    enc = codec.encode(wav)                # CodecEncoding(codes uint16 [B, frames, stages], frame_rate_hz, ...)
    wav_hat = codec.decode(enc.codes, enc.num_samples)
"""

from __future__ import annotations

from models.codec.builders import build_codec, build_codec_critics, build_codec_loss, resolve_model_config
from models.codec.checkpoint import (
    CheckpointError,
    CheckpointMeta,
    architecture_id,
    codec_id_for,
    export_checkpoint,
    load_checkpoint,
    save_checkpoint,
    weights_digest,
)
from models.codec.discriminators import CodecCritics
from models.codec.fsq import FSQ, QuantizedResult, ResidualFSQ
from models.codec.losses import CodecLoss, CodecLosses, MultiResolutionMelLoss, MultiResolutionSTFTLoss, mel_filterbank
from models.codec.model import CodecEncoding, CodecOutput, SpeechCodec
from models.codec.presets import (
    PRESETS,
    codec_25hz_4x8555,
    codec_50hz_1x8555,
    codec_50hz_2x8555,
    codec_50hz_2x8555_harmonic,
    codec_50hz_2x8555_stft,
    codec_tiny_stft_test,
    codec_tiny_test,
    preset,
)
from models.codec.seanet import SEANetDecoder, SEANetEncoder
from models.codec.harmonic import HarmonicNoiseDecoder
from models.codec.spectral import ISTFTDecoder, SpectralEncoder

__all__ = [
    "SpeechCodec", "CodecEncoding", "CodecOutput",
    "ResidualFSQ", "FSQ", "QuantizedResult",
    "SEANetEncoder", "SEANetDecoder", "SpectralEncoder", "ISTFTDecoder", "HarmonicNoiseDecoder",
    "CodecLoss", "CodecLosses", "MultiResolutionSTFTLoss", "MultiResolutionMelLoss", "mel_filterbank", "CodecCritics",
    "PRESETS", "preset", "codec_50hz_2x8555", "codec_50hz_2x8555_stft", "codec_50hz_2x8555_harmonic",
    "codec_25hz_4x8555", "codec_50hz_1x8555",
    "codec_tiny_test", "codec_tiny_stft_test",
    "build_codec", "build_codec_loss", "build_codec_critics", "resolve_model_config",
    "CheckpointError", "CheckpointMeta", "codec_id_for", "architecture_id", "weights_digest",
    "save_checkpoint", "load_checkpoint", "export_checkpoint",
]
