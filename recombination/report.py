"""A self-contained HTML report of recombined audio: listen to it, look at it, see what the gates said.

One file, nothing fetched: the CSS is inline, each spectrogram is a base64 PNG
and each clip a base64 16-bit PCM WAV data URI (the format every browser's
``<audio>`` plays). A summary table comes first, then a grid: one row per
source content (an utterance or transcript), one column per target (speaker,
environment, ...), the source's own unswapped audio in the first column. Every
piece of caller text is HTML-escaped.

Size: a 3 s clip costs ~130 kB (WAV, base64) plus ~40 kB (spectrogram), so
``max_cells`` (default 60, ~10 MB) caps the grid; a note says what was left out.
"""

from __future__ import annotations

import base64
import html
import io
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = ["ReportCell", "write_recombination_report", "DEFAULT_MAX_CELLS"]

DEFAULT_MAX_CELLS = 60
_FFT = 512
_HOP = 256
_DB_RANGE = (-90.0, -10.0)  # dB re a full-scale sine; one colour scale for every cell, so levels compare
_COLORMAP = "magma"

_CSS = """
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; }
h1 { font-size: 1.4em; }
table { border-collapse: collapse; }
table.summary td, table.summary th { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; }
table.grid th, table.grid td { border: 1px solid #ccc; padding: 0.4em; vertical-align: top; }
table.grid thead th { background: #f3f3f3; }
table.grid th[scope=row] { max-width: 14em; text-align: left; font-weight: normal; background: #f3f3f3; }
table.grid .source { background: #eef4ff; }
td.cell { width: 18em; }
td.cell img { width: 100%; height: 7em; display: block; }
td.cell audio { width: 100%; margin-top: 0.3em; }
td.pass { outline: 3px solid #2a8c3b; outline-offset: -3px; }
td.fail { outline: 3px solid #c0392b; outline-offset: -3px; }
.badge { font-weight: bold; margin-right: 0.4em; }
.pass .badge { color: #2a8c3b; }
.fail .badge { color: #c0392b; }
.caption { font-size: 0.85em; white-space: pre-wrap; }
.note { color: #8a5a00; }
.legend { color: #555; font-size: 0.9em; }
"""


@dataclass(frozen=True, eq=False)
class ReportCell:
    """One grid cell: a clip for (``row``, ``column``), a caption (e.g. gate scores) and the gate verdict.

    ``audio`` is float mono at the report's ``sample_rate_hz``; ``passed`` is None when no gate ran
    (e.g. the source's own audio).
    """

    row: str
    column: str
    audio: np.ndarray = field(repr=False)
    caption: str = ""
    passed: bool | None = None


def write_recombination_report(path: str | Path, *, title: str, summary: Mapping[str, str | int | float],
                               cells: Sequence[ReportCell], row_labels: Sequence[str],
                               column_labels: Sequence[str], sample_rate_hz: int = 16000,
                               max_cells: int = DEFAULT_MAX_CELLS) -> Path:
    """Write the report to ``path`` atomically (a temp sibling, then a rename) and return ``path``.

    Args:
        path: the .html file to write (its folder is created).
        title: page title and heading.
        summary: key/value pairs for the table at the top (counts, pass rates, model ids...).
        cells: the clips; each (row, column) at most once; a grid position without a cell stays empty.
        row_labels: grid rows, in order: the source content (utterance id or transcript).
        column_labels: grid columns, in order; put the source's own (unswapped) column first.
        sample_rate_hz: rate of every cell's audio.
        max_cells: at most this many cells are embedded, in row-major grid order; the rest are
            dropped (rows left with none are omitted) and a note says how many.

    Returns:
        ``path`` as a Path.

    Example:
        >>> x = np.zeros(16000, dtype=np.float32)
        >>> write_recombination_report("/tmp/r.html", title="swap", summary={"outputs": 1},
        ...     cells=[ReportCell("utt1", "source", x), ReportCell("utt1", "spk B", x, "sim 0.81", True)],
        ...     row_labels=["utt1"], column_labels=["source", "spk B"])
        PosixPath('/tmp/r.html')
    """
    from pipelines.seed.formats import write_bytes_atomic

    path = Path(path)
    if max_cells < 1:
        raise ValueError(f"max_cells must be >= 1, got {max_cells}")
    if sample_rate_hz <= 0:
        raise ValueError(f"sample_rate_hz must be positive, got {sample_rate_hz}")
    grid = _place_cells(cells, row_labels, column_labels)
    kept, dropped = _cap(grid, row_labels, column_labels, max_cells)
    rows_shown = [r for r in row_labels if any((r, c) in kept for c in column_labels)]

    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             f"<title>{_esc(title)}</title><style>{_CSS}</style></head><body>",
             f"<h1>{_esc(title)}</h1>", _summary_table(summary)]
    if dropped:
        rows_dropped = sum(1 for r in row_labels if r not in rows_shown and any((r, c) in grid for c in column_labels))
        parts.append(f'<p class="note">Showing {len(kept)} of {len(grid)} cells (max_cells={max_cells}): '
                     f"{dropped} not shown ({rows_dropped} rows omitted entirely).</p>")
    parts.append(_legend(sample_rate_hz))
    parts.append(_grid_table(kept, rows_shown, column_labels, sample_rate_hz))
    parts.append("</body></html>\n")
    write_bytes_atomic(path, "\n".join(parts).encode("utf-8"))
    return path


