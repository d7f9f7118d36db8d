"""The encode and decode jobs as users run them: exit codes, one-line errors, a WAV out."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import lance
import pytest
import soundfile as sf
import torch

from models.codec import build_codec, codec_tiny_test, load_checkpoint, save_checkpoint
from pipelines.lance_io import table_uri
from tests.conftest import ROOT
from tests.tiny_lake import segment_row, write_segments

PY = sys.executable
ENCODE = [PY, str(ROOT / "jobs" / "encode.py"), "--config", str(ROOT / "configs" / "encode.yaml")]
DECODE = [PY, str(ROOT / "jobs" / "decode_latents.py")]


def _env(**extra: str) -> dict:
    return {**os.environ, "PYTHONPATH": str(ROOT), "RAY_AUTH_MODE": "disabled", **extra}


def _run(cmd: list[str], **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, env=_env(**env), capture_output=True, text=True, timeout=300)


def _tiny_lake(root: Path, n: int = 3) -> tuple[Path, Path]:
    lake = root / "lake"
    write_segments(lake, [segment_row(0.8 + 0.5 * i, seed=i) for i in range(n)])
    torch.manual_seed(0)
    return lake, save_checkpoint(root / "tiny.pt", build_codec(codec_tiny_test()), codec_tiny_test())


@pytest.fixture(scope="module")
def encoded_by_job(tmp_path_factory, ray_session):
    """The shipped config, with --lake-root / --checkpoint overrides, run as a job on the session's Ray."""
    lake, ckpt = _tiny_lake(tmp_path_factory.mktemp("job"))
    address = ray_session.get_runtime_context().gcs_address
    r = _run(ENCODE + ["--lake-root", str(lake), "--checkpoint", str(ckpt)], RAY_ADDRESS=address)
    assert r.returncode == 0, r.stdout + r.stderr
    return lake, ckpt, r


def test_encode_job_writes_latents_prints_storage_and_a_rerun_is_a_noop(encoded_by_job):
    lake, ckpt, r = encoded_by_job
    assert "3 to encode -> 3 latents rows written" in r.stdout and "MB/h" in r.stdout and "smaller" in r.stdout
    latents = lance.dataset(table_uri(str(lake), "latents"))
    assert latents.count_rows() == 3
    version = latents.version
    again = _run(ENCODE + ["--lake-root", str(lake), "--checkpoint", str(ckpt)])
    assert again.returncode == 0, again.stdout + again.stderr
    assert "3 already encoded, 0 to encode -> 0 latents rows written" in again.stdout
    assert lance.dataset(table_uri(str(lake), "latents")).version == version


def test_decode_cli_writes_a_wav_of_the_rows_length(encoded_by_job, tmp_path):
    lake, ckpt, _ = encoded_by_job
    row = lance.dataset(table_uri(str(lake), "latents")).to_table(columns=["segment_id", "num_samples"]).to_pylist()[0]
    out = tmp_path / "out" / "x.wav"
    r = _run(DECODE + ["--lake-root", str(lake), "--segment-id", row["segment_id"],
                       "--codec-id", load_checkpoint(ckpt)[2].codec_id, "--out", str(out)])
    assert r.returncode == 0, r.stdout + r.stderr
    info = sf.info(str(out))
    assert (info.frames, info.samplerate, info.channels, info.subtype) == (row["num_samples"], 16000, 1, "PCM_16")


def test_decode_cli_names_an_unknown_segment_and_codec(encoded_by_job, tmp_path):
    lake, ckpt, _ = encoded_by_job
    out = tmp_path / "x.wav"
    r = _run(DECODE + ["--lake-root", str(lake), "--segment-id", "nope", "--checkpoint", str(ckpt), "--out", str(out)])
    assert r.returncode == 2 and "Traceback" not in r.stderr and not out.exists()
    assert r.stderr.strip().splitlines() == [f"error: segment 'nope' has no latents in {lake} (unknown segment id, "
                                             "or not encoded yet)"]
    sid = lance.dataset(table_uri(str(lake), "latents")).to_table(columns=["segment_id"]).column(0)[0].as_py()
    r = _run(DECODE + ["--lake-root", str(lake), "--segment-id", sid, "--codec-id", "codec_x-123", "--out", str(out)])
    assert r.returncode == 2 and not out.exists()
    assert len(r.stderr.strip().splitlines()) == 1 and "no latents of codec 'codec_x-123'" in r.stderr


def test_bad_checkpoints_exit_2_with_one_line_and_write_nothing(tmp_path):
    lake, ckpt = _tiny_lake(tmp_path, n=1)
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"\x00not a checkpoint" * 10)
    r = _run(ENCODE + ["--lake-root", str(lake), "--checkpoint", str(corrupt)])
    assert r.returncode == 2 and "Traceback" not in r.stderr
    (line,) = r.stderr.strip().splitlines()
    assert line.startswith(f"error: {corrupt}: not a readable checkpoint (corrupt or truncated?)")
    r = _run(ENCODE + ["--lake-root", str(lake), "--checkpoint", str(ckpt), "--codec-id", "codec_50hz_2x8555-abc"])
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines() == [f"error: {ckpt}: checkpoint is codec '{load_checkpoint(ckpt)[2].codec_id}', "
                                             "expected 'codec_50hz_2x8555-abc'"]
    assert not (lake / "latents.lance").exists() and not (lake / "runs.lance").exists()
