"""Speech-to-speech model: shapes, masking, length change, an overfit run, convert(), checkpoints, config errors."""

from __future__ import annotations

import pytest
import torch
from pydantic import ValidationError

from models.checkpoint_io import atomic_torch_save
from models.s2s import (S2SBatch, S2SCheckpointError, S2SLosses, S2SOutput, build_s2s, build_s2s_loss,
                        load_s2s_checkpoint, preset, resample_frames, s2s_id_for, s2s_small, s2s_tiny_test,
                        save_s2s_checkpoint, target_lengths_for)
from schemas.factors import FACTOR_DIMS
from schemas.s2s import S2SModelConfig
from tests.models import one_torch_thread  # noqa: F401  (autouse: one intra-op thread)

CODEC_ID = "codec_50hz_2x8555-0123456789ab-w0123456789"
FACTORIZER_ID = "factorizer_small-0123456789ab-w0123456789"


def _batch(seed: int = 0, rows: int = 4, frames: int = 30, speaker: bool = False) -> S2SBatch:
    """Pairs whose targets are longer or shorter than their sources (voices speak at different rates)."""
    g = torch.Generator().manual_seed(seed)
    lengths = torch.tensor([frames, frames - 5, frames - 11, frames - 2][:rows])
    target_lengths = torch.tensor([frames + 6, frames - 9, frames - 4, frames][:rows])
    codes = torch.randint(0, 1000, (rows, frames, 2), generator=g).to(torch.int32)
    target_codes = torch.randint(0, 1000, (rows, int(target_lengths.max()) + 3, 2), generator=g).to(torch.int32)
    vectors = torch.randn(rows, FACTOR_DIMS["speaker"], generator=g) if speaker else None
    return S2SBatch(codes=codes, lengths=lengths, target_codes=target_codes, target_lengths=target_lengths,
                    speaker=vectors)


def _forward(model, b: S2SBatch) -> S2SOutput:
    return model(b.codes, b.lengths, b.target_lengths, b.speaker)


def test_shapes_gradients_and_padding_never_leaks():
    torch.manual_seed(0)
    model = build_s2s("s2s_tiny_test")
    b = _batch(speaker=True)
    out = _forward(model, b)
    assert isinstance(out, S2SOutput) and out.logits.shape == (4, 36, 2, 1000)
    assert out.lengths.tolist() == b.target_lengths.tolist()
    losses = build_s2s_loss()(out, b)
    assert isinstance(losses, S2SLosses) and losses.total.ndim == 0 and torch.isfinite(losses.total)
    assert losses.stage_cross_entropy.shape == (2,) and 0 <= float(losses.accuracy) <= 1
    assert set(losses.as_floats()) >= {"total", "cross_entropy", "accuracy", "cross_entropy_stage1"}
    losses.total.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters()
               if p.requires_grad and p is not model.target_voice)      # a speaker vector replaces the fixed voice
    assert model.speaker_proj.weight.grad.abs().sum() > 0 and model.embed.weight.grad.abs().sum() > 0
    model.eval()
    noisy = b.codes.clone()
    noisy[2, int(b.lengths[2]):] = 999                       # source padding of row 2
    with torch.no_grad():
        ref = _forward(model, b).logits
        changed = model(noisy, b.lengths, b.target_lengths, b.speaker).logits
        # row 2 alone: its outputs must not depend on the other rows or how far the batch was padded
        alone = model(b.codes[2:3, :int(b.lengths[2])], b.lengths[2:3], b.target_lengths[2:3],
                      b.speaker[2:3]).logits
    n = int(b.target_lengths[2])
    assert torch.allclose(ref[2, :n], changed[2, :n], atol=1e-5)
    assert torch.allclose(ref[2, :n], alone[0, :n], atol=1e-5)
    # target codes past a row's target length are ignored by the loss
    junk = S2SBatch(b.codes, b.lengths, b.target_codes.clone(), b.target_lengths, b.speaker)
    junk.target_codes[1, int(b.target_lengths[1]):] = 7
    loss_fn = build_s2s_loss()
    with torch.no_grad():
        assert torch.equal(loss_fn(_forward(model, b), b).total, loss_fn(_forward(model, b), junk).total)


def test_resample_is_monotonic_linear_and_exact_at_equal_length():
    x = torch.arange(10, dtype=torch.float32).view(1, 10, 1).repeat(2, 1, 3)
    lengths = torch.tensor([10, 4])
    same = resample_frames(x, lengths, lengths)
    assert torch.equal(same[0], x[0]) and torch.equal(same[1, :4], x[1, :4]) and not same[1, 4:].any()
    stretched = resample_frames(x, lengths, torch.tensor([25, 9]))
    assert stretched.shape == (2, 25, 3)
    assert bool((stretched[0, 1:, 0] >= stretched[0, :-1, 0]).all())              # monotonic in time
    assert float(stretched[1, :9].max()) <= 3.0 and not stretched[1, 9:].any()   # reads only valid frames
    assert target_lengths_for(torch.tensor([100, 1]), 0.9).tolist() == [90, 1]
    with pytest.raises(ValueError, match="rate must be finite and > 0"):
        target_lengths_for(torch.tensor([10]), 0.0)


