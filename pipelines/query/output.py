"""Query results out: an aligned text table for the terminal, or a CSV / Parquet / JSON / JSON Lines file.

The file format follows the extension of ``out``. Parquet keeps every Arrow
type; CSV has no lists or structs, so such columns are written as JSON text
(a ``codes`` list becomes ``[1, 2, 3]``) and a null is an empty field; JSON writes timestamps as ISO 8601
strings and bytes as base64.
"""

from __future__ import annotations

import base64
import json
import sys
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, TextIO

import pyarrow as pa

from pipelines.query.errors import QueryError

__all__ = ["write_output", "format_table", "OUTPUT_FORMATS", "TOTAL_ROWS_KEY"]

#: Extensions ``write_output`` knows.
OUTPUT_FORMATS = (".csv", ".parquet", ".json", ".jsonl")

_MAX_CELL = 40

#: Schema metadata key: how many rows the query matched when the table holds only the first ones (footer).
TOTAL_ROWS_KEY = "lsm_query:total_rows"


def _json_default(value: Any) -> Any:
    if isinstance(value, (datetime, date, time)):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, (bytes, bytearray)):
        return base64.b64encode(value).decode()
    if isinstance(value, Decimal):
        return float(value)
    return str(value)


def _cell(value: Any, width: int = _MAX_CELL) -> str:
    """One value as terminal text: lists shortened with their length, bytes as a size, long text cut."""
    if value is None:
        text = "null"
    elif isinstance(value, float):
        text = f"{value:.6g}"
    elif isinstance(value, (bytes, bytearray)):
        text = f"<{len(value)} bytes>"
    elif isinstance(value, list):
        head = ", ".join(_cell(v, 12) for v in value[:4])
        text = f"[{head}{', ...' if len(value) > 4 else ''}] ({len(value)})"
    elif isinstance(value, datetime):
        text = value.isoformat(sep=" ", timespec="seconds")
    elif isinstance(value, dict):
        text = json.dumps(value, default=_json_default)
    else:
        text = str(value)
    text = text.replace("\n", " ").replace("\t", " ")
    return text if len(text) <= width else text[: width - 1] + "…"


def format_table(table: pa.Table, *, max_rows: int = 50) -> str:
    """Aligned columns (numbers right-aligned), at most ``max_rows`` rows, then ``N rows (showing M)``.

    ``N`` is the table's rows, or :data:`TOTAL_ROWS_KEY` from its schema metadata when the caller read only
    the first rows of a larger result.
    """
    shown = table.slice(0, max_rows).to_pylist()
    names = table.column_names
    numeric = [pa.types.is_integer(f.type) or pa.types.is_floating(f.type) or pa.types.is_decimal(f.type)
               for f in table.schema]
    cells = [[_cell(row[n]) for n in names] for row in shown]
    widths = [max([len(n), *(len(r[i]) for r in cells)]) for i, n in enumerate(names)]

    def line(values: list[str]) -> str:
        return "  ".join(v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric)).rstrip()

    lines = [line(names), "  ".join("-" * w for w in widths)] if names else []
    lines += [line(r) for r in cells]
    total = int((table.schema.metadata or {}).get(TOTAL_ROWS_KEY.encode(), table.num_rows))
    noun = "row" if total == 1 else "rows"
    footer = f"{total} {noun}"
    if total > len(shown):
        footer += f" (showing {len(shown)})"
    return "\n".join([*lines, footer])


def _flatten_for_csv(table: pa.Table) -> pa.Table:
    """Nested and binary columns as JSON text (CSV holds only flat values)."""
    for i, field in enumerate(table.schema):
        t = field.type
        if pa.types.is_nested(t) or pa.types.is_binary(t) or pa.types.is_large_binary(t) \
                or pa.types.is_fixed_size_binary(t):
            text = [None if v is None else json.dumps(v, default=_json_default) for v in table.column(i).to_pylist()]
            table = table.set_column(i, pa.field(field.name, pa.string()), pa.array(text, pa.string()))
    return table


def _write_json(table: pa.Table, path: Path, lines: bool) -> None:
    rows = table.to_pylist()
    with path.open("w", encoding="utf-8") as f:
        if lines:
            for row in rows:
                f.write(json.dumps(row, default=_json_default, ensure_ascii=False) + "\n")
        else:
            json.dump(rows, f, default=_json_default, ensure_ascii=False, indent=1)
            f.write("\n")


def write_output(table: pa.Table, out: str | None, *, max_rows: int = 50, stream: TextIO | None = None) -> None:
    """Print ``table`` to the terminal (``out`` None or ``-``) or write it to a file chosen by extension.

    Args:
        out: ``None``/``-`` for the terminal, else a path ending in ``.csv``, ``.parquet``, ``.json``
            (one JSON array) or ``.jsonl`` (one object per line).
        max_rows: rows shown in the terminal (a file always gets every row).

    Raises:
        QueryError: an unknown extension or a file that cannot be written.

    Example::

        write_output(pa.table({"speaker": ["a"], "hours": [1.5]}), "hours.csv")
    """
    if out is None or out == "-":
        print(format_table(table, max_rows=max_rows), file=stream or sys.stdout)
        return
    path = Path(out).expanduser()
    suffix = path.suffix.lower()
    if suffix not in OUTPUT_FORMATS:
        raise QueryError(f"--out {out}: unknown format {suffix or '(no extension)'!r}; use one of "
                         f"{', '.join(OUTPUT_FORMATS)}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if suffix == ".csv":
            import pyarrow.csv as pcsv

            pcsv.write_csv(_flatten_for_csv(table), path)
        elif suffix == ".parquet":
            import pyarrow.parquet as pq

            pq.write_table(table, path)
        else:
            _write_json(table, path, lines=suffix == ".jsonl")
    except OSError as exc:
        raise QueryError(f"--out {out}: cannot write ({exc.strerror or exc})") from None
