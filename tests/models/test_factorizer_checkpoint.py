"""Factorizer checkpoints reload to bit-identical outputs; every bad file or id fails with one clear line."""

from __future__ import annotations

import pytest
import torch

from models.checkpoint_io import atomic_torch_save, canonical_json, sha256_hex, weights_digest
from models.codec import build_codec, codec_tiny_test, save_checkpoint
from models.factorizer import (FactorizerBatch, FactorizerCheckpointError, build_factorizer, build_factorizer_loss,
                               export_factorizer_checkpoint, factorizer_default, factorizer_id_for,
                               factorizer_tiny_test, load_factorizer_checkpoint, make_optimizer,
                               save_factorizer_checkpoint, train_step)
from tests.models import one_torch_thread  # noqa: F401  (autouse: one intra-op thread)

CODEC_ID = "codec_50hz_2x8555-0123456789ab"
VOCAB = {"speaker": ["espeak-ng:en", "flite:slt", "festival:kal"], "channel": ["clean", "telephone"]}


@pytest.fixture()
def saved(tmp_path):
    torch.manual_seed(0)
    cfg = factorizer_tiny_test().with_label_vocab(VOCAB)
    model = build_factorizer(cfg)
    opt = make_optimizer(model, learning_rate=1e-3)
    latent = torch.rand(2, 4, 30) * 2 - 1
    lengths = torch.tensor([30, 22])
    batch = FactorizerBatch(latent=latent, lengths=lengths, speaker=torch.tensor([0, 2]), channel=torch.tensor([1, 0]))
    train_step(model, build_factorizer_loss(), opt, batch, grad_clip_norm=1.0)
    path = save_factorizer_checkpoint(tmp_path / "ckpt" / "factorizer.pt", model, cfg, codec_id=CODEC_ID,
                                      label_vocab=VOCAB, factorizer_id=factorizer_id_for(cfg, CODEC_ID), step=7,
                                      optimizer_state=opt.state_dict(), extra={"rows_seen": 14})
    return path, model.eval(), cfg, latent, lengths


def _outputs(model, latent, lengths):
    with torch.no_grad():
        out = model(latent, lengths, swap_cycle=True)
    return [out.recon, out.encoding.content, out.encoding.speaker, out.encoding.channel, out.logits.speaker,
            out.adversary_logits, out.cycle.recon]


def test_reload_gives_bit_identical_outputs(saved):
    path, model, cfg, latent, lengths = saved
    loaded, loaded_cfg, meta = load_factorizer_checkpoint(path, expected_codec_id=CODEC_ID)
    assert loaded_cfg == cfg and not loaded.training
    assert (meta.architecture_id, meta.codec_id, meta.step) == (factorizer_id_for(cfg, CODEC_ID), CODEC_ID, 7)
    assert meta.factorizer_id == f"{factorizer_id_for(cfg, CODEC_ID)}-w{weights_digest(model.state_dict())}"
    assert load_factorizer_checkpoint(path, expected_factorizer_id=meta.factorizer_id)[2].step == 7
    assert meta.label_vocab == VOCAB and meta.extra == {"rows_seen": 14} and meta.torch_version == torch.__version__
    for a, b in zip(_outputs(loaded, latent, lengths), _outputs(model, latent, lengths)):
        assert torch.equal(a, b)
    assert [p.name for p in path.parent.iterdir()] == ["factorizer.pt"]  # the atomic write left no temp file
    assert path.stat().st_mode & 0o777 == 0o644


def test_optimizer_state_resumes(saved):
    model, _, meta = load_factorizer_checkpoint(saved[0])
    opt = make_optimizer(model, learning_rate=1e-3)
    opt.load_state_dict(meta.optimizer_state)
    assert opt.state_dict()["state"][0]["step"] == 1


