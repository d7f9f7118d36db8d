"""Query the lake: SQL over its tables (DuckDB over Lance), time travel, diffs, output, and the CLI.

Library::

    from pipelines.query import query_lake, read_history, diff_versions, write_output
    write_output(query_lake("data/lake", "SELECT split, count(*) FROM segments GROUP BY 1"), None)

Shell: ``python -m pipelines.query --help`` (:mod:`pipelines.query.cli`).
Vector search (by segment, vector or audio file), lineage of synthetic rows and dask
data frames: :mod:`pipelines.query.vector`, :mod:`pipelines.query.lineage`, :mod:`pipelines.query.frames`.
"""

from __future__ import annotations

from pipelines.query.errors import QueryError
from pipelines.query.frames import measure_table, read_dask
from pipelines.query.lake import TABLE_KEYS, TABLE_NAMES, connect_lake, describe_tables, query_lake, versions_at_run
from pipelines.query.lineage import read_lineage
from pipelines.query.output import write_output
from pipelines.query.vector import search_similar
from pipelines.query.versions import VersionDiff, diff_versions, open_as_of, read_as_of, read_history

__all__ = [
    "QueryError", "TABLE_NAMES", "TABLE_KEYS", "connect_lake", "query_lake", "describe_tables", "versions_at_run",
    "read_history", "open_as_of", "read_as_of", "diff_versions", "VersionDiff", "write_output",
    "search_similar", "read_lineage", "read_dask", "measure_table",
]
