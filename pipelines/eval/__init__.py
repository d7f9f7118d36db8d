"""Codec evaluation: classic baselines (Codec2, Opus), quality metrics, and reports.

No ray here: the eval job wires these into whatever runs them (STYLE.md).
``baselines`` runs the real Debian coders; ``metrics`` scores a decoded clip
against its reference (PESQ-WB, STOI, SI-SDR, mel distance, DNSMOS);
``report`` aggregates scores over clips into a Markdown table and a PNG.
"""

from __future__ import annotations

from pipelines.eval.baselines import (
    BASELINES,
    CODEC2_MODES,
    CodecNotInstalledError,
    CodecRoundTrip,
    align_to_reference,
    roundtrip_codec2,
    roundtrip_opus,
    run_baseline,
)
from pipelines.eval.metrics import (
    DnsmosScorer,
    DnsmosScores,
    QualityScores,
    measure_mel_distance,
    measure_pesq_wb,
    measure_si_sdr_db,
    measure_stoi,
    score_pair,
)
from pipelines.eval.report import (
    ClipScore,
    CodecSummary,
    MetricSummary,
    format_markdown_table,
    plot_codec_bars,
    summarize_codecs,
    summarize_values,
)

__all__ = [
    "BASELINES",
    "CODEC2_MODES",
    "ClipScore",
    "CodecNotInstalledError",
    "CodecRoundTrip",
    "CodecSummary",
    "DnsmosScorer",
    "DnsmosScores",
    "MetricSummary",
    "QualityScores",
    "align_to_reference",
    "format_markdown_table",
    "measure_mel_distance",
    "measure_pesq_wb",
    "measure_si_sdr_db",
    "measure_stoi",
    "plot_codec_bars",
    "roundtrip_codec2",
    "roundtrip_opus",
    "run_baseline",
    "score_pair",
    "summarize_codecs",
    "summarize_values",
]
