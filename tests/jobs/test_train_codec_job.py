"""The codec training job as users run it: it trains, a killed run resumes to the very same weights,
a finished run is a no-op, the output of another codec or a bad config fails clearly, `ray job submit` works."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from models.codec import CheckpointError, build_codec, codec_id_for, codec_tiny_test, load_checkpoint
from tests.conftest import ROOT
from tests.ray_head import local_ray_head, submit_job
from tests.tiny_lake import segment_row, write_segments

PY = sys.executable
JOB = str(ROOT / "jobs" / "train_codec.py")
STEPS = 40


@pytest.fixture(scope="module")
def lake(tmp_path_factory):
    lake = tmp_path_factory.mktemp("lake")
    write_segments(lake, [segment_row(d, seed=i) for i, d in enumerate((0.8, 1.5, 2.0, 3.0, 0.4, 1.2))])
    return lake


@pytest.fixture(scope="module")
def ray_address(ray_session) -> str:
    """The tests' own Ray: jobs attach to it instead of starting one each (a Ray start costs ~20 s here)."""
    return ray_session.get_runtime_context().gcs_address


def _config(path: Path, lake: Path, out: Path, **training) -> Path:
    path.write_text(yaml.safe_dump({
        "lake_root": str(lake), "output_dir": str(out), "preset": "codec_tiny_test",
        # the tiny corpus has few segments: validate on the train split (this tests mechanics, not quality)
        "valid_split": "train", "holdout_corpora": [],
        "training": {"max_steps": STEPS, "batch_size": 2, "crop_s": 0.25, "checkpoint_every_steps": 5,
                     "valid_every_steps": 10, "log_every_steps": 5, "valid_clips": 2, "lr_warmup_steps": 5,
                     **training},
        "execution": {"crops_per_block": 8},
    }))
    return path


def _env(ray_address: str | None = None) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "RAY_AUTH_MODE": "disabled"}
    env.pop("RAY_ADDRESS", None)
    return {**env, "RAY_ADDRESS": ray_address} if ray_address else env