def _esc(text: object) -> str:
    return html.escape(str(text), quote=True)


def _format_value(value: str | int | float) -> str:
    if isinstance(value, float) and not isinstance(value, bool):
        return "n/a" if math.isnan(value) else f"{value:.4g}"
    return str(value)


def _place_cells(cells: Sequence[ReportCell], row_labels: Sequence[str],
                 column_labels: Sequence[str]) -> dict[tuple[str, str], ReportCell]:
    """Cells keyed by (row, column); labels must be unique and every cell must sit on the grid once."""
    for name, labels in (("row_labels", row_labels), ("column_labels", column_labels)):
        if len(set(labels)) != len(labels):
            raise ValueError(f"{name} has duplicates: {list(labels)}")
    rows, columns = set(row_labels), set(column_labels)
    grid: dict[tuple[str, str], ReportCell] = {}
    for cell in cells:
        if cell.row not in rows or cell.column not in columns:
            raise ValueError(f"cell ({cell.row!r}, {cell.column!r}) is not on the grid of row_labels x column_labels")
        if (cell.row, cell.column) in grid:
            raise ValueError(f"two cells for ({cell.row!r}, {cell.column!r})")
        if np.asarray(cell.audio).ndim != 1:
            raise ValueError(f"cell ({cell.row!r}, {cell.column!r}): audio must be mono (n,), "
                             f"got shape {np.asarray(cell.audio).shape}")
        grid[(cell.row, cell.column)] = cell
    return grid


def _cap(grid: dict[tuple[str, str], ReportCell], row_labels: Sequence[str], column_labels: Sequence[str],
         max_cells: int) -> tuple[dict[tuple[str, str], ReportCell], int]:
    """The first ``max_cells`` cells in row-major grid order, and how many were dropped."""
    ordered = [(r, c) for r in row_labels for c in column_labels if (r, c) in grid]
    return {key: grid[key] for key in ordered[:max_cells]}, max(0, len(ordered) - max_cells)


def _legend(sample_rate_hz: int) -> str:
    hop_ms = _HOP / sample_rate_hz * 1000
    return ('<p class="legend">Rows: source content. Columns: targets; the first column is the source audio, '
            f"unswapped. Spectrograms: log power STFT ({_FFT}-point Hann, {hop_ms:g} ms hop), "
            f"0-{sample_rate_hz / 2000:g} kHz, {_DB_RANGE[0]:g} to {_DB_RANGE[1]:g} dB re full scale, "
            "one colour scale for every cell.</p>")


def _summary_table(summary: Mapping[str, str | int | float]) -> str:
    rows = "".join(f"<tr><th>{_esc(k)}</th><td>{_esc(_format_value(v))}</td></tr>" for k, v in summary.items())
    return f'<table class="summary"><tbody>{rows}</tbody></table>'


