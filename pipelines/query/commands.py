"""The query CLI's own subcommands: ``sql``, ``tables``, ``history``, ``diff``, ``show``.

Registered like every other subcommand (``add_command(subparsers)``, each with
``set_defaults(run=...)`` returning an Arrow table that the CLI prints or
writes). ``args.lake_root`` (resolved) and ``args.storage`` are set by
:mod:`pipelines.query.cli` before ``run`` is called.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import pyarrow as pa

from pipelines.query.errors import QueryError
from pipelines.query.lake import TABLE_NAMES, describe_tables, parse_table_ref, query_lake
from pipelines.query.output import TOTAL_ROWS_KEY
from pipelines.query.versions import diff_versions, open_as_of, read_history, read_rows

__all__ = ["add_command"]


def _version(text: str) -> int | str:
    """A version number or a tag name."""
    return int(text) if text.isdigit() else text


def _run_sql(args: argparse.Namespace) -> pa.Table:
    versions: dict[str, int | str] = {}
    for pin in args.at or []:
        ref = parse_table_ref(pin)
        if ref.version is None:
            raise QueryError(f"--at {pin}: give TABLE@VERSION (e.g. segments@3)")
        versions[ref.name] = ref.version
    return query_lake(args.lake_root, args.query, args.storage, run_id=args.run_id, versions=versions)


def _run_tables(args: argparse.Namespace) -> pa.Table:
    table = describe_tables(args.lake_root, args.storage)
    if table.num_rows == 0:
        raise QueryError(f"no tables under {args.lake_root} (wrong --lake-root?)")
    return table


def _run_history(args: argparse.Namespace) -> pa.Table:
    return read_history(args.lake_root, parse_table_ref(args.table).name, args.storage)


def _run_diff(args: argparse.Namespace) -> pa.Table:
    table = parse_table_ref(args.table).name
    to = _version(args.v2) if args.v2 is not None else open_as_of(args.lake_root, table, storage=args.storage).version
    diff = diff_versions(args.lake_root, table, _version(args.v1), to, args.storage)
    print(diff.format(), file=sys.stderr)
    return diff.to_table()


def _run_show(args: argparse.Namespace) -> pa.Table:
    ref = parse_table_ref(args.table)
    if ref.version is not None and (args.version is not None or args.run_id is not None):
        raise QueryError(f"{args.table}: give the version once (TABLE@VERSION, --version or --run-id)")
    version = ref.version if ref.version is not None else (None if args.version is None else _version(args.version))
    ds = open_as_of(args.lake_root, ref.name, version=version, run_id=args.run_id, storage=args.storage)
    columns = [c.strip() for c in args.columns.split(",") if c.strip()] if args.columns else None
    to_terminal = args.out in (None, "-")
    limit = args.limit
    if to_terminal and limit is None:  # read only what the terminal shows; count the rest
        table = read_rows(ds, columns=columns, filter=args.filter, limit=args.max_rows)
        total = ds.count_rows(filter=args.filter) if table.num_rows == args.max_rows else table.num_rows
        return table.replace_schema_metadata({TOTAL_ROWS_KEY: str(total)})
    return read_rows(ds, columns=columns, filter=args.filter, limit=limit)


def add_command(subparsers: Any) -> None:
    """Register ``sql``, ``tables``, ``history``, ``diff`` and ``show``."""
    tables = ", ".join(TABLE_NAMES)
    p = subparsers.add_parser(
        "sql", help="SQL (DuckDB) over the lake's tables",
        description=f"DuckDB SQL over the lake's tables ({tables}); blob columns (audio) are left out. "
                    "Write TABLE@VERSION in the query for a table at a version or tag.")
    p.add_argument("query", help="e.g. \"SELECT speaker, sum(duration_s)/3600 AS hours FROM segments GROUP BY 1\"")
    p.add_argument("--run-id", help="every table as this run left it")
    p.add_argument("--at", action="append", metavar="TABLE@VERSION",
                   help="pin one table to a version or tag (repeatable; wins over --run-id)")
    p.set_defaults(run=_run_sql)

    p = subparsers.add_parser("tables", help="each table's version, rows, key and columns")
    p.set_defaults(run=_run_tables)

    p = subparsers.add_parser("history", help="a table's versions: time, rows, the run that wrote each")
    p.add_argument("table", help=tables)
    p.set_defaults(run=_run_history)

    p = subparsers.add_parser("diff", help="rows added, removed, updated between two versions (by key)")
    p.add_argument("table", help=tables)
    p.add_argument("v1", help="from this version (or tag)")
    p.add_argument("v2", nargs="?", help="to this version (or tag); default: the latest")
    p.set_defaults(run=_run_diff)

    p = subparsers.add_parser("show", help="rows of one table (Lance filter and projection), any version")
    p.add_argument("table", help=f"{tables}; TABLE@VERSION for a version or tag")
    when = p.add_mutually_exclusive_group()
    when.add_argument("--version", help="a version number or tag")
    when.add_argument("--run-id", help="the table as this run left it")
    p.add_argument("--columns", help="comma-separated columns (default: all but blobs)")
    p.add_argument("--filter", help="Lance SQL filter, e.g. \"split = 'train' AND snr_db > 20\"")
    p.add_argument("--limit", type=int, help="at most this many rows")
    p.set_defaults(run=_run_show)
