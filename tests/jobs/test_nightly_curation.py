"""Scheduled (nightly) curation as a scheduler sees it: exit codes, JSON summaries, the lake lock, bad nights.

Nights run the real job (``jobs/curate.py``) as a subprocess over a growing
folder of real speech (espeak-ng), so a kill is a real SIGKILL; the S3 nights
run against the loopback S3 server with the source prefix and the lake both
in the bucket.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import boto3
import lance
import numpy as np
import pytest
import yaml

from pipelines.lance_io import table_uri
from pipelines.run_lock import RunLock, lock_uri, read_lock
from pipelines.scheduled import EXIT_LOCKED, run_scheduled_curation
from schemas.curate import CurateConfig, load_config
from schemas.storage import StorageConfig
from tests.conftest import ROOT
from tests.factories import espeak, silence, write_audio

PY = sys.executable
JOB = [PY, str(ROOT / "jobs" / "curate.py")]

#: what arrives each night: relative path -> (voice, text) for speech, or a special kind
NIGHTS: dict[int, dict[str, tuple[str, str] | str]] = {
    1: {"day1/s001.wav": ("en+m3", "The quick brown fox jumps over the lazy dog near the river bank."),
        "day1/s002.flac": ("en+f2", "Please call Stella and ask her to bring these things with her."),
        "day1/random.wav": "random"},
    2: {"day2/s003.ogg": ("en-us+m1", "A large fawn jumped quickly over white zinc boxes in the yard."),
        "day2/s004.wav": ("en+f4", "Shards carry labels in a json member next to the audio."),
        "day2/s001-copy.wav": "copy:day1/s001.wav",
        "day2/s005.flac": ("en+m1", "Every night new recordings land in the incoming folder."),
        "day2/empty.wav": "empty"},
    3: {"day3/s006.wav": ("en+f3", "The next night picks up whatever the bad night left behind."),
        "day3/silence.wav": "silence"},
}
ACCEPTED = {"s001.wav", "s002.flac", "s003.ogg", "s004.wav", "s005.flac", "s006.wav"}  # 6 of the 10 files


def _add_night(incoming: Path, night: int) -> None:
    """Drop one night's files into the growing prefix."""
    for rel, spec in NIGHTS[night].items():
        path = incoming / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if spec == "random":
            path.write_bytes(np.random.default_rng(night).bytes(4096))
        elif spec == "empty":
            path.write_bytes(b"")
        elif spec == "silence":
            write_audio(path, silence(3.0), 16000)
        elif isinstance(spec, str) and spec.startswith("copy:"):
            path.write_bytes((incoming / spec[5:]).read_bytes())
        else:
            x, sr = espeak(spec[1], voice=spec[0])
            write_audio(path, np.concatenate([silence(0.3, sr), x, silence(0.3, sr)]), sr)


def _config(path: Path, incoming: str, lake: str, commit_every: int = 100, storage: dict | None = None) -> Path:
    path.write_text(f"# python jobs/curate.py --config {path}\n" + yaml.safe_dump({
        "lake_root": lake, "sources": [{"kind": "folder", "uri": incoming}],
        "execution": {"commit_every_sources": commit_every, "concurrency": 1},
        **({"storage": storage} if storage else {}),
    }))
    return path


def _env() -> dict:
    return {**os.environ, "PYTHONPATH": str(ROOT), "RAY_AUTH_MODE": "disabled"}


def _run(cfg: Path, summary: Path, *extra: str, timeout: float = 400
         ) -> tuple[subprocess.CompletedProcess, dict | None]:
    r = subprocess.run(JOB + ["--config", str(cfg), "--summary-json", str(summary), *extra], env=_env(),
                       capture_output=True, text=True, timeout=timeout)
    return r, (json.loads(summary.read_text()) if summary.exists() else None)


def _json_line(stdout: str) -> dict:
    """The summary line the job prints (other processes' log lines may follow it)."""
    (line,) = [ln for ln in stdout.splitlines() if ln.startswith('{"job": "curate"')]
    return json.loads(line)


def _rows(lake: str, table: str, columns: list[str], storage: StorageConfig | None = None) -> list[tuple]:
    opts = storage.lance_options() if storage and lake.startswith("s3://") else None
    t = lance.dataset(table_uri(lake, table), storage_options=opts).to_table(columns=columns)
    return list(zip(*(t.column(c).to_pylist() for c in columns)))


