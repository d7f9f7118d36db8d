"""A short text summary of the lake's tables: rows, hours, hours per speaker, rejects by reason.

Printed at the end of ``make demo`` and by ``jobs/curate.py --summary``; reads
only metadata columns (no audio).
"""

from __future__ import annotations

from collections import Counter, defaultdict

from pipelines.lance_io import TABLES, open_table, table_uri
from schemas.storage import StorageConfig

__all__ = ["summarize_lake"]


def summarize_lake(lake_root: str, storage: StorageConfig, *, top_speakers: int = 15) -> str:
    """Multi-line summary of every table under ``lake_root``."""
    lines = [f"lake: {lake_root}"]
    for name in TABLES:
        ds = open_table(table_uri(lake_root, name), storage)
        lines.append(f"  {name:<9} {'(not written yet)' if ds is None else f'{ds.count_rows():>7} rows, version {ds.version}'}")
    seg = open_table(table_uri(lake_root, "segments"), storage)
    if seg is not None and seg.count_rows():
        t = seg.to_table(columns=["duration_s", "speaker", "split", "corpus"])
        dur = t.column("duration_s").to_pylist()
        lines.append(f"segments: {sum(dur) / 3600:.2f} h in {len(dur)} segments "
                     f"(mean {sum(dur) / len(dur):.1f} s)")
        for col in ("split", "corpus"):
            hours: dict[str, float] = defaultdict(float)
            for k, d in zip(t.column(col).to_pylist(), dur):
                hours[k or "(none)"] += d / 3600
            lines.append(f"  hours by {col}: " + ", ".join(f"{k} {v:.2f}" for k, v in sorted(hours.items())))
        hours = defaultdict(float)
        for k, d in zip(t.column("speaker").to_pylist(), dur):
            hours[k or "(unlabelled)"] += d / 3600
        ranked = sorted(hours.items(), key=lambda kv: -kv[1])
        lines.append(f"  hours by speaker ({len(ranked)} speakers, top {min(top_speakers, len(ranked))}):")
        lines += [f"    {k:<40} {v:6.3f} h" for k, v in ranked[:top_speakers]]
    rej = open_table(table_uri(lake_root, "rejects"), storage)
    if rej is not None and rej.count_rows():
        reasons = Counter(rej.to_table(columns=["reason"]).column("reason").to_pylist())
        lines.append("rejects by reason: " + ", ".join(f"{k} {v}" for k, v in reasons.most_common()))
    return "\n".join(lines)
