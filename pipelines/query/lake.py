"""The lake's tables for SQL: one DuckDB connection where each Lance table is a table of the same name.

DuckDB scans a ``lance.LanceDataset`` as an Arrow dataset: it asks Lance's
scanner only for the columns a query names (projection pushdown) and hands it
the filters it can translate (equality, ``IN``, ``IS NULL``, string
comparisons; DuckDB 2.0.1 keeps range comparisons on floats and applies them
after the scan). ``EXPLAIN`` shows both under ``PYTHON_ARROW_SCAN``
(``Projections:`` / ``Filters:``); ``tests/pipelines/query/test_lake.py``
checks what Lance is asked for. Measured on a 20k-row ``latents`` table
(27 MB): ``sum(duration_s)`` 0.04 s locally / 0.26 s on loopback S3, against
0.23 s / 1.06 s for a query that needs ``codes``.

Blob columns (``segments.audio``, ``synthetic.audio``: FLAC bytes stored out of
line) are **left out** of the tables DuckDB sees, so ``SELECT *`` never reads
audio (a scan of a blob column yields its position and size, not its bytes,
and DuckDB rejects that type anyway). Read audio with
``pipelines.lance_io.read_segment_audio``.

Time travel: each table can be opened at a version or tag (``segments@12``),
or every table as of a run id: the version the run recorded in
``runs.table_versions_json``; for a table the run did not record, the last
version committed at or before the run's ``ended_at`` (a table created later is
absent). Local and ``s3://`` lake roots alike (storage options from
:class:`~schemas.storage.StorageConfig`).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime, timezone

import duckdb
import lance
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pds

from pipelines.lance_io import blob_columns, open_table, table_uri
from pipelines.query.errors import QueryError
from schemas.lake import LAKE_TABLES, TABLE_KEYS
from schemas.sql import sql_quote
from schemas.storage import StorageConfig

__all__ = [
    "TABLE_NAMES", "TABLE_KEYS", "TableRef", "parse_table_ref", "open_lake_table", "blob_columns", "query_columns",
    "versions_at_run", "connect_lake", "run_sql", "query_lake", "rewrite_versioned_refs", "describe_tables",
    "clean_message", "version_timestamp",
]

#: Every table a lake can hold (``schemas.lake``), and the key of each.
TABLE_NAMES = LAKE_TABLES

_BLOB_NAMES = ("audio",)
_RS_LOCATION = re.compile(r",?\s*/[^\s,]*\.rs:\d+:\d+")


def clean_message(exc: BaseException) -> str:
    """The first line of an error, without Rust source locations (Lance) or DuckDB's caret lines."""
    text = _RS_LOCATION.sub("", str(exc)).strip()
    return (text.splitlines() or [type(exc).__name__])[0].strip()


@dataclass(frozen=True)
class TableRef:
    """A table name with an optional version (int) or tag (str)."""

    name: str
    version: int | str | None = None


def parse_table_ref(text: str) -> TableRef:
    """``segments`` or ``segments@12`` (a version) or ``segments@gold`` (a tag)."""
    name, _, version = text.partition("@")
    if name not in TABLE_NAMES:
        raise QueryError(f"unknown table {name!r}; tables are {', '.join(TABLE_NAMES)}")
    if not _:
        return TableRef(name)
    if not version:
        raise QueryError(f"{text!r}: give a version or tag after '@' (e.g. {name}@3)")
    return TableRef(name, int(version) if version.isdigit() else version)


def _existing_versions(ds: lance.LanceDataset) -> str:
    nums = [v["version"] for v in ds.versions()]
    tags = sorted(ds.tags.list())
    text = _ranges(nums)
    return text + (f"; tags: {', '.join(tags)}" if tags else "")


def _ranges(nums: list[int]) -> str:
    """``1-3, 5`` for [1, 2, 3, 5]."""
    spans: list[list[int]] = []
    for n in sorted(nums):
        if spans and spans[-1][1] == n - 1:
            spans[-1][1] = n
        else:
            spans.append([n, n])
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in spans)


