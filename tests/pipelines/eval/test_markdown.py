"""The evaluation's Markdown helpers: target verdicts and marked sections of RESULTS.md."""

from __future__ import annotations

import pytest

from pipelines.eval.markdown import SetReport, format_targets, replace_marked_section
from pipelines.eval.metrics import QualityScores
from pipelines.eval.report import ClipScore, summarize_codecs


def _set(**codecs: tuple[float, float, float, float]) -> SetReport:
    """codec -> (bit/s, PESQ-WB, STOI, mel distance), one clip each."""
    rows = [ClipScore(name, "clip", bps, QualityScores(pesq_wb=p, stoi=s, si_sdr_db=0.0, mel_distance=m))
            for name, (bps, p, s, m) in codecs.items()]
    return SetReport(name="test", filter="true", n_clips=1, audio_s=1.0, summaries=summarize_codecs(rows), costs={})


def test_targets_compare_against_the_best_codec2_mode_and_opus_6k():
    s = _set(ours=(997, 2.0, 0.86, 0.40), codec2_700c=(800, 1.3, 0.80, 0.50), codec2_3200=(3200, 1.6, 0.85, 0.45),
             opus_6k=(5800, 2.2, 0.86, 0.30), big=(1500, 3.0, 0.95, 0.1))
    table = format_targets([s], ["ours", "big"])
    row = next(line for line in table.splitlines() if "| ours |" in line)
    assert "2.000 vs 1.600 (codec2_3200): yes" in row and "0.860 vs 0.850 (codec2_3200): yes" in row
    assert "0.400 vs 0.450 (codec2_3200): yes" in row  # mel distance: lower wins
    assert "0.860 vs 0.860 (opus_6k): yes" in row  # the stretch target is to reach Opus 6k: a tie counts
    assert "| big | 1500 | over 1.2 kbps: not a candidate |" in table
    worse = format_targets([_set(ours=(997, 1.2, 0.9, 0.6), codec2_700c=(800, 1.3, 0.8, 0.5))], ["ours"])
    assert "1.200 vs 1.300 (codec2_700c): **no**" in worse and "0.600 vs 0.500 (codec2_700c): **no**" in worse
    assert "| n/a |" in worse  # no Opus 6k row: the stretch target cannot be judged


def test_marked_section_replaces_appends_and_refuses_half_markers(tmp_path):
    path = tmp_path / "RESULTS.md"
    replace_marked_section(path, "x", "first\n")
    assert path.read_text() == "<!-- x:begin -->\nfirst\n<!-- x:end -->\n"
    path.write_text("# R\n\nabove\n" + path.read_text() + "below\n")
    replace_marked_section(path, "x", "second")
    replace_marked_section(path, "y", "other")
    assert path.read_text() == ("# R\n\nabove\n<!-- x:begin -->\nsecond\n<!-- x:end -->\nbelow\n\n"
                                "<!-- y:begin -->\nother\n<!-- y:end -->\n")
    path.write_text("<!-- x:begin -->\nno end\n")
    with pytest.raises(ValueError, match="only one of"):
        replace_marked_section(path, "x", "third")
    assert path.read_text() == "<!-- x:begin -->\nno end\n"
