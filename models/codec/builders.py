"""Config -> modules. The only place that reads ``schemas.codec`` configs; everything else takes keyword args."""

from __future__ import annotations

from schemas.codec import CodecLossConfig, CodecModelConfig, TrainCodecConfig

from models.codec.discriminators import CodecCritics
from models.codec.fsq import ResidualFSQ
from models.codec.harmonic import HarmonicNoiseDecoder
from models.codec.losses import CodecLoss
from models.codec.model import SpeechCodec
from models.codec.seanet import SEANetDecoder, SEANetEncoder
from models.codec.spectral import ISTFTDecoder, SpectralEncoder

__all__ = ["build_codec", "build_codec_loss", "resolve_model_config"]


def resolve_model_config(config: CodecModelConfig | TrainCodecConfig | str) -> CodecModelConfig:
    """The model config named by a preset name, given in full, or held by a training config.

    Raises:
        KeyError: an unknown preset name (the message lists the known ones).
    """
    from models.codec.presets import preset

    if isinstance(config, str):
        return preset(config)
    if isinstance(config, TrainCodecConfig):
        return config.model if config.model is not None else preset(config.preset or "")
    if isinstance(config, CodecModelConfig):
        return config
    raise TypeError(f"expected CodecModelConfig, TrainCodecConfig or a preset name, got {type(config).__name__}")


def build_codec(config: CodecModelConfig | TrainCodecConfig | str) -> SpeechCodec:
    """A freshly initialized :class:`SpeechCodec` for a model config (or preset name).

    Example:
        >>> codec = build_codec("codec_50hz_2x8555")
        >>> codec.frame_rate_hz, codec.num_stages
        (50.0, 2)
    """
    cfg = resolve_model_config(config)
    quantizer = ResidualFSQ(levels=cfg.fsq.levels, stages=cfg.fsq.stages)
    if cfg.spectral is not None:
        spec = cfg.spectral
        framing = dict(hop_length=cfg.hop_length, frames_per_latent=spec.frames_per_latent, n_fft=spec.n_fft,
                       dimension=spec.dimension)
        decoder = (HarmonicNoiseDecoder(**spec.decoder.model_dump(), **framing, harmonics=spec.harmonics,
                                        sample_rate_hz=cfg.sample_rate_hz)
                   if spec.decoder_head == "harmonic" else ISTFTDecoder(**spec.decoder.model_dump(), **framing))
        max_bin = None if spec.encoder_max_hz is None else int(spec.encoder_max_hz * spec.n_fft // cfg.sample_rate_hz) + 1
        encoder = SpectralEncoder(**spec.encoder.model_dump(), **framing, max_bin=max_bin,
                                  log_floor=spec.encoder_log_floor)
        return SpeechCodec(encoder=encoder, decoder=decoder,
                           quantizer=quantizer, sample_rate_hz=cfg.sample_rate_hz,
                           in_proj_init_gain=spec.in_proj_init_gain)
    common = dict(strides=cfg.strides, causal=cfg.causal, weight_norm=cfg.weight_norm)
    return SpeechCodec(
        encoder=SEANetEncoder(**cfg.encoder.model_dump(), **common),
        decoder=SEANetDecoder(**cfg.decoder.model_dump(), **common),
        quantizer=quantizer,
        sample_rate_hz=cfg.sample_rate_hz,
    )


def build_codec_loss(config: CodecLossConfig | None = None, *, sample_rate_hz: int = 16000) -> CodecLoss:
    """The reconstruction objective for a loss config (defaults when None)."""
    cfg = config or CodecLossConfig()
    terms_outside = {"latent_penalty_weight", "latent_bound", "f0_weight", "consistency_weight", "consistency_noise_dbfs",
                     "adversarial_weight", "feature_matching_weight", "critic_periods", "critic_fft_sizes"}
    return CodecLoss(**cfg.model_dump(exclude=terms_outside), sample_rate_hz=sample_rate_hz)


def build_codec_critics(config: CodecLossConfig) -> CodecCritics | None:
    """The adversarial critics a loss config asks for, or None when it trains without them."""
    if not config.adversarial:
        return None
    return CodecCritics(periods=config.critic_periods, fft_sizes=config.critic_fft_sizes)