def test_other_target_lengths_and_fixed_voice_work():
    torch.manual_seed(0)
    model = build_s2s("s2s_tiny_test").eval()
    b = _batch()
    with torch.no_grad():
        for target in ([12, 12, 12, 12], [60, 5, 31, 1]):
            out = model(b.codes, b.lengths, torch.tensor(target))     # no speaker: the fixed target voice
            assert out.logits.shape == (4, max(target), 2, 1000) and torch.isfinite(out.logits).all()
        steered = model(b.codes, b.lengths, b.target_lengths, torch.randn(4, 64)).logits
        fixed = model(b.codes, b.lengths, b.target_lengths).logits
    assert not torch.allclose(steered, fixed)


def test_overfits_a_tiny_batch():
    torch.manual_seed(0)
    model, loss_fn = build_s2s(s2s_tiny_test()), build_s2s_loss()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    b = _batch(rows=2, frames=24)
    history = []
    for _ in range(30):
        losses = loss_fn(_forward(model, b), b)
        history.append(float(losses.total.detach()))
        opt.zero_grad()
        losses.total.backward()
        opt.step()
    assert history[0] > 6.5                           # ~ln(1000) at the start: nothing is known
    assert history[-1] < 0.25 * history[0], history   # a real decrease, not noise (7.0 -> 0.05 here)
    assert float(losses.accuracy) > 0.8


def test_convert_gives_codes_in_range_of_the_asked_length():
    torch.manual_seed(0)
    model = build_s2s("s2s_tiny_test").eval()
    b = _batch()
    out = model.convert(b.codes, b.lengths)                            # rate 1.0: same duration
    assert out.codes.shape == (4, 30, 2) and out.lengths.tolist() == b.lengths.tolist()
    assert int(out.codes.min()) >= 0 and int(out.codes.max()) < 1000
    assert not out.codes[1, int(b.lengths[1]):].any()                  # zeros past each row's length
    slow = model.convert(b.codes, b.lengths, rate=1.5)
    assert slow.lengths.tolist() == [45, 38, 29, 42] and slow.codes.shape == (4, 45, 2)
    given = model.convert(b.codes.to(torch.uint16), b.lengths, target_lengths=torch.tensor([7, 8, 9, 10]),
                          speaker=torch.randn(4, 64))
    assert given.codes.shape == (4, 10, 2) and given.lengths.tolist() == [7, 8, 9, 10]


def test_bad_inputs_fail_clearly():
    model = build_s2s("s2s_tiny_test")
    lengths = torch.tensor([10, 10])
    with pytest.raises(ValueError, match=r"expected codes \[B, T, 2\]"):
        model(torch.zeros(2, 10, 3, dtype=torch.long), lengths, lengths)
    with pytest.raises(ValueError, match=r"codes must lie in \[0, 1000\)"):
        model(torch.full((2, 10, 2), 1000), lengths, lengths)
    with pytest.raises(ValueError, match=r"lengths must lie in \[1, 10\]"):
        model(torch.zeros(2, 10, 2, dtype=torch.long), torch.tensor([11, 0]), lengths)
    with pytest.raises(ValueError, match=r"expected speaker \[2, 64\]"):
        model(torch.zeros(2, 10, 2, dtype=torch.long), lengths, lengths, torch.zeros(2, 16))
    no_voice = build_s2s(S2SModelConfig(name="fixed", hidden_dim=16, speaker_dim=0, encoder_layers=1,
                                        decoder_layers=1))
    with pytest.raises(ValueError, match="no speaker conditioning"):
        no_voice(torch.zeros(2, 10, 2, dtype=torch.long), lengths, lengths, torch.zeros(2, 64))
    with pytest.raises(ValueError, match=r"expected target codes \[2, >= 10, 2\]"):
        b = S2SBatch(torch.zeros(2, 10, 2, dtype=torch.long), lengths, torch.zeros(2, 5, 2, dtype=torch.long), lengths)
        build_s2s_loss()(_forward(model, b), b)


