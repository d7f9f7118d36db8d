"""CTC recognizer: shapes, masking, gradients, an overfit run that decodes its targets, checkpoint round trips."""

from __future__ import annotations

import pytest
import torch

from models.checkpoint_io import atomic_torch_save
from models.ctc import (CtcBatch, CtcCheckpointError, CtcOutput, build_ctc, build_ctc_loss, ctc_id_for, ctc_small,
                        ctc_tiny_test, greedy_decode, infeasible_rows, load_ctc_checkpoint, preset,
                        save_ctc_checkpoint)
from pipelines.phonemes import PhonemeInventory, phoneme_error_rate
from tests.models import one_torch_thread  # noqa: F401  (autouse: one intra-op thread)

CODEC_ID = "codec_50hz_2x8555-0123456789ab-w0123456789"
INVENTORY = PhonemeInventory(("a", "b", "d", "e", "i", "k", "o", "s", "t", "u"))   # 12 classes, like the preset


def _batch(seed: int = 0, rows: int = 4, frames: int = 40) -> CtcBatch:
    g = torch.Generator().manual_seed(seed)
    codes = torch.randint(0, 1000, (rows, frames, 2), generator=g).to(torch.int32)
    lengths = torch.tensor([frames, frames - 6, frames - 12, frames - 3][:rows])
    target_lengths = torch.tensor([7, 5, 4, 6][:rows])
    targets = torch.randint(2, INVENTORY.num_classes, (rows, 7), generator=g)
    return CtcBatch(codes=codes, lengths=lengths, targets=targets, target_lengths=target_lengths)


def test_shapes_masking_and_gradients():
    torch.manual_seed(0)
    model = build_ctc("ctc_tiny_test")
    b = _batch()
    out = model(b.codes, b.lengths)
    assert isinstance(out, CtcOutput) and out.log_probs.shape == (4, 40, 12)
    assert torch.allclose(out.log_probs.exp().sum(-1), torch.ones(4, 40), atol=1e-5)
    loss = build_ctc_loss()(out, b)
    assert loss.ndim == 0 and torch.isfinite(loss)
    loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters() if p.requires_grad)
    assert model.embed.weight.grad.abs().sum() > 0 and model.head.weight.grad.abs().sum() > 0
    # padding never leaks into valid frames: changing codes past a row's length leaves its outputs unchanged
    model.eval()
    noisy = b.codes.clone()
    noisy[1, int(b.lengths[1]):] = 999
    with torch.no_grad():
        a, c = model(b.codes, b.lengths).log_probs, model(noisy, b.lengths).log_probs
    n = int(b.lengths[1])
    assert torch.allclose(a[1, :n], c[1, :n], atol=1e-5)


def test_bad_inputs_fail_clearly():
    model = build_ctc("ctc_tiny_test")
    with pytest.raises(ValueError, match=r"expected codes \[B, T, 2\]"):
        model(torch.zeros(2, 10, 3, dtype=torch.long), torch.tensor([10, 10]))
    with pytest.raises(ValueError, match=r"codes must lie in \[0, 1000\)"):
        model(torch.full((1, 10, 2), 1000), torch.tensor([10]))
    with pytest.raises(KeyError, match="known: ctc_small, ctc_tiny_test"):
        preset("nope")
    with pytest.raises(ValueError):
        ctc_small().with_num_classes(1)


def test_greedy_decode_merges_repeats_and_drops_blanks():
    ids = torch.tensor([[3, 3, 0, 3, 5, 5, 0, 0, 2, 2]])
    lp = torch.nn.functional.one_hot(ids, 6).float().log_softmax(-1)
    assert greedy_decode(CtcOutput(lp, torch.tensor([10]))) == [[3, 3, 5, 2]]
    assert greedy_decode(CtcOutput(lp, torch.tensor([5]))) == [[3, 3, 5]]     # stops at the row's length
    assert infeasible_rows(torch.tensor([3, 3]), torch.tensor([[1, 1, 2], [1, 2, 3]]),
                           torch.tensor([3, 3])).tolist() == [True, False]    # 1,1 needs a blank between