def _check_lake(lake: str, n_files: int, storage: StorageConfig | None = None) -> dict:
    """No duplicates, every input accounted; returns the comparable content."""
    seg = _rows(lake, "segments", ["segment_id", "source_uri"], storage)
    src = _rows(lake, "sources", ["source_uri", "sha256", "status", "reason"], storage)
    assert len({s for s, _ in seg}) == len(seg), "duplicate segment_id"
    assert len({(u, h) for u, h, _, _ in src}) == len(src) == n_files, "duplicate or missing sources keys"
    accepted = {u.rsplit("/", 1)[1] for u, _, st, _ in src if st == "accepted"}
    assert accepted | {u.rsplit("/", 1)[1] for u, _, st, _ in src if st == "rejected"} == \
        {u.rsplit("/", 1)[1] for u, _, _, _ in src}
    return {"segments": sorted(seg), "sources": sorted(src), "accepted": accepted}


def test_example_schedules_and_the_nightly_config_are_valid():
    cfg = load_config(ROOT / "configs" / "curate_nightly.yaml", CurateConfig)
    assert cfg.sources[0].kind == "folder" and cfg.lake_root.startswith("s3://")
    cron = yaml.safe_load((ROOT / "configs" / "schedules" / "curate-cronjob.yaml").read_text())
    assert cron["kind"] == "CronJob" and cron["spec"]["concurrencyPolicy"] == "Forbid"
    (container,) = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    command = " ".join(container["command"] + container["args"])
    for part in ("ray job submit --address http://ray-head:8265 --working-dir . --", "python jobs/curate.py",
                 "--config configs/curate_nightly.yaml", "--summary-json s3://"):
        assert part in command, part
    lines = [ln for ln in (ROOT / "configs" / "schedules" / "nightly.cron").read_text().splitlines()
             if ln.strip() and not ln.startswith("#") and "=" not in ln.split()[0]]
    assert lines, "no crontab entry"
    fields = lines[0].split(None, 5)
    assert len(fields) == 6 and all(f.replace("*", "").replace(",", "").isdigit() or f == "*" for f in fields[:5])
    assert "ray job submit" in fields[5] and "--summary-json" in fields[5] and ">>" in fields[5]
    assert "flock" not in fields[5]


def test_a_run_finding_the_lock_held_exits_75_names_the_holder_and_writes_nothing(tmp_path):
    incoming, lake = tmp_path / "incoming", tmp_path / "lake"
    _add_night(incoming, 1)
    cfg = _config(tmp_path / "c.yaml", str(incoming), str(lake))
    with RunLock(lock_uri(str(lake), "curate"), owner="curate-manual-run") as held:
        r, summary = _run(cfg, tmp_path / "s.json")
        assert read_lock(held.uri, StorageConfig()).owner == "curate-manual-run"  # untouched
    assert r.returncode == EXIT_LOCKED == 75, r.stdout + r.stderr
    assert r.stderr.strip().count("\n") == 0 and "Traceback" not in r.stderr
    assert r.stderr.startswith("error: lock ") and "held by run curate-manual-run (host " in r.stderr
    assert summary["status"] == "locked" and summary["exit_code"] == 75 and summary["run_id"] is None
    assert summary["lock_holder"] == "curate-manual-run" and summary == {**_json_line(r.stdout),
                                                                         "summary_path": summary["summary_path"]}
    assert not list(lake.glob("*.lance")), "a locked-out run must not write any table"


def test_a_failed_night_exits_1_reports_the_run_and_releases_the_lock(tmp_path):
    lake = tmp_path / "lake"
    cfg = _config(tmp_path / "c.yaml", str(tmp_path / "incoming-not-mounted"), str(lake))
    r, summary = _run(cfg, tmp_path / "s.json")
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "error: FileNotFoundError: source not found" in r.stderr
    assert summary["status"] == "failed" and summary["exit_code"] == 1 and "incoming-not-mounted" in summary["error"]
    (run,) = _rows(str(lake), "runs", ["run_id", "status"])
    assert summary["run_id"] == run[0] and run[1] == "failed"
    assert read_lock(lock_uri(str(lake), "curate"), StorageConfig()) is None, "the lock must be released"


