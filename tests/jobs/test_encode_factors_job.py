"""The factors job as users run it: the shipped config, exit codes, one-line errors, a re-run that writes nothing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import lance
import pytest
import torch
from pydantic import ValidationError

from jobs.encode_factors import main
from models.codec import build_codec, codec_tiny_test, load_checkpoint, save_checkpoint
from models.factorizer import build_factorizer, factorizer_tiny_test, save_factorizer_checkpoint
from pipelines.lance_io import table_uri
from schemas import config_model_for
from schemas.curate import load_config
from schemas.encode_factors import DEFAULT_FACTORIZER_CHECKPOINT, EncodeFactorsConfig
from tests.conftest import ROOT
from tests.tiny_lake import segment_row, write_latents, write_segments

CONFIG = ROOT / "configs" / "encode_factors.yaml"
JOB = [sys.executable, str(ROOT / "jobs" / "encode_factors.py"), "--config", str(CONFIG)]


def _tiny_lake(root: Path, n: int = 3) -> tuple[Path, Path, Path]:
    """A lake of ``n`` segments with latents of a tiny codec, that codec's checkpoint and a factorizer of it."""
    lake = root / "lake"
    segments = [segment_row(0.6 + 0.4 * i, seed=i) for i in range(n)]
    write_segments(lake, segments)
    torch.manual_seed(0)
    codec = save_checkpoint(root / "codec.pt", build_codec(codec_tiny_test()), codec_tiny_test())
    codec_id = load_checkpoint(codec)[2].codec_id
    write_latents(lake, segments, codec_id=codec_id)
    cfg = factorizer_tiny_test().model_copy(update={"speaker_dim": 64, "style_dim": 16, "environment_dim": 16,
                                                    "channel_dim": 16})
    factorizer = save_factorizer_checkpoint(root / "factorizer.pt", build_factorizer(cfg), cfg, codec_id=codec_id)
    return lake, codec, factorizer


def _args(lake: Path, codec: Path, factorizer: Path) -> list[str]:
    return ["--lake-root", str(lake), "--codec-checkpoint", str(codec), "--factorizer-checkpoint", str(factorizer)]


def test_the_shipped_config_loads_and_names_its_command():
    assert config_model_for(CONFIG) is EncodeFactorsConfig
    config = load_config(CONFIG, EncodeFactorsConfig)
    assert config.factorizer_checkpoint == DEFAULT_FACTORIZER_CHECKPOINT
    assert config.codec_checkpoint == "checkpoints/codec_50hz_2x8555.pt"
    assert config.index.build and config.index.factors == ["speaker"] and config.index.metric == "cosine"
    assert CONFIG.read_text().splitlines()[0].startswith(
        "# python jobs/encode_factors.py --config configs/encode_factors.yaml")
    with pytest.raises(ValidationError, match="num_sub_vectors 5 must divide the vector size"):
        EncodeFactorsConfig.model_validate({"index": {"num_sub_vectors": 5}})


@pytest.mark.slow  # ~20 s: a job process joining the session's Ray ships the repo and starts fresh workers
def test_the_job_writes_factors_and_the_index_and_a_rerun_is_a_noop(tmp_path, ray_session, capsys):
    lake, codec, factorizer = _tiny_lake(tmp_path)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "RAY_AUTH_MODE": "disabled",
           "RAY_ADDRESS": ray_session.get_runtime_context().gcs_address}
    r = subprocess.run(JOB + _args(lake, codec, factorizer), env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "3 to factorize -> 3 factors rows written" in r.stdout
    assert "index speaker_vector: created IVF_FLAT (1 partition); 3 rows" in r.stdout
    factors = lance.dataset(table_uri(str(lake), "factors"))
    assert factors.count_rows() == 3 and [d.name for d in factors.describe_indices()] == ["speaker_vector_idx"]
    assert main(["--config", str(CONFIG)] + _args(lake, codec, factorizer)) == 0  # in-process: no Ray needed
    out = capsys.readouterr().out
    assert "3 already factorized, 0 to factorize -> 0 factors rows written" in out
    assert "index speaker_vector: up to date; 3 rows" in out
    assert lance.dataset(table_uri(str(lake), "factors")).version == factors.version


def test_a_run_with_nothing_to_do_exits_0_without_ray(tmp_path, capsys):
    lake, codec, factorizer = _tiny_lake(tmp_path, n=2)
    config = tmp_path / "encode_factors.yaml"
    config.write_text(CONFIG.read_text().replace("segments_filter: null", "segments_filter: \"split = 'none'\""))
    assert main(["--config", str(config)] + _args(lake, codec, factorizer)) == 0
    out = capsys.readouterr().out
    assert "0 latents rows selected" in out and "0 selected, 0 already factorized, 0 to factorize -> 0 factors rows " \
        "written" in out
    assert not (lake / "factors.lance").exists() and (lake / "runs.lance").exists()


def test_bad_inputs_exit_2_with_one_line_and_write_nothing(tmp_path, capsys):
    lake, codec, factorizer = _tiny_lake(tmp_path, n=1)
    torch.manual_seed(1)
    other_codec = save_checkpoint(tmp_path / "other.pt", build_codec(codec_tiny_test()), codec_tiny_test())
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"\x00not a checkpoint" * 10)
    bad_config = tmp_path / "encode_factors.yaml"
    bad_config.write_text(CONFIG.read_text().replace("rows_per_batch:", "rows_per_btach:"))
    cases = [
        (_args(lake, other_codec, factorizer), "reads latents of codec"),
        (_args(lake, codec, corrupt), f"error: {corrupt}: not a readable checkpoint (corrupt or truncated?)"),
        (_args(lake, codec, factorizer) + ["--factorizer-id", "factorizer_x-1"], "expected 'factorizer_x-1'"),
    ]
    for args, message in cases:
        assert main(["--config", str(CONFIG)] + args) == 2
        (line,) = capsys.readouterr().err.strip().splitlines()
        assert line.startswith("error: ") and message in line
    assert main(["--config", str(bad_config)] + _args(lake, codec, factorizer)) == 2
    assert "rows_per_btach" in capsys.readouterr().err
    assert not (lake / "factors.lance").exists() and not (lake / "runs.lance").exists()
