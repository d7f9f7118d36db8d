"""The S2S training job on a tiny real lake: the pairs, the step, the checkpoint, and (slow) Ray Train with resume.

The tiny lake's segment ``i`` has text_id ``s{i % 4}``, language en (even ``i``) / cs (odd), speaker ``t:{i % 3}``
and environment clean (even) / room (odd), so the target voice ``t:0`` clean (segments 0, 6, 12) speaks
(en, s0) and (en, s2) only: every cs item has no target.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from models.s2s import load_s2s_checkpoint, s2s_tiny_test
from models.s2s.checkpoint import S2SCheckpointError
from pipelines.s2s_pairs import (index_s2s_pairs, pair_targets, read_target_codes, read_target_speakers,
                                 read_valid_pairs)
from pipelines.train_input import plan_epoch, read_training_batch
from schemas.train_s2s import TrainS2SConfig
from tests.models import one_torch_thread  # noqa: F401  (autouse: one intra-op thread)
from tests.train_input_lake import CODEC, FACTORIZER, train_input_lake

ROOT = Path(__file__).resolve().parents[2]
TARGET = "speaker = 't:0' AND environment = 'clean'"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return train_input_lake(tmp_path_factory.mktemp("train_s2s"))


def _config(lake: str, out: Path, *, max_frames: int = 70, **training) -> TrainS2SConfig:
    return TrainS2SConfig.model_validate({
        "input": {"lake_root": lake, "codec_id": CODEC, "real_filter": "split = 'train'", "max_frames": max_frames,
                  "crop": "start", "batch_size": 4, "synthetic_per_real": 1, "rows_per_block": 8},
        "target_filter": TARGET, "target_voice": "t0_clean", "valid_filter": "split = 'valid'",
        "output_dir": str(out), "preset": None, "eval": None,  # tests/pipelines/test_eval_s2s.py judges
        "model": {**s2s_tiny_test().model_dump(), "codebook_size": 4096},  # synthetic codes: 2000+
        "training": {"max_steps": 6, "checkpoint_every_steps": 3, "valid_every_steps": 3, "log_every_steps": 3,
                     "lr_warmup_steps": 1, **training}})


def test_pairs_share_language_and_text_with_the_first_target_row(tiny, tmp_path):
    lake, segs, recipes = tiny
    cfg = _config(lake, tmp_path / "out").input.model_copy(update={"factorizer_id": FACTORIZER})
    index = index_s2s_pairs(cfg, TARGET)
    by_id = {s["segment_id"]: s for s in segs}
    voice = sorted((s for s in segs if s["speaker"] == "t:0" and s["environment"] == "clean"),
                   key=lambda s: s["segment_id"])
    first = {}
    for s in voice:
        first.setdefault((s["language"], s["text_id"]), s["segment_id"])
    content = {f"syn{j:03d}": r["content"] for j, r in enumerate(recipes)}
    for table, source_of in ((index.real, by_id), (index.synthetic, content)):
        for key, target in zip(table.column("key").to_pylist(), table.column("target_key").to_pylist()):
            src, tgt = source_of[key], by_id[target]
            assert (tgt["language"], tgt["text_id"]) == (src["language"], src["text_id"])
            assert tgt["segment_id"] == first[(src["language"], src["text_id"])]  # the first by segment_id
            assert key != target
    train = [s for s in segs if s["split"] == "train"]
    want_real = {s["segment_id"] for s in train if (s["language"], s["text_id"]) in first} - set(first.values())
    assert set(index.real.column("key").to_pylist()) == want_real
    assert set(index.synthetic.column("key").to_pylist()) == {"syn000", "syn002", "syn004"}
    assert index.dropped["real items whose text the target voice lacks"] == 6  # the cs rows
    assert index.dropped["synthetic items whose text the target voice lacks"] == 2
    assert index.dropped["target rows (not paired with themselves)"] == len(set(first.values()) & {
        s["segment_id"] for s in train})
    targets = pair_targets(index)
    items = np.arange(index.n_real + index.n_synthetic)
    codes, lengths = read_target_codes(targets, items)
    keys = index.real.column("target_key").to_pylist() + index.synthetic.column("target_key").to_pylist()
    rows = [next(i for i, s in enumerate(segs) if s["segment_id"] == k) for k in keys]
    for n, (row, length) in enumerate(zip(rows, lengths)):  # stage 0 of real row i at frame t: (7 i + t) % 1000
        assert length == math.ceil(segs[row]["duration_s"] * 50)
        assert codes[n, :length, 0].tolist() == [(7 * row + t) % 1000 for t in range(length)]
        assert not codes[n, length:].any()
    speaker = read_target_speakers(targets, items)  # every speaker vector of segment i is i + 0.5
    assert speaker.shape == (len(items), 64) and np.allclose(speaker[:, 0], np.array(rows) + 0.5)


def test_recombined_rows_in_the_target_voice_are_targets_of_sentences_it_never_recorded(tmp_path):
    """A synthetic row with t:0's voice in a clean room on cs content (the real t:0 clean rows speak en only)
    becomes the target of every item of that cs sentence, itself excepted; real targets keep priority."""
    from tests.train_input_lake import write_synthetic

    lake, segs, recipes = train_input_lake(tmp_path)
    extra = {"content": segs[1], "donors": {"speaker": segs[0], "environment": segs[0]}, "frames": 25}
    write_synthetic(lake, recipes + [extra])  # syn008: (cs, s1) in t:0, clean
    cfg = _config(lake, tmp_path / "out").input
    plain = index_s2s_pairs(cfg, TARGET)
    target_filter = "passed AND target_speaker = 't:0' AND target_environment = 'clean'"
    index = index_s2s_pairs(cfg, TARGET, synthetic_target_filter=target_filter)
    assert "synthetic" in index.versions
    cs_s1 = {s["segment_id"] for s in segs[:12] if (s["language"], s["text_id"]) == ("cs", "s1")}
    real_keys = index.real.column("key").to_pylist()
    assert set(real_keys) == set(plain.real.column("key").to_pylist()) | cs_s1
    by_key = dict(zip(real_keys, zip(index.real.column("target_key").to_pylist(),
                                     index.real.column("target_origin").to_pylist())))
    assert all(by_key[k] == ("syn008", 1) for k in cs_s1)
    extra_own = {"content": segs[5], "donors": {"speaker": segs[0], "environment": segs[0]}, "frames": 25}
    write_synthetic(lake, recipes + [extra, extra_own])  # syn009: segment 5's own (cs, s1) in t:0, clean
    again = index_s2s_pairs(cfg, TARGET, synthetic_target_filter=target_filter)
    own = dict(zip(again.real.column("key").to_pylist(), again.real.column("target_key").to_pylist()))
    assert own[segs[5]["segment_id"]] == "syn009"  # its own swap, frame for frame
    assert all(own[k] == "syn008" for k in cs_s1 - {segs[5]["segment_id"]})  # else the first of the sentence
    before = dict(zip(plain.real.column("key").to_pylist(), plain.real.column("target_key").to_pylist()))
    assert all(by_key[k] == (t, 0) for k, t in before.items())  # a recording beats a swap
    # syn002 (t:0 voice on en s2 content) is a synthetic target too, but the real t:0 rows of (en, s2) come first
    assert "syn008" not in index.synthetic.column("key").to_pylist()  # never its own target
    targets = pair_targets(index)
    items = np.array([real_keys.index(k) for k in sorted(cs_s1)])
    codes, lengths = read_target_codes(targets, np.concatenate([items, [0]]))
    assert lengths[:-1].tolist() == [25] * len(items)  # syn008: stage 0 is 2000 + 10 * 8 + t
    assert codes[0, :25, 0].tolist() == [2080 + t for t in range(25)]
    first = by_key[real_keys[0]][0]
    row = next(i for i, s in enumerate(segs) if s["segment_id"] == first)
    assert codes[-1, :lengths[-1], 0].tolist() == [(7 * row + t) % 1000 for t in range(lengths[-1])]
    valid = read_valid_pairs(cfg, "split = 'valid'", TARGET, versions=None, rows=10, batch_size=4,
                             with_speaker=False, synthetic_target_filter=target_filter)
    assert sum(len(b["lengths"]) for b in valid) == 2  # segment 12 (en, s0: real target), 13 (cs, s1: syn008)
    with pytest.raises(Exception, match="synthetic_target_filter"):
        index_s2s_pairs(cfg, TARGET, synthetic_target_filter="target_speaker = = 1")


def test_no_pairs_and_a_bad_target_filter_are_one_line_errors(tiny, tmp_path):
    from pipelines.s2s_pairs import NoPairsError
    from schemas.train_input import TrainInputError

    cfg = _config(tiny[0], tmp_path / "out").input
    cs_only = cfg.model_copy(update={"real_filter": "split = 'train' AND language = 'cs'", "synthetic_per_real": 0})
    with pytest.raises(NoPairsError, match="no real item"):
        index_s2s_pairs(cs_only, TARGET)  # the target voice speaks en only
    for bad in ("speaker = = 1", "speaker = 'nobody'"):
        with pytest.raises(TrainInputError, match="target_filter") as err:
            index_s2s_pairs(cfg, bad)
        assert "\n" not in str(err.value) and "real_filter" not in str(err.value)


def _recipe(lake: str, out: Path, *, speaker: bool = False, **kw):
    from pipelines.run_outputs import RunOutputs
    from pipelines.train_s2s import S2SRecipe, _pairing, model_config_for

    cfg = _config(lake, out, max_steps=40, learning_rate=0.01, **kw)
    if speaker:
        cfg = cfg.model_copy(update={"condition_on_target_speaker": True, "input": cfg.input.model_copy(
            update={"factorizer_id": FACTORIZER})})
    index = index_s2s_pairs(cfg.input, cfg.target_filter)
    valid = read_valid_pairs(cfg.input, cfg.valid_filter, cfg.target_filter, versions=index.versions, rows=10,
                             batch_size=4, with_speaker=speaker)
    loop = {"config": cfg.model_dump(mode="json"), "model_config": model_config_for(cfg).model_dump(mode="json"),
            "s2s_id": "x", "codec_id": CODEC, "versions": index.versions, "pairing": _pairing(cfg),
            "start_step": 0, "targets": pair_targets(index), "valid": valid}
    return S2SRecipe(cfg, loop, RunOutputs(str(out), cfg.input.storage), world=1), index


def _batch(index) -> dict[str, np.ndarray]:
    plan = plan_epoch(index, 0)
    return read_training_batch({c: plan.column(c).to_numpy() for c in plan.column_names},
                               sources={"latents": (index.uris["latents"], index.versions["latents"]),
                                        "synthetic": (index.uris["synthetic"], index.versions["synthetic"])},
                               max_frames=index.config.max_frames, num_stages=index.num_stages)


def test_the_step_keeps_whole_rows_with_short_targets_and_learns_on_a_repeated_batch(tiny, tmp_path):
    recipe, index = _recipe(tiny[0], tmp_path / "out")
    batch = _batch(index)
    targets = recipe.targets.num_frames[batch["item"]]
    whole = batch["num_frames"] == batch["lengths"]
    assert 0 < whole.sum() < len(whole)  # rows longer than 70 frames are cropped: dropped
    assert recipe.keep(batch).tolist() == np.flatnonzero(whole & (targets <= 70)).tolist()
    short, short_index = _recipe(tiny[0], tmp_path / "short", max_frames=60)  # the s2 target (65 frames) is out
    short_batch = _batch(short_index)
    short_whole = short_batch["num_frames"] == short_batch["lengths"]
    short_targets = short.targets.num_frames[short_batch["item"]]
    assert (short_whole & (short_targets > 60)).any()
    assert short.keep(short_batch).tolist() == np.flatnonzero(short_whole & (short_targets <= 60)).tolist()
    first = recipe.train_step(batch, 0)
    assert first["kept"] == pytest.approx(len(recipe.keep(batch)) / len(whole))
    for step in range(1, 40):
        last = recipe.train_step(batch, step)
    assert last["total"] < 0.6 * first["total"] and last["accuracy"] > first["accuracy"]
    valid = recipe.validate()
    assert set(valid) == {"total", "accuracy"} and math.isfinite(valid["total"])

    ckpt = tmp_path / "c.pt"
    recipe.save_checkpoint(ckpt, step=40, train_seconds=1.0, extra={"valid_total": valid["total"]})
    model, config, meta = load_s2s_checkpoint(ckpt, expected_codec_id=CODEC)
    assert meta.step == 40 and meta.extra["versions"] == index.versions and meta.target_voice == "t0_clean"
    assert meta.extra["pairing"]["target_filter"] == TARGET and config.speaker_dim == 0
    keep = recipe.keep(batch)
    codes = torch.from_numpy(batch["codes"][keep].astype(np.int64))
    lengths = torch.from_numpy(batch["lengths"][keep])
    target_lengths = torch.from_numpy(recipe.targets.num_frames[batch["item"][keep]])
    recipe.s2s.eval()
    with torch.no_grad():
        assert torch.equal(model(codes, lengths, target_lengths).logits, recipe.s2s(codes, lengths,
                                                                                   target_lengths).logits)


def test_conditioning_on_the_target_speaker_feeds_its_vector(tiny, tmp_path):
    recipe, index = _recipe(tiny[0], tmp_path / "out", speaker=True)
    assert recipe.model_config.speaker_dim == 64 and recipe.loop_config["valid"][0]["speaker"].shape == (1, 64)
    terms = recipe.train_step(_batch(index), 0)
    assert math.isfinite(terms["total"]) and terms["kept"] > 0
    assert recipe.s2s.speaker_proj.weight.grad is not None and recipe.s2s.speaker_proj.weight.grad.abs().sum() > 0


def test_valid_pairs_are_whole_rows_of_the_valid_split(tiny, tmp_path):
    lake, segs, _ = tiny
    cfg = _config(lake, tmp_path / "out")
    valid = read_valid_pairs(cfg.input, "split = 'valid'", TARGET, versions=None, rows=10, batch_size=4,
                             with_speaker=False)
    assert sum(len(b["lengths"]) for b in valid) == 1  # segment 12 (en, s0); 13 is cs
    assert valid[0]["lengths"].tolist() == [math.ceil(segs[12]["duration_s"] * 50)]  # 110 > max_frames: whole
    assert read_valid_pairs(cfg.input, "split = 'nope'", TARGET, versions=None, rows=10, batch_size=4,
                            with_speaker=False) == []


@pytest.mark.parametrize("bad, word", [({"input": {"codec_id": "x", "epochs": 3}}, "epochs"),
                                       ({"input": {"codec_id": "x"}, "condition_on_target_speaker": True},
                                        "factorizer_id"),
                                       ({"input": {"codec_id": "x"}, "target_filtr": "x"}, "target_filtr"),
                                       ({"input": {"codec_id": "x"}}, "codec_checkpoint")])  # eval decodes audio
def test_bad_config_exits_2_with_one_line(tmp_path, bad, word):
    path = tmp_path / "train_s2s.yaml"
    path.write_text(yaml.safe_dump(bad))
    out = subprocess.run([sys.executable, str(ROOT / "jobs/train_s2s.py"), "--config", str(path)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and word in out.stderr and "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) <= 2


@pytest.mark.slow  # ~60-90 s: two TorchTrainer start/stops
@pytest.mark.integration
def test_ray_train_run_resumes_and_refuses_another_model(tiny, tmp_path, ray_session):
    from pipelines.train_s2s import run_train_s2s

    lake = tiny[0]
    out = tmp_path / "out"
    first = run_train_s2s(_config(lake, out), progress=lambda _: None)
    assert (first.start_step, first.end_step) == (0, 6) and first.valid_pairs == 1
    assert set(first.last_valid) == {"total", "accuracy"}
    history = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in history if "valid_accuracy" in r] == [3, 6]
    assert (out / "loss_curve.png").exists()
    second = run_train_s2s(_config(lake, out, max_steps=9), progress=lambda _: None)
    assert (second.start_step, second.end_step) == (6, 9) and second.versions == first.versions
    again = run_train_s2s(_config(lake, out, max_steps=9), progress=lambda _: None)
    assert again.already_complete and again.end_step == 9
    other = _config(lake, out).model_copy(update={"model": s2s_tiny_test().model_copy(update={"codebook_size": 5000})})
    with pytest.raises(S2SCheckpointError, match="use another output_dir"):
        run_train_s2s(other, progress=lambda _: None)
    retarget = _config(lake, out, max_steps=12).model_copy(update={"target_filter": TARGET + " AND split = 'train'"})
    with pytest.raises(S2SCheckpointError, match="use another output_dir"):
        run_train_s2s(retarget, progress=lambda _: None)
