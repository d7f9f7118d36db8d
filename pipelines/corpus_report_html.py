"""Render the corpus report as one self-contained HTML file (nothing fetched: inline CSS, JS and base64 PNGs).

Sections follow ``pipelines.corpus_report.CorpusReport``: totals, tables and
versions, hours by label (sortable tables with bars), quality histograms
(matplotlib PNGs, metadata stripped), rejects by reason and stage, the speaker x
environment grid as a coloured table (seed hours shade the cell blue, synthetic
hours that passed the gates are printed under them, cells only synthetic covers
are green and listed below), latents / factors, recent runs. A table not written
yet gets a "not written yet" line instead of its section. All lake text is
HTML-escaped. The file goes to a local path (temp sibling + rename) or an
``s3://`` URI (one PUT through fsspec).
"""

from __future__ import annotations

import base64
import html
import io
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pipelines.corpus_report import (
    Breakdown, CorpusReport, CorpusReportInputError, CoverageGrid, QualityHistogram, measure_corpus, report_to_json,
)
from pipelines.lake_summary import label_text
from pipelines.lance_io import open_table, table_uri
from schemas.corpus_report import CorpusReportConfig
from schemas.storage import StorageConfig, is_remote, resolve_uri

__all__ = ["render_corpus_report", "write_report_file", "write_corpus_report", "CorpusReportOutcome"]

_CSS = """
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; max-width: 80em; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 1.6em; border-bottom: 1px solid #ddd; }
h3 { font-size: 1em; margin-bottom: 0.3em; }
table { border-collapse: collapse; margin: 0.4em 0; }
td, th { border: 1px solid #ccc; padding: 0.2em 0.6em; text-align: left; vertical-align: top; }
th { background: #f3f3f3; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
table.sortable th { cursor: pointer; }
table.sortable th::after { content: " \\2195"; color: #aaa; font-size: 0.8em; }
.bar { background: #4a7ab5; height: 0.8em; min-width: 1px; }
.missing { color: #8a5a00; font-style: italic; }
.note, .legend { color: #555; font-size: 0.9em; }
.flex { display: flex; flex-wrap: wrap; gap: 1em; }
.flex > div { max-width: 24em; }
.flex img { display: block; width: 22em; }
table.grid td { text-align: center; font-size: 0.85em; min-width: 6em; }
table.grid td.new { background: #c8ecc0; outline: 2px solid #2a8c3b; outline-offset: -2px; }
table.grid th[scope=row] { font-weight: normal; }
.syn { color: #1d6b2a; font-weight: bold; }
"""

_SORT_JS = """
document.querySelectorAll("table.sortable th").forEach(function (th) {
  th.addEventListener("click", function () {
    var table = th.closest("table"), body = table.tBodies[0];
    var i = Array.prototype.indexOf.call(th.parentNode.children, th);
    var asc = th.dataset.dir !== "asc"; th.dataset.dir = asc ? "asc" : "desc";
    function key(td) { return td.dataset.v !== undefined ? parseFloat(td.dataset.v) : td.textContent.toLowerCase(); }
    Array.prototype.slice.call(body.rows).sort(function (a, b) {
      var x = key(a.cells[i]), y = key(b.cells[i]);
      return (x < y ? -1 : x > y ? 1 : 0) * (asc ? 1 : -1);
    }).forEach(function (r) { body.appendChild(r); });
  });
});
"""


def _esc(text: object) -> str:
    return html.escape(str(text), quote=True)


def _hours(h: float) -> str:
    """Hours, readable at every scale (minutes below 0.1 h, seconds below a minute)."""
    if h >= 0.1:
        return f"{h:,.1f} h" if h >= 10 else f"{h:.2f} h"
    return f"{h * 60:.1f} min" if h * 60 >= 1 else f"{h * 3600:.1f} s"


def _num(value: float, text: str) -> str:
    return f'<td class="n" data-v="{value:.9g}">{_esc(text)}</td>'


def _table(headers: Sequence[str], rows: Sequence[str], *, sortable: bool = True, cls: str = "") -> str:
    classes = " ".join(c for c in (cls, "sortable" if sortable else "") if c)
    head = "".join(f"<th>{_esc(h)}</th>" for h in headers)
    return f'<table class="{classes}"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'


def _missing(what: str) -> str:
    return f'<p class="missing">{_esc(what)}: not written yet.</p>'


def _kv_table(items: Sequence[tuple[str, str]]) -> str:
    return "<table><tbody>" + "".join(f"<tr><th>{_esc(k)}</th><td>{_esc(v)}</td></tr>" for k, v in items) + \
        "</tbody></table>"


