"""The codec robustness bench (bench/codec_robustness.py): its perturbations are what they say, and it scores a
checkpoint on a lake's test split."""

from __future__ import annotations

import numpy as np
import pytest

from bench.codec_robustness import PERTURBATIONS, main, unchanged_shares
from models.codec import build_codec, codec_tiny_test, save_checkpoint
from tests.tiny_lake import segment_row, write_segments


def test_perturbations_are_small_and_keep_the_length():
    t = np.arange(16000) / 16000
    x = (0.3 * np.sin(2 * np.pi * 1000 * t)).astype(np.float32)
    rng = np.random.default_rng(0)
    for name, perturb in PERTURBATIONS.items():
        y = perturb(x, rng)
        assert y.shape == x.shape and y.dtype == np.float32, name
    trip = PERTURBATIONS["22.05 kHz round trip"](x, rng)
    assert float(np.max(np.abs(trip[200:-200] - x[200:-200]))) < 1e-3  # in band: only 16-bit rounding
    noise = PERTURBATIONS["noise -80 dBFS"](x, rng) - x
    assert float(np.sqrt(np.mean(noise ** 2))) == pytest.approx(1e-4, rel=0.05)
    assert float(np.max(np.abs(PERTURBATIONS["gain -1 dB"](x, rng)))) == pytest.approx(0.3 * 10 ** (-1 / 20), rel=1e-3)


def test_identity_keeps_every_code_and_the_bench_reports_a_row(tmp_path, capsys):
    codec = build_codec(codec_tiny_test()).eval()
    clip = (0.1 * np.random.default_rng(1).standard_normal(16000)).astype(np.float32)
    assert unchanged_shares(codec, [clip], lambda x, _: x, seed=0) == [1.0]

    lake = tmp_path / "lake"
    write_segments(lake, [segment_row(1.5, seed=i, split="test") for i in range(3)])
    ckpt = save_checkpoint(tmp_path / "tiny.pt", codec, codec_tiny_test(), step=1)
    assert main(["--lake-root", str(lake), "--checkpoint", str(ckpt), "--clips", "3"]) == 0
    out = capsys.readouterr().out
    assert "Clips: 3 test-split segments" in out and f"| `{ckpt}` | codec_tiny_test-" in out
    assert out.count(" % (") == len(PERTURBATIONS) * 2  # one row, printed as measured and in the report
