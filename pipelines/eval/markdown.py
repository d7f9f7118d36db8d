"""The codec evaluation's Markdown: the report, the target verdicts, and marked sections of ``bench/RESULTS.md``.

Why marked sections: ``bench/RESULTS.md`` collects every benchmark, each with
the command that made it; a generated block sits between
``<!-- name:begin -->`` and ``<!-- name:end -->`` so a re-run replaces its own
figures and leaves the rest of the file (and hand-written notes) alone.
"""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from pipelines.eval.report import CodecSummary, format_markdown_table

__all__ = ["CodecCost", "CodecInfo", "SetReport", "cpu_model", "format_eval_report", "format_targets", "git_revision",
           "replace_marked_section", "TARGET_MAX_BITRATE_BPS"]

#: The issue's target: a codec at or under this rate must beat every Codec2 mode.
TARGET_MAX_BITRATE_BPS = 1200.0
_CODEC2_PREFIX = "codec2_"
_STRETCH_BASELINE = "opus_6k"


@dataclass(frozen=True)
class CodecInfo:
    """One evaluated codec, for the report's list: kind ("checkpoint", "baseline", "input") and what it is."""

    name: str
    kind: str
    detail: str
    nominal_bitrate_bps: float | None


@dataclass(frozen=True)
class CodecCost:
    """Seconds one codec spent per clip: in the codec (encode + decode) and in scoring, wall and CPU."""

    codec_s: list[float]
    score_s: list[float]
    codec_cpu_s: list[float]
    score_cpu_s: list[float]


@dataclass(frozen=True)
class SetReport:
    """One held-out set's results: how it was selected, its size, and one summary per codec."""

    name: str
    filter: str
    n_clips: int
    audio_s: float
    summaries: list[CodecSummary]
    costs: dict[str, CodecCost]


def format_eval_report(*, heading: str, command: str, context: str, lake: str, codecs: Sequence[CodecInfo],
                       sets: Sequence[SetReport], overall: SetReport, chart: str | None, wall_s: float, cpus: float,
                       notes: Sequence[str] = ()) -> str:
    """The whole report: provenance, codecs, target verdicts, tables over all clips and per set, and cost."""
    lines = [heading, "", f"Command: `{command}`  ", f"{context}  ", f"Lake: {lake}", "",
             "| codec | kind | what | nominal bit/s |", "| --- | --- | --- | ---: |"]
    lines += [f"| {c.name} | {c.kind} | {c.detail} | "
              f"{'' if c.nominal_bitrate_bps is None else f'{c.nominal_bitrate_bps:.0f}'} |" for c in codecs]
    checkpoints = [c.name for c in codecs if c.kind == "checkpoint"]
    lines += ["", "### Targets", "",
              f"Medians per set. Target: a codec at <= {TARGET_MAX_BITRATE_BPS:.0f} bit/s (measured) beats every "
              f"Codec2 mode on PESQ-WB, STOI and mel distance; stretch: reaches {_STRETCH_BASELINE} on STOI.", "",
              format_targets([overall, *sets], checkpoints).rstrip("\n"), ""]
    lines += _set_section(overall, f"All held-out clips: {_describe_size(overall)}")
    if chart:
        lines += [f"![codec evaluation: medians with interquartile ranges]({chart})", ""]
    for s in sets:
        lines += _set_section(s, f"Set `{s.name}`: {_describe_size(s)}; filter `{s.filter}`")
    lines += ["### Cost of this run", "",
              f"{wall_s:.0f} s wall on {cpus:g} CPUs for {overall.n_clips} clips "
              f"({overall.audio_s / overall.n_clips:.1f} s each on average). Per clip, median, one clip at a time "
              "(batch of 1): seconds in the codec (encode + decode; for baselines the coder binaries and alignment) "
              "and in scoring (all metrics on the decode); CPU s count this process and its coder subprocesses. "
              "Codec x real time: audio s / codec CPU s.", "",
              "| codec | codec wall s | codec CPU s | codec x real time | scoring wall s | scoring CPU s |",
              "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for summary in overall.summaries:
        cost = overall.costs[summary.codec_name]
        cpu = sum(cost.codec_cpu_s)
        speed = f"{overall.audio_s / cpu:,.0f}x" if cpu > 0 else "-"
        lines.append(f"| {summary.codec_name} | {np.median(cost.codec_s):.3f} | {np.median(cost.codec_cpu_s):.3f} | "
                     f"{speed} | {np.median(cost.score_s):.3f} | {np.median(cost.score_cpu_s):.3f} |")
    lines += ["", "Cells: median (interquartile range) over clips; bit rates are medians of what each codec spent "
              "per clip (Codec2 as stored, Opus packets without the Ogg container, trained codecs whole frames x "
              "bits per frame). PESQ-WB (ITU-T P.862.2, `pesq`), STOI (`pystoi`), SI-SDR, mel distance (mean |log "
              "mel| difference, 80 bands; lower is better), DNSMOS P.835 OVRL (no reference; the `input` row is "
              "the ceiling). Scores per clip: the JSONL named below.", *notes]
    return "\n".join(lines).rstrip("\n") + "\n"


def format_targets(sets: Sequence[SetReport], checkpoints: Sequence[str]) -> str:
    """One row per set x checkpoint codec at <= 1.2 kbps: its medians against the best Codec2 and Opus 6k."""
    header = ["set", "codec", "bit/s", "PESQ-WB vs best Codec2", "STOI vs best Codec2",
              "mel distance vs best Codec2", f"STOI vs {_STRETCH_BASELINE} (stretch)"]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] * 2 + ["---:"] + ["---"] * 4) + "|"]
    for s in sets:
        by_name = {c.codec_name: c for c in s.summaries}
        codec2 = [c for c in s.summaries if c.codec_name.startswith(_CODEC2_PREFIX)]
        for name in checkpoints:
            codec = by_name.get(name)
            if codec is None:
                continue
            if codec.bitrate_bps > TARGET_MAX_BITRATE_BPS:
                lines.append(f"| {s.name} | {name} | {codec.bitrate_bps:.0f} | over 1.2 kbps: not a candidate | | | |")
                continue
            cells = [_versus(codec, codec2, metric, higher) for metric, higher in
                     (("pesq_wb", True), ("stoi", True), ("mel_distance", False))]
            stretch = by_name.get(_STRETCH_BASELINE)
            cells.append(_versus(codec, [stretch] if stretch else [], "stoi", True, ties_win=True))
            lines.append(f"| {s.name} | {name} | {codec.bitrate_bps:.0f} | " + " | ".join(cells) + " |")
    if len(lines) == 2:
        lines.append("| (no checkpoint codec evaluated) | | | | | | |")
    return "\n".join(lines) + "\n"


