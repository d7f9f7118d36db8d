"""The amplification experiment and the recognizer job through `ray job submit` on a private head (slow)."""

from __future__ import annotations

import json

import pytest
import yaml

from models.ctc import ctc_tiny_test
from tests.ray_head import local_ray_head, submit_job
from tests.train_input_lake import CODEC, train_input_lake


@pytest.mark.slow  # a second Ray head plus five TorchTrainer runs: ~4-6 min on 2 cores
@pytest.mark.integration
def test_experiment_and_train_ctc_run_through_ray_job_submit(tmp_path):
    lake, _, _ = train_input_lake(tmp_path)
    model = {**ctc_tiny_test().model_dump(), "codebook_size": 4096}  # the tiny lake's synthetic codes are 2000+
    training = {"max_steps": 4, "checkpoint_every_steps": 2, "valid_every_steps": 2, "log_every_steps": 2,
                "lr_warmup_steps": 1, "valid_rows": 8}
    amp = tmp_path / "experiment_amplification.yaml"
    amp.write_text(yaml.safe_dump({
        "lake_root": lake, "codec_id": CODEC, "recombine": False, "pool_filter": "split = 'train'",
        "holdout": {"speaker_fraction": 0.34, "environments": ["room"]}, "recombined_filter": "passed",
        "ratios": [0, 1], "seeds": [0, 1], "model": model, "batch_size": 4, "max_frames": 40,
        "training": training, "valid_filter": "split = 'valid'",
        "eval_sets": [{"name": "unseen_speakers", "filter": "split = 'test'"}],
        "phoneme_cache": str(tmp_path / "ph"), "output_dir": str(tmp_path / "amp"),
        "results_md": str(tmp_path / "RESULTS.md"), "chart": str(tmp_path / "amp.png")}))
    ctc = tmp_path / "train_ctc.yaml"
    ctc.write_text(yaml.safe_dump({
        "input": {"lake_root": lake, "codec_id": CODEC, "max_frames": 40, "crop": "start", "batch_size": 4},
        "valid_filter": "split = 'valid'", "eval_sets": [{"name": "test", "filter": "split = 'test'"}],
        "output_dir": str(tmp_path / "ctc"), "phoneme_cache": str(tmp_path / "ph"), "preset": None,
        "model": model, "training": training}))
    with local_ray_head() as (address, env, ray_exe):
        sub = submit_job(address, env, ray_exe, ["jobs/experiment_amplification.py", "--config", str(amp)],
                         timeout_s=900)
        assert sub.returncode == 0, sub.stdout[-3000:] + sub.stderr[-2000:]
        single = submit_job(address, env, ray_exe, ["jobs/train_ctc.py", "--config", str(ctc)])
        assert single.returncode == 0, single.stdout[-3000:] + single.stderr[-2000:]
    results = json.loads((tmp_path / "amp" / "results.json").read_text())
    assert sorted((r["condition"], r["seed"]) for r in results["runs"]) == [
        ("recombined", 0), ("recombined", 1), ("seed", 0), ("seed", 1)]
    assert all(r["steps"] == 4 and set(r["per"]) == {"heldout_cells", "unseen_speakers"} for r in results["runs"])
    assert all(r["synthetic_per_epoch"] > 0 for r in results["runs"] if r["condition"] == "recombined")
    md = (tmp_path / "RESULTS.md").read_text()
    assert "<!-- amplification:begin -->" in md and "| seed only |" in md and "| seed + recombined 1x |" in md
    assert (tmp_path / "amp.png").stat().st_size > 5000
    assert "recognizer ctc_tiny_test" in single.stdout and "eval test: PER" in single.stdout
    assert json.loads((tmp_path / "ctc" / "eval.json").read_text())["step"] == 4