def _grid_table(kept: dict[tuple[str, str], ReportCell], rows: Sequence[str], columns: Sequence[str],
                sample_rate_hz: int) -> str:
    first = ' class="source"'
    header = "".join(f'<th scope="col"{first if i == 0 else ""}>{_esc(c)}</th>' for i, c in enumerate(columns))
    body = []
    for row in rows:
        tds = [_cell_html(kept.get((row, column)), sample_rate_hz, is_source=i == 0)
               for i, column in enumerate(columns)]
        body.append(f'<tr><th scope="row">{_esc(row)}</th>{"".join(tds)}</tr>')
    return (f'<table class="grid"><thead><tr><th></th>{header}</tr></thead>'
            f'<tbody>{"".join(body)}</tbody></table>')


def _cell_html(cell: ReportCell | None, sample_rate_hz: int, *, is_source: bool) -> str:
    source = ["source"] if is_source else []
    if cell is None:
        return f'<td class="{" ".join(["cell", "empty", *source])}"></td>'
    verdict = {True: "pass", False: "fail", None: ""}[cell.passed]
    classes = " ".join(["cell", *([verdict] if verdict else []), *source])
    audio = np.asarray(cell.audio, dtype=np.float32)
    caption = cell.caption
    if audio.size and not np.all(np.isfinite(audio)):
        audio = np.nan_to_num(audio, nan=0.0, posinf=0.0, neginf=0.0)
        caption = (caption + "\n" if caption else "") + "[non-finite samples shown as silence]"
    media = '<p class="caption">(no audio)</p>'
    if audio.size:
        label = _esc(f"spectrogram: {cell.row} / {cell.column}")
        media = (f'<img alt="{label}" src="data:image/png;base64,{_spectrogram_png_b64(audio, sample_rate_hz)}">'
                 f'<audio controls preload="none" src="data:audio/wav;base64,{_wav_b64(audio, sample_rate_hz)}">'
                 "</audio>")
    badge = f'<span class="badge">{verdict.upper()}</span>' if verdict else ""
    return (f'<td class="{classes}">{media}'
            f'<div class="caption">{badge}{_esc(caption)}</div></td>')


def _wav_b64(audio: np.ndarray, sample_rate_hz: int) -> str:
    """16-bit PCM WAV bytes (clipped to [-1, 1]), base64."""
    import soundfile as sf

    buf = io.BytesIO()
    sf.write(buf, np.clip(audio, -1.0, 1.0), sample_rate_hz, format="WAV", subtype="PCM_16")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _spectrogram_png_b64(audio: np.ndarray, sample_rate_hz: int) -> str:
    """Log power STFT as an 8-bit palette PNG (matplotlib colormap, Pillow encoder), low frequencies at the bottom."""
    from matplotlib import colormaps
    from PIL import Image

    x = np.asarray(audio, dtype=np.float64)
    if x.size < _FFT:
        x = np.pad(x, (0, _FFT - x.size))
    window = np.hanning(_FFT)
    frames = np.lib.stride_tricks.sliding_window_view(x, _FFT)[::_HOP] * window
    magnitude = np.abs(np.fft.rfft(frames, axis=1)) * (2.0 / window.sum())  # full-scale sine -> 1.0
    db = 20.0 * np.log10(np.maximum(magnitude, 1e-10))
    low, high = _DB_RANGE
    levels = np.round((np.clip(db, low, high) - low) / (high - low) * 255).astype(np.uint8)
    image = Image.fromarray(np.ascontiguousarray(levels.T[::-1]))  # "L"; putpalette makes it "P"
    palette = (colormaps[_COLORMAP](np.linspace(0.0, 1.0, 256))[:, :3] * 255).round().astype(np.uint8)
    image.putpalette(palette.ravel().tolist())
    buf = io.BytesIO()
    image.save(buf, format="PNG", optimize=True)
    return base64.b64encode(buf.getvalue()).decode("ascii")
