"""Aggregate per-clip codec scores into summaries, a Markdown table and a bar chart.

Pure functions over lists of :class:`ClipScore`: the eval job gathers the
scores (from Lance, a folder, anywhere) and decides where the report goes.

Why median with the interquartile range first: per-clip scores of low-rate
codecs are skewed (a few clips collapse), so the median is the headline and
the IQR shows the spread; the mean comes with a 95% percentile-bootstrap
interval for anyone comparing against papers that report means. NaN scores
(a metric that could not be computed on a clip) are left out of both, and
the table says how many clips remained when some were left out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Literal, Sequence

import numpy as np

from pipelines.eval.metrics import QualityScores

__all__ = [
    "ClipScore",
    "CodecSummary",
    "MetricSummary",
    "format_markdown_table",
    "plot_codec_bars",
    "summarize_codecs",
    "summarize_values",
]

# (QualityScores field, column title, decimals); the order of the table and the chart.
_COLUMNS: tuple[tuple[str, str, int], ...] = (
    ("pesq_wb", "PESQ-WB", 2),
    ("stoi", "STOI", 3),
    ("si_sdr_db", "SI-SDR (dB)", 1),
    ("mel_distance", "mel distance", 3),
    ("dnsmos_ovrl", "DNSMOS OVRL", 2),
)


@dataclass(frozen=True)
class ClipScore:
    """One clip decoded by one codec: what it cost and how it scored."""

    codec_name: str
    clip_id: str
    bitrate_bps: float
    scores: QualityScores


@dataclass(frozen=True)
class MetricSummary:
    """Distribution of one metric over clips (NaNs excluded; all NaN when no clip had a value)."""

    n: int
    median: float
    q25: float
    q75: float
    mean: float
    mean_ci_low: float
    mean_ci_high: float


@dataclass(frozen=True)
class CodecSummary:
    """All metrics of one codec over its clips; ``bitrate_bps`` is the median measured bit rate."""

    codec_name: str
    n_clips: int
    bitrate_bps: float
    pesq_wb: MetricSummary
    stoi: MetricSummary
    si_sdr_db: MetricSummary
    mel_distance: MetricSummary
    dnsmos_sig: MetricSummary
    dnsmos_bak: MetricSummary
    dnsmos_ovrl: MetricSummary


def summarize_values(values: Sequence[float], *, n_bootstrap: int = 1000, seed: int = 0) -> MetricSummary:
    """Median, quartiles, mean and a 95% bootstrap interval of the mean over the finite ``values``."""
    x = np.asarray(values, dtype=np.float64)
    x = x[np.isfinite(x)]
    if x.size == 0:
        return MetricSummary(0, *([math.nan] * 6))
    q25, median, q75 = np.percentile(x, [25, 50, 75])
    means = np.random.default_rng(seed).choice(x, size=(n_bootstrap, x.size), replace=True).mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return MetricSummary(n=int(x.size), median=float(median), q25=float(q25), q75=float(q75), mean=float(x.mean()),
                         mean_ci_low=float(low), mean_ci_high=float(high))


def summarize_codecs(rows: Sequence[ClipScore], *, n_bootstrap: int = 1000, seed: int = 0) -> list[CodecSummary]:
    """One :class:`CodecSummary` per codec, in the order codecs first appear in ``rows``.

    Example:
        >>> s = QualityScores(pesq_wb=2.0, stoi=0.9, si_sdr_db=5.0, mel_distance=0.3)
        >>> [c.pesq_wb.median for c in summarize_codecs([ClipScore("opus_8k", "a", 7900.0, s)])]
        [2.0]
    """
    by_codec: dict[str, list[ClipScore]] = {}
    for row in rows:
        by_codec.setdefault(row.codec_name, []).append(row)
    summaries = []
    for name, group in by_codec.items():
        metrics = {f.name: summarize_values([getattr(r.scores, f.name) for r in group], n_bootstrap=n_bootstrap,
                                            seed=seed)
                   for f in fields(QualityScores)}
        summaries.append(CodecSummary(codec_name=name, n_clips=len(group),
                                      bitrate_bps=float(np.median([r.bitrate_bps for r in group])), **metrics))
    return summaries


def format_markdown_table(summaries: Sequence[CodecSummary], *,
                          statistic: Literal["median", "mean"] = "median") -> str:
    """A Markdown table, one row per codec: bit rate and each metric.

    ``statistic="median"`` prints ``median (q25-q75)``; ``"mean"`` prints
    ``mean [95% bootstrap interval]``. A cell computed on fewer clips than
    the codec has ends with ``n=...``; a metric with no value reads ``n/a``.
    """
    if statistic not in ("median", "mean"):
        raise ValueError(f"statistic must be 'median' or 'mean', got {statistic!r}")
    header = ["codec", "bitrate (bit/s)", "clips", *(title for _, title, _ in _COLUMNS)]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|"]
    for summary in summaries:
        cells = [summary.codec_name, f"{summary.bitrate_bps:.0f}", str(summary.n_clips)]
        for name, _, decimals in _COLUMNS:
            cells.append(_format_cell(getattr(summary, name), summary.n_clips, decimals, statistic))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot_codec_bars(summaries: Sequence[CodecSummary], path: Path | str, *, title: str | None = None) -> Path:
    """Draw one bar panel per metric (median, IQR whiskers) for every codec and save it as a PNG at ``path``.

    Uses matplotlib's object API with the Agg canvas: no display and no pyplot global state.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if not summaries:
        raise ValueError("no codec summaries to plot")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    labels = [f"{s.codec_name}\n{s.bitrate_bps / 1000:.3g} kbit/s" for s in summaries]
    positions = np.arange(len(summaries))
    figure = Figure(figsize=(3.2 * len(_COLUMNS), 4.2), layout="constrained")
    FigureCanvasAgg(figure)
    for axes, (name, column_title, _) in zip(figure.subplots(1, len(_COLUMNS)), _COLUMNS):
        metric = [getattr(s, name) for s in summaries]
        medians = np.array([m.median for m in metric])
        whiskers = np.array([[m.median - m.q25 for m in metric], [m.q75 - m.median for m in metric]])
        axes.bar(positions, np.nan_to_num(medians), yerr=np.nan_to_num(whiskers), capsize=3,
                 color=[f"C{i % 10}" for i in range(len(summaries))])
        axes.set_title(column_title + (" (lower is better)" if name == "mel_distance" else ""), fontsize=10)
        axes.set_xticks(positions, labels, rotation=60, ha="right", fontsize=7)
        axes.grid(axis="y", alpha=0.3)
        if np.all(np.isnan(medians)):
            axes.text(0.5, 0.5, "not computed", transform=axes.transAxes, ha="center", va="center", color="gray")
    if title:
        figure.suptitle(title)
    figure.savefig(path, dpi=110)
    return path


def _format_cell(metric: MetricSummary, n_clips: int, decimals: int, statistic: str) -> str:
    """One table cell: the statistic with its spread, and the clip count when some clips had no value."""
    if metric.n == 0:
        return "n/a"
    if statistic == "median":
        text = f"{metric.median:.{decimals}f} ({metric.q25:.{decimals}f}–{metric.q75:.{decimals}f})"
    else:
        text = f"{metric.mean:.{decimals}f} [{metric.mean_ci_low:.{decimals}f}, {metric.mean_ci_high:.{decimals}f}]"
    return text + (f" n={metric.n}" if metric.n < n_clips else "")