def open_lake_table(lake_root: str, name: str, storage: StorageConfig | None = None,
                    version: int | str | None = None) -> lance.LanceDataset:
    """A table of the lake (at a version or tag if given).

    Raises:
        QueryError: unknown table name, table not written yet, or no such version/tag (the message lists
            the versions that exist).
    """
    storage = storage or StorageConfig()
    if name not in TABLE_NAMES:
        raise QueryError(f"unknown table {name!r}; tables are {', '.join(TABLE_NAMES)}")
    uri = table_uri(lake_root, name)
    try:
        latest = open_table(uri, storage)
    except (ValueError, OSError) as exc:
        raise QueryError(f"cannot open {uri}: {clean_message(exc)}") from None
    if latest is None:
        raise QueryError(f"table {name!r} does not exist under {lake_root} (not written yet)")
    if version is None or version == latest.version:
        return latest
    try:
        ds = open_table(uri, storage, version=version)
    except (ValueError, OSError):
        ds = None
    if ds is None:
        raise QueryError(f"{name} has no version {version!r}; versions: {_existing_versions(latest)}")
    return ds


def query_columns(ds: lance.LanceDataset) -> list[str]:
    """The columns SQL sees: all but the blob columns."""
    blobs = set(blob_columns(ds.schema))
    return [f.name for f in ds.schema if f.name not in blobs]


def version_timestamp(entry: dict) -> datetime:
    """A ``ds.versions()`` entry's commit time in UTC (Lance gives a naive local time)."""
    return entry["timestamp"].astimezone(timezone.utc)  # naive: taken as local time


def versions_at_run(lake_root: str, run_id: str, storage: StorageConfig | None = None) -> dict[str, int]:
    """The version of every table as a run left it.

    Tables the run recorded (``runs.table_versions_json``): that version. Other tables: the last version
    committed at or before the run's ``ended_at``; tables created after it are left out.

    Raises:
        QueryError: no runs table, unknown run id, or a run that never ended and recorded nothing.
    """
    storage = storage or StorageConfig()
    if open_table(table_uri(lake_root, "runs"), storage) is None:
        raise QueryError(f"no runs table under {lake_root}: cannot read as of run {run_id!r}")
    runs = open_lake_table(lake_root, "runs", storage)
    rows = runs.to_table(columns=["run_id", "status", "ended_at", "table_versions_json"],
                         filter=f"run_id = {sql_quote(run_id)}").to_pylist()
    if not rows:
        known = runs.to_table(columns=["run_id"]).column(0).to_pylist()
        shown = ", ".join(known[-5:]) + (" ..." if len(known) > 5 else "")
        raise QueryError(f"unknown run id {run_id!r}; {len(known)} runs in the lake (latest: {shown or 'none'})")
    row = rows[0]
    recorded = {k: int(v) for k, v in json.loads(row["table_versions_json"] or "{}").items()}
    ended = row["ended_at"]
    if ended is None and not recorded:
        raise QueryError(f"run {run_id!r} is {row['status']} and recorded no table versions: it cannot be read as of")
    out: dict[str, int] = {}
    for name in TABLE_NAMES:
        if name in recorded:
            out[name] = recorded[name]
            continue
        ds = open_table(table_uri(lake_root, name), storage)
        if ds is None or ended is None:
            continue
        ended_utc = ended if ended.tzinfo else ended.replace(tzinfo=timezone.utc)
        before = [v["version"] for v in ds.versions() if version_timestamp(v) <= ended_utc]
        if before:
            out[name] = max(before)
    return out


