"""The speech codec: encoder -> projection -> residual FSQ -> projection -> decoder.

The encoder and decoder are SEANet conv stacks (``seanet.py``) or an STFT
front end and inverse-STFT head (``spectral.py``); ``builders.build_codec``
picks them from the config.

Waveforms are ``[B, T]`` float at 16 kHz mono; codes are ``[B, frames, stages]``
(the layout of the ``latents`` table), uint16 when they leave the model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.nn import functional as F
from torch.nn.utils import parametrize

from models.codec.fsq import ResidualFSQ

__all__ = ["CodecEncoding", "CodecOutput", "SpeechCodec"]

#: With default init the SEANet encoder's output has std ~0.05 on speech, so every frame rounded to the grid's
#: centre, few codes were used, and the decoder learned to ignore the latent. x20 gives std ~1 at init:
#: measured on 400 steps here, 9 / 104 distinct codes per stage in a batch instead of 1 / 13.
_IN_PROJ_INIT_GAIN = 20.0


@dataclass
class CodecEncoding:
    """What the encode path stores: codes and how to read them.

    Attributes:
        codes: ``[B, frames, stages]`` torch.uint16.
        frame_rate_hz: frames per second of audio.
        num_samples: samples of the input (before padding to whole frames), to trim the decode.
    """

    codes: Tensor
    frame_rate_hz: float
    num_samples: int


@dataclass
class CodecOutput:
    """One training forward pass.

    Attributes:
        recon: reconstructed waveform ``[B, T]`` (same length as the input).
        codes: ``[B, frames, stages]`` int64.
        latent: quantized latent ``[B, D, frames]`` (straight-through gradients).
        unquantized: the encoder's projected latent before FSQ ``[B, D, frames]``.
        f0_hz: ``[B, T / stft_hop]`` the f0 a harmonic decoder predicted (None for other decoders).
    """

    recon: Tensor
    codes: Tensor
    latent: Tensor
    unquantized: Tensor
    f0_hz: Tensor | None = None


class SpeechCodec(nn.Module):
    """Neural speech codec with a finite-scalar-quantized bottleneck.

    Args:
        encoder: waveform ``[B, 1, T]`` -> ``[B, encoder.dimension, frames]`` (SEANet or the STFT front end);
            has ``dimension`` and ``hop_length``.
        decoder: ``[B, decoder.dimension, frames]`` -> waveform ``[B, 1, T]``; same hop length as the encoder.
        quantizer: residual FSQ over ``quantizer.dim`` dimensions.
        sample_rate_hz: audio rate the codec was trained at.
        in_proj_init_gain: scale of the initial projection onto the FSQ grid (see ``_IN_PROJ_INIT_GAIN``).

    Example:
        >>> from models.codec import build_codec, codec_50hz_2x8555
        >>> codec = build_codec(codec_50hz_2x8555()).eval()
        >>> enc = codec.encode(torch.zeros(1, 16000))
        >>> enc.codes.shape, enc.codes.dtype, round(codec.bitrate_bps)
        (torch.Size([1, 50, 2]), torch.uint16, 997)
        >>> codec.decode(enc.codes).shape
        torch.Size([1, 16000])
    """

    def __init__(self, *, encoder: nn.Module, decoder: nn.Module, quantizer: ResidualFSQ,
                 sample_rate_hz: int = 16000, in_proj_init_gain: float = _IN_PROJ_INIT_GAIN) -> None:
        super().__init__()
        if encoder.hop_length != decoder.hop_length:
            raise ValueError(f"encoder hop {encoder.hop_length} != decoder hop {decoder.hop_length}")
        self.encoder = encoder
        self.decoder = decoder
        self.quantizer = quantizer
        self.sample_rate_hz = int(sample_rate_hz)
        self.in_proj = nn.Conv1d(encoder.dimension, quantizer.dim, 1)
        with torch.no_grad():  # start the latent spread over the FSQ grid (see _IN_PROJ_INIT_GAIN)
            self.in_proj.weight.mul_(in_proj_init_gain)
            self.in_proj.bias.zero_()
        self.out_proj = nn.Conv1d(quantizer.dim, decoder.dimension, 1)

    @property
    def hop_length(self) -> int:
        """Samples per frame."""
        return self.encoder.hop_length

    @property
    def frame_rate_hz(self) -> float:
        return self.sample_rate_hz / self.hop_length

    @property
    def num_stages(self) -> int:
        return self.quantizer.stages

    @property
    def bitrate_bps(self) -> float:
        """frame_rate x stages x log2(prod(levels))."""
        return self.frame_rate_hz * self.quantizer.bits_per_frame

    def _check_wav(self, wav: Tensor) -> Tensor:
        if wav.dim() != 2:
            raise ValueError(f"expected waveform [B, T], got {list(wav.shape)}")
        if wav.shape[-1] == 0:
            raise ValueError("empty waveform")
        return F.pad(wav, (0, -wav.shape[-1] % self.hop_length)).unsqueeze(1)

    def _encode_latent(self, wav: Tensor) -> Tensor:
        return self.in_proj(self.encoder(self._check_wav(wav)))

    def _decode_latent(self, latent: Tensor) -> Tensor:
        return self.decoder(self.out_proj(latent)).squeeze(1)

    def forward(self, wav: Tensor) -> CodecOutput:
        """Encode, quantize (straight-through) and decode ``wav [B, T]``, for training."""
        unquantized = self._encode_latent(wav)
        q = self.quantizer(unquantized)
        f0 = None
        if hasattr(self.decoder, "synthesize"):  # a harmonic decoder: keep its f0 for the f0 loss
            synthesis = self.decoder.synthesize(self.out_proj(q.latent))
            recon, f0 = synthesis.wav.squeeze(1)[..., :wav.shape[-1]], synthesis.f0_hz
        else:
            recon = self._decode_latent(q.latent)[..., :wav.shape[-1]]
        return CodecOutput(recon=recon, codes=q.codes, latent=q.latent, unquantized=unquantized, f0_hz=f0)

    @torch.inference_mode()
    def encode(self, wav: Tensor) -> CodecEncoding:
        """``wav [B, T]`` -> uint16 codes ``[B, ceil(T / hop), stages]`` (input zero-padded to whole frames)."""
        with parametrize.cached():  # weight-normed weights computed once per call, not per use
            codes = self.quantizer(self._encode_latent(wav)).codes
        return CodecEncoding(codes=codes.to(torch.uint16), frame_rate_hz=self.frame_rate_hz, num_samples=wav.shape[-1])

    @torch.inference_mode()
    def decode(self, codes: Tensor, num_samples: int | None = None) -> Tensor:
        """Codes ``[B, frames, S]`` (any int dtype; ``S <= stages`` decodes coarser) -> ``[B, frames * hop]``.

        ``num_samples`` trims the output to the encoded input's length.
        """
        with parametrize.cached():
            wav = self._decode_latent(self.quantizer.codes_to_latent(codes))
        return wav if num_samples is None else wav[..., :num_samples]

    def codes_to_latent(self, codes: Tensor) -> Tensor:
        """Codes ``[B, frames, S]`` -> quantized latent ``[B, D, frames]`` (what downstream models work on)."""
        return self.quantizer.codes_to_latent(codes)

    def latent_to_codes(self, latent: Tensor) -> Tensor:
        """Any latent ``[B, D, frames]`` -> codes of its nearest grid point (int64)."""
        return self.quantizer.latent_to_codes(latent)

    def num_frames(self, num_samples: int) -> int:
        """Frames that ``encode`` makes from ``num_samples`` samples."""
        return math.ceil(num_samples / self.hop_length)
