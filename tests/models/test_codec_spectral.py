"""The spectral codec (STFT encoder + inverse-STFT decoder): framing, config rules, ids, checkpoints, training."""

from __future__ import annotations

import pytest
import torch
from pydantic import ValidationError

from models.codec import (ISTFTDecoder, SpectralEncoder, build_codec, build_codec_loss, codec_id_for,
                          codec_tiny_stft_test, load_checkpoint, preset, save_checkpoint)
from schemas.codec import CodecModelConfig, SpectralSideConfig
from tests.conftest import ROOT
from tests.factories import espeak_16k
from tests.models import one_torch_thread, train_on_speech  # noqa: F401  (autouse: one intra-op thread)


def test_stft_and_inverse_stft_are_a_same_length_round_trip():
    """The decoder's overlap-add inverts the encoder's framing: what lets its head predict a spectrum directly."""
    enc = SpectralEncoder(hop_length=320, frames_per_latent=2, n_fft=640, dim=8, intermediate=8, layers=0,
                          dimension=4)
    dec = ISTFTDecoder(hop_length=320, frames_per_latent=2, n_fft=640, dim=8, intermediate=8, layers=0, dimension=4)
    wav = torch.from_numpy(espeak_16k("The quick brown fox.", voice="en"))[None, None, :16000]
    pad = (640 - 160) // 2
    spec = torch.stft(torch.nn.functional.pad(wav, (pad, pad), mode="reflect")[:, 0], 640, 160,
                      window=torch.hann_window(640), center=False, return_complex=True)
    assert spec.shape[-1] == 16000 // 160 == enc.log_magnitude(wav).shape[-1]
    back = dec.istft(spec)
    assert back.shape == (1, 16000)
    assert float((back - wav[:, 0]).abs().max()) < 1e-4


def test_spectral_preset_matches_the_seanet_framing_and_bitrate():
    stft, seanet = preset("codec_50hz_2x8555_stft"), preset("codec_50hz_2x8555")
    a, b = build_codec(stft).eval(), build_codec(seanet).eval()
    assert (a.hop_length, a.num_stages, a.bitrate_bps) == (b.hop_length, b.num_stages, b.bitrate_bps)
    wav = 0.1 * torch.randn(1, 16000 + 123, generator=torch.Generator().manual_seed(0))
    assert a.encode(wav).codes.shape == b.encode(wav).codes.shape == (1, 51, 2)
    assert isinstance(a.encoder, SpectralEncoder) and isinstance(a.decoder, ISTFTDecoder)


def test_seanet_codec_ids_did_not_move_when_the_spectral_field_arrived():
    # The shipped checkpoint's architecture id: latents rows and the factorizer are keyed by it.
    assert codec_id_for(preset("codec_50hz_2x8555")) == "codec_50hz_2x8555-c00f7e96c129"
    assert "spectral" not in preset("codec_50hz_2x8555").model_dump()
    assert "encoder" not in preset("codec_50hz_2x8555_stft").model_dump()


def test_config_round_trips_and_is_validated():
    cfg = codec_tiny_stft_test()
    again = CodecModelConfig.model_validate(cfg.model_dump(mode="json"))
    assert again == cfg and codec_id_for(again) == codec_id_for(cfg)
    with pytest.raises(ValidationError, match="SEANet settings"):
        CodecModelConfig.model_validate({**cfg.model_dump(), "decoder": {"channels": 8}})
    with pytest.raises(ValidationError, match="cannot be causal"):
        CodecModelConfig.model_validate({**cfg.model_dump(), "causal": True})
    bad = cfg.model_dump()
    bad["spectral"]["n_fft"] = 161
    with pytest.raises(ValidationError, match="framing does not fit"):
        CodecModelConfig.model_validate(bad)
    with pytest.raises(ValidationError, match="odd"):
        SpectralSideConfig(dim=8, intermediate=8, layers=1, kernel_size=4)


def test_checkpoint_reloads_to_bit_identical_codes(tmp_path):
    torch.manual_seed(0)
    cfg = codec_tiny_stft_test()
    codec = build_codec(cfg).eval()
    path = save_checkpoint(tmp_path / "c.pt", codec, cfg, codec_id=codec_id_for(cfg), step=3)
    loaded, loaded_cfg, meta = load_checkpoint(path)
    wav = 0.1 * torch.randn(2, 3200)
    assert loaded_cfg == cfg and meta.architecture_id == codec_id_for(cfg)
    codes = codec.encode(wav).codes
    assert torch.equal(loaded.encode(wav).codes, codes)
    assert torch.equal(loaded.decode(codes), codec.decode(codes))


def test_gradients_reach_every_parameter_and_steps_lower_the_loss():
    torch.manual_seed(0)
    codec, loss_fn = build_codec(codec_tiny_stft_test()), build_codec_loss()
    batch = 0.1 * torch.randn(2, 3200)
    loss_fn(codec(batch).recon, batch).total.backward()
    dead = [n for n, p in codec.named_parameters() if p.grad is None or not bool(p.grad.abs().sum() > 0)]
    assert dead == []
    before, after = train_on_speech(codec, loss_fn)
    assert float(after.total) < 0.85 * float(before.total)


def test_the_encoder_reads_only_its_band_above_its_floor():
    """Bins above ``encoder_max_hz`` are the floor whatever the input: a resampler's roll-off there cannot move codes."""
    enc = SpectralEncoder(hop_length=320, frames_per_latent=2, n_fft=640, dim=8, intermediate=8, layers=0,
                          dimension=4, max_bin=281, log_floor=1e-3)
    noise = torch.randn(1, 1, 16000, generator=torch.Generator().manual_seed(0))
    lowpassed = torch.fft.irfft(torch.fft.rfft(noise) * (torch.fft.rfftfreq(16000, 1 / 16000) < 7000), n=16000)
    a, b = enc.log_magnitude(noise), enc.log_magnitude(lowpassed)
    floor = torch.log(torch.tensor(1e-3))
    assert torch.equal(a[:, 281:], torch.full_like(a[:, 281:], float(floor)))
    assert torch.equal(a[:, 281:], b[:, 281:])
    assert float(a[:, :270].mean()) > float(floor) + 5  # the band itself is read
    assert float(enc.log_magnitude(torch.zeros(1, 1, 16000)).max()) == pytest.approx(float(floor))
    with pytest.raises(ValueError, match="max_bin"):
        SpectralEncoder(hop_length=320, n_fft=640, max_bin=400)


def test_spectral_ids_made_before_the_band_limit_did_not_move():
    """The full-band checkpoint's id (its latents rows are keyed by it) is what its config hashed to before the
    encoder's band limit and floor existed; the preset, which sets them, is another codec."""
    old = load_checkpoint(ROOT / "checkpoints" / "codec_50hz_2x8555_stft_fullband.pt")[1]
    assert codec_id_for(old) == "codec_50hz_2x8555_stft-95fe850e6445"
    assert "encoder_max_hz" not in old.model_dump()["spectral"]
    new = preset("codec_50hz_2x8555_stft")
    assert (new.spectral.encoder_max_hz, new.spectral.encoder_log_floor) == (7000.0, 1e-2)
    assert codec_id_for(new) != codec_id_for(old)
    assert build_codec(new).encoder.max_bin == 281  # 0..7000 Hz in 25 Hz bins