class _BloblessDataset(pds.Dataset):
    """A Lance dataset as DuckDB sees it: every column but the blobs, scans handed to Lance.

    Why not a view ``SELECT <columns> FROM ds``: for ``SELECT * ... LIMIT n`` DuckDB 2.0.1 asks the scanner
    for all columns (``columns=None``), blobs included, and then fails on their type.
    """

    def __init__(self, ds: lance.LanceDataset) -> None:  # noqa: D107 (pyarrow's Dataset has no usable __init__)
        self._ds = ds
        self._columns = query_columns(ds)
        self._schema = pa.schema([ds.schema.field(c) for c in self._columns])

    @property
    def schema(self) -> pa.Schema:  # type: ignore[override]
        return self._schema

    def scanner(self, columns: list[str] | None = None, filter: object = None,  # type: ignore[override]
                **kwargs: object):
        """Lance's scanner with DuckDB's projection and filter (all non-blob columns when it names none)."""
        columns = list(columns) if columns is not None else self._columns
        if isinstance(filter, pc.Expression) and not kwargs and _unsigned_fields(self._ds.schema):
            return _scan_with_unsigned_placeholders(self._ds, columns, filter)
        return self._ds.scanner(columns=columns, filter=filter, **kwargs)


def _has_unsigned(t: pa.DataType) -> bool:
    if pa.types.is_unsigned_integer(t):
        return True
    if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t):
        return _has_unsigned(t.value_type)
    return pa.types.is_struct(t) and any(_has_unsigned(t.field(i).type) for i in range(t.num_fields))


def _unsigned_fields(schema: pa.Schema) -> list[int]:
    return [i for i, f in enumerate(schema) if _has_unsigned(f.type)]


def _scan_with_unsigned_placeholders(ds: lance.LanceDataset, columns: list[str], filter: pc.Expression):
    """A filtered scan of a table with unsigned-int columns (``codes: list<uint16>``) that Lance 14 can run.

    Lance serializes a pyarrow filter to Substrait with the whole table schema; PyArrow writes unsigned ints
    as Substrait user-defined types, which Lance's decoder rejects ("Unsupported Substrait user defined type"),
    so *any* DuckDB filter on ``latents`` failed (lance-format/lance#2972). Lance already swaps the fields it
    knows are unserializable for int8 placeholders (same positions, so references still resolve); this does
    the same for unsigned-int fields, which DuckDB never filters on (it does not push filters on lists).
    """
    from lance.dataset import ScannerBuilder, _serialize_expression

    unsigned = set(_unsigned_fields(ds.schema))
    schema = pa.schema([pa.field(f"__unsigned_placeholder_{i}", pa.int8()) if i in unsigned else f
                        for i, f in enumerate(ds.schema)])
    builder = ScannerBuilder(ds).columns(columns)
    builder._substrait_filter = _serialize_expression(filter, schema)
    return builder.to_scanner()


