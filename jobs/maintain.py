"""Maintain the lake's Lance tables: compact, index, clean up old versions, tag versions, restore a tag.

Usage::

    python jobs/maintain.py compact --config configs/maintain.yaml [--table segments]
    python jobs/maintain.py index   --config configs/maintain.yaml [--rebuild]
    python jobs/maintain.py cleanup --config configs/maintain.yaml [--dry-run] [--keep-days 7] [--keep-last 5] [--unpin-runs]
    python jobs/maintain.py tag     --config configs/maintain.yaml --name NAME [--table T [--version V] | --run-id R]
    python jobs/maintain.py untag   --config configs/maintain.yaml --name NAME [--table T]
    python jobs/maintain.py tags    --config configs/maintain.yaml
    python jobs/maintain.py restore --config configs/maintain.yaml --name NAME [--table T]
    python jobs/maintain.py restore --config configs/maintain.yaml --table T --version V

Exit codes: 0 success (a table with nothing to do is left alone), 2 unusable
input: bad config or arguments, an unknown table, tag, version or run (one
line naming what exists; nothing was changed); 1 an action failed (its
``runs`` row says why; compaction that would change rows is put back).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pydantic import ValidationError  # noqa: E402

from jobs._cli import fail, load_job_config  # noqa: E402
from schemas.maintenance import MaintainConfig  # noqa: E402


class _Parser(argparse.ArgumentParser):
    """argparse that reports a bad argument in one line (exit 2), without the usage block."""

    def error(self, message: str) -> None:  # type: ignore[override]
        fail(f"{self.prog}: {message}")
        raise SystemExit(2)


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", required=True, help="YAML config (see configs/maintain.yaml)")
    common.add_argument("--lake-root", help="override lake_root (a path or s3:// URI)")
    parser = _Parser(prog="jobs/maintain.py", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="action", required=True, parser_class=_Parser)
    compact = sub.add_parser("compact", parents=[common], help="merge small fragments")
    index = sub.add_parser("index", parents=[common], help="create / optimize / rebuild indexes")
    index.add_argument("--rebuild", action="store_true", help="re-create every index from scratch")
    cleanup = sub.add_parser("cleanup", parents=[common], help="remove old versions (retention rule)")
    cleanup.add_argument("--dry-run", action="store_true", help="list what would be removed; change nothing")
    cleanup.add_argument("--keep-days", type=float, help="override retention.keep_days")
    cleanup.add_argument("--keep-last", type=int, help="override retention.keep_last_versions")
    cleanup.add_argument("--unpin-runs", action="store_true",
                         help="retention.keep_latest_run_versions: false (the latest runs' versions may go)")
    tag = sub.add_parser("tag", parents=[common], help="name a version (of one table, of a run, or current)")
    tag.add_argument("--name", required=True)
    tag.add_argument("--version", type=int, help="version of --table (default: its current one)")
    tag.add_argument("--run-id", help="tag every table at the version this run recorded")
    tag.add_argument("--replace", action="store_true", help="move an existing tag of that name")
    untag = sub.add_parser("untag", parents=[common], help="delete a tag (cleanup may then take its version)")
    untag.add_argument("--name", required=True)
    tags = sub.add_parser("tags", parents=[common], help="list tags per table")
    restore = sub.add_parser("restore", parents=[common], help="make a tagged (or numbered) version current")
    restore.add_argument("--name", help="tag to restore")
    restore.add_argument("--version", type=int, help="version of --table to restore")
    for p, many in ((compact, True), (index, True), (cleanup, True), (tags, True), (tag, False), (untag, False),
                     (restore, False)):
        if many:
            p.add_argument("--table", action="append", help="only this table (repeatable)")
        else:
            p.add_argument("--table", help="only this table")
    return parser


def _run(args: argparse.Namespace, config: MaintainConfig) -> str:
    from pipelines.maintenance import compact_tables, index_tables
    from pipelines.retention import cleanup_tables
    from pipelines.tags import list_tags, restore_versions, tag_versions, untag_versions

    if args.action == "compact":
        return compact_tables(config, args.table).format()
    if args.action == "index":
        return index_tables(config, args.table, rebuild=args.rebuild).format()
    if args.action == "cleanup":
        return cleanup_tables(config, args.table, dry_run=args.dry_run)[0].format()
    if args.action == "tag":
        return tag_versions(config, args.name, table=args.table, version=args.version, run_id=args.run_id,
                            replace=args.replace).format()
    if args.action == "untag":
        return untag_versions(config, args.name, table=args.table).format()
    if args.action == "tags":
        found = list_tags(config, args.table)
        return "\n".join(t.format() for t in found) or "no tags"
    return restore_versions(config, name=args.name, table=args.table, version=args.version).format()


def main(argv: list[str] | None = None) -> int:
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    config = load_job_config(args.config, MaintainConfig)
    if config is None:
        return 2
    update: dict = {"lake_root": args.lake_root} if args.lake_root else {}
    retention = {k: v for k, v in (("keep_days", getattr(args, "keep_days", None)),
                                   ("keep_last_versions", getattr(args, "keep_last", None)),
                                   ("keep_latest_run_versions", False if getattr(args, "unpin_runs", False) else None))
                 if v is not None}
    if retention:
        try:
            update["retention"] = config.retention.model_validate({**config.retention.model_dump(), **retention})
        except ValidationError as exc:
            first = exc.errors()[0]
            fail(f"bad retention override: {first['loc'][0]}: {first['msg']}")
            return 2
    config = config.model_copy(update=update)
    from pipelines.maintenance import MaintenanceError, MaintenanceInputError

    try:
        print(_run(args, config))
    except MaintenanceInputError as exc:  # checked before anything was changed
        fail(str(exc))
        return 2
    except (MaintenanceError, OSError, RuntimeError, ValueError) as exc:  # recorded as a failed run in `runs`
        fail(f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
