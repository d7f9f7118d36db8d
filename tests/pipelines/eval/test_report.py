"""Report: per-codec summaries, the Markdown table and the PNG chart, from lists of scores."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from pipelines.eval import (
    ClipScore,
    QualityScores,
    format_markdown_table,
    plot_codec_bars,
    summarize_codecs,
    summarize_values,
)


def _scores(pesq_wb: float, stoi: float = 0.8, dnsmos_ovrl: float = 3.0) -> QualityScores:
    return QualityScores(pesq_wb=pesq_wb, stoi=stoi, si_sdr_db=-5.0, mel_distance=0.5, dnsmos_sig=3.2,
                         dnsmos_bak=3.9, dnsmos_ovrl=dnsmos_ovrl)


@pytest.fixture()
def rows() -> list[ClipScore]:
    """Two codecs over four clips; one Codec2 clip has no PESQ (NaN) and Opus has no DNSMOS at all."""
    codec2 = [ClipScore("codec2_1200", f"clip{i}", 1200.0 + i, _scores(p)) for i, p in
              enumerate([1.2, 1.4, math.nan, 1.3])]
    opus = [ClipScore("opus_8k", f"clip{i}", 7600.0 + 100 * i, _scores(2.0 + 0.1 * i, 0.95, math.nan))
            for i in range(4)]
    return codec2 + opus


def test_summaries_follow_first_appearance_and_skip_nan(rows: list[ClipScore]) -> None:
    codec2, opus = summarize_codecs(rows)
    assert (codec2.codec_name, opus.codec_name) == ("codec2_1200", "opus_8k")
    assert codec2.n_clips == 4 and codec2.pesq_wb.n == 3
    assert codec2.pesq_wb.median == pytest.approx(1.3) and codec2.pesq_wb.mean == pytest.approx(1.3)
    assert codec2.bitrate_bps == pytest.approx(1201.5)
    assert opus.dnsmos_ovrl.n == 0 and math.isnan(opus.dnsmos_ovrl.median)
    assert opus.pesq_wb.q25 <= opus.pesq_wb.median <= opus.pesq_wb.q75


def test_bootstrap_interval_brackets_the_mean_and_is_reproducible() -> None:
    values = np.random.default_rng(0).normal(2.0, 0.3, size=40)
    summary = summarize_values(values, seed=3)
    assert summary.mean_ci_low < summary.mean < summary.mean_ci_high
    assert summary.mean_ci_high - summary.mean_ci_low < 0.5
    assert summarize_values(values, seed=3) == summary


def test_markdown_table_has_a_row_per_codec(rows: list[ClipScore]) -> None:
    table = format_markdown_table(summarize_codecs(rows))
    lines = table.strip().splitlines()
    assert lines[0] == ("| codec | bitrate (bit/s) | clips | PESQ-WB | STOI | SI-SDR (dB) | mel distance "
                        "| DNSMOS OVRL |")
    assert len(lines) == 4
    assert lines[2].startswith("| codec2_1200 | 1202 | 4 | 1.30 (1.25–1.35) n=3 | 0.800 (0.800–0.800) |")
    assert lines[3].endswith("| n/a |")
    mean_table = format_markdown_table(summarize_codecs(rows), statistic="mean")
    assert "2.15 [" in mean_table
    with pytest.raises(ValueError, match="statistic"):
        format_markdown_table(summarize_codecs(rows), statistic="mode")  # type: ignore[arg-type]


def test_bar_chart_is_written_as_a_png(rows: list[ClipScore], tmp_path: Path) -> None:
    path = plot_codec_bars(summarize_codecs(rows), tmp_path / "out" / "codecs.png", title="test")
    data = path.read_bytes()
    assert data.startswith(b"\x89PNG") and len(data) > 10_000
    with pytest.raises(ValueError, match="no codec"):
        plot_codec_bars([], tmp_path / "empty.png")