def connect_lake(lake_root: str, storage: StorageConfig | None = None, *, run_id: str | None = None,
                 versions: dict[str, int | str] | None = None) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection with a view per existing table (blob columns left out).

    Args:
        run_id: every table as that run left it (see :func:`versions_at_run`).
        versions: a version or tag per table name (wins over ``run_id`` for the tables it names).

    Example::

        con = connect_lake("data/lake", versions={"segments": 3})
        run_sql(con, "SELECT speaker, sum(duration_s) / 3600 AS hours FROM segments GROUP BY speaker")
    """
    storage = storage or StorageConfig()
    pinned: dict[str, int | str] = dict(versions_at_run(lake_root, run_id, storage)) if run_id else {}
    for name in versions or {}:
        if name not in TABLE_NAMES:
            raise QueryError(f"unknown table {name!r}; tables are {', '.join(TABLE_NAMES)}")
    pinned.update(versions or {})
    con = duckdb.connect()
    for name in TABLE_NAMES:
        if run_id and name not in pinned:
            continue  # created after the run ended
        if name not in pinned and open_table(table_uri(lake_root, name), storage) is None:
            continue  # not written yet
        con.register(name, _BloblessDataset(open_lake_table(lake_root, name, storage, pinned.get(name))))
    return con


_STRING_LITERAL = re.compile(r"'(?:[^']|'')*'")
_VERSIONED_REF = re.compile(r'"?\b(' + "|".join(TABLE_NAMES) + r')@(\w+)\b"?')


def rewrite_versioned_refs(sql: str) -> tuple[str, dict[str, TableRef]]:
    """``segments@3`` in SQL (outside string literals) -> a view ``segments_at_3``; returns the views to make.

    So one query can read a table at a version, or join two versions of it::

        SELECT count(*) FROM segments@3 s WHERE s.segment_id NOT IN (SELECT segment_id FROM segments@2)
    """
    refs: dict[str, TableRef] = {}

    def swap(match: re.Match) -> str:
        ref = parse_table_ref(f"{match.group(1)}@{match.group(2)}")
        alias = f"{ref.name}_at_{re.sub(r'[^A-Za-z0-9_]', '_', str(ref.version))}"
        refs[alias] = ref
        return alias

    parts, last = [], 0
    for literal in _STRING_LITERAL.finditer(sql):
        parts += [_VERSIONED_REF.sub(swap, sql[last:literal.start()]), literal.group(0)]
        last = literal.end()
    parts.append(_VERSIONED_REF.sub(swap, sql[last:]))
    return "".join(parts), refs


def query_lake(lake_root: str, sql: str, storage: StorageConfig | None = None, *, run_id: str | None = None,
               versions: dict[str, int | str] | None = None) -> pa.Table:
    """Run one SQL query over the lake's tables (``name@version`` allowed in the query); an Arrow table.

    Raises:
        QueryError: a missing table, column, version or run, or SQL DuckDB rejects (one line).

    Example::

        query_lake("data/lake", "SELECT s.speaker, count(*) AS n, sum(l.duration_s) / 3600 AS hours "
                   "FROM segments s JOIN latents l USING (segment_id) GROUP BY 1 ORDER BY 3 DESC")
    """
    storage = storage or StorageConfig()
    sql, refs = rewrite_versioned_refs(sql)
    con = connect_lake(lake_root, storage, run_id=run_id, versions=versions)
    for alias, ref in refs.items():
        con.register(alias, _BloblessDataset(open_lake_table(lake_root, ref.name, storage, ref.version)))
    try:
        return run_sql(con, sql)
    finally:
        con.close()


def run_sql(con: duckdb.DuckDBPyConnection, sql: str) -> pa.Table:
    """The result of a query as an Arrow table; any SQL the user got wrong is a one-line QueryError."""
    try:
        rel = con.sql(sql)
        if rel is None:  # a statement without a result (SET, CREATE ...)
            return pa.table({})
        return rel.to_arrow_table()
    except duckdb.CatalogException as exc:
        have = [r[0] for r in con.execute("SHOW TABLES").fetchall()]
        raise QueryError(f"{clean_message(exc)} (tables: {', '.join(have) or 'none'})") from None
    except (duckdb.ParserException, duckdb.BinderException, duckdb.ConversionException,
            duckdb.InvalidInputException, duckdb.OutOfRangeException, duckdb.NotImplementedException,
            duckdb.TypeMismatchException, duckdb.SyntaxException, duckdb.PermissionException,
            duckdb.ConstraintException) as exc:
        message = clean_message(exc)
        if any(f'column "{c}" not found' in message for c in _BLOB_NAMES):
            message += " (blob columns are not in SQL: read audio with pipelines.lance_io.read_segment_audio)"
        raise QueryError(message) from None


def describe_tables(lake_root: str, storage: StorageConfig | None = None) -> pa.Table:
    """One row per existing table: name, version, rows, fragments, key, blob columns, columns."""
    storage = storage or StorageConfig()
    rows = []
    for name in TABLE_NAMES:
        ds = open_table(table_uri(lake_root, name), storage)
        if ds is None:
            continue
        rows.append({"table": name, "version": ds.version, "rows": ds.count_rows(),
                     "fragments": len(ds.get_fragments()), "key": ", ".join(TABLE_KEYS[name]),
                     "blob_columns": ", ".join(blob_columns(ds.schema)), "columns": ", ".join(query_columns(ds))})
    schema = pa.schema([("table", pa.string()), ("version", pa.int64()), ("rows", pa.int64()),
                        ("fragments", pa.int64()), ("key", pa.string()), ("blob_columns", pa.string()),
                        ("columns", pa.string())])
    return pa.Table.from_pylist(rows, schema=schema)
