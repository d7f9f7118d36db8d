"""The curation job as users run it: a killed run resumes, bad configs fail fast, `ray job submit` works."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import lance
import pytest
import yaml

from pipelines.lance_io import open_table, table_uri
from schemas.storage import StorageConfig
from tests.conftest import ROOT
from tests.raw_corpus import make_raw_corpus
from tests.ray_head import local_ray_head, submit_job

PY = sys.executable


def _write_config(path: Path, raw: Path, lake: Path, commit_every: int = 1) -> Path:
    path.write_text("# python jobs/curate.py --config " + str(path) + "\n" + yaml.safe_dump({
        "lake_root": str(lake),
        "sources": [{"kind": "manifest", "uri": str(raw / "manifest.jsonl")},
                    {"kind": "webdataset", "uri": str(raw / "shards")}],
        "execution": {"commit_every_sources": commit_every, "concurrency": 1},
    }))
    return path


def _env() -> dict:
    return {**os.environ, "PYTHONPATH": str(ROOT), "RAY_AUTH_MODE": "disabled"}


def _snapshot(lake: Path) -> dict:
    seg = lance.dataset(table_uri(str(lake), "segments")).to_table(columns=["segment_id", "source_uri", "pcm_hash"])
    src = lance.dataset(table_uri(str(lake), "sources")).to_table(columns=["source_uri", "sha256", "status", "reason"])
    rej = lance.dataset(table_uri(str(lake), "rejects")).to_table(columns=["reject_id"])
    return {
        "segments": sorted(zip(*(seg.column(c).to_pylist() for c in seg.column_names))),
        "sources": sorted(zip(*(src.column(c).to_pylist() for c in src.column_names))),
        "rejects": sorted(rej.column("reject_id").to_pylist()),
    }


@pytest.mark.slow  # ~60 s (two curation runs and a kill); the default suite keeps re-run idempotence in test_curate.py
@pytest.mark.integration
def test_killed_run_resumes_to_the_same_tables_as_an_uninterrupted_run(tmp_path):
    raw = tmp_path / "raw"
    make_raw_corpus(raw)
    cfg_a = _write_config(tmp_path / "a.yaml", raw, tmp_path / "lake_a", commit_every=3)
    cfg_b = _write_config(tmp_path / "b.yaml", raw, tmp_path / "lake_b", commit_every=100)
    job = [PY, str(ROOT / "jobs" / "curate.py"), "--config"]

    proc = subprocess.Popen(job + [str(cfg_a)], env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)
    sources_uri = table_uri(str(tmp_path / "lake_a"), "sources")
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        ds = open_table(sources_uri, StorageConfig())  # None until the first commit (the folder comes first)
        if ds is not None and ds.count_rows() >= 1:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "run finished before it could be killed:\n" + (proc.stdout.read() if proc.stdout else "")
    os.killpg(proc.pid, signal.SIGKILL)  # the driver and everything it started
    proc.wait()
    partial = lance.dataset(sources_uri).count_rows()
    assert 1 <= partial < 12, partial
    runs = lance.dataset(table_uri(str(tmp_path / "lake_a"), "runs")).to_table().to_pylist()
    assert [r["status"] for r in runs] == ["running"]  # the killed run stays visible as such

    resumed = subprocess.run(job + [str(cfg_a)], env=_env(), capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    whole = subprocess.run(job + [str(cfg_b)], env=_env(), capture_output=True, text=True, timeout=300)
    assert whole.returncode == 0, whole.stdout + whole.stderr

    a, b = _snapshot(tmp_path / "lake_a"), _snapshot(tmp_path / "lake_b")
    assert a == b
    assert len(a["segments"]) == len({(s, u) for s, u, _ in a["segments"]}), "no duplicate rows"


def test_bad_config_fails_before_any_work_naming_the_key(tmp_path):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(yaml.safe_dump({"lake_root": str(tmp_path / "lake"), "sources": [{"kind": "folder", "uri": "x"}],
                                   "segmentation": {"max_segment_s": "twenty", "vad_mode": 3}}))
    r = subprocess.run([PY, str(ROOT / "jobs" / "curate.py"), "--config", str(cfg)], env=_env(),
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    assert "segmentation.max_segment_s" in r.stderr and "segmentation.vad_mode: unknown key" in r.stderr
    assert "Traceback" not in r.stderr
    assert not (tmp_path / "lake").exists(), "nothing may be written for a bad config"


def test_missing_source_fails_clearly_and_is_recorded_as_a_failed_run(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({"lake_root": str(tmp_path / "lake"),
                                   "sources": [{"kind": "folder", "uri": str(tmp_path / "no-such-dir")}]}))
    r = subprocess.run([PY, str(ROOT / "jobs" / "curate.py"), "--config", str(cfg)], env=_env(),
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "error: FileNotFoundError: source not found" in r.stderr and "no-such-dir" in r.stderr
    (run,) = lance.dataset(table_uri(str(tmp_path / "lake"), "runs")).to_table().to_pylist()
    assert run["status"] == "failed" and "no-such-dir" in run["error"]


@pytest.mark.slow  # starts a second Ray head (~55 s on 2 cores); submit of the codec, recombine and nightly jobs too
def test_ray_job_submit_against_a_local_head(tmp_path):
    raw = tmp_path / "raw"
    make_raw_corpus(raw, with_bad=False)
    lake = tmp_path / "lake"
    cfg = _write_config(tmp_path / "job.yaml", raw, lake, commit_every=100)
    with local_ray_head() as (address, env, ray_exe):
        sub = submit_job(address, env, ray_exe, ["jobs/curate.py", "--config", str(cfg)])
        assert sub.returncode == 0, sub.stdout[-3000:] + sub.stderr[-3000:]
        assert "succeeded" in sub.stdout.lower()
        seg = lance.dataset(table_uri(str(lake), "segments"))
        assert seg.count_rows() == 4
