"""The harmonic-plus-noise decoder and the YIN pitch tracker that supervises it."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from models.codec.harmonic import HarmonicNoiseDecoder
from models.codec.pitch import estimate_pitch
from tests.factories import espeak_16k
from tests.models import one_torch_thread  # noqa: F401  (autouse: one intra-op thread)


@pytest.mark.parametrize("f0", [62.0, 137.5, 200.0, 310.0, 450.0])
def test_yin_finds_the_f0_of_a_harmonic_tone_without_octave_errors(f0):
    t = torch.arange(16000) / 16000
    x = sum(a * torch.sin(2 * math.pi * k * f0 * t + k) for k, a in ((1, 0.3), (2, 0.2), (3, 0.1)))
    track = estimate_pitch(x[None])
    assert track.f0_hz.shape == (1, 100)
    assert abs(float(track.f0_hz[0, 10:90].median()) - f0) < 0.01 * f0
    assert float(track.voiced[0].float().mean()) > 0.9


def test_yin_calls_noise_and_silence_unvoiced_and_tracks_speech():
    assert not bool(estimate_pitch(0.1 * torch.randn(1, 16000, generator=torch.Generator().manual_seed(0))).voiced.any())
    assert not bool(estimate_pitch(torch.zeros(1, 16000)).voiced.any())
    track = estimate_pitch(torch.from_numpy(espeak_16k("Hello there, this is a test of the pitch.", voice="en"))[None])
    voiced = track.f0_hz[track.voiced]
    assert float(track.voiced.float().mean()) > 0.15  # speech has voiced frames
    assert 70 < float(voiced.median()) < 250  # a male espeak voice


def _tone_decoder(f0_hz: float) -> HarmonicNoiseDecoder:
    """A decoder whose head ignores its input: f0 = f0_hz, all energy on the first harmonic, almost no noise."""
    dec = HarmonicNoiseDecoder(hop_length=320, dim=8, intermediate=8, layers=0, dimension=4, harmonics=8)
    bins = dec.n_fft // 2 + 1
    lo, hi = dec.f0_range
    bias = torch.full((bins + 2 + dec.harmonics,), -10.0)
    p = math.log(f0_hz / lo) / math.log(hi / lo)
    bias[bins] = math.log(p / (1 - p))  # sigmoid^-1: f0 logit
    bias[bins + 1] = 0.0  # loudness ~0.4
    bias[bins + 2] = 10.0  # harmonic 1 takes (nearly) all the energy
    with torch.no_grad():
        dec.head.weight.zero_()
        dec.head.bias.copy_(bias)
    return dec.eval()


def test_a_fixed_f0_head_synthesizes_that_tone_deterministically():
    dec = _tone_decoder(220.0)
    out = dec.synthesize(torch.zeros(1, 4, 50))
    assert out.wav.shape == (1, 1, 16000) and out.f0_hz.shape == (1, 100)
    assert torch.allclose(out.f0_hz, torch.full_like(out.f0_hz, 220.0), rtol=1e-4)
    wav = out.wav[0, 0]
    spectrum = np.abs(np.fft.rfft(wav.detach().numpy()))
    assert abs(np.argmax(spectrum) - 220) <= 1  # 1 Hz bins over one second
    assert abs(float(estimate_pitch(wav[None]).f0_hz[0, 10:90].median()) - 220.0) < 2.0
    assert torch.equal(dec(torch.zeros(1, 4, 50)), dec(torch.zeros(1, 4, 50)))  # fixed-seed noise


def test_harmonics_above_nyquist_get_no_energy():
    dec = _tone_decoder(400.0)
    bins = dec.n_fft // 2 + 1
    with torch.no_grad():
        dec.head.bias[bins + 2:] = 0.0  # every harmonic equally loud: 8 x 400 Hz stays below Nyquist ...
    wav = dec(torch.zeros(1, 4, 50))[0, 0].detach().numpy()
    spectrum = np.abs(np.fft.rfft(wav)) ** 2
    peaks = np.sort(np.argsort(spectrum)[-8:])
    assert np.all(np.abs(peaks - 400 * np.arange(1, 9)) <= 1)
    wide = _tone_decoder(400.0)  # ... and with 40 harmonics (to 16 kHz) those >= 8 kHz are masked
    wide.harmonics, wide.harmonic_numbers = 40, torch.arange(1, 41, dtype=torch.float32)
    wide.head = torch.nn.Linear(8, bins + 2 + 40)
    with torch.no_grad():
        wide.head.weight.zero_()
        wide.head.bias.fill_(-10.0)
        wide.head.bias[bins] = dec.head.bias[bins]
        wide.head.bias[bins + 1] = 0.0
        wide.head.bias[bins + 2:] = 0.0
    wav = wide(torch.zeros(1, 4, 50))[0, 0].detach().numpy()
    spectrum = np.abs(np.fft.rfft(wav)) ** 2
    assert spectrum[7900:].sum() < 1e-4 * spectrum.sum()


def test_gradients_reach_the_latent_and_every_parameter():
    torch.manual_seed(0)
    dec = HarmonicNoiseDecoder(hop_length=320, dim=16, intermediate=32, layers=1, dimension=8, harmonics=40)
    latent = torch.randn(2, 8, 10, requires_grad=True)
    out = dec.synthesize(latent)
    (out.wav.square().mean() + out.f0_hz.mean()).backward()  # f0 reaches the head through its own term
    assert latent.grad is not None and bool(latent.grad.abs().sum() > 0)
    assert all(p.grad is not None for p in dec.parameters())


def _tiny_harmonic_config():
    from models.codec import codec_tiny_stft_test

    cfg = codec_tiny_stft_test()
    return cfg.model_copy(update={"name": "codec_tiny_harmonic_test",
                                  "spectral": cfg.spectral.model_copy(update={"decoder_head": "harmonic",
                                                                             "harmonics": 16})})


def test_harmonic_config_builds_round_trips_and_keeps_istft_ids():
    from models.codec import build_codec, codec_id_for, codec_tiny_stft_test, preset
    from schemas.codec import CodecModelConfig

    cfg = _tiny_harmonic_config()
    again = CodecModelConfig.model_validate(cfg.model_dump(mode="json"))
    assert again == cfg and codec_id_for(again) == codec_id_for(cfg) != codec_id_for(codec_tiny_stft_test())
    assert "decoder_head" not in codec_tiny_stft_test().model_dump()["spectral"]  # istft ids unchanged
    assert isinstance(build_codec(cfg).decoder, HarmonicNoiseDecoder)
    assert isinstance(build_codec(preset("codec_50hz_2x8555_harmonic")).decoder, HarmonicNoiseDecoder)


def test_train_step_supervises_f0_and_lowers_the_loss():
    from models.codec import build_codec, build_codec_loss
    from models.codec.recipe import make_optimizer, train_step

    torch.manual_seed(0)
    wav = torch.from_numpy(espeak_16k("Hello there, this is a short test of the codec.", voice="en"))
    batch = torch.stack([wav[i:i + 8000] for i in (2000, 6000, 12000, 18000)])
    codec, loss_fn = build_codec(_tiny_harmonic_config()), build_codec_loss()
    opt = make_optimizer(codec, learning_rate=3e-3)
    first = train_step(codec, loss_fn, opt, batch, grad_clip_norm=1.0, f0_weight=1.0)
    assert first["f0"] > 0  # espeak has voiced frames, and an untrained head misses their pitch
    for _ in range(40):
        last = train_step(codec, loss_fn, opt, batch, grad_clip_norm=1.0, f0_weight=1.0)
    assert last["f0"] < 0.5 * first["f0"] and last["total"] < first["total"]
    assert "f0" not in train_step(codec, loss_fn, opt, batch, grad_clip_norm=1.0, f0_weight=0.0)
