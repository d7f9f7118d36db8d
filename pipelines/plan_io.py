"""Read what recombination planning needs from ``segments``: metadata columns only, filtered in Lance.

The ``audio`` blob is never read: the scan projects
:data:`schemas.recombine.PLAN_INPUT_COLUMNS` and pushes the SQL filters down to
Lance, so planning over a large lake reads a few small columns.
"""

from __future__ import annotations

import pyarrow as pa

from pipelines.lance_io import open_table, table_uri
from schemas.recombine import PLAN_INPUT_COLUMNS, PlanError
from schemas.storage import StorageConfig

__all__ = ["read_plan_inputs"]


def _lance_reason(exc: Exception) -> str:
    """The first useful line of a Lance error (no Rust source path, no list of every column)."""
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    text = text.split(", /")[0].split(". Valid fields are")[0]
    return text.removeprefix("Invalid user input: ")


def _scan(ds, name: str, sql: str) -> pa.Table:
    try:
        return ds.to_table(columns=list(PLAN_INPUT_COLUMNS), filter=sql)
    except ValueError as exc:
        raise PlanError(f"{name} {sql!r} cannot run on segments: {_lance_reason(exc)}") from None


def read_plan_inputs(lake_root: str, storage: StorageConfig, *, source_filter: str,
                     donor_filter: str | None = None) -> tuple[pa.Table, pa.Table]:
    """(sources, donors): the ``segments`` rows matching each Lance SQL filter, metadata columns only.

    Args:
        lake_root: the lake's path or URI.
        storage: how to reach S3 (ignored for local paths).
        source_filter: selects the content sources, e.g. ``"split = 'train'"``.
        donor_filter: selects rows that may donate a factor; None: the same as ``source_filter``.

    Returns:
        Two tables with the columns of :data:`schemas.recombine.PLAN_INPUT_COLUMNS` (possibly empty: the
        planner reports an empty source set with the filter).

    Raises:
        PlanError: no ``segments`` table under ``lake_root``, or a filter Lance cannot parse or run.

    Example::

        sources, donors = read_plan_inputs("data/lake", StorageConfig(), source_filter="split = 'train'",
                                           donor_filter="split = 'train' AND corpus = 'espeak-ng'")
    """
    ds = open_table(table_uri(lake_root, "segments"), storage)
    if ds is None:
        raise PlanError(f"no segments table under {lake_root} (run jobs/curate.py first)")
    sources = _scan(ds, "source_filter", source_filter)
    if donor_filter is None or donor_filter == source_filter:
        return sources, sources
    return sources, _scan(ds, "donor_filter", donor_filter)