def test_export_is_fp16_without_optimizer_and_loads(saved, tmp_path):
    path, model, cfg, latent, lengths = saved
    dst = export_factorizer_checkpoint(path, tmp_path / "shipped.pt", note="test export")
    assert dst.stat().st_size < path.stat().st_size
    stored = torch.load(dst, weights_only=True)
    assert stored["optimizer_state"] is None
    assert {v.dtype for v in stored["state_dict"].values() if v.is_floating_point()} == {torch.float16}
    loaded, _, meta = load_factorizer_checkpoint(dst, expected_codec_id=CODEC_ID)
    assert meta.architecture_id == factorizer_id_for(cfg, CODEC_ID) and meta.label_vocab == VOCAB
    assert meta.factorizer_id != load_factorizer_checkpoint(path)[2].factorizer_id  # fp16 weights: another id
    assert meta.extra == {"rows_seen": 14, "exported_from_step": 7, "exported_dtype": "float16", "note": "test export"}
    assert next(loaded.parameters()).dtype == torch.float32
    with torch.no_grad():
        a, b = loaded.encode(latent, lengths), model.encode(latent, lengths)
    assert torch.allclose(a.speaker, b.speaker, atol=2e-2)


def test_id_depends_on_config_and_codec():
    cfg = factorizer_tiny_test()
    ids = {factorizer_id_for(cfg, CODEC_ID), factorizer_id_for(cfg, "codec_other-000000000000"),
           factorizer_id_for(cfg.with_label_vocab(VOCAB), CODEC_ID), factorizer_id_for(factorizer_default(), CODEC_ID)}
    assert len(ids) == 4 and factorizer_id_for(factorizer_tiny_test(), CODEC_ID) in ids
    assert all(i.split("-")[0].startswith("factorizer_") and len(i.split("-")[-1]) == 12 for i in ids)