def _totals(report: CorpusReport) -> str:
    items: list[tuple[str, str]] = [("lake", report.lake_root), ("generated", report.generated_at)]
    if report.segments_filter:
        items.append(("segments filter", report.segments_filter))
    seg = report.segments
    if seg is not None:
        items += [("segments", f"{seg.segments:,}"), ("hours", _hours(seg.hours)),
                  ("mean segment", f"{seg.mean_duration_s:.1f} s")]
        items += [(f"{c}s", f"{len(b.rows):,}") for c, b in seg.breakdowns.items() if c in ("speaker", "language")]
    syn = report.synthetic
    if syn is not None:
        items.append(("synthetic", f"{syn.outputs:,} made ({_hours(syn.hours)}), {syn.passed:,} passed "
                                   f"({_hours(syn.passed_hours)})"))
    if report.rejects is not None:
        items.append(("rejects", f"{report.rejects.rows:,}"))
    return _kv_table(items)


def _tables_section(report: CorpusReport) -> str:
    rows = []
    for t in report.tables:
        if t.rows is None:
            rows.append(f'<tr><td>{_esc(t.name)}</td><td class="missing" colspan="2">not written yet</td></tr>')
        else:
            rows.append(f"<tr><td>{_esc(t.name)}</td>{_num(t.rows, f'{t.rows:,}')}"
                        f"{_num(t.version, str(t.version))}</tr>")
    return "<h2>Tables and versions</h2>" + _table(["table", "rows", "version"], rows, sortable=False)


def _breakdown_table(b: Breakdown, total_hours: float, max_rows: int) -> str:
    top = max((r.hours for r in b.rows), default=0.0) or 1.0
    rows = []
    for r in b.rows[:max_rows]:
        share = r.hours / total_hours if total_hours else 0.0
        bar = f'<div class="bar" style="width:{100 * r.hours / top:.1f}%"></div>'
        rows.append(f"<tr><td>{_esc(label_text(r.value))}</td>{_num(r.segments, f'{r.segments:,}')}"
                    f"{_num(r.hours, _hours(r.hours))}{_num(share, f'{100 * share:.1f}%')}"
                    f'<td style="width:12em">{bar}</td></tr>')
    note = f'<p class="note">Showing {max_rows} of {len(b.rows):,} values (most hours first).</p>' \
        if len(b.rows) > max_rows else ""
    return f"<h3>Hours by {_esc(b.column)} ({len(b.rows):,})</h3>" + \
        _table([b.column, "segments", "hours", "share", ""], rows) + note


