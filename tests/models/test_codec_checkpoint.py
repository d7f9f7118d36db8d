"""Checkpoints reload to bit-identical codes; bad files and wrong codec ids fail with one clear line."""

from __future__ import annotations

import pytest
import torch

from models.codec import (CheckpointError, architecture_id, build_codec, codec_id_for, codec_tiny_test,
                          export_checkpoint, load_checkpoint, preset, save_checkpoint, weights_digest)
from tests.models import one_torch_thread  # noqa: F401  (autouse: one intra-op thread)


@pytest.fixture()
def saved(tmp_path):
    torch.manual_seed(0)
    cfg = codec_tiny_test()
    codec = build_codec(cfg)
    opt = torch.optim.Adam(codec.parameters(), lr=1e-3)
    wav = 0.1 * torch.randn(2, 1600)
    codec(wav).recon.pow(2).mean().backward()
    opt.step()
    path = save_checkpoint(tmp_path / "ckpt" / "codec.pt", codec, cfg, codec_id=codec_id_for(cfg), step=7,
                           optimizer_state=opt.state_dict(), extra={"samples_seen": 3200})
    return path, codec.eval(), cfg, wav


def test_reload_gives_bit_identical_codes_and_audio(saved):
    path, codec, cfg, wav = saved
    loaded, loaded_cfg, meta = load_checkpoint(path)
    assert loaded_cfg == cfg and meta.architecture_id == codec_id_for(cfg) and meta.step == 7
    assert meta.codec_id == f"{codec_id_for(cfg)}-w{weights_digest(codec.state_dict())}"
    assert load_checkpoint(path, expected_codec_id=meta.codec_id)[2].codec_id == meta.codec_id
    assert meta.extra == {"samples_seen": 3200} and meta.optimizer_state["state"]
    assert not loaded.training
    assert torch.equal(loaded.encode(wav).codes, codec.encode(wav).codes)
    codes = codec.encode(wav).codes
    assert torch.equal(loaded.decode(codes), codec.decode(codes))
    assert [p.name for p in path.parent.iterdir()] == ["codec.pt"]  # the atomic write left no temp file
    assert path.stat().st_mode & 0o044 == 0o044  # readable by others (mkstemp's 0600 undone)


def test_optimizer_state_resumes(saved):
    path, _, _, _ = saved
    model, _, meta = load_checkpoint(path)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    opt.load_state_dict(meta.optimizer_state)
    assert opt.state_dict()["state"][0]["step"] == 1


def _one_line(exc: pytest.ExceptionInfo) -> str:
    msg = str(exc.value)
    assert "\n" not in msg
    return msg


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty"])
def test_corrupt_checkpoint_is_a_clear_error(saved, damage):
    path = saved[0]
    data = path.read_bytes()
    path.write_bytes({"truncate": data[: len(data) // 2], "garbage": b"\x00not a checkpoint" * 50, "empty": b""}[damage])
    with pytest.raises(CheckpointError, match="not a readable checkpoint") as exc:
        load_checkpoint(path)
    assert str(path) in _one_line(exc)


def test_wrong_codec_id_is_a_clear_error(saved):
    path, _, cfg, _ = saved
    with pytest.raises(CheckpointError, match=r"checkpoint is codec 'codec_tiny_test-[0-9a-f]{12}-w[0-9a-f]{10}', "
                                              r"expected 'codec_50hz_2x8555-") as exc:
        load_checkpoint(path, expected_codec_id=codec_id_for(preset("codec_50hz_2x8555")))
    _one_line(exc)


def test_edited_config_or_foreign_file_is_a_clear_error(saved, tmp_path):
    path = saved[0]
    payload = torch.load(path, weights_only=True)
    payload["config"]["decoder"]["channels"] = 4
    torch.save(payload, tmp_path / "edited.pt")
    with pytest.raises(CheckpointError, match="does not match the config stored with it") as exc:
        load_checkpoint(tmp_path / "edited.pt")
    _one_line(exc)
    torch.save({"weights": torch.zeros(3)}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="not a codec checkpoint"):
        load_checkpoint(tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="no such checkpoint file"):
        load_checkpoint(tmp_path / "missing.pt")


def test_save_refuses_a_mismatched_codec_id(tmp_path):
    cfg = codec_tiny_test()
    with pytest.raises(ValueError, match="does not match the config's id"):
        save_checkpoint(tmp_path / "c.pt", build_codec(cfg), cfg, codec_id="codec_tiny_test-000000000000")


def test_new_weights_get_a_new_codec_id_so_old_latents_are_never_decoded_with_them(saved, tmp_path):
    """Same architecture, other weights (longer training, fp16 export): another id, so encode re-encodes."""
    path, codec, cfg, wav = saved
    first = load_checkpoint(path)[2].codec_id
    with torch.no_grad():
        next(codec.parameters()).add_(1e-3)
    second = load_checkpoint(save_checkpoint(tmp_path / "b.pt", codec, cfg, step=8))[2].codec_id
    half = load_checkpoint(export_checkpoint(path, tmp_path / "half.pt"))[2].codec_id
    assert len({first, second, half}) == 3
    assert {architecture_id(i) for i in (first, second, half)} == {codec_id_for(cfg)}


def test_weights_that_do_not_match_the_id_are_a_clear_error(saved, tmp_path):
    path = saved[0]
    payload = torch.load(path, weights_only=True)
    name = next(iter(payload["state_dict"]))
    payload["state_dict"][name] = payload["state_dict"][name] + 1.0
    torch.save(payload, tmp_path / "tampered.pt")
    with pytest.raises(CheckpointError, match=r"weights do not match codec id 'codec_tiny_test-\w+-w\w+' "
                                              r"\(modified or damaged file\)") as exc:
        load_checkpoint(tmp_path / "tampered.pt")
    _one_line(exc)


def test_a_checkpoint_from_before_the_weights_digest_still_loads(saved, tmp_path):
    path, codec, cfg, wav = saved
    payload = torch.load(path, weights_only=True)
    payload["codec_id"] = codec_id_for(cfg)
    torch.save(payload, tmp_path / "legacy.pt")
    loaded, _, meta = load_checkpoint(tmp_path / "legacy.pt")
    assert meta.codec_id == meta.architecture_id == codec_id_for(cfg)
    assert torch.equal(loaded.encode(wav).codes, codec.encode(wav).codes)
