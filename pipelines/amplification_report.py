"""The amplification experiment's table (markdown section of bench/RESULTS.md) and chart (PNG).

Rendered from ``results.json`` alone, so ``--report-only`` redraws them without training anything.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

from pipelines.eval.markdown import cpu_model, git_revision, replace_marked_section
from schemas.amplification import AmplificationConfig
from schemas.storage import resolve_uri

__all__ = ["render_markdown", "draw_chart", "write_report", "MARKER"]

MARKER = "amplification"
_SET_ORDER = ("heldout_cells", "unseen_speakers", "real_recordings")


def _sets(summary: list[dict]) -> list[str]:
    names = list(dict.fromkeys(r["set"] for r in summary))
    return sorted(names, key=lambda n: (_SET_ORDER.index(n) if n in _SET_ORDER else len(_SET_ORDER), n))


def _cell(rows: list[dict], cond: str, ratio: float, name: str) -> dict | None:
    return next((r for r in rows if r["condition"] == cond and r["ratio"] == ratio and r["set"] == name), None)


def render_markdown(report: dict, *, command: str, chart: str | None) -> str:
    """The section body: setup, the PER table (mean ± std over seeds, min-max), the verdict per set."""
    split, summary, cfg = report["split"], report["summary"], report["config"]
    runs = report["runs"]
    sets = _sets(summary)
    keys = list(dict.fromkeys((r["condition"], r["ratio"]) for r in summary))
    tr = cfg["training"]
    rc = report.get("recombine") or {}
    steps = sorted({r["steps"] for r in runs})
    lines = [
        "## Amplification experiment (issue #5, item 4)", "",
        f"Command: `{report.get('command', command)}`  ",
        f"Date: {report.get('finished_at') or time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; "
        f"git {report.get('git') or git_revision(Path(__file__).parents[1])}; "
        f"{cpu_model()}; local Ray, 1 Ray Train worker x 1 torch thread; wall {report['wall_s'] / 60:.1f} min "
        "(this run; models already trained are only re-read)", "",
        f"**Seed.** Pool `{cfg['pool_filter']}`: {split['pool_rows']} rows, {split['speakers']} speakers. "
        f"{len(split['heldout_speakers'])} speakers lose their rows in {', '.join(split['environments'])}: "
        f"the seed has {split['seed_rows']} rows, and those speaker x environment cells are missing from it. "
        f"Their {split['heldout_rows']} real rows are the `heldout_cells` set.", "",
        "**Recombined rows.** Recombination of the seed alone (content and every donor are seed rows; speaker and "
        "environment varied, balanced strategy: the missing cells first), factor gates only (no Resemblyzer "
        "judge)" + (f": {rc.get('plan_rows')} plan rows, {rc.get('rows_written')} made this run, "
                    f"{rc.get('already_made')} already there, {rc.get('passed')} passed this run" if rc else "")
        + f". A synthetic row is used only if its whole lineage is in the seed. Generated rows found: "
        f"{report.get('generated_rows', 0)} (filter `{cfg.get('generated_filter')}`)" + (" (condition (c) not run: no generated rows in `synthetic`; "
                                                 "jobs/generate.py with a trained generator makes them)"
                                                 if not report.get("generated_rows") else "") + ".", "",
        f"**Recognizer.** `{cfg['preset']}` (models/ctc), CTC over espeak-ng phonemes, batch {cfg['batch_size']}, "
        f"**{', '.join(map(str, steps))} steps for every model** (lr {tr['learning_rate']}, cosine), "
        f"seeds {cfg['seeds']} (input order and initial weights). No model selection: the last step is scored. "
        "PER = edits / reference phonemes, greedy decoding, whole rows.", "",
        "| condition | synthetic per epoch (pool) | " + " | ".join(f"PER {s} (rows)" for s in sets) + " |",
        "| --- | ---: | " + " | ".join("---:" for _ in sets) + " |",
    ]
    for cond, ratio in keys:
        first = _cell(summary, cond, ratio, sets[0])
        label = "seed only" if ratio == 0 else f"seed + {cond} {ratio:g}x"
        cells = []
        for name in sets:
            c = _cell(summary, cond, ratio, name)
            cells.append("—" if c is None or math.isnan(c["mean"]) else
                         f"{c['mean']:.3f} ± {c['std']:.3f} ({c['min']:.3f}-{c['max']:.3f}; {c['rows']})")
        lines.append(f"| {label} | {first['synthetic_per_epoch']} ({first['pool']}) | " + " | ".join(cells) + " |")
    lines += ["", "± is the standard deviation over the seeds; in brackets min-max and the rows scored.", ""]
    base = {name: _cell(summary, "seed", 0.0, name) for name in sets}
    for name in sets:
        b = base[name]
        if b is None or math.isnan(b["mean"]):
            continue
        better = [f"{c['condition']} {c['ratio']:g}x" for c in summary
                  if c["set"] == name and c["condition"] != "seed" and c["max"] < b["min"]]
        verdict = (f"beats the seed on every seed: {', '.join(better)}" if better else
                   "no synthetic condition beats the seed alone on every seed")
        lines.append(f"- `{name}`: seed only {b['mean']:.3f}; {verdict}.")
    if chart:
        lines += ["", f"Chart: `{chart}` (PER against the synthetic share, mean ± std over seeds)."]
    return "\n".join(lines) + "\n"


def draw_chart(report: dict, path: str | Path) -> Path:
    """PER against synthetic rows per seed row (log-ish x: 0, 1, 4, 16), one line per eval set, error bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    summary = report["summary"]
    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=120)
    for name in _sets(summary):
        rows = sorted((r for r in summary if r["set"] == name and r["condition"] in ("seed", "recombined")),
                      key=lambda r: r["ratio"])
        x = [math.log2(1 + r["ratio"]) for r in rows]
        ax.errorbar(x, [r["mean"] for r in rows], yerr=[r["std"] for r in rows], marker="o", capsize=3, label=name)
        gen = [r for r in summary if r["set"] == name and r["condition"] == "generated"]
        for r in gen:
            ax.errorbar([math.log2(1 + r["ratio"])], [r["mean"]], yerr=[r["std"]], marker="s", capsize=3,
                        linestyle="none", color=ax.lines[-1].get_color(), label=f"{name} (generated)")
    ticks = sorted({r["ratio"] for r in summary})
    ax.set_xticks([math.log2(1 + t) for t in ticks], [f"{t:g}x" for t in ticks])
    ax.set_xlabel("recombined rows per seed row (equal training steps)")
    ax.set_ylabel("phoneme error rate")
    ax.set_title("Does recombination pay? CTC recognizer on codec codes")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def write_report(report: dict, config: AmplificationConfig, *, command: str) -> list[str]:
    """Draw the chart and write the markdown section as the config says; returns lines for the terminal."""
    lines = []
    chart = None
    if config.chart and report["summary"]:
        chart = str(draw_chart(report, resolve_uri(config.chart)))
        lines.append(f"  chart:   {chart}")
    body = render_markdown(report, command=command, chart=config.chart if chart else None)
    if config.results_md:
        out = replace_marked_section(resolve_uri(config.results_md), MARKER, body)
        lines.append(f"  table:   {out} (section `{MARKER}`)")
    return [body, *lines]
