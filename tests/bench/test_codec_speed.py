"""Smoke test of the codec speed benchmark (bench/codec_speed.py) on the tiny codec: it times, reports, records."""

from __future__ import annotations

import pytest

from bench.codec_speed import RESULTS_MARKER, ModelSource, main, measure_codec_speed


def test_encode_and_decode_are_timed_and_the_section_is_recorded(tmp_path, tmp_path_factory, capsys):
    from tests.pipelines.eval_lake import tiny_checkpoint

    results = tmp_path / "RESULTS.md"
    results.write_text("# Benchmark results\n")
    argv = ["--checkpoint", str(tiny_checkpoint(tmp_path_factory)), "--shapes", "2x0.5", "--modes", "1x1",
            "--repeats", "2", "--write-results", "--results-md", str(results)]
    assert main(argv) == 0
    text = results.read_text()
    assert text.startswith("# Benchmark results\n\n<!-- codec-speed:begin -->\n## Codec speed")
    assert text.rstrip().endswith(f"<!-- {RESULTS_MARKER}:end -->") and "CPU (lscpu): " in text
    rows = [line for line in text.splitlines() if line.startswith(("| encode", "| decode"))]
    assert [r.split(" | ")[:4] for r in rows] == [["| encode", "2 x 0.5 s", "1 x 1", "1"],
                                                 ["| decode", "2 x 0.5 s", "1 x 1", "1"]]
    assert ">= 100x per core: " in rows[0] and "step 7" in text
    assert all(float(r.split(" | ")[5].rstrip("x").replace(",", "")) > 0 for r in rows)
    assert "| encode |" in capsys.readouterr().out


def test_a_missing_checkpoint_is_a_clear_error(tmp_path, capsys):
    assert main(["--checkpoint", str(tmp_path / "gone.pt")]) == 1
    assert capsys.readouterr().err.strip() == f"error: {tmp_path / 'gone.pt'}: no such checkpoint file"


@pytest.mark.slow
def test_two_spawned_processes_are_timed_together():
    rows = measure_codec_speed(ModelSource(preset="codec_tiny_test"), shapes=[(1, 0.5)], modes=[(2, 1)], repeats=2)
    assert [(r.direction, r.processes, r.audio_s, len(r.wall_s)) for r in rows] == [("encode", 2, 1.0, 2),
                                                                                   ("decode", 2, 1.0, 2)]
    assert all(r.rtf > 0 and r.rtf_per_core == pytest.approx(r.rtf / 2) for r in rows)
