"""The generator's training job on a tiny real lake: the step and validation (no Ray), and (slow) Ray Train + resume."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from models.generator import generator_tiny_test, load_generator_checkpoint
from models.generator.checkpoint import GeneratorCheckpointError
from pipelines.ctc_targets import build_phoneme_targets
from pipelines.phonemes import Phonemizer
from pipelines.train_input import index_training_rows, plan_epoch, read_training_batch
from schemas.train_generator import TrainGeneratorConfig
from tests.models import one_torch_thread  # noqa: F401  (autouse: one intra-op thread)
from tests.train_input_lake import CODEC, FACTORIZER, train_input_lake

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def lake(tmp_path_factory):
    return train_input_lake(tmp_path_factory.mktemp("train_generator"))[0]


def _config(lake: str, out: Path, **training) -> TrainGeneratorConfig:
    return TrainGeneratorConfig.model_validate({
        "input": {"lake_root": lake, "codec_id": CODEC, "factorizer_id": FACTORIZER, "max_frames": 40,
                  "crop": "start", "batch_size": 4, "synthetic_per_real": 1, "rows_per_block": 8},
        "valid_filter": "split = 'valid'", "output_dir": str(out), "phoneme_cache": str(out.parent / "ph"),
        "preset": None, "model": {**generator_tiny_test().model_dump(), "codebook_size": 4096},  # synthetic: 2000+
        "training": {"max_steps": 6, "checkpoint_every_steps": 3, "valid_every_steps": 3, "log_every_steps": 3,
                     "lr_warmup_steps": 1, "valid_rows": 8, **training}})


def test_the_step_learns_on_a_repeated_batch_and_validation_scores_whole_valid_rows(lake, tmp_path):
    from pipelines.run_outputs import RunOutputs
    from pipelines.train_generator import GeneratorRecipe, _model_config, valid_batches

    cfg = _config(lake, tmp_path / "out", max_steps=40, learning_rate=0.01)
    index = index_training_rows(cfg.input)
    targets = build_phoneme_targets(index.vocab, [index.real, index.synthetic], Phonemizer())
    valid = valid_batches(cfg, targets, rows=8, batch_size=4)
    assert sum(len(b["lengths"]) for b in valid) == 2 and all("speaker_vector" in b for b in valid)
    mc = _model_config(cfg, targets.inventory.num_classes)
    loop = {"config": cfg.model_dump(mode="json"), "model_config": mc.model_dump(mode="json"), "generator_id": "g",
            "codec_id": CODEC, "factorizer_id": FACTORIZER, "phonemes": list(targets.inventory.symbols),
            "versions": index.versions, "start_step": 0, "targets": targets, "valid": valid}
    recipe = GeneratorRecipe(cfg, loop, RunOutputs(str(tmp_path / "out"), cfg.input.storage), world=1)
    plan = plan_epoch(index, 0).slice(0, 8)
    sources = {n: (index.uris[n], index.versions[n]) for n in ("latents", "synthetic", "factors")}
    batch = read_training_batch({c: plan.column(c).to_numpy() for c in plan.column_names}, sources=sources,
                                max_frames=40, num_stages=index.num_stages)
    whole = (batch["num_frames"] == batch["lengths"]).mean()
    first = recipe.train_step(batch, 0)
    assert first["kept"] == pytest.approx(whole) and 0 < whole < 1
    for step in range(1, 40):
        last = recipe.train_step(batch, step)
    assert last["total"] < 0.6 * first["total"] and last["accuracy"] > first["accuracy"]
    scores = recipe.validate()
    assert set(scores) == {"total", "accuracy"} and np.isfinite(scores["total"])
    path = tmp_path / "g.pt"
    recipe.save_checkpoint(path, step=40, train_seconds=1.0, extra={})
    _, _, meta = load_generator_checkpoint(path, expected_codec_id=CODEC)
    assert meta.step == 40 and meta.factorizer_id == FACTORIZER and meta.extra["versions"] == index.versions


def test_a_config_without_a_factorizer_exits_2(tmp_path):
    bad = tmp_path / "train_generator.yaml"
    bad.write_text(yaml.safe_dump({"input": {"codec_id": "x"}}))
    out = subprocess.run([sys.executable, str(ROOT / "jobs/train_generator.py"), "--config", str(bad)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "factorizer_id" in out.stderr and "Traceback" not in out.stderr


@pytest.mark.slow  # ~60-90 s: two TorchTrainer start/stops
@pytest.mark.integration
def test_ray_train_run_resumes_and_refuses_another_model(lake, tmp_path, ray_session):
    from pipelines.train_generator import run_train_generator

    out = tmp_path / "out"
    first = run_train_generator(_config(lake, out), progress=lambda _: None)
    assert (first.start_step, first.end_step) == (0, 6) and "accuracy" in first.last_valid
    history = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in history if "valid_total" in r] == [3, 6]
    second = run_train_generator(_config(lake, out, max_steps=9), progress=lambda _: None)
    assert (second.start_step, second.end_step) == (6, 9) and second.versions == first.versions
    assert run_train_generator(_config(lake, out, max_steps=9), progress=lambda _: None).already_complete
    other = _config(lake, out).model_copy(update={"model": generator_tiny_test().model_copy(
        update={"codebook_size": 5000})})
    with pytest.raises(GeneratorCheckpointError, match="use another output_dir"):
        run_train_generator(other, progress=lambda _: None)
