"""``python -m pipelines.query``: SQL, time travel, vector search and lineage over the lake, from the shell.

Every subcommand lives in a module that exposes ``add_command(subparsers)``
and registers its parser with ``set_defaults(run=callable)``, where
``callable(args) -> pa.Table``; this module adds the shared flags, calls
``run`` and prints or writes the table (:func:`~pipelines.query.output.write_output`).
Modules not written yet are skipped, so a new subcommand needs no edit here
beyond its name in :data:`COMMAND_MODULES`.

Before ``run`` is called, ``args.lake_root`` is resolved (``resolve_uri``:
absolute path or URI) and ``args.storage`` is the
:class:`~schemas.storage.StorageConfig` of the S3 flags.

Exit codes: 0 ok; 2 a user error (missing table/column, bad SQL or filter,
unknown version or run, wrong vector size, bad ``--out``): one ``error: ...``
line on stderr, no traceback; 1 the lake could not be read (I/O).
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys
from typing import Any

import duckdb

from pipelines.query.errors import QueryError
from pipelines.query.lake import clean_message
from pipelines.query.output import OUTPUT_FORMATS, write_output
from schemas.storage import StorageConfig, resolve_uri

__all__ = ["main", "build_parser", "COMMAND_MODULES"]

#: Modules that register subcommands, in help order (missing ones are skipped).
COMMAND_MODULES = ("pipelines.query.commands", "pipelines.query.vector", "pipelines.query.lineage",
                   "pipelines.query.frames")


def _add_shared_flags(parser: argparse.ArgumentParser, *, defaults: bool) -> None:
    """Flags every subcommand takes, before or after its name (defaults live on the top parser only)."""
    def default(value: object) -> object:
        return value if defaults else argparse.SUPPRESS

    g = parser.add_argument_group("lake and output")
    g.add_argument("--lake-root", default=default("data/lake"),
                   help="lake root: a path or s3:// URI (default: data/lake, against $LSM_HOME or the cwd)")
    g.add_argument("--s3-endpoint-url", default=default(None), help="S3 endpoint (MinIO, a loopback server)")
    g.add_argument("--s3-region", default=default("us-east-1"), help="S3 region (default us-east-1)")
    g.add_argument("--s3-allow-http", action="store_true", default=default(False), help="allow a plain-http endpoint")
    g.add_argument("--out", default=default(None), metavar="FILE",
                   help=f"write the result to FILE ({', '.join(OUTPUT_FORMATS)}) instead of the terminal")
    g.add_argument("--max-rows", type=int, default=default(50), help="rows shown in the terminal (default 50)")


class _CommandParser(argparse.ArgumentParser):
    """A subcommand's parser: it also takes the shared flags, so ``sql "..." --lake-root X`` works."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _add_shared_flags(self, defaults=False)


def build_parser() -> argparse.ArgumentParser:
    """The top parser with every available subcommand registered."""
    parser = argparse.ArgumentParser(prog="python -m pipelines.query",
                                     description="SQL, time travel, vector search and lineage over the lake's tables.")
    _add_shared_flags(parser, defaults=True)
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_CommandParser)
    for name in COMMAND_MODULES:
        if importlib.util.find_spec(name) is None:
            continue
        importlib.import_module(name).add_command(subparsers)
    return parser


def _error(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    """Parse, run one subcommand, print or write its table; returns the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: --help (0) or a usage error (2, message already printed)
        return int(exc.code or 0)
    if getattr(args, "run", None) is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        if args.max_rows < 1:
            raise QueryError(f"--max-rows must be >= 1, got {args.max_rows}")
        args.lake_root = resolve_uri(args.lake_root)
        args.storage = StorageConfig(s3_endpoint_url=args.s3_endpoint_url, s3_region=args.s3_region,
                                     s3_allow_http=args.s3_allow_http)
        table = args.run(args)
        write_output(table, args.out, max_rows=args.max_rows)
    except QueryError as exc:
        _error(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
        return 2
    except (duckdb.ProgrammingError, duckdb.DataError) as exc:  # SQL a command ran without run_sql
        _error(clean_message(exc))
        return 2
    except OSError as exc:
        _error(f"cannot read the lake: {clean_message(exc)}")
        return 1
    except KeyboardInterrupt:
        return 130
    if args.out not in (None, "-"):
        print(f"wrote {table.num_rows} rows to {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
