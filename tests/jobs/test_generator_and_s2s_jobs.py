"""The generator, generation, recognizer and S2S jobs, one after the other, through `ray job submit` (slow).

What a data engineer runs on a cluster, on a tiny real lake: 16 English rows of 3 speakers with transcripts,
random codes under the shipped codec's id and factor vectors under the shipped factorizer's id (written
straight with Lance), so every job reads and writes real tables and real checkpoints:

    train_generator -> generate (the generator's rows into `synthetic`) -> train_ctc -> train_s2s (+ its eval)
"""

from __future__ import annotations

import json
from pathlib import Path

import lance
import pytest
import yaml

from models.codec import load_checkpoint
from models.ctc import ctc_tiny_test
from models.factorizer import load_factorizer_checkpoint
from pipelines.lance_io import table_uri
from tests.ray_head import local_ray_head, submit_job
from tests.tiny_lake import segment_row, write_latents, write_segments
from tests.train_input_lake import write_factors

ROOT = Path(__file__).resolve().parents[2]
CODEC = ROOT / "checkpoints" / "codec_50hz_2x8555.pt"
FACTORIZER = ROOT / "checkpoints" / "factorizer_default.pt"
TRAINING = {"max_steps": 4, "checkpoint_every_steps": 2, "valid_every_steps": 2, "log_every_steps": 2,
            "lr_warmup_steps": 1, "valid_rows": 8}


def _lake(root: Path) -> str:
    lake = str(root / "lake")
    splits = ["train"] * 12 + ["valid"] * 2 + ["test"] * 2
    rows = [segment_row(0.8 + 0.1 * i, seed=i, speaker=f"t:{i % 3}", split=split, language="en",
                        transcript=f"the number {i % 4}", text_id=f"n{i % 4}",
                        environment=["clean", "room"][(i // 3) % 2], channel="clean", style="neutral")
            for i, split in enumerate(splits)]
    write_segments(lake, rows)
    codec_id = load_checkpoint(CODEC)[2].codec_id
    write_latents(lake, rows, codec_id=codec_id)
    write_factors(lake, rows, factorizer_id=load_factorizer_checkpoint(FACTORIZER)[2].factorizer_id,
                  codec_id=codec_id)
    return lake


def _write(path: Path, config: dict) -> str:
    path.write_text(yaml.safe_dump(config))
    return str(path)


@pytest.mark.slow  # a second Ray head and four jobs (three TorchTrainer runs, one Ray Data pass): ~3-5 min
@pytest.mark.integration
def test_generator_generate_recognizer_and_s2s_run_through_ray_job_submit(tmp_path):
    lake = _lake(tmp_path)
    factorizer_id = load_factorizer_checkpoint(FACTORIZER)[2].factorizer_id
    source = {"lake_root": lake, "codec_checkpoint": str(CODEC), "max_frames": 100, "crop": "start",
              "batch_size": 4, "synthetic_per_real": 0.0}
    phonemes = str(tmp_path / "ph")
    generator = _write(tmp_path / "train_generator.yaml", {
        "input": {**source, "factorizer_id": factorizer_id}, "valid_filter": "split = 'valid'",
        "output_dir": str(tmp_path / "generator"), "phoneme_cache": phonemes, "preset": "generator_tiny_test",
        "training": TRAINING})
    generate = _write(tmp_path / "generate.yaml", {
        "lake_root": lake, "codec_checkpoint": str(CODEC), "factorizer_checkpoint": str(FACTORIZER),
        "generator_checkpoint": str(tmp_path / "generator" / "checkpoints" / "latest.pt"), "phoneme_cache": phonemes,
        "plan": {"vary": ["speaker"], "strategy": "cross_product", "source_filter": "split = 'train'",
                 "budget": 10},
        "gates": {"speaker_judge": False}, "execution": {"rows_per_batch": 8, "commit_every_rows": 6}})
    ctc = _write(tmp_path / "train_ctc.yaml", {
        "input": source, "valid_filter": "split = 'valid'", "eval_sets": [{"name": "test", "filter": "split = 'test'"}],
        "output_dir": str(tmp_path / "ctc"), "phoneme_cache": phonemes, "preset": None,
        "model": ctc_tiny_test().model_dump(), "training": TRAINING})
    s2s = _write(tmp_path / "train_s2s.yaml", {
        "input": {**source, "real_filter": "split = 'train'"},
        "target_filter": "speaker = 't:0' AND environment = 'clean'",
        "valid_filter": "split = 'valid'", "output_dir": str(tmp_path / "s2s"), "phoneme_cache": phonemes,
        "preset": "s2s_tiny_test", "training": TRAINING,
        "eval": {"recognizer_checkpoint": str(tmp_path / "ctc" / "checkpoints" / "latest.pt"), "probe_filter": "true",
                 "target_rows": 4, "dnsmos": False, "sets": [{"name": "held_out", "filter": "split = 'test'"}]}})
    with local_ray_head() as (address, env, ray_exe):
        runs = {}
        for name, job, config in (("train_generator", "jobs/train_generator.py", generator),
                                  ("generate", "jobs/generate.py", generate), ("train_ctc", "jobs/train_ctc.py", ctc),
                                  ("train_s2s", "jobs/train_s2s.py", s2s)):
            runs[name] = sub = submit_job(address, env, ray_exe, [job, "--config", config])
            assert sub.returncode == 0, name + ": " + sub.stdout[-3000:] + sub.stderr[-2000:]
    assert "generator generator_tiny_test" in runs["train_generator"].stdout
    assert (tmp_path / "generator" / "loss_curve.png").exists()
    made = lance.dataset(table_uri(lake, "synthetic")).to_table(columns=["strategy", "run_id"]).to_pylist()
    assert len(made) == 10 and {r["strategy"] for r in made} == {"generated"}
    jobs = lance.dataset(table_uri(lake, "runs")).to_table(columns=["job", "status"]).to_pylist()
    assert {"job": "generate", "status": "succeeded"} in jobs
    assert "eval held_out: 2 rows; PER" in runs["train_s2s"].stdout
    result = json.loads((tmp_path / "s2s" / "eval.json").read_text())
    assert result["step"] == 4 and result["sets"]["held_out"]["rows"] == 2
    assert result["recognizer"] == json.loads((tmp_path / "ctc" / "eval.json").read_text())["ctc_id"]
    assert 0 <= result["sets"]["held_out"]["speaker_closer_rate"] <= 1
