"""The factorizer training job as users run it: it trains on one codec's latents with labels, an extended run
resumes to the very same weights, a finished run is a no-op, another codec or missing latents fail clearly."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from models.codec import build_codec, codec_tiny_test, load_checkpoint, save_checkpoint
from models.factorizer import load_factorizer_checkpoint
from tests.conftest import ROOT
from tests.jobs.test_train_codec_job import _env
from tests.tiny_lake import segment_row, write_latents, write_segments

PY = sys.executable
JOB = str(ROOT / "jobs" / "train_factorizer.py")
STEPS = 30


def _codec(path: Path, seed: int) -> Path:
    torch.manual_seed(seed)
    return save_checkpoint(path, build_codec(codec_tiny_test()), codec_tiny_test())


@pytest.fixture(scope="module")
def lake(tmp_path_factory):
    root = tmp_path_factory.mktemp("flake")
    lake = root / "lake"
    # rows 3k+1 (t:1) and 3k+2 (t:2) speak sentence k in one room: parallel pairs for the direct swap targets
    rows = [segment_row(0.6 + 0.1 * i, seed=i, speaker=f"t:{i % 3}", split="valid" if i % 3 == 0 else "train",
                        environment=["clean", "room"][(i // 3) % 2], style="neutral", channel="clean",
                        text_id=f"s{i // 3}", language="en") for i in range(12)]
    write_segments(lake, rows)
    codec = _codec(root / "codec.pt", seed=0)
    codec_id = load_checkpoint(codec)[2].codec_id
    write_latents(lake, rows, codec_id=codec_id, stages=2, codebook_size=1000)
    return lake, codec


@pytest.fixture(scope="module")
def ray_address(ray_session) -> str:
    return ray_session.get_runtime_context().gcs_address


def _config(path: Path, lake: Path, codec: Path, out: Path, **training) -> Path:
    path.write_text(yaml.safe_dump({
        "lake_root": str(lake), "codec_checkpoint": str(codec), "output_dir": str(out),
        "preset": "factorizer_tiny_test", "holdout_corpora": [],
        "training": {"max_steps": STEPS, "batch_size": 4, "max_frames": 40, "checkpoint_every_steps": 10,
                     "valid_every_steps": 10, "log_every_steps": 5, "valid_rows": 4, "lr_warmup_steps": 5,
                     "min_label_count": 1, "parallel_pairs": 8, "pairs_per_batch": 1, **training},
        "loss": {"parallel_l1_weight": 1.0, "parallel_mse_weight": 1.0},
        "execution": {"crops_per_block": 16},
    }))
    return path


def _run(cfg: Path, *extra: str, ray_address: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([PY, JOB, "--config", str(cfg), *extra], env=_env(ray_address), capture_output=True,
                          text=True, timeout=300)


@pytest.fixture(scope="module")
def uninterrupted(lake, ray_address, tmp_path_factory):
    lake_root, codec = lake
    out = tmp_path_factory.mktemp("fwhole")
    cfg = _config(out / "f.yaml", lake_root, codec, out / "run")
    r = _run(cfg, "--export", str(out / "shipped.pt"), ray_address=ray_address)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return cfg, out, r.stdout


@pytest.mark.integration
def test_a_run_trains_on_the_codecs_latents_with_the_label_vocabularies(uninterrupted, lake):
    _, out, stdout = uninterrupted
    codec_id = load_checkpoint(lake[1])[2].codec_id
    model, config, meta = load_factorizer_checkpoint(out / "run" / "checkpoints" / "latest.pt",
                                                     expected_codec_id=codec_id)
    assert meta.step == STEPS and meta.codec_id == codec_id and f"steps 0 -> {STEPS}" in stdout
    assert "1 of 4 windows per step from 8 parallel pairs" in stdout  # 4 sentences x 2 ordered pairs
    assert meta.label_vocab["speaker"] == ["t:1", "t:2"]  # the train split's speakers (t:0 is the valid split)
    assert meta.label_vocab["environment"] == ["clean", "room"] and config.num_speakers == 2
    assert "valid_total" in meta.extra and meta.optimizer_state is not None
    assert (out / "run" / "loss_curve.png").stat().st_size > 1000
    shipped, _, shipped_meta = load_factorizer_checkpoint(out / "shipped.pt", expected_codec_id=codec_id)
    assert shipped_meta.optimizer_state is None and shipped_meta.label_vocab == meta.label_vocab


@pytest.mark.slow  # ~50 s: two more training runs; the shared loop's kill + resume is in the codec job's tests
def test_a_stopped_run_resumes_to_the_same_weights(uninterrupted, lake, ray_address, tmp_path):
    """Stopped early by its time budget (as a kill would, at a checkpoint), then resumed with a larger one."""
    lake_root, codec = lake
    cfg = _config(tmp_path / "f.yaml", lake_root, codec, tmp_path / "run", max_minutes=0.001)
    r = _run(cfg, ray_address=ray_address)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    _, _, stopped = load_factorizer_checkpoint(tmp_path / "run" / "checkpoints" / "latest.pt")
    assert 0 < stopped.step < STEPS
    cfg = _config(tmp_path / "f.yaml", lake_root, codec, tmp_path / "run")
    r = _run(cfg, ray_address=ray_address)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert f"from step {stopped.step}" in r.stdout and f"-> {STEPS}" in r.stdout
    whole, _, _ = load_factorizer_checkpoint(uninterrupted[1] / "run" / "checkpoints" / "latest.pt")
    resumed, _, _ = load_factorizer_checkpoint(tmp_path / "run" / "checkpoints" / "latest.pt")
    for (name, a), (_, b) in zip(whole.state_dict().items(), resumed.state_dict().items()):
        assert torch.equal(a, b), name


@pytest.mark.integration
def test_a_finished_run_is_a_no_op_and_another_codec_is_refused(uninterrupted, lake, tmp_path):
    cfg, out, _ = uninterrupted
    r = _run(cfg)  # no Ray needed: the driver sees the step count and stops
    assert r.returncode == 0 and "already complete" in r.stdout
    other = _codec(tmp_path / "other.pt", seed=1)
    r = _run(cfg, "--codec-checkpoint", str(other))
    assert r.returncode == 1 and "Traceback" not in r.stderr
    (line,) = r.stderr.strip().splitlines()
    assert "was trained on codec" in line and "use another output_dir" in line


def test_missing_latents_fail_in_one_line(lake, tmp_path):
    lake_root, _ = lake
    other = _codec(tmp_path / "other.pt", seed=2)
    cfg = _config(tmp_path / "f.yaml", lake_root, other, tmp_path / "run")
    r = _run(cfg)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    (line,) = r.stderr.strip().splitlines()
    assert "no latents of codec" in line and "encode them first" in line