def replace_marked_section(path: Path | str, marker: str, body: str) -> Path:
    """Put ``body`` between ``<!-- marker:begin -->`` and ``<!-- marker:end -->`` in ``path``.

    The old text between the markers is replaced; without markers the block is appended (the file is created
    when missing). Everything outside the markers is kept byte for byte.
    """
    path = Path(path)
    begin, end = f"<!-- {marker}:begin -->", f"<!-- {marker}:end -->"
    block = f"{begin}\n{body.strip(chr(10))}\n{end}"
    text = path.read_text() if path.exists() else ""
    i, j = text.find(begin), text.find(end)
    if i >= 0 and j > i:
        text = text[:i] + block + text[j + len(end):]
    elif i >= 0 or j >= 0:
        raise ValueError(f"{path}: only one of {begin} / {end} found; fix the file by hand")
    else:
        text = (text.rstrip("\n") + "\n\n" if text.strip() else "") + block + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def git_revision(repo: Path | str) -> str:
    """Short HEAD of ``repo``, with "(+ uncommitted changes)" when tracked files differ; "unknown" outside git."""
    try:
        rev = subprocess.run(["git", "-C", str(repo), "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, check=True).stdout.strip()
        return rev + (" (+ uncommitted changes)" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def cpu_model() -> str:
    """``Model name`` from ``lscpu`` (else /proc/cpuinfo), with the CPU count: "AMD EPYC, 2 CPUs"."""
    model = None
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True, env={**os.environ, "LC_ALL": "C"})
        match = re.search(r"^Model name:\s*(.+)$", out.stdout, re.M)
        model = match.group(1).strip() if match else None
    except (OSError, subprocess.CalledProcessError):
        pass
    if model is None:
        try:
            match = re.search(r"^model name\s*:\s*(.+)$", Path("/proc/cpuinfo").read_text(), re.M)
            model = match.group(1).strip() if match else None
        except OSError:
            pass
    return f"{model or 'unknown CPU'}, {os.cpu_count()} CPUs"


def _set_section(s: SetReport, title: str) -> list[str]:
    return [f"### {title}", "", format_markdown_table(s.summaries).rstrip("\n"), ""]


def _describe_size(s: SetReport) -> str:
    return f"{s.n_clips} clips, {s.audio_s / 3600:.3f} h ({s.audio_s / 60:.1f} min)"


def _versus(codec: CodecSummary, others: Sequence[CodecSummary], metric: str, higher_is_better: bool, *,
            ties_win: bool = False) -> str:
    """"2.31 vs 1.45 (codec2_3200): yes" against the best of ``others`` on ``metric``'s median (beat, or reach)."""
    mine = getattr(codec, metric).median
    values = [(getattr(o, metric).median, o.codec_name) for o in others if np.isfinite(getattr(o, metric).median)]
    if not values or not np.isfinite(mine):
        return "n/a"
    best, best_name = max(values) if higher_is_better else min(values)
    margin = mine - best if higher_is_better else best - mine
    beats = margin >= 0 if ties_win else margin > 0
    return f"{mine:.3f} vs {best:.3f} ({best_name}): {'yes' if beats else '**no**'}"
