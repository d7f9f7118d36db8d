"""Short text summaries of the lake: rows and versions per table, hours, top speakers, rejects by reason.

``summarize_lake`` is printed at the end of ``make demo`` and by ``jobs/curate.py
--summary``; ``format_report_summary`` is what ``jobs/corpus_report.py`` prints
(the same lines plus hours by language / environment / channel, the speaker x
environment coverage and recent runs). Both format the figures of
``pipelines.corpus_report.measure_corpus``, which reads only metadata columns
(no audio), so the numbers agree with the HTML report by construction.
"""

from __future__ import annotations

from pipelines.corpus_report import Breakdown, CorpusReport, measure_corpus
from schemas.storage import StorageConfig

__all__ = ["summarize_lake", "format_report_summary", "label_text"]

_TOP_VALUES = 8


def label_text(value: str | None, unlabelled: str = "(none)") -> str:
    """A label value for display (null shown as ``unlabelled``)."""
    return unlabelled if value is None else value


def summarize_lake(lake_root: str, storage: StorageConfig, *, top_speakers: int = 15) -> str:
    """Multi-line summary of every table under ``lake_root``."""
    return format_report_summary(measure_corpus(lake_root, storage, histogram_bins=1, max_runs=0),
                                 top_speakers=top_speakers, extended=False)


def _by_value(b: Breakdown, top: int | None = None) -> str:
    """``value hours`` pairs: every value by name, or (``top``) the ``top`` values with most hours."""
    rows = sorted(b.rows, key=lambda r: label_text(r.value)) if top is None else b.rows[:top]
    more = f" (+{len(b.rows) - top} more)" if top is not None and len(b.rows) > top else ""
    return ", ".join(f"{label_text(r.value)} {r.hours:.2f}" for r in rows) + more


def format_report_summary(report: CorpusReport, *, top_speakers: int = 15, extended: bool = True) -> str:
    """The text summary of a measured lake; ``extended`` adds label hours, grid coverage and recent runs."""
    lines = [f"lake: {report.lake_root}"]
    for t in report.tables:
        state = "(not written yet)" if t.rows is None else f"{t.rows:>7} rows, version {t.version}"
        lines.append(f"  {t.name:<9} {state}")
    seg = report.segments
    if seg is not None and seg.segments:
        where = f" where {report.segments_filter}" if report.segments_filter else ""
        lines.append(f"segments: {seg.hours:.2f} h in {seg.segments} segments "
                     f"(mean {seg.mean_duration_s:.1f} s){where}")
        for col in ("split", "corpus"):
            if col in seg.breakdowns:
                lines.append(f"  hours by {col}: " + _by_value(seg.breakdowns[col]))
        for col in ("language", "environment", "channel") if extended else ():
            if col in seg.breakdowns:  # most hours first, capped: a lake can hold many channel chains
                lines.append(f"  hours by {col}: " + _by_value(seg.breakdowns[col], top=_TOP_VALUES))
        ranked = seg.breakdowns["speaker"].rows if "speaker" in seg.breakdowns else []
        lines.append(f"  hours by speaker ({len(ranked)} speakers, top {min(top_speakers, len(ranked))}):")
        lines += [f"    {label_text(r.value, '(unlabelled)'):<40} {r.hours:6.3f} h" for r in ranked[:top_speakers]]
    elif seg is None and extended:
        lines.append("segments: not written yet")
    lines += [f"latents: {c.codec_id}: {c.segments} segments, {c.hours:.2f} h at {c.bitrate_bps:.0f} bps"
              for c in report.latents]
    lines += [f"factors: {fid}: {n} segments" for fid, n in sorted(report.factors.items())]
    syn = report.synthetic
    if syn is not None and syn.outputs:
        lines.append(f"synthetic: {syn.outputs} made ({syn.hours:.2f} h), "
                     f"{syn.passed} passed the gates ({syn.passed_hours:.2f} h)")
    elif extended:
        lines.append("synthetic: not written yet" if syn is None else "synthetic: no rows")
    rej = report.rejects
    if rej is not None and rej.rows:
        lines.append("rejects by reason: " + ", ".join(f"{label_text(k)} {v}" for k, v in rej.by_reason.items()))
    elif extended:
        lines.append("rejects: not written yet" if rej is None else "rejects: none")
    if extended and report.grid is not None:
        g = report.grid
        new = g.new_cells
        lines.append(f"speaker x environment: {len(g.speakers)} x {len(g.environments)} = {g.size} cells; "
                     f"seed covers {g.seed_cells}, synthetic (passed) {g.synthetic_cells}, "
                     f"{len(new)} new from synthetic ({sum(c.synthetic_hours for c in new):.2f} h)")
    if extended and report.runs:
        lines.append(f"recent runs ({len(report.runs)}):")
        for r in report.runs:
            versions = ", ".join(f"{k} v{v}" for k, v in sorted(r.table_versions.items())) or "-"
            lines.append(f"  {r.started_at[:19]}  {r.job:<14} {r.status:<9} {r.run_id}  ({versions})")
    return "\n".join(lines)