def test_config_validation():
    assert s2s_small().name == "s2s_small" and preset("s2s_tiny_test") == s2s_tiny_test()
    with pytest.raises(KeyError, match="known: s2s_small, s2s_tiny_test"):
        preset("nope")
    with pytest.raises(ValidationError, match="extra_forbidden"):
        S2SModelConfig.model_validate({**s2s_small().model_dump(), "hiden_dim": 3})
    with pytest.raises(ValidationError, match="kernel_size must be odd"):
        S2SModelConfig(name="x", kernel_size=4)
    with pytest.raises(ValidationError, match="not divisible by num_heads"):
        S2SModelConfig(name="x", hidden_dim=30, num_heads=4, transformer_layers=1)
    with pytest.raises(ValidationError, match="speaker_dim must be 0 or the factors table's 64"):
        S2SModelConfig(name="x", speaker_dim=32)
    with pytest.raises(ValidationError):
        S2SModelConfig(name="Bad Name")
    with pytest.raises(ValueError, match="label_smoothing"):
        build_s2s_loss(label_smoothing=1.0)


@pytest.fixture()
def saved(tmp_path):
    torch.manual_seed(0)
    cfg = s2s_tiny_test()
    model = build_s2s(cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    b = _batch()
    build_s2s_loss()(_forward(model, b), b).total.backward()
    opt.step()
    path = save_s2s_checkpoint(tmp_path / "s2s" / "s2s.pt", model, cfg, codec_id=CODEC_ID, target_voice="flite_slt",
                               factorizer_id=FACTORIZER_ID, step=3, optimizer_state=opt.state_dict())
    return path, model.eval(), cfg, b


def test_checkpoint_round_trip_gives_identical_outputs(saved):
    path, model, cfg, b = saved
    loaded, cfg2, meta = load_s2s_checkpoint(path, expected_codec_id=CODEC_ID, expected_factorizer_id=FACTORIZER_ID)
    assert cfg2 == cfg and meta.codec_id == CODEC_ID and meta.step == 3 and meta.optimizer_state
    assert meta.target_voice == "flite_slt" and meta.factorizer_id == FACTORIZER_ID
    assert meta.architecture_id == s2s_id_for(cfg, CODEC_ID)
    assert meta.s2s_id.startswith("s2s_tiny_test-") and meta.s2s_id != meta.architecture_id
    assert s2s_id_for(cfg, CODEC_ID) != s2s_id_for(cfg, "codec_other")
    with torch.no_grad():
        assert torch.equal(_forward(model, b).logits, _forward(loaded, b).logits)
        assert torch.equal(model.convert(b.codes, b.lengths).codes, loaded.convert(b.codes, b.lengths).codes)


def test_checkpoint_of_another_codec_or_factorizer_is_refused(saved):
    path = saved[0]
    with pytest.raises(S2SCheckpointError, match="was trained on codec .* the codes are codec 'codec_other'"):
        load_s2s_checkpoint(path, expected_codec_id="codec_other")
    with pytest.raises(S2SCheckpointError, match="speaker vectors of factorizer .* not 'factorizer_other'"):
        load_s2s_checkpoint(path, expected_factorizer_id="factorizer_other")


def test_corrupt_or_tampered_checkpoints_fail_in_one_line(saved, tmp_path):
    path, model, cfg, _ = saved
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(path.read_bytes()[:200])
    with pytest.raises(S2SCheckpointError, match="not a readable checkpoint") as err:
        load_s2s_checkpoint(truncated)
    assert "\n" not in str(err.value)
    with pytest.raises(S2SCheckpointError, match="no such checkpoint file"):
        load_s2s_checkpoint(tmp_path / "missing.pt")
    payload = torch.load(path, weights_only=True)
    payload["codec_id"] = "codec_other"                       # the id says another codec
    atomic_torch_save(payload, tmp_path / "recodec.pt")
    with pytest.raises(S2SCheckpointError, match="does not match the config and codec id"):
        load_s2s_checkpoint(tmp_path / "recodec.pt")
    payload = torch.load(path, weights_only=True)
    payload["state_dict"]["target_voice"] = payload["state_dict"]["target_voice"] + 1
    atomic_torch_save(payload, tmp_path / "edited.pt")
    with pytest.raises(S2SCheckpointError, match="weights do not match s2s id"):
        load_s2s_checkpoint(tmp_path / "edited.pt")
    payload = torch.load(path, weights_only=True)
    del payload["state_dict"]["head.weight"]
    atomic_torch_save(payload, tmp_path / "short.pt")
    with pytest.raises(S2SCheckpointError, match="weights do not fit s2s model .* missing key"):
        load_s2s_checkpoint(tmp_path / "short.pt")
    payload = torch.load(path, weights_only=True)
    payload["format"] = "lsm-ctc"
    atomic_torch_save(payload, tmp_path / "other.pt")
    with pytest.raises(S2SCheckpointError, match=r"not a s2s checkpoint \(it is a 'lsm-ctc' checkpoint\)"):
        load_s2s_checkpoint(tmp_path / "other.pt")
    with pytest.raises(ValueError, match="codec_id must be a non-empty string"):
        save_s2s_checkpoint(tmp_path / "bad.pt", model, cfg, codec_id="")