@pytest.mark.slow  # five real job runs, each starting its own Ray (~3-5 min on 2 busy cores); run with -m slow
@pytest.mark.integration
def test_three_nights_with_a_killed_night_recover_to_the_tables_of_one_clean_run(tmp_path):
    incoming, lake = tmp_path / "incoming", str(tmp_path / "lake")
    cfg = _config(tmp_path / "nightly.yaml", str(incoming), lake)
    lock = lock_uri(lake, "curate")

    # night 1: the first files
    _add_night(incoming, 1)
    r1, s1 = _run(cfg, tmp_path / "night1.json")
    assert r1.returncode == 0, r1.stdout[-3000:] + r1.stderr[-3000:]
    c1 = s1["counts"]
    assert (s1["status"], c1["inputs_seen"], c1["inputs_processed"], c1["inputs_accepted"], c1["inputs_rejected"]) == \
        ("succeeded", 3, 3, 2, 1)
    assert read_lock(lock, StorageConfig()) is None

    # night 2: new files arrive; the run is killed (driver and its Ray, SIGKILL) after its first commit.
    # While it runs, a second run (a retry fired too early) finds the lock and exits 75 without writing.
    _add_night(incoming, 2)
    cfg2 = _config(tmp_path / "nightly-small-chunks.yaml", str(incoming), lake, commit_every=1)
    night2 = subprocess.Popen(JOB + ["--config", str(cfg2), "--summary-json", str(tmp_path / "night2.json")],
                              env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    sources_uri = table_uri(lake, "sources")
    deadline = time.time() + 180
    while time.time() < deadline and night2.poll() is None:
        holder = read_lock(lock, StorageConfig())
        if holder is not None and holder.run_id:
            break
        time.sleep(0.1)
    assert night2.poll() is None and holder.pid == night2.pid
    r2b, s2b = _run(cfg, tmp_path / "night2-overlap.json")
    assert r2b.returncode == 75 and f"held by run {holder.run_id}" in r2b.stderr, r2b.stderr
    assert s2b["status"] == "locked" and s2b["lock_holder"] == holder.run_id
    while time.time() < deadline and night2.poll() is None and lance.dataset(sources_uri).count_rows() <= 3:
        time.sleep(0.05)
    assert night2.poll() is None, "night 2 finished before it could be killed"
    os.killpg(night2.pid, signal.SIGKILL)
    night2.wait()
    committed = lance.dataset(sources_uri).count_rows()
    assert 3 < committed < 8, committed
    assert not (tmp_path / "night2.json").exists()  # the scheduler sees exit -9 and no new summary
    stale = read_lock(lock, StorageConfig())
    assert stale is not None and stale.run_id == holder.run_id, "a SIGKILLed run leaves its lock behind"

    # night 3: more files; the stale lock does not block; the leftovers of night 2 are done too
    _add_night(incoming, 3)
    r3, s3 = _run(cfg, tmp_path / "night3.json")
    assert r3.returncode == 0, r3.stdout[-3000:] + r3.stderr[-3000:]
    assert "dead" in s3["lock_took_over"] and holder.run_id in s3["lock_took_over"]
    c3 = s3["counts"]
    assert (c3["inputs_seen"], c3["inputs_skipped_unchanged"], c3["inputs_processed"]) == \
        (10, committed, 10 - committed)
    assert c3["inputs_accepted"] + c3["inputs_rejected"] == c3["inputs_processed"]
    statuses = {rid: st for rid, st in _rows(lake, "runs", ["run_id", "status"])}
    assert statuses == {s1["run_id"]: "succeeded", holder.run_id: "running", s3["run_id"]: "succeeded"}

    # night 4: nothing new -> exit 0 in seconds, nothing written
    r4, s4 = _run(cfg, tmp_path / "night4.json")
    assert r4.returncode == 0
    assert (s4["counts"]["inputs_processed"], s4["counts"]["inputs_skipped_unchanged"]) == (0, 10)

    nightly = _check_lake(lake, 10)
    assert nightly["accepted"] == ACCEPTED
    once = _config(tmp_path / "once.yaml", str(incoming), str(tmp_path / "lake_once"))
    r_once, _ = _run(once, tmp_path / "once.json", "--no-lock")
    assert r_once.returncode == 0, r_once.stderr[-3000:]
    assert not (tmp_path / "lake_once" / "_locks" / "curate.lock").exists()
    assert nightly == _check_lake(str(tmp_path / "lake_once"), 10)


def _upload(s3, bucket: str, incoming: Path, night: int) -> None:
    for rel in NIGHTS[night]:
        s3.upload_file(str(incoming / rel), bucket, f"incoming/{rel}")


@pytest.mark.slow  # two real curation runs through the S3 API (~60 s on 2 busy cores); run with -m slow
@pytest.mark.integration
def test_two_nights_with_sources_and_lake_on_s3(tmp_path, s3_bucket, ray_session):
    endpoint, bucket = s3_bucket
    s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    local = tmp_path / "incoming"
    storage = {"s3_endpoint_url": endpoint, "s3_allow_http": True}
    config = CurateConfig.model_validate(yaml.safe_load(_config(
        tmp_path / "c.yaml", f"s3://{bucket}/incoming", f"s3://{bucket}/lake", storage=storage).read_text()))
    st = config.storage
    quiet = {"progress": lambda _: None, "error": lambda _: None}

    _add_night(local, 1)
    _upload(s3, bucket, local, 1)
    n1 = run_scheduled_curation(config, summary_path=f"s3://{bucket}/reports/night1.json", **quiet)
    assert n1.exit_code == 0, n1.summary
    assert (n1.summary["counts"]["inputs_processed"], n1.summary["counts"]["inputs_accepted"]) == (3, 2)
    stored = json.loads(s3.get_object(Bucket=bucket, Key="reports/night1.json")["Body"].read())
    assert stored["run_id"] == n1.summary["run_id"] and stored["status"] == "succeeded"
    assert stored["lock"] == f"s3://{bucket}/lake/_locks/curate.lock"
    assert read_lock(stored["lock"], st) is None

    # an overlapping run (the lock held in S3 by another live run) writes nothing
    runs_before = len(_rows(config.lake_root, "runs", ["run_id"], st))
    with RunLock(stored["lock"], owner="curate-other-host", storage=st):
        held = run_scheduled_curation(config, **quiet)
    assert held.exit_code == 75 and held.summary["lock_holder"] == "curate-other-host"
    assert len(_rows(config.lake_root, "runs", ["run_id"], st)) == runs_before

    _add_night(local, 2)
    _upload(s3, bucket, local, 2)
    n2 = run_scheduled_curation(config, summary_path=f"s3://{bucket}/reports/night2.json", **quiet)
    assert n2.exit_code == 0, n2.summary
    c2 = n2.summary["counts"]
    assert (c2["inputs_seen"], c2["inputs_skipped_unchanged"], c2["inputs_processed"], c2["inputs_accepted"]) == \
        (8, 3, 5, 3)
    assert n2.summary["table_versions"]["segments"] > n1.summary["table_versions"]["segments"]
    lake = _check_lake(config.lake_root, 8, st)
    assert lake["accepted"] == ACCEPTED - {"s006.wav"}
    assert all(u.startswith(f"s3://{bucket}/incoming/") for _, u in lake["segments"])
    assert read_lock(stored["lock"], st) is None


@pytest.mark.slow  # a private `ray start --head` plus two submitted jobs (~2 min on 2 busy cores); run with -m slow
@pytest.mark.integration
def test_the_cron_recipe_through_ray_job_submit(tmp_path):
    from tests.ray_head import local_ray_head, submit_job

    incoming, lake = tmp_path / "incoming", str(tmp_path / "lake")
    _add_night(incoming, 1)
    cfg = _config(tmp_path / "nightly.yaml", str(incoming), lake)
    summary = tmp_path / "reports" / "night1.json"
    with local_ray_head() as (address, env, ray_exe):
        sub = submit_job(address, env, ray_exe,
                         ["jobs/curate.py", "--config", str(cfg), "--summary-json", str(summary)])
        assert sub.returncode == 0, sub.stdout[-3000:] + sub.stderr[-3000:]
        night1 = json.loads(summary.read_text())
        assert night1["status"] == "succeeded" and night1["counts"]["inputs_processed"] == 3
        assert _json_line(sub.stdout)["run_id"] == night1["run_id"]  # the line is in the job's logs too

        locked = tmp_path / "reports" / "locked.json"
        with RunLock(lock_uri(lake, "curate"), owner="curate-manual-run"):
            sub = submit_job(address, env, ray_exe,
                             ["jobs/curate.py", "--config", str(cfg), "--summary-json", str(locked)])
        # `ray job submit` reports any failed job with its own exit code: the summary tells which failure it was
        assert sub.returncode != 0
        assert json.loads(locked.read_text())["exit_code"] == EXIT_LOCKED
    assert len(_rows(lake, "runs", ["run_id"])) == 1


@pytest.mark.slow  # one real job run that is stopped half-way (~1 min on 2 busy cores); run with -m slow
@pytest.mark.integration
def test_sigterm_marks_the_run_failed_releases_the_lock_and_writes_the_summary(tmp_path):
    incoming, lake = tmp_path / "incoming", str(tmp_path / "lake")
    _add_night(incoming, 1)
    _add_night(incoming, 2)
    cfg = _config(tmp_path / "c.yaml", str(incoming), lake, commit_every=1)
    summary = tmp_path / "s.json"
    proc = subprocess.Popen(JOB + ["--config", str(cfg), "--summary-json", str(summary)], env=_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.time() + 180
    while time.time() < deadline and proc.poll() is None and not Path(table_uri(lake, "sources")).exists():
        time.sleep(0.1)  # Ray is up and the first chunk committed
    assert proc.poll() is None, "the run ended before it could be stopped"
    os.kill(proc.pid, signal.SIGTERM)  # what `ray job stop` and a deleted pod send to the driver
    out, err = proc.communicate(timeout=180)
    assert proc.returncode == 1, out[-2000:] + err[-2000:]
    s = json.loads(summary.read_text())
    assert s["status"] == "failed" and "SIGTERM" in s["error"] and s["run_id"]
    assert dict(_rows(lake, "runs", ["run_id", "status"])) == {s["run_id"]: "failed"}
    assert read_lock(lock_uri(lake, "curate"), StorageConfig()) is None
