"""The recombine job as users run it: the plan first, bad input exits 2 before any write, a killed run resumes
without duplicates or gaps, an S3 lake works, and `ray job submit` against a local head works."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import lance
import pyarrow.compute as pc
import pytest
import yaml

from pipelines.lance_io import table_uri
from pipelines.recombine import run_recombine
from schemas.recombine import RecombineConfig
from schemas.storage import StorageConfig
from tests.conftest import ROOT
from tests.jobs.test_train_codec_job import _env
from tests.ray_head import local_ray_head, submit_job
from tests.tiny_lake import recombine_lake

PY = sys.executable
JOB = str(ROOT / "jobs" / "recombine.py")


def _config(path: Path, lake: str, codec: Path, factorizer: Path, **kw) -> Path:
    cfg = {"lake_root": lake, "codec_checkpoint": str(codec), "factorizer_checkpoint": str(factorizer),
           "plan": {"vary": ["speaker", "environment"], "strategy": "cross_product", **kw.pop("plan", {})},
           "gates": {"speaker_judge": False}, "output": {"report_path": str(path.parent / "report.html")},
           "execution": {"rows_per_batch": 4, "commit_every_rows": 8, "concurrency": 1}, **kw}
    path.write_text(yaml.safe_dump(cfg))
    return path


def _run(cfg: Path, *extra: str, ray_address: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([PY, JOB, "--config", str(cfg), *extra], env=_env(ray_address), capture_output=True,
                          text=True, timeout=300)


@pytest.fixture(scope="module")
def ray_address(ray_session) -> str:
    return ray_session.get_runtime_context().gcs_address


def test_plan_only_prints_counts_and_bad_input_exits_2_before_any_write(tmp_path):
    lake, codec, factorizer, _ = recombine_lake(tmp_path)
    r = _run(_config(tmp_path / "r.yaml", lake, codec, factorizer), "--plan-only")
    assert r.returncode == 0 and "rows" in r.stdout, r.stderr
    r = _run(_config(tmp_path / "vary.yaml", lake, codec, factorizer, plan={"vary": ["pitch"]}))
    assert r.returncode == 2 and "Traceback" not in r.stderr  # a config error lists every bad key, one per line
    assert "plan.vary: Value error, unknown factor(s) 'pitch' in vary: allowed are speaker" in r.stderr
    cases = {"filter": ({"plan": {"source_filter": "split = = 1"}}, "cannot run on segments"),
             "empty": ({"plan": {"source_filter": "split = 'nowhere'"}}, "split = 'nowhere'")}
    for name, (override, text) in cases.items():
        r = _run(_config(tmp_path / f"{name}.yaml", lake, codec, factorizer, **override))
        assert r.returncode == 2 and "Traceback" not in r.stderr, (name, r.stderr)
        (line,) = r.stderr.strip().splitlines()
        assert text in line, (name, line)
    assert not Path(lake, "synthetic.lance").exists() and not Path(lake, "runs.lance").exists()


@pytest.mark.slow  # its own local Ray + two runs (~55 s on 2 cores); `make test-all` runs it
def test_a_killed_run_resumes_without_duplicates_or_gaps(tmp_path, ray_address):
    lake, codec, factorizer, _ = recombine_lake(tmp_path, speakers=3, per_speaker=6)
    cfg = _config(tmp_path / "r.yaml", lake, codec, factorizer, execution={
        "rows_per_batch": 2, "commit_every_rows": 6, "concurrency": 1}, output={"report_path": None})
    synthetic = table_uri(lake, "synthetic")
    # its own local Ray (no RAY_ADDRESS) in its own process group, so the kill takes all of the run
    proc = subprocess.Popen([PY, JOB, "--config", str(cfg)], env=_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 240
    committed = 0
    while time.time() < deadline and proc.poll() is None and committed == 0:
        time.sleep(0.05)
        if Path(synthetic).exists():
            try:
                committed = lance.dataset(synthetic).count_rows()
            except (OSError, ValueError):
                committed = 0
    assert proc.poll() is None, "the run ended before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    config = RecombineConfig.model_validate(yaml.safe_load(cfg.read_text()))
    killed_at = lance.dataset(synthetic).count_rows()

    r = _run(cfg, ray_address=ray_address)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    ids = lance.dataset(synthetic).to_table(columns=["synth_id"]).column("synth_id")
    summary = run_recombine(config, progress=lambda _: None)  # a third run: everything is there already
    assert 0 < killed_at < summary.plan_rows, "the kill must land mid-run"
    assert summary.to_make == 0 and summary.plan_rows == len(ids) == len(pc.unique(ids))
    assert summary.already_made == summary.plan_rows


@pytest.mark.integration
def test_an_s3_lake(tmp_path, s3_bucket, ray_session):
    endpoint, bucket = s3_bucket
    storage = StorageConfig(s3_endpoint_url=endpoint, s3_allow_http=True)
    lake, codec, factorizer, _ = recombine_lake(tmp_path, f"s3://{bucket}/lake", storage)
    config = RecombineConfig.model_validate({
        "lake_root": lake, "codec_checkpoint": str(codec), "factorizer_checkpoint": str(factorizer),
        "plan": {"vary": ["speaker"]}, "gates": {"speaker_judge": False}, "output": {"report_path": None},
        "storage": storage.model_dump()})
    s = run_recombine(config, progress=lambda _: None)
    assert s.rows_written == s.plan_rows > 0
    ds = lance.dataset(f"{lake}/synthetic.lance", storage_options=storage.lance_options())
    assert ds.count_rows() == s.plan_rows
    assert run_recombine(config, progress=lambda _: None).to_make == 0


@pytest.mark.slow
def test_ray_job_submit_against_a_local_head_with_the_lake_on_s3(tmp_path, s3_bucket):
    endpoint, bucket = s3_bucket
    storage = StorageConfig(s3_endpoint_url=endpoint, s3_allow_http=True)
    lake, codec, factorizer, _ = recombine_lake(tmp_path, f"s3://{bucket}/lake", storage)
    cfg = _config(tmp_path / "r.yaml", lake, codec, factorizer, plan={"vary": ["speaker"]},
                  storage=storage.model_dump())
    with local_ray_head() as (address, env, ray_exe):
        sub = submit_job(address, env, ray_exe, ["jobs/recombine.py", "--config", str(cfg)])
    assert sub.returncode == 0, sub.stdout[-3000:] + sub.stderr[-3000:]
    assert "passed the gates" in sub.stdout and "report:" in sub.stdout
    ds = lance.dataset(f"{lake}/synthetic.lance", storage_options=storage.lance_options())
    ids = ds.to_table(columns=["synth_id"]).column("synth_id").to_pylist()
    assert len(ids) == len(set(ids)) > 24  # 12 sources x 2 other voices, plus the report grid's own rows
