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
    for name in (*TABLES, "latents", "factors", "synthetic"):
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
    lat = open_table(table_uri(lake_root, "latents"), storage)
    if lat is not None and lat.count_rows():
        t = lat.to_table(columns=["codec_id", "duration_s", "bitrate_bps"])
        per_codec: dict[str, list[float]] = defaultdict(lambda: [0, 0.0, 0.0])
        for codec, d, bps in zip(*(t.column(c).to_pylist() for c in t.column_names)):
            per_codec[codec][0] += 1
            per_codec[codec][1] += d / 3600
            per_codec[codec][2] = bps
        for codec, (n, h, bps) in sorted(per_codec.items()):
            lines.append(f"latents: {codec}: {n} segments, {h:.2f} h at {bps:.0f} bps")
    fac = open_table(table_uri(lake_root, "factors"), storage)
    if fac is not None and fac.count_rows():
        counts = Counter(fac.to_table(columns=["factorizer_id"]).column("factorizer_id").to_pylist())
        lines += [f"factors: {fid}: {n} segments" for fid, n in sorted(counts.items())]
    syn = open_table(table_uri(lake_root, "synthetic"), storage)
    if syn is not None and syn.count_rows():
        t = syn.to_table(columns=["passed", "duration_s"])
        passed = [d for p, d in zip(t.column("passed").to_pylist(), t.column("duration_s").to_pylist()) if p]
        lines.append(f"synthetic: {t.num_rows} made ({sum(t.column('duration_s').to_pylist()) / 3600:.2f} h), "
                     f"{len(passed)} passed the gates ({sum(passed) / 3600:.2f} h)")
    rej = open_table(table_uri(lake_root, "rejects"), storage)
    if rej is not None and rej.count_rows():
        reasons = Counter(rej.to_table(columns=["reason"]).column("reason").to_pylist())
        lines.append("rejects by reason: " + ", ".join(f"{k} {v}" for k, v in reasons.most_common()))
    return "\n".join(lines)
