"""Names for table versions (Lance tags) and restoring a table to a named or numbered version.

A tag names one version of one table; ``tag_versions`` gives one name to a
set of tables at once: the current version of each, or the versions a run
recorded in its ``runs.table_versions_json`` (so "the lake as run X left it"
has a name that survives cleanup: ``pipelines.retention`` never removes a
tagged version).

``restore_versions`` makes a table's current version equal to an older one
with Lance's ``restore()``: a new commit whose content is the old version, so
nothing is lost (the bad run's version stays in history until cleanup removes
it). ``runs`` is not rewound unless named with ``--table runs``: it is the log
of what happened, including the bad run and the restore itself.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

import lance

from pipelines.lance_io import open_table, table_uri
from pipelines.maintenance import (MaintenanceInputError, MaintenanceReport, format_versions, open_lake_tables,
                                   record_action)
from schemas.maintenance import MaintainConfig
from schemas.sql import sql_quote
from schemas.storage import resolve_uri

__all__ = ["TagInfo", "tag_versions", "untag_versions", "list_tags", "restore_versions", "run_table_versions", "check_tag_name"]

_TAG_NAME = re.compile(r"^[A-Za-z0-9._-]+$")


@dataclass
class TagInfo:
    """One tag of one table."""

    table: str
    name: str
    version: int
    created_at: str

    def format(self) -> str:
        return f"{self.table}: {self.name} -> version {self.version} (tagged {self.created_at})"


def check_tag_name(name: str) -> None:
    """Lance tag names are letters, digits, ``.``, ``-`` and ``_`` (checked here for a one-line error)."""
    if not _TAG_NAME.match(name or ""):
        raise MaintenanceInputError(f"bad tag name {name!r}: use letters, digits, '.', '-' and '_' only")


def _versions(ds: lance.LanceDataset) -> list[int]:
    return sorted(v["version"] for v in ds.versions())


def _check_version(ds: lance.LanceDataset, table: str, version: int) -> None:
    have = _versions(ds)
    if version not in have:
        raise MaintenanceInputError(f"{table} has no version {version} (versions: {format_versions(have)}; "
                                    "older ones may have been cleaned up)")


def run_table_versions(config: MaintainConfig, run_id: str) -> dict[str, int]:
    """The versions a run recorded (``runs.table_versions_json``).

    Raises:
        MaintenanceInputError: no runs table, an unknown run id (the message names the latest ones), a run
            that recorded no versions.
    """
    lake = resolve_uri(config.lake_root)
    runs = open_table(table_uri(lake, "runs"), config.storage)
    if runs is None:
        raise MaintenanceInputError(f"no runs table under {lake}, so no run {run_id!r}")
    rows = runs.to_table(columns=["run_id", "status", "table_versions_json"],
                         filter=f"run_id = {sql_quote(run_id)}").to_pylist()
    if not rows:
        recent = runs.to_table(columns=["run_id", "started_at"]).sort_by([("started_at", "descending")])
        names = recent.column("run_id").to_pylist()[:5]
        raise MaintenanceInputError(f"no run {run_id!r} in {lake}/runs.lance (latest runs: "
                                    f"{', '.join(names) or 'none'})")
    if not rows[0]["table_versions_json"]:
        raise MaintenanceInputError(f"run {run_id!r} ({rows[0]['status']}) recorded no table versions")
    return {t: int(v) for t, v in json.loads(rows[0]["table_versions_json"]).items()}


def tag_versions(config: MaintainConfig, name: str, *, table: str | None = None, version: int | None = None,
                 run_id: str | None = None, replace: bool = False) -> MaintenanceReport:
    """Tag ``name`` on one table at a version, on every table a run wrote, or on every table's current version.

    Every target is checked before the first tag is written, so a bad input tags nothing.

    Args:
        table: only this table (with ``version``: that version; else its current one).
        run_id: the tables and versions of this run's ``table_versions_json`` (not with ``version``).
        replace: move an existing tag of that name instead of refusing.

    Raises:
        MaintenanceInputError: a bad name, unknown table/version/run, or the tag exists and not ``replace``.

    Example::

        tag_versions(MaintainConfig(lake_root="data/lake"), "before-recombine", run_id="encode-2026...")
    """
    check_tag_name(name)
    if version is not None and table is None:
        raise MaintenanceInputError("--version needs --table (version numbers differ from table to table)")
    if version is not None and run_id is not None:
        raise MaintenanceInputError("give --version or --run-id, not both")
    lake = resolve_uri(config.lake_root)
    if run_id is not None:
        wanted = run_table_versions(config, run_id)
        if table is not None:
            if table not in wanted:
                raise MaintenanceInputError(f"run {run_id!r} recorded no version of {table} (it recorded: "
                                            f"{', '.join(wanted)})")
            wanted = {table: wanted[table]}
        found = open_lake_tables(config, list(wanted), require=True)
        wanted = {t: wanted[t] for t in found}  # the lake's table order
    else:
        found = open_lake_tables(config, [table] if table else None, require=True)
        wanted = {t: (version if version is not None else ds.latest_version) for t, ds in found.items()}
    for t, v in wanted.items():
        ds = found[t]
        _check_version(ds, t, v)
        existing = ds.tags.list().get(name)
        if existing is not None and not replace:
            raise MaintenanceInputError(f"tag {name!r} already exists on {t} (version {existing['version']}); "
                                        "pass --replace to move it")
    report = MaintenanceReport("tag", lake, tables_seen=len(wanted))
    for t, v in wanted.items():
        ds = found[t]
        if name in ds.tags.list():
            ds.tags.update(name, v)
        else:
            ds.tags.create(name, v)
        report.tables_changed += 1
        report.table_versions[t] = v
        report.lines.append(f"{t}: {name} -> version {v}" + (f" (run {run_id})" if run_id else ""))
    return report


def untag_versions(config: MaintainConfig, name: str, *, table: str | None = None) -> MaintenanceReport:
    """Delete tag ``name`` from every selected table holding it (or from ``table``), so cleanup may take
    its version. The version itself stays until a cleanup removes it.

    Raises:
        MaintenanceInputError: an unknown table, or no such tag (the message names the tags there are).
    """
    lake = resolve_uri(config.lake_root)
    found = open_lake_tables(config, [table] if table else None, require=True)
    tagged = {t: ds.tags.list() for t, ds in found.items()}
    holders = [t for t, tags in tagged.items() if name in tags]
    if not holders:
        have = sorted({n for tags in tagged.values() for n in tags})
        raise MaintenanceInputError(f"no tag {name!r} on {table or 'any table'} under {lake} (tags: "
                                    f"{', '.join(have) or 'none'})")
    report = MaintenanceReport("untag", lake, tables_seen=len(found), tables_changed=len(holders))
    for t in holders:
        found[t].tags.delete(name)
        report.lines.append(f"{t}: {name} (version {tagged[t][name]['version']}) deleted")
    return report


def list_tags(config: MaintainConfig, tables: list[str] | None = None) -> list[TagInfo]:
    """Every tag of the selected tables, by table then version."""
    out = []
    for t, ds in open_lake_tables(config, tables, require=True).items():
        for name, info in sorted(ds.tags.list().items(), key=lambda kv: (kv[1]["version"], kv[0])):
            out.append(TagInfo(t, name, info["version"], f"{info['created_at']:%Y-%m-%d %H:%M:%S} UTC"))
    return out


def restore_versions(config: MaintainConfig, *, name: str | None = None, table: str | None = None,
                     version: int | None = None) -> MaintenanceReport:
    """Make the current version of each table equal to tag ``name`` (or ``version`` of ``table``): new commits.

    Without ``table``, every selected table holding the tag is restored except ``runs`` (the run log).

    Raises:
        MaintenanceInputError: neither or both of name / version, ``version`` without ``table``, an unknown
            table, tag (the message names the tags there are) or version.

    Example::

        restore_versions(MaintainConfig(lake_root="data/lake"), name="before-recombine")
    """
    if (name is None) == (version is None):
        raise MaintenanceInputError("give exactly one of --name (a tag) or --version (with --table)")
    if version is not None and table is None:
        raise MaintenanceInputError("--version needs --table (version numbers differ from table to table)")
    lake = resolve_uri(config.lake_root)
    found = open_lake_tables(config, [table] if table else None, require=True)
    targets: dict[str, int] = {}
    if version is not None:
        _check_version(found[table], table, version)  # type: ignore[index]
        targets[table] = version  # type: ignore[index]
    else:
        tagged = {t: ds.tags.list() for t, ds in found.items()}
        targets = {t: tags[name]["version"] for t, tags in tagged.items()
                   if name in tags and (table is not None or t != "runs")}
        if not targets:
            where = table or "any table"
            have = sorted({n for tags in tagged.values() for n in tags})
            raise MaintenanceInputError(f"no tag {name!r} on {where} under {lake} (tags: {', '.join(have) or 'none'})")

    skipped_runs = name is not None and table is None and "runs" in found and name in found["runs"].tags.list()

    def work() -> MaintenanceReport:
        report = MaintenanceReport("restore", lake, tables_seen=len(targets))
        if skipped_runs:
            report.lines.append(f"runs: not rewound (the run log keeps the bad run and this restore; "
                                f"--table runs --name {name} to rewind it too)")
        for t, v in targets.items():
            ds = open_table(table_uri(lake, t), config.storage)  # fresh: the `runs` row may have moved it on
            rows_before, before = ds.count_rows(), ds.latest_version
            if v == before:
                report.lines.append(f"{t}: already at version {v}")
                continue
            ds.checkout_version(v).restore()
            now = open_table(table_uri(lake, t), config.storage)
            report.tables_changed += 1
            report.table_versions[t] = now.version
            label = f"tag {name} = version {v}" if name else f"version {v}"
            report.lines.append(f"{t}: restored {label} as version {now.version} (was {before}); rows "
                                f"{rows_before} -> {now.count_rows()}")
        return report

    return record_action(config, "restore", {"name": name, "table": table, "version": version}, work)