def _histogram_png(h: QualityHistogram) -> str:
    """One histogram as a base64 PNG (no pyplot state; the PNG's Software tag is dropped)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    fig = Figure(figsize=(3.6, 2.2), dpi=90)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    widths = [b - a for a, b in zip(h.edges[:-1], h.edges[1:])]
    ax.bar(h.edges[:-1], h.counts, width=widths, align="edge", color="#4a7ab5", edgecolor="white", linewidth=0.4)
    ax.set_xlabel(h.column, fontsize=8)
    ax.set_ylabel("segments", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.xaxis.set_major_locator(MaxNLocator(nbins=5))
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _quality_section(histograms: Sequence[QualityHistogram]) -> str:
    parts = []
    for h in histograms:
        if not h.counts:
            parts.append(f'<div><h3>{_esc(h.column)}</h3><p class="missing">no values ({h.missing:,} null)</p></div>')
            continue
        stats = f"mean {h.mean:.3g}, min {h.minimum:.3g}, max {h.maximum:.3g}, {h.missing:,} null or non-finite"
        parts.append(f'<div><h3>{_esc(h.column)}</h3><img alt="histogram of {_esc(h.column)}" '
                     f'src="data:image/png;base64,{_histogram_png(h)}"><p class="note">{_esc(stats)}</p></div>')
    return "<h2>Quality metrics</h2>" + f'<div class="flex">{"".join(parts)}</div>'


def _counts_table(name: str, counts: dict[str, int]) -> str:
    total = sum(counts.values()) or 1
    top = max(counts.values(), default=1) or 1
    rows = [f"<tr><td>{_esc(label_text(k))}</td>{_num(n, f'{n:,}')}{_num(n / total, f'{100 * n / total:.1f}%')}"
            f'<td style="width:12em"><div class="bar" style="width:{100 * n / top:.1f}%"></div></td></tr>'
            for k, n in counts.items()]
    return _table([name, "rows", "share", ""], rows)


def _rejects_section(report: CorpusReport) -> str:
    rej = report.rejects
    if rej is None:
        return "<h2>Rejects</h2>" + _missing("rejects")
    if not rej.rows:
        return "<h2>Rejects</h2><p>No rejects.</p>"
    return ("<h2>Rejects</h2>" + f"<p>{rej.rows:,} rejected inputs or segments.</p>"
            '<div class="flex"><div><h3>By reason</h3>' + _counts_table("reason", rej.by_reason) +
            "</div><div><h3>By stage</h3>" + _counts_table("stage", rej.by_stage) + "</div></div>")


def _grid_table(grid: CoverageGrid, max_speakers: int, max_environments: int) -> str:
    speakers, envs = grid.speakers[:max_speakers], grid.environments[:max_environments]
    cells = {(c.speaker, c.environment): c for c in grid.cells}
    top = max((c.seed_hours for c in grid.cells), default=0.0) or 1.0
    head = "".join(f'<th scope="col">{_esc(label_text(e))}</th>' for e in envs)
    body = []
    for sp in speakers:
        tds = []
        for env in envs:
            c = cells.get((sp, env))
            if c is None:
                tds.append('<td class="empty"></td>')
                continue
            lines = [f"seed {_hours(c.seed_hours)}" if c.seed_segments else "no seed"]
            if c.synthetic_outputs:
                lines.append(f'<span class="syn">+ syn {_esc(_hours(c.synthetic_hours))}</span>')
            title = _esc(f"{label_text(sp)} x {label_text(env)}: {c.seed_segments} seed segments, "
                         f"{c.synthetic_outputs} synthetic outputs passed")
            if c.new:
                tds.append(f'<td class="new" title="{title}">{"<br>".join(lines)}<br><b>new</b></td>')
            else:
                alpha = 0.08 + 0.6 * c.seed_hours / top
                tds.append(f'<td style="background:rgba(74,122,181,{alpha:.2f})" title="{title}">'
                           f'{"<br>".join(lines)}</td>')
        body.append(f'<tr><th scope="row">{_esc(label_text(sp))}</th>{"".join(tds)}</tr>')
    note = ""
    if len(grid.speakers) > len(speakers) or len(grid.environments) > len(envs):
        note = (f'<p class="note">Showing {len(speakers)} of {len(grid.speakers):,} speakers and {len(envs)} of '
                f"{len(grid.environments):,} environments (most hours first); the list of new cells below is "
                "complete.</p>")
    return (f'<table class="grid"><thead><tr><th>speaker \\ environment</th>{head}</tr></thead>'
            f'<tbody>{"".join(body)}</tbody></table>' + note)


def _grid_section(report: CorpusReport, max_speakers: int, max_environments: int) -> str:
    out = ["<h2>Speaker x environment coverage</h2>"]
    grid, syn = report.grid, report.synthetic
    if grid is None:
        return out[0] + _missing("segments")
    if syn is None:
        out.append(_missing("synthetic") + '<p class="note">The grid shows the seed alone.</p>')
    else:
        gates = ", ".join(f"{k} {v:,}" for k, v in syn.rejected_by.items()) or "none"
        out.append(f"<p>Synthetic: {syn.outputs:,} outputs made ({_hours(syn.hours)}), {syn.passed:,} passed the "
                   f"gates ({_hours(syn.passed_hours)}). Failed gates: {_esc(gates)}.</p>")
    new = grid.new_cells
    out.append(f"<p>{len(grid.speakers):,} speakers x {len(grid.environments):,} environments = {grid.size:,} cells; "
               f"the seed covers {grid.seed_cells:,}, synthetic outputs that passed cover {grid.synthetic_cells:,}, "
               f"of which <b>{len(new):,} are new</b> (no seed hours) with "
               f"{_hours(sum(c.synthetic_hours for c in new))}."
               "</p>")
    out.append('<p class="legend">Blue: seed hours (darker is more). "+ syn": synthetic hours that passed the gates '
               "(target speaker x target environment). Green, marked new: only synthetic covers the cell. Empty: "
               "neither.</p>")
    out.append(_grid_table(grid, max_speakers, max_environments))
    if new:
        rows = [f"<tr><td>{_esc(label_text(c.speaker))}</td><td>{_esc(label_text(c.environment))}</td>"
                f"{_num(c.synthetic_outputs, f'{c.synthetic_outputs:,}')}"
                f"{_num(c.synthetic_hours, _hours(c.synthetic_hours))}"
                "</tr>" for c in sorted(new, key=lambda c: -c.synthetic_hours)]
        out.append("<h3>New cells (synthetic only)</h3>" +
                   _table(["speaker", "environment", "outputs passed", "hours"], rows))
    return "".join(out)


def _models_section(report: CorpusReport) -> str:
    out = ["<h2>Latents and factors</h2>"]
    if report.table("latents").rows is None:
        out.append(_missing("latents"))
    else:
        out.append(_table(["codec", "segments", "hours", "bitrate"], [
            f"<tr><td>{_esc(c.codec_id)}</td>{_num(c.segments, f'{c.segments:,}')}{_num(c.hours, _hours(c.hours))}"
            f"{_num(c.bitrate_bps, f'{c.bitrate_bps:.0f} bps')}</tr>" for c in report.latents]))
    if report.table("factors").rows is None:
        out.append(_missing("factors"))
    else:
        out.append(_table(["factorizer", "segments"], [f"<tr><td>{_esc(k)}</td>{_num(n, f'{n:,}')}</tr>"
                                                       for k, n in report.factors.items()]))
    return "".join(out)


def _runs_section(report: CorpusReport) -> str:
    if report.table("runs").rows is None:
        return "<h2>Recent runs</h2>" + _missing("runs")
    rows = [f"<tr><td>{_esc(r.started_at)}</td><td>{_esc(r.ended_at or '')}</td><td>{_esc(r.job)}</td>"
            f"<td>{_esc(r.status)}</td><td>{_esc(r.run_id)}</td>"
            f"<td>{_esc(', '.join(f'{k} v{v}' for k, v in sorted(r.table_versions.items())))}</td></tr>"
            for r in report.runs]
    return (f"<h2>Recent runs ({len(report.runs)} newest)</h2>" +
            _table(["started", "ended", "job", "status", "run_id", "table versions written"], rows))


def render_corpus_report(report: CorpusReport, *, title: str = "Corpus report", max_table_rows: int = 200,
                         grid_max_speakers: int = 60, grid_max_environments: int = 30) -> str:
    """The report as one HTML document (a string); caps bound the label tables and the grid, with a note."""
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             f"<title>{_esc(title)}</title><style>{_CSS}</style></head><body>", f"<h1>{_esc(title)}</h1>",
             _totals(report), _tables_section(report), "<h2>Hours by label</h2>"]
    seg = report.segments
    if seg is None:
        parts.append(_missing("segments"))
    else:
        parts += [_breakdown_table(b, seg.hours, max_table_rows) for b in seg.breakdowns.values()]
        parts.append(_quality_section(seg.histograms))
    parts += [_rejects_section(report), _grid_section(report, grid_max_speakers, grid_max_environments),
              _models_section(report), _runs_section(report), f"<script>{_SORT_JS}</script>", "</body></html>\n"]
    return "\n".join(parts)


def write_report_file(uri: str, data: bytes, storage: StorageConfig) -> str:
    """Write ``data`` to a local path (temp sibling + rename) or a remote URI (one PUT); returns ``uri``."""
    if is_remote(uri):
        import fsspec

        fs, path = fsspec.core.url_to_fs(uri, **storage.fsspec_options())
        fs.pipe_file(path, data)
        return uri
    # Not pipelines.seed.formats.write_bytes_atomic: importing that package pulls in scipy (~4 s here).
    path = Path(uri)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
    return uri


@dataclass(frozen=True)
class CorpusReportOutcome:
    """What ``write_corpus_report`` measured and wrote."""

    report: CorpusReport
    html_uri: str
    html_bytes: int
    json_uri: str | None
    seconds: float


def _check_output(uri: str) -> None:
    if not is_remote(uri) and Path(uri).is_dir():
        raise CorpusReportInputError(f"output path {uri} is a directory; give a file name like {uri}/corpus.html")


def write_corpus_report(config: CorpusReportConfig) -> CorpusReportOutcome:
    """Measure the lake of ``config``, write the HTML (and JSON if asked) and return what was written.

    Raises:
        CorpusReportInputError: no lake or no ``segments`` table there, a bad segments filter, an output path
            that is a directory (nothing is written then).

    Example::

        out = write_corpus_report(CorpusReportConfig(lake_root="data/lake"))
        print(out.html_uri, out.html_bytes)
    """
    start = time.perf_counter()
    lake = resolve_uri(config.lake_root)
    html_uri = resolve_uri(config.output_path)
    json_uri = resolve_uri(config.json_path) if config.json_path else None
    for uri in filter(None, (html_uri, json_uri)):
        _check_output(uri)
    if not is_remote(lake) and not Path(lake).is_dir():
        raise CorpusReportInputError(f"no lake at {lake} (run jobs/curate.py first, or pass --lake-root)")
    if open_table(table_uri(lake, "segments"), config.storage) is None:
        raise CorpusReportInputError(f"no segments table under {lake} (run jobs/curate.py first)")
    report = measure_corpus(lake, config.storage, segments_filter=config.segments_filter,
                            histogram_bins=config.histogram_bins, max_runs=config.max_runs)
    page = render_corpus_report(report, title=config.title, max_table_rows=config.max_table_rows,
                                grid_max_speakers=config.grid_max_speakers,
                                grid_max_environments=config.grid_max_environments).encode("utf-8")
    write_report_file(html_uri, page, config.storage)
    if json_uri:
        write_report_file(json_uri, report_to_json(report).encode("utf-8"), config.storage)
    return CorpusReportOutcome(report, html_uri, len(page), json_uri, time.perf_counter() - start)