def test_overfits_a_tiny_batch_and_decodes_its_targets():
    torch.manual_seed(0)
    model, loss_fn = build_ctc(ctc_tiny_test()), build_ctc_loss()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    b = _batch()
    first = None
    for step in range(300):
        loss = loss_fn(model(b.codes, b.lengths), b)
        first = float(loss.detach()) if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float(loss.detach()) < 0.1 * first
    model.eval()
    with torch.no_grad():
        hyps = greedy_decode(model(b.codes, b.lengths))
    refs = [b.targets[i, :n].tolist() for i, n in enumerate(b.target_lengths.tolist())]
    assert hyps == refs
    assert phoneme_error_rate([INVENTORY.decode(r) for r in refs], [INVENTORY.decode(h) for h in hyps]) == 0.0


@pytest.fixture()
def saved(tmp_path):
    torch.manual_seed(0)
    cfg = ctc_tiny_test().with_num_classes(INVENTORY.num_classes)
    model = build_ctc(cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    b = _batch()
    build_ctc_loss()(model(b.codes, b.lengths), b).backward()
    opt.step()
    path = save_ctc_checkpoint(tmp_path / "ctc" / "ctc.pt", model, cfg, codec_id=CODEC_ID,
                               phonemes=INVENTORY.symbols, step=3, optimizer_state=opt.state_dict())
    return path, model.eval(), cfg, b


def test_checkpoint_round_trip_gives_identical_logits(saved):
    path, model, cfg, b = saved
    loaded, cfg2, meta = load_ctc_checkpoint(path, expected_codec_id=CODEC_ID)
    assert cfg2 == cfg and meta.codec_id == CODEC_ID and meta.step == 3 and meta.optimizer_state
    assert PhonemeInventory(tuple(meta.phonemes)) == INVENTORY
    assert meta.architecture_id == ctc_id_for(cfg, CODEC_ID, INVENTORY.symbols)
    assert meta.ctc_id.startswith("ctc_tiny_test-") and meta.ctc_id != meta.architecture_id
    with torch.no_grad():
        assert torch.equal(model(b.codes, b.lengths).log_probs, loaded(b.codes, b.lengths).log_probs)
    assert ctc_id_for(cfg, CODEC_ID, INVENTORY.symbols) != ctc_id_for(cfg, CODEC_ID, ("a", "b"))


def test_checkpoint_of_another_codec_is_refused(saved):
    path = saved[0]
    with pytest.raises(CtcCheckpointError, match="was trained on codec .* the codes are codec 'codec_other'"):
        load_ctc_checkpoint(path, expected_codec_id="codec_other")


def test_corrupt_or_tampered_checkpoints_fail_in_one_line(saved, tmp_path):
    path, model, cfg, _ = saved
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(path.read_bytes()[:200])
    with pytest.raises(CtcCheckpointError, match="not a readable checkpoint") as err:
        load_ctc_checkpoint(truncated)
    assert "\n" not in str(err.value)
    with pytest.raises(CtcCheckpointError, match="no such checkpoint file"):
        load_ctc_checkpoint(tmp_path / "missing.pt")
    payload = torch.load(path, weights_only=True)
    payload["phonemes"] = payload["phonemes"][::-1]            # ids would mean other phonemes
    atomic_torch_save(payload, tmp_path / "swapped.pt")
    with pytest.raises(CtcCheckpointError, match="does not match the config, codec id and phonemes"):
        load_ctc_checkpoint(tmp_path / "swapped.pt")
    payload = torch.load(path, weights_only=True)
    payload["state_dict"]["head.bias"] = payload["state_dict"]["head.bias"] + 1
    atomic_torch_save(payload, tmp_path / "edited.pt")
    with pytest.raises(CtcCheckpointError, match="weights do not match recognizer id"):
        load_ctc_checkpoint(tmp_path / "edited.pt")
    payload = torch.load(path, weights_only=True)
    payload["format"] = "lsm-factorizer"
    atomic_torch_save(payload, tmp_path / "other.pt")
    with pytest.raises(CtcCheckpointError, match="not a ctc recognizer checkpoint"):
        load_ctc_checkpoint(tmp_path / "other.pt")
    with pytest.raises(ValueError, match="needs 4 classes"):
        save_ctc_checkpoint(tmp_path / "bad.pt", model, cfg, codec_id=CODEC_ID, phonemes=["a", "b"])
