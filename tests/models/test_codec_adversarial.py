"""The adversarial critics and the decoder-only fine-tune: shapes, the critics learn, codes stay put."""

from __future__ import annotations

import pytest
import torch

from models.codec import build_codec, build_codec_loss, codec_tiny_test
from models.codec.builders import build_codec_critics
from models.codec.discriminators import CodecCritics, critic_loss, feature_matching_loss, generator_adv_loss
from models.codec.recipe import Adversary, freeze_all_but_decoder, make_optimizer, train_step
from schemas.codec import CodecLossConfig, TrainCodecConfig
from tests.factories import espeak_16k
from tests.models import one_torch_thread  # noqa: F401  (autouse: one intra-op thread)


def _speech(n: int = 8000) -> torch.Tensor:
    return torch.from_numpy(espeak_16k("Hello there, this is a test.", voice="en"))[None, :n].repeat(2, 1)


def test_critics_score_every_sub_critic_and_the_losses_have_their_fixed_points():
    critics = CodecCritics(periods=(2, 3), fft_sizes=(256, 512))
    wav = torch.randn(2, 4001)  # odd length: the period critics pad
    out = critics(wav)
    assert len(out.scores) == 4 and all(s.shape[0] == 2 for s in out.scores)
    assert all(len(f) >= 4 for f in out.features)
    # least squares: a critic that says 1 to real and 0 to fake has no loss; a generator judged 1 has none
    ones = type(out)([torch.ones_like(s) for s in out.scores], out.features)
    zeros = type(out)([torch.zeros_like(s) for s in out.scores], out.features)
    assert float(critic_loss(ones, zeros)) == 0.0 and float(critic_loss(zeros, ones)) == 8.0
    assert float(generator_adv_loss(ones)) == 0.0 and float(generator_adv_loss(zeros)) == 1.0
    assert float(feature_matching_loss(out, out).detach()) == 0.0
    with pytest.raises(ValueError, match="at least one"):
        CodecCritics(periods=(), fft_sizes=())


def test_a_loss_config_without_adversarial_weights_builds_no_critics():
    assert build_codec_critics(CodecLossConfig()) is None
    critics = build_codec_critics(CodecLossConfig(adversarial_weight=1.0, critic_periods=[2], critic_fft_sizes=[]))
    assert isinstance(critics, CodecCritics) and len(critics.critics) == 1
    with pytest.raises(ValueError, match="critic_periods or critic_fft_sizes"):
        CodecLossConfig(feature_matching_weight=1.0, critic_periods=[], critic_fft_sizes=[])
    with pytest.raises(ValueError, match="num_workers: 1"):
        TrainCodecConfig(preset="codec_tiny_test", loss={"adversarial_weight": 1.0}, execution={"num_workers": 2})


def test_adversarial_steps_teach_the_critics_and_a_decoder_only_run_keeps_every_code():
    torch.manual_seed(0)
    codec, loss_fn = build_codec(codec_tiny_test()), build_codec_loss()
    batch = _speech()
    codes_before = codec.encode(batch).codes.clone()
    encoder_before = {k: v.clone() for k, v in codec.state_dict().items() if not k.startswith("decoder.")}
    decoder_before = {k: v.clone() for k, v in codec.state_dict().items() if k.startswith("decoder.")}
    freeze_all_but_decoder(codec)
    critics = CodecCritics(periods=(2, 3), fft_sizes=(256,))
    adversary = Adversary(critics, make_optimizer(critics, learning_rate=1e-3), 1.0, 2.0)
    opt = make_optimizer(codec, learning_rate=1e-3)
    terms = [train_step(codec, loss_fn, opt, batch, grad_clip_norm=1.0, adversary=adversary) for _ in range(12)]
    assert {"critic", "adversarial", "feature_matching"} <= set(terms[0])
    assert all(torch.isfinite(torch.tensor(t["total"])) for t in terms)
    # the critics learn to tell this codec's output from the input
    assert terms[-1]["critic"] < terms[0]["critic"]
    # only the decoder moved, so the codes are the same
    state = codec.state_dict()
    assert all(torch.equal(state[k], v) for k, v in encoder_before.items())
    assert any(not torch.equal(state[k], v) for k, v in decoder_before.items())
    assert torch.equal(codec.encode(batch).codes, codes_before)
