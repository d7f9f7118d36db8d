"""A lake table as a dask DataFrame, one partition per Lance fragment, for corpus-scale statistics.

Why one partition per fragment: a fragment is Lance's unit of storage (the
files one write task made), so a partition reads exactly one set of files,
lazily, with the columns and the filter pushed into Lance's scanner
(``LanceFragment.to_table``). Dask's optimizer pushes a later column selection
into the read too (``dd.from_map`` with a ``columns`` argument), so
``read_dask(...)["duration_s"].sum()`` reads one column.

Every partition reads the version the driver opened (pinned), so a table that
grows while a computation runs gives a consistent answer. Partitions open the
table themselves (``lance_io.open_pinned``, once per worker process) from the
URI and a :class:`~schemas.storage.StorageConfig`, so a dask cluster reading
``s3://`` takes credentials from its own environment, never from the graph.

Column dtypes are ``pd.ArrowDtype`` on purpose: the meta (from the schema) and
every partition agree whatever the data (a nullable int column does not turn
float in one partition and stay int in another; strings and vectors keep their
Arrow types). Blob columns (FLAC bytes stored out of line) are left out by
default and refused when asked for: a scan yields their position, not bytes.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

import pyarrow as pa
import pyarrow.types as pat

from pipelines.lance_io import open_pinned, table_uri
from pipelines.query.errors import QueryError
from pipelines.query.lake import blob_columns, clean_message, open_lake_table, parse_table_ref
from schemas.storage import StorageConfig, resolve_uri

__all__ = ["read_dask", "measure_table", "add_command", "MEASURES"]

#: Statistics of the value column that :func:`measure_table` returns, besides ``rows``.
MEASURES: tuple[str, ...] = ("sum", "mean", "min", "max")


def _arrow_pandas(table: pa.Table):
    import pandas as pd

    return table.to_pandas(types_mapper=pd.ArrowDtype)


class _ReadFragment:
    """Reads one fragment of a pinned table version into pandas (the function ``dd.from_map`` maps)."""

    def __init__(self, uri: str, version: int, storage: StorageConfig, columns: list[str], filter: str | None):
        self.uri, self.version, self.storage, self.columns, self.filter = uri, version, storage, columns, filter

    def __dask_tokenize__(self) -> tuple:
        """Same table, version, columns and filter -> same graph keys (dask caches and dedups by them)."""
        return (self.uri, self.version, self.storage.model_dump_json(), tuple(self.columns), self.filter)

    def __call__(self, fragment_id: int, columns: list[str] | None = None):
        ds = open_pinned(self.uri, self.version, self.storage)
        fragment = ds.get_fragment(fragment_id)
        if fragment is None:
            raise FileNotFoundError(f"{self.uri} version {self.version} has no fragment {fragment_id}")
        wanted = list(columns) if columns is not None else self.columns
        return _arrow_pandas(fragment.to_table(columns=wanted, filter=self.filter))


def _check_columns(ds, table: str, columns: Sequence[str] | None) -> list[str]:
    """The columns to read: all but blobs by default; unknown or blob columns asked for are QueryErrors."""
    blobs = blob_columns(ds.schema)
    if columns is None:
        return [f.name for f in ds.schema if f.name not in blobs]
    columns = list(columns)
    unknown = [c for c in columns if c not in ds.schema.names]
    if unknown:
        raise QueryError(f"{table} has no column {', '.join(map(repr, unknown))}; columns: "
                         f"{', '.join(n for n in ds.schema.names if n not in blobs)}")
    asked = [c for c in columns if c in blobs]
    if asked:
        raise QueryError(f"{table}.{asked[0]} is a blob column (audio stored out of line) and cannot be a dask "
                         "column: read audio with pipelines.lance_io.read_segment_audio")
    if len(set(columns)) != len(columns):
        raise QueryError(f"a column is named twice: {', '.join(columns)}")
    return columns


def read_dask(lake_root: str, storage: StorageConfig | None, table: str, *, columns: Sequence[str] | None = None,
              filter: str | None = None, version: int | str | None = None):
    """A lazy dask DataFrame over ``table``, one partition per Lance fragment of the (pinned) version.

    Args:
        table: a lake table name (``segments``, ``factors``, ...).
        columns: what to read (default: every column but blobs); a blob column is refused.
        filter: Lance SQL applied inside each fragment's scan (checked once, up front).
        version: a version number or tag (default: the latest, pinned for the whole computation).

    Raises:
        QueryError: unknown table, version, column or tag; a blob column asked for; a filter Lance cannot run.

    Example::

        df = read_dask("data/lake", StorageConfig(), "segments", columns=["speaker", "duration_s"])
        (df.groupby("speaker").duration_s.sum() / 3600).compute()
    """
    import dask.dataframe as dd

    storage = storage or StorageConfig()
    lake = resolve_uri(lake_root)
    ds = open_lake_table(lake, table, storage, version)
    wanted = _check_columns(ds, table, columns)
    if filter is not None:
        try:
            ds.scanner(columns=wanted[:1], filter=filter).explain_plan()
        except ValueError as exc:
            raise QueryError(f"filter {filter!r} cannot run on {table}: {clean_message(exc)}") from None
    meta = _arrow_pandas(pa.schema([ds.schema.field(c) for c in wanted]).empty_table())
    fragments = [f.fragment_id for f in ds.get_fragments()]
    if not fragments:
        return dd.from_pandas(meta, npartitions=1)
    reader = _ReadFragment(table_uri(lake, table), ds.version, storage, wanted, filter)
    return dd.from_map(reader, fragments, meta=meta, label=f"read-lance-{table}", enforce_metadata=False)


def _value_stem(value: str) -> str | None:
    """``duration_s`` -> ``duration``: a value in seconds also gets an hours column."""
    return value[:-2] if value.endswith("_s") else None


def measure_table(lake_root: str, storage: StorageConfig | None, table: str, *, by: str | Sequence[str],
                  value: str | None = None, filter: str | None = None, version: int | str | None = None) -> pa.Table:
    """Group ``table`` by ``by`` and count rows (and sum/mean/min/max ``value``), computed with dask.

    Null keys are a group of their own (unlabelled rows are counted, not dropped). A value column in seconds
    (``*_s``) also gets ``<stem>_h``: the sum in hours, so ``by="speaker", value="duration_s"`` is hours by speaker.

    Returns:
        ``by`` columns, ``rows``, then ``<value>_sum``, ``_mean``, ``_min``, ``_max`` (and ``<stem>_h``),
        sorted by the ``by`` columns (nulls last).

    Raises:
        QueryError: as :func:`read_dask`; no ``by`` column, or a value column that is not numeric.

    Example::

        measure_table("data/lake", StorageConfig(), "segments", by="speaker", value="duration_s")
    """
    keys = [by] if isinstance(by, str) else list(by)
    if not keys:
        raise QueryError("give at least one column to group by")
    columns = [*keys, *([value] if value is not None and value not in keys else [])]
    df = read_dask(lake_root, storage, table, columns=columns, filter=filter, version=version)
    nested = [k for k in keys if pat.is_nested(df._meta.dtypes[k].pyarrow_dtype)]
    if nested:
        raise QueryError(f"{table}.{nested[0]} holds lists or structs: group by a column of single values")
    if value is not None:
        kind = df._meta.dtypes[value].pyarrow_dtype
        if not (pat.is_integer(kind) or pat.is_floating(kind) or pat.is_decimal(kind)):
            raise QueryError(f"{table}.{value} is {kind}, not a number: it cannot be summed")
    one = df.assign(_one=1)
    specs: dict[str, tuple[str, str]] = {"rows": ("_one", "sum")}
    if value is not None:
        specs.update({f"{value}_{m}": (value, m) for m in MEASURES})
    out = one.groupby(keys, dropna=False).agg(**specs).compute().reset_index()
    result = pa.Table.from_pandas(out, preserve_index=False)
    result = result.set_column(result.schema.get_field_index("rows"), "rows", result.column("rows").cast(pa.int64()))
    if value is not None and (stem := _value_stem(value)):
        import pyarrow.compute as pc

        result = result.append_column(f"{stem}_h", pc.divide(pc.cast(result.column(f"{value}_sum"), pa.float64()),
                                                               3600.0))
    return result.sort_by([(k, "ascending") for k in keys])


def _run(args: argparse.Namespace) -> pa.Table:
    ref = parse_table_ref(args.table)
    return measure_table(args.lake_root, args.storage, ref.name, by=args.by, value=args.value,
                         filter=args.filter, version=ref.version)


def add_command(subparsers: Any) -> None:
    """Register ``stats``: group a table by columns and measure another, with dask over its fragments."""
    p = subparsers.add_parser("stats", help="corpus statistics with dask: rows (and sum/mean/min/max of a column) "
                              "per group", description="Group a table by columns (dask, one partition per "
                              "Lance fragment); a *_s value also gets its sum in hours.")
    p.add_argument("table", help="table name, optionally @version or @tag (segments, segments@3)")
    p.add_argument("--by", action="append", required=True, help="column to group by (repeat for several)")
    p.add_argument("--value", help="numeric column to measure, e.g. duration_s")
    p.add_argument("--filter", help="Lance SQL applied in every fragment's scan, e.g. \"split = 'train'\"")
    p.set_defaults(run=_run)
