"""The CTC recognizer's training job on a tiny real lake: scoring, the step, and (slow) Ray Train with resume."""

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

from models.ctc import build_ctc, ctc_tiny_test, load_ctc_checkpoint
from models.ctc.checkpoint import CtcCheckpointError
from pipelines.ctc_targets import build_phoneme_targets
from pipelines.eval_ctc import load_eval_rows, score_ctc
from pipelines.phonemes import Phonemizer
from pipelines.train_input import index_training_rows, plan_epoch, read_training_batch
from schemas.train_ctc import TrainCtcConfig
from tests.models import one_torch_thread  # noqa: F401  (autouse: one intra-op thread)
from tests.train_input_lake import CODEC, train_input_lake

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def lake(tmp_path_factory):
    return train_input_lake(tmp_path_factory.mktemp("train_ctc"))[0]


def _config(lake: str, out: Path, **training) -> TrainCtcConfig:
    return TrainCtcConfig.model_validate({
        "input": {"lake_root": lake, "codec_id": CODEC, "max_frames": 40, "crop": "start", "batch_size": 4,
                  "synthetic_per_real": 1, "rows_per_block": 8},
        "valid_filter": "split = 'valid'", "output_dir": str(out), "phoneme_cache": str(out.parent / "ph"),
        "preset": None, "model": {**ctc_tiny_test().model_dump(), "codebook_size": 4096},  # synthetic codes: 2000+
        "eval_sets": [{"name": "test", "filter": "split = 'test'"}, {"name": "none", "filter": "split = 'nope'"}],
        "training": {"max_steps": 6, "checkpoint_every_steps": 3, "valid_every_steps": 3, "log_every_steps": 3,
                     "lr_warmup_steps": 1, **training}})


def test_eval_rows_are_whole_rows_with_training_inventory_targets(lake, tmp_path):
    cfg = _config(lake, tmp_path / "out")
    ph = Phonemizer(cache_dir=tmp_path)
    index = index_training_rows(cfg.input)
    inventory = build_phoneme_targets(index.vocab, [index.real], ph).inventory
    rows = load_eval_rows(cfg.input, "split = 'test'", inventory, ph)
    assert len(rows) == 2 and rows.phonemes == sum(len(t) for t in rows.targets) > 0
    assert [len(c) for c in rows.codes] == sorted(len(c) for c in rows.codes)  # by length
    empty = load_eval_rows(cfg.input, "split = 'nope'", inventory, ph)
    assert len(empty) == 0
    net = build_ctc(cfg.model.with_num_classes(inventory.num_classes))
    scores = score_ctc(net, rows)
    assert scores["rows"] == 2 and scores["phonemes"] == rows.phonemes and math.isfinite(scores["loss"])
    assert scores["per"] >= 0
    assert math.isnan(score_ctc(net, empty)["per"])


def test_every_whole_row_keeps_its_full_length_in_eval(lake, tmp_path):
    cfg = _config(lake, tmp_path / "out")
    ph = Phonemizer(cache_dir=tmp_path)
    index = index_training_rows(cfg.input.model_copy(update={"real_filter": "split = 'test'",
                                                              "synthetic_per_real": 0}))
    inventory = build_phoneme_targets(index.vocab, [index.real], ph).inventory
    rows = load_eval_rows(cfg.input, "split = 'test'", inventory, ph)
    want = dict(zip(index.real.column("key").to_pylist(), index.real.column("num_frames").to_pylist()))
    assert {k: len(c) for k, c in zip(rows.keys, rows.codes)} == want  # longer than max_frames 40: not cropped


def _recipe(lake: str, out: Path):
    from pipelines.run_outputs import RunOutputs
    from pipelines.train_ctc import _CtcRecipe, _model_config

    cfg = _config(lake, out, max_steps=40, learning_rate=0.01)
    index = index_training_rows(cfg.input)
    targets = build_phoneme_targets(index.vocab, [index.real, index.synthetic], Phonemizer())
    mc = _model_config(cfg, targets.inventory.num_classes)
    loop = {"config": cfg.model_dump(mode="json"), "model_config": mc.model_dump(mode="json"), "ctc_id": "x",
            "codec_id": CODEC, "phonemes": list(targets.inventory.symbols), "versions": index.versions,
            "start_step": 0, "targets": targets,
            "valid": load_eval_rows(cfg.input, "split = 'valid'", targets.inventory, Phonemizer())}
    return _CtcRecipe(cfg, loop, RunOutputs(str(out), cfg.input.storage), world=1), index