def _one_line(exc: pytest.ExceptionInfo, path) -> str:
    msg = str(exc.value)
    assert "\n" not in msg and str(path) in msg
    return msg


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty"])
def test_corrupt_checkpoint_is_a_clear_error(saved, damage):
    path = saved[0]
    data = path.read_bytes()
    damaged = {"truncate": data[: len(data) // 2], "garbage": b"\x00not a checkpoint" * 50, "empty": b""}
    path.write_bytes(damaged[damage])
    with pytest.raises(FactorizerCheckpointError, match="not a readable checkpoint") as exc:
        load_factorizer_checkpoint(path)
    _one_line(exc, path)


def test_missing_file_and_foreign_files_are_clear_errors(tmp_path):
    with pytest.raises(FactorizerCheckpointError, match="no such checkpoint file") as exc:
        load_factorizer_checkpoint(tmp_path / "missing.pt")
    _one_line(exc, tmp_path / "missing.pt")
    codec_cfg = codec_tiny_test()
    codec_path = save_checkpoint(tmp_path / "codec.pt", build_codec(codec_cfg), codec_cfg)
    with pytest.raises(FactorizerCheckpointError,
                       match=r"not a factorizer checkpoint \(it is a 'lsm-codec' checkpoint\)") as exc:
        load_factorizer_checkpoint(codec_path)
    _one_line(exc, codec_path)
    torch.save({"weights": torch.zeros(3)}, tmp_path / "other.pt")
    with pytest.raises(FactorizerCheckpointError, match="not a factorizer checkpoint: no format="):
        load_factorizer_checkpoint(tmp_path / "other.pt")


def _edit(saved, tmp_path, edit) -> object:
    payload = torch.load(saved[0], weights_only=True)
    edit(payload)
    return atomic_torch_save(payload, tmp_path / "edited.pt")


@pytest.mark.parametrize("edit,message", [
    (lambda p: p["config"].update(hidden_dim=8), "factorizer id '.*' does not match the config and codec id stored"),
    (lambda p: p.update(codec_id="codec_other-000000000000"), "does not match the config and codec id stored"),
    (lambda p: p.pop("label_vocab"), "factorizer checkpoint lacks label_vocab"),
    (lambda p: p.update(version=2), "checkpoint format version 2, this code reads 1"),
    (lambda p: p["state_dict"].pop("out_proj.bias"),
     r"weights do not fit factorizer '.*': 1 missing key\(s\) \(first: out_proj.bias\)"),
    (lambda p: p["state_dict"].update({"out_proj.bias": torch.zeros(5)}),
     r"1 tensor\(s\) of another shape \(first: out_proj.bias is \[5\], the model's is \[4\]\)"),
    (lambda p: p["state_dict"].update({"extra.weight": torch.zeros(1)}),
     r"1 unexpected key\(s\) \(first: extra.weight\)"),
    (lambda p: p.update(state_dict=[1, 2]), "state_dict is not a mapping of names to tensors"),
    (lambda p: p["label_vocab"].update(speaker=["a"]), "label vocab of speaker has 1 labels, the model has 3 classes"),
], ids=["config", "codec_id", "no_vocab", "version", "missing_key", "shape", "unexpected_key", "not_a_dict", "vocab"])
def test_edited_checkpoint_is_a_clear_error(saved, tmp_path, edit, message):
    path = _edit(saved, tmp_path, edit)
    with pytest.raises(FactorizerCheckpointError, match=message) as exc:
        load_factorizer_checkpoint(path)
    _one_line(exc, path)


def test_config_this_code_cannot_build_is_a_clear_error(saved, tmp_path):
    def edit(payload):  # a consistent id over a config that does not validate (e.g. from a newer version)
        payload["config"]["kernel_size"] = 4
        text = canonical_json(payload["config"]) + payload["codec_id"]
        payload["factorizer_id"] = f"{payload['config']['name']}-{sha256_hex(text)}"

    path = _edit(saved, tmp_path, edit)
    with pytest.raises(FactorizerCheckpointError, match="stored config does not validate: .*kernel_size must be odd"):
        load_factorizer_checkpoint(path)


def test_wrong_codec_or_factorizer_id_is_a_clear_error(saved):
    path, _, cfg, _, _ = saved
    fid = load_factorizer_checkpoint(path)[2].factorizer_id
    with pytest.raises(FactorizerCheckpointError, match=rf"factorizer '{fid}' was trained on codec '{CODEC_ID}', "
                                                        r"the latents are codec 'codec_other-0+'") as exc:
        load_factorizer_checkpoint(path, expected_codec_id="codec_other-000000000000")
    _one_line(exc, path)
    with pytest.raises(FactorizerCheckpointError, match=rf"checkpoint is factorizer '{fid}', expected 'f-1'") as exc:
        load_factorizer_checkpoint(path, expected_factorizer_id="f-1")
    _one_line(exc, path)


def test_save_refuses_a_wrong_id_or_vocab(tmp_path):
    cfg = factorizer_tiny_test()
    model = build_factorizer(cfg)
    with pytest.raises(ValueError, match="does not match the config and codec id's"):
        save_factorizer_checkpoint(tmp_path / "f.pt", model, cfg, codec_id=CODEC_ID, factorizer_id="x-000000000000")
    with pytest.raises(ValueError, match="label vocab of style has 1 labels, the model has 2 classes"):
        save_factorizer_checkpoint(tmp_path / "f.pt", model, cfg, codec_id=CODEC_ID, label_vocab={"style": ["calm"]})
    with pytest.raises(ValueError, match="label vocab for unknown factor 'content'"):
        save_factorizer_checkpoint(tmp_path / "f.pt", model, cfg, codec_id=CODEC_ID, label_vocab={"content": []})
    assert not list(tmp_path.iterdir())


def test_a_failed_save_keeps_the_previous_checkpoint(saved):
    path = saved[0]
    before = path.read_bytes()
    with pytest.raises(Exception):
        atomic_torch_save({"unpicklable": lambda: None}, path)
    assert path.read_bytes() == before and [p.name for p in path.parent.iterdir()] == ["factorizer.pt"]


def test_weights_that_do_not_match_the_id_are_a_clear_error(saved, tmp_path):
    path = saved[0]
    payload = torch.load(path, weights_only=True)
    name = next(iter(payload["state_dict"]))
    payload["state_dict"][name] = payload["state_dict"][name] + 1.0
    torch.save(payload, tmp_path / "tampered.pt")
    with pytest.raises(FactorizerCheckpointError, match="weights do not match factorizer id") as exc:
        load_factorizer_checkpoint(tmp_path / "tampered.pt")
    _one_line(exc, tmp_path / "tampered.pt")
