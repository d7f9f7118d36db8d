"""A few optimizer steps on real speech lower the loss; the loss itself behaves."""

from __future__ import annotations

import torch

from models.codec import build_codec, build_codec_loss, codec_tiny_test, mel_filterbank
from tests.factories import espeak_16k
from tests.models import one_torch_thread, train_on_speech  # noqa: F401  (autouse: one intra-op thread)


def test_thirty_steps_on_real_speech_lower_the_loss():
    torch.manual_seed(0)
    before, after = train_on_speech(build_codec(codec_tiny_test()), build_codec_loss())
    assert float(after.total) < 0.85 * float(before.total)
    assert float(after.mel) < float(before.mel)


def test_loss_is_zero_for_a_perfect_copy_and_grows_with_distortion():
    loss_fn = build_codec_loss()
    x = torch.from_numpy(espeak_16k("Testing one two three.", voice="en-us"))[None, :16000]
    assert float(loss_fn(x, x).total) < 1e-5
    slightly = loss_fn(x + 0.001 * torch.randn_like(x), x)
    badly = loss_fn(x + 0.1 * torch.randn_like(x), x)
    assert 0 < float(slightly.total) < float(badly.total)
    assert set(badly.as_floats()) == {"total", "spectral_convergence", "log_magnitude", "mel"}


def test_mel_filterbank_is_triangles_in_increasing_order():
    fb = mel_filterbank(n_fft=1024, n_mels=80, sample_rate_hz=16000)
    assert fb.shape == (80, 513) and float(fb.min()) >= 0 and float(fb.max()) <= 1
    peaks = fb.argmax(dim=1)
    assert bool((peaks[1:] >= peaks[:-1]).all()) and bool((fb.sum(dim=1) > 0).all())


def test_noise_consistency_is_seeded_and_training_on_it_lowers_it():
    """The noise-consistency term (loss.consistency_weight): the same seed draws the same noise (a resumed run
    repeats it), and steps on it bring the noisy latent towards the clean one."""
    import pytest

    from models.codec.recipe import make_optimizer, noise_consistency, train_step
    from schemas.codec import CodecLossConfig, TrainCodecConfig

    torch.manual_seed(0)
    codec, loss_fn = build_codec(codec_tiny_test()), build_codec_loss()
    batch = torch.from_numpy(espeak_16k("Hello there, this is a test.", voice="en"))[None, :8000].repeat(2, 1)
    clean = codec._encode_latent(batch)
    first = noise_consistency(codec, batch, clean, noise_dbfs=(-50.0, -40.0), seed=7)
    assert float(first) > 0 and float(first) == float(noise_consistency(codec, batch, clean, noise_dbfs=(-50.0, -40.0), seed=7))
    assert float(first) != float(noise_consistency(codec, batch, clean, noise_dbfs=(-50.0, -40.0), seed=8))
    opt = make_optimizer(codec, learning_rate=3e-3)
    terms = [train_step(codec, loss_fn, opt, batch, grad_clip_norm=1.0, consistency_weight=100.0,
                        consistency_noise_dbfs=(-50.0, -40.0), noise_seed=s) for s in range(20)]
    assert "consistency" in terms[0] and "consistency" not in train_step(codec, loss_fn, opt, batch, grad_clip_norm=1.0)
    assert sum(t["consistency"] for t in terms[-5:]) < sum(t["consistency"] for t in terms[:5])
    with pytest.raises(ValueError, match="consistency_noise_dbfs"):
        CodecLossConfig(consistency_noise_dbfs=(-60.0, -70.0))
    with pytest.raises(ValueError, match="num_workers: 1"):
        TrainCodecConfig(preset="codec_tiny_test", loss={"consistency_weight": 1.0}, execution={"num_workers": 2})
