"""The recombine run's HTML report: a sample of its outputs as a grid of spectrograms and players.

The run adds a dense block to its plan for this (``plan_report_grid``): a
few sources crossed with the plan's most frequent targets, made and gated
like every other row. Rows are those sources, columns those targets; the
first column is the source itself through the same codec (its own latents
decoded), so every cell is heard through the same codec and only the swap
differs. Each cell's caption gives its gate scores and verdict. The block is
deterministic, so a re-run writes the same page.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np
import pyarrow as pa

from pipelines.lance_io import open_table, table_uri
from schemas.recombine import RecombineConfig
from schemas.sql import sql_list, sql_quote
from schemas.storage import resolve_uri

__all__ = ["write_report"]

_SOURCE = "source (codec round trip)"


def _target_key(row: dict[str, Any], varied: list[str]) -> str:
    return " / ".join(f"{f} {row[f'target_{f}']}" for f in varied)


def _caption(row: dict[str, Any]) -> str:
    parts = []
    for name, label in (("judge_speaker_target_sim", "judge sim target"), ("judge_speaker_source_sim", "source"),
                        ("factor_speaker_target_sim", "factor sim target"), ("content_agreement", "content"),
                        ("factor_environment_sim", "env"), ("dnsmos_ovrl", "DNSMOS")):
        if row.get(name) is not None:
            parts.append(f"{label} {row[name]:.2f}")
    verdict = "passed" if row["passed"] else f"rejected by {row['rejected_by']}"
    return ", ".join(parts) + f"\n{verdict}"


def write_report(lake: str, config: RecombineConfig, summary: Any, grid: pa.Table, codec: Any, *,
                 progress: Callable[[str], None] = print) -> Path:
    """Write the report of the grid's rows (``recombination.plan.plan_report_grid``, made by the run) to
    ``config.output.report_path``."""
    import torch

    from recombination.report import ReportCell, write_recombination_report

    path = Path(resolve_uri(config.output.report_path))
    varied = grid.column("varied")[0].as_py().split("+") if grid.num_rows else []
    chosen = grid.select(["synth_id", "content_segment_id", *(f"target_{f}" for f in varied)]).to_pylist()
    columns = list(dict.fromkeys(_target_key(r, varied) for r in chosen))
    sources = list(dict.fromkeys(r["content_segment_id"] for r in chosen))
    synthetic = open_table(table_uri(lake, "synthetic"), config.storage)
    made = synthetic.to_table(
        columns=["synth_id", "codes", "num_frames", "num_stages", "passed", "rejected_by",
                 "judge_speaker_target_sim", "judge_speaker_source_sim", "factor_speaker_target_sim",
                 "content_agreement", "factor_environment_sim", "dnsmos_ovrl"],
        filter=f"synth_id IN ({sql_list([r['synth_id'] for r in chosen])})" if chosen else "false")
    by_id = {r["synth_id"]: r for r in made.to_pylist()}
    latents = open_table(table_uri(lake, "latents"), config.storage)
    src = latents.to_table(columns=["segment_id", "codes", "num_frames", "num_stages"],
                           filter=f"codec_id = {sql_quote(summary.codec_id)} AND segment_id IN ({sql_list(sources)})"
                           if sources else "false").to_pylist()
    segs = open_table(table_uri(lake, "segments"), config.storage)
    texts = {r["segment_id"]: r for r in segs.to_table(
        columns=["segment_id", "speaker", "transcript", "environment"],
        filter=f"segment_id IN ({sql_list(sources)})" if sources else "false").to_pylist()}

    def decode(row: dict[str, Any]) -> np.ndarray:
        codes = np.asarray(row["codes"], dtype=np.int64).reshape(row["num_frames"], row["num_stages"])
        return codec.decode(torch.from_numpy(codes)[None])[0].numpy()

    def label(sid: str) -> str:
        t = texts.get(sid, {})
        words = (t.get("transcript") or "")[:80]
        return f"{t.get('speaker') or '?'} ({t.get('environment') or 'env ?'}): {words or sid[:12]}"

    cells = [ReportCell(label(r["segment_id"]), _SOURCE, decode(r), "unswapped, through the codec") for r in src]
    for r in chosen:
        m = by_id.get(r["synth_id"])
        if m is not None:
            cells.append(ReportCell(label(r["content_segment_id"]), _target_key(r, varied), decode(m), _caption(m),
                                    bool(m["passed"])))
    table = {"run": summary.run_id, "codec": summary.codec_id, "factorizer": summary.factorizer_id,
             "varied": "+".join(varied), "plan rows": summary.plan_rows, "rows made by this run": summary.rows_written,
             "passed the gates (this run)": f"{summary.passed} ({100 * summary.pass_rate:.1f}%)",
             "seed sources": f"{summary.seed_s / 3600:.3f} h", "made": f"{summary.synthetic_s / 3600:.3f} h",
             **{f"coverage {k}": v for k, v in summary.coverage.items()}}
    written = write_recombination_report(path, title=f"Recombination {summary.run_id}", summary=table, cells=cells,
                                         row_labels=[label(s) for s in sources], column_labels=[_SOURCE, *columns])
    progress(f"[recombine] report: {written} ({len(cells)} clips)")
    return written