def test_the_step_drops_cropped_windows_and_learns_on_a_repeated_batch(lake, tmp_path):
    recipe, index = _recipe(lake, tmp_path / "out")
    plan = plan_epoch(index, 0).slice(0, 8)
    batch = read_training_batch({c: plan.column(c).to_numpy() for c in plan.column_names},
                                sources={"latents": (index.uris["latents"], index.versions["latents"]),
                                         "synthetic": (index.uris["synthetic"], index.versions["synthetic"])},
                                max_frames=40, num_stages=index.num_stages)
    whole = batch["num_frames"] == batch["lengths"]
    assert 0 < whole.sum() < len(whole)  # the tiny lake has rows longer than 40 frames
    first = recipe.train_step(batch, 0)
    assert first["kept"] == pytest.approx(whole.mean())
    for step in range(1, 40):
        last = recipe.train_step(batch, step)
    assert last["total"] < 0.6 * first["total"]
    valid = recipe.validate()
    assert set(valid) == {"total", "per"} and math.isfinite(valid["total"])
    ckpt = tmp_path / "c.pt"
    recipe.save_checkpoint(ckpt, step=40, train_seconds=1.0, extra={"valid_per": valid["per"]})
    model, _, meta = load_ctc_checkpoint(ckpt, expected_codec_id=CODEC)
    assert meta.step == 40 and meta.extra["versions"] == index.versions
    with torch.no_grad():
        codes = torch.from_numpy(batch["codes"][:2].astype(np.int64))
        lengths = torch.from_numpy(batch["lengths"][:2])
        recipe.recognizer.eval()
        assert torch.equal(model(codes, lengths).log_probs, recipe.recognizer(codes, lengths).log_probs)


def test_bad_config_exits_2_with_one_line(tmp_path):
    bad = tmp_path / "train_ctc.yaml"
    bad.write_text(yaml.safe_dump({"input": {"codec_id": "x", "epochs": 3}}))
    out = subprocess.run([sys.executable, str(ROOT / "jobs/train_ctc.py"), "--config", str(bad)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "epochs" in out.stderr and "Traceback" not in out.stderr


@pytest.mark.slow  # ~60-90 s: two TorchTrainer start/stops
@pytest.mark.integration
def test_ray_train_run_resumes_scores_and_refuses_another_model(lake, tmp_path, ray_session):
    from pipelines.train_ctc import EVAL_FILE, run_train_ctc

    out = tmp_path / "out"
    first = run_train_ctc(_config(lake, out), progress=lambda _: None)
    assert (first.start_step, first.end_step) == (0, 6)
    assert set(first.eval) == {"test", "none"} and first.eval["test"]["rows"] == 2 and first.eval["none"]["rows"] == 0
    history = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in history if "valid_per" in r] == [3, 6]
    second = run_train_ctc(_config(lake, out, max_steps=9), progress=lambda _: None)
    assert (second.start_step, second.end_step) == (6, 9) and second.versions == first.versions
    stored = json.loads((out / EVAL_FILE).read_text())
    assert stored["ctc_id"] == second.ctc_id and stored["step"] == 9
    written = (out / EVAL_FILE).stat().st_mtime_ns
    again = run_train_ctc(_config(lake, out, max_steps=9), progress=lambda _: None)
    assert again.already_complete and again.eval["test"] == second.eval["test"]
    assert (out / EVAL_FILE).stat().st_mtime_ns == written  # the scores of these weights are reused, not redone
    other = _config(lake, out).model_copy(update={"model": ctc_tiny_test().model_copy(update={"codebook_size": 5000})})
    with pytest.raises(CtcCheckpointError, match="use another output_dir"):
        run_train_ctc(other, progress=lambda _: None)