def _run(cfg: Path, *extra: str, ray_address: str | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([PY, JOB, "--config", str(cfg), *extra], env=_env(ray_address), capture_output=True,
                          text=True, timeout=timeout)


@pytest.fixture(scope="module")
def uninterrupted(lake, ray_address, tmp_path_factory):
    out = tmp_path_factory.mktemp("whole")
    cfg = _config(out / "c.yaml", lake, out / "run")
    r = _run(cfg, "--export", str(out / "shipped.pt"), ray_address=ray_address)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return cfg, out, r.stdout


@pytest.mark.integration
def test_a_run_writes_checkpoints_metrics_curve_and_an_fp16_export(uninterrupted):
    _, out, stdout = uninterrupted
    assert f"steps 0 -> {STEPS}" in stdout and "exported:" in stdout
    model, config, meta = load_checkpoint(out / "run" / "checkpoints" / "latest.pt")
    assert meta.step == STEPS and meta.architecture_id == codec_id_for(codec_tiny_test())
    assert meta.optimizer_state is not None and "valid_total" in meta.extra
    kept = sorted(p.name for p in (out / "run" / "checkpoints").glob("step_*.pt"))
    assert kept == ["step_0000030.pt", "step_0000035.pt", "step_0000040.pt"]  # keep_checkpoints=3
    rows = [json.loads(line) for line in (out / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == list(range(5, STEPS + 1, 5))
    assert all(r["total"] > 0 for r in rows) and sum("valid_total" in r for r in rows) == STEPS // 10
    assert (out / "run" / "loss_curve.png").read_bytes()[:4] == b"\x89PNG"
    shipped, _, smeta = load_checkpoint(out / "shipped.pt")
    assert smeta.optimizer_state is None and smeta.extra["exported_dtype"] == "float16"
    assert smeta.architecture_id == meta.architecture_id and smeta.codec_id != meta.codec_id  # fp16: its own id
    for a, b in zip(shipped.state_dict().values(), model.state_dict().values()):
        torch.testing.assert_close(a, b.half().float())


@pytest.mark.slow  # its own local Ray + two training runs (~80 s on 2 cores); `make test-all` runs it
def test_a_killed_run_resumes_to_the_same_weights(lake, uninterrupted, ray_address, tmp_path):
    cfg = _config(tmp_path / "c.yaml", lake, tmp_path / "run")
    # its own local Ray (no RAY_ADDRESS), so killing its process group kills all of the run
    proc = subprocess.Popen([PY, JOB, "--config", str(cfg)], env=_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    first = tmp_path / "run" / "checkpoints" / "step_0000005.pt"
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None and not first.exists():
        time.sleep(0.02)
    assert proc.poll() is None, "run ended before it could be killed:\n" + (proc.stdout.read() if proc.stdout else "")
    os.killpg(proc.pid, signal.SIGKILL)  # the driver, its local Ray and the train worker
    proc.wait()
    _, _, killed = load_checkpoint(tmp_path / "run" / "checkpoints" / "latest.pt")
    assert 5 <= killed.step < STEPS

    resumed = _run(cfg, ray_address=ray_address)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    assert "resuming codec_tiny_test" in resumed.stdout and f"-> {STEPS}" in resumed.stdout
    a, _, _ = load_checkpoint(tmp_path / "run" / "checkpoints" / "latest.pt")
    b, _, _ = load_checkpoint(uninterrupted[1] / "run" / "checkpoints" / "latest.pt")
    for (name, x), y in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(x, y), f"{name} differs after kill + resume"
    steps = [json.loads(line)["step"] for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert steps == sorted(set(steps)) and steps[-1] == STEPS, "metrics: no step twice, none lost"


def test_a_finished_run_is_a_no_op_and_another_codec_is_refused(uninterrupted, lake, tmp_path):
    cfg, out, _ = uninterrupted
    before = (out / "run" / "checkpoints" / "latest.pt").stat().st_mtime_ns
    again = _run(cfg, timeout=120)
    assert again.returncode == 0 and "already complete" in again.stdout
    assert (out / "run" / "checkpoints" / "latest.pt").stat().st_mtime_ns == before

    other = tmp_path / "other.yaml"
    other.write_text(cfg.read_text().replace("codec_tiny_test", "codec_50hz_1x8555"))
    r = _run(other, timeout=120)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "holds codec 'codec_tiny_test-" in r.stderr and "use another output_dir" in r.stderr


def test_init_from_starts_a_new_run_from_those_weights(uninterrupted, lake, ray_address, tmp_path):
    """A fine-tune: step 0 of a new output_dir holds the given checkpoint's weights (a vanishing learning rate
    keeps them, so what is compared is where the run started)."""
    _, out, _ = uninterrupted
    cfg = _config(tmp_path / "ft.yaml", lake, tmp_path / "ft", max_steps=2, learning_rate=1e-12,
                  checkpoint_every_steps=2, valid_every_steps=2)
    cfg.write_text(cfg.read_text() + f"init_from: {out / 'shipped.pt'}\n")
    r = _run(cfg, ray_address=ray_address, timeout=180)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "from the weights of" in r.stdout
    start = load_checkpoint(out / "shipped.pt")[0].state_dict()
    tuned = load_checkpoint(tmp_path / "ft" / "checkpoints" / "latest.pt")[0].state_dict()
    assert start.keys() == tuned.keys()
    assert all(torch.allclose(start[k].float(), tuned[k].float(), atol=1e-3) for k in start)
    torch.manual_seed(0)  # what the run would have started from without init_from (the config's seed)
    fresh = build_codec(codec_tiny_test()).state_dict()
    assert not all(torch.allclose(fresh[k], tuned[k], atol=1e-3) for k in fresh)


def test_init_from_a_checkpoint_of_other_shapes_is_refused_before_work(uninterrupted, lake, tmp_path):
    _, out, _ = uninterrupted
    cfg = _config(tmp_path / "bad.yaml", lake, tmp_path / "bad")
    cfg.write_text(cfg.read_text().replace("codec_tiny_test", "codec_tiny_stft_test")
                   + f"init_from: {out / 'shipped.pt'}\n")
    r = _run(cfg, timeout=120)
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr[-2000:]
    assert "does not fit this model" in r.stderr and "shipped.pt" in r.stderr
    assert not (tmp_path / "bad" / "checkpoints" / "latest.pt").exists()


def test_bad_config_and_missing_lake_fail_clearly(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"preset": "codec_tiny_test", "training": {"max_step": 3}}))
    r = _run(bad, timeout=60)
    assert r.returncode == 2 and "training.max_step" in r.stderr and "Traceback" not in r.stderr
    both = tmp_path / "both.yaml"
    both.write_text(yaml.safe_dump({"training": {"max_steps": 3}}))
    r = _run(both, timeout=60)
    assert r.returncode == 2 and "exactly one of `preset`" in r.stderr
    missing = _config(tmp_path / "m.yaml", tmp_path / "no-lake", tmp_path / "out")
    r = _run(missing, timeout=60)
    assert r.returncode == 1 and "no segments table" in r.stderr and "Traceback" not in r.stderr


def test_corrupt_latest_checkpoint_fails_with_its_path(uninterrupted, lake, tmp_path):
    cfg, out, _ = uninterrupted
    broken = tmp_path / "run"
    (broken / "checkpoints").mkdir(parents=True)
    (broken / "checkpoints" / "latest.pt").write_bytes(b"not a checkpoint")
    r = _run(_config(tmp_path / "c.yaml", lake, broken), timeout=120)
    assert r.returncode == 1 and "latest.pt: not a readable checkpoint" in r.stderr
    with pytest.raises(CheckpointError):
        load_checkpoint(broken / "checkpoints" / "latest.pt")


@pytest.mark.slow  # starts a second Ray head (~100 s on 2 cores); `make test-all` runs it with the other submit tests
def test_ray_job_submit_against_a_local_head(lake, tmp_path):
    cfg = _config(tmp_path / "c.yaml", lake, tmp_path / "run", max_steps=10)
    with local_ray_head() as (address, env, ray_exe):
        sub = submit_job(address, env, ray_exe, ["jobs/train_codec.py", "--config", str(cfg)])
    assert sub.returncode == 0, sub.stdout[-3000:] + sub.stderr[-3000:]
    assert "steps 0 -> 10" in sub.stdout
    _, _, meta = load_checkpoint(tmp_path / "run" / "checkpoints" / "latest.pt")
    assert meta.step == 10


@pytest.mark.slow  # two training runs with critics (~60 s on 2 cores); `make test-all` runs it, the unit test is in tests/models
def test_an_adversarial_decoder_only_fine_tune_keeps_the_codes_and_resumes_its_critics(uninterrupted, lake,
                                                                                        ray_address, tmp_path):
    """loss.adversarial_weight + training.decoder_only: the critics train beside the decoder, ride in the training
    checkpoint (not in the export), come back on a resume, and the encoder's codes do not move."""
    import numpy as np

    _, out, _ = uninterrupted
    cfg = _config(tmp_path / "c.yaml", lake, tmp_path / "run", max_steps=10, decoder_only=True)
    data = yaml.safe_load(cfg.read_text())
    data["init_from"] = str(out / "shipped.pt")
    data["loss"] = {"adversarial_weight": 0.5, "feature_matching_weight": 2.0, "critic_periods": [2, 3],
                    "critic_fft_sizes": [256]}
    cfg.write_text(yaml.safe_dump(data))
    r = _run(cfg, ray_address=ray_address)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    _, _, first = load_checkpoint(tmp_path / "run" / "checkpoints" / "latest.pt")
    assert first.step == 10 and {"critics", "critic_optimizer"} <= set(first.extra)
    last = json.loads((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()[-1])
    assert {"critic", "adversarial", "feature_matching"} <= set(last)

    data["training"]["max_steps"] = 15  # a longer budget: the re-run resumes, critics included
    cfg.write_text(yaml.safe_dump(data))
    r = _run(cfg, "--export", str(tmp_path / "gan.pt"), ray_address=ray_address)
    assert r.returncode == 0 and "resuming codec_tiny_test" in r.stdout, r.stdout[-3000:] + r.stderr[-3000:]
    _, _, second = load_checkpoint(tmp_path / "run" / "checkpoints" / "latest.pt")
    assert second.step == 15
    assert any(not torch.equal(a, b) for a, b in zip(first.extra["critics"].values(),
                                                      second.extra["critics"].values()))

    init, _, _ = load_checkpoint(out / "shipped.pt")
    tuned, _, tuned_meta = load_checkpoint(tmp_path / "gan.pt")
    assert "critics" not in tuned_meta.extra  # training state stays out of the shipped file
    before, after = init.state_dict(), tuned.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before if not k.startswith("decoder."))
    assert any(not torch.equal(before[k], after[k]) for k in before if k.startswith("decoder."))
    clip = torch.from_numpy(np.random.default_rng(0).standard_normal((1, 3200)).astype("float32") * 0.1)
    assert torch.equal(init.encode(clip).codes, tuned.encode(clip).codes)
