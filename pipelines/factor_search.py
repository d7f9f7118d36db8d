"""Vector search over ``factors`` ("utterances whose voice is like this one") and the index that serves it.

:func:`similar_segments` finds the ``k`` rows of one factorizer nearest to a
segment's factor vector (or to a given vector) by cosine distance, with an
optional Lance SQL filter on the readable columns (``split``, ``speaker``,
``language``, ...). The filter and the factorizer id are applied before the
search (``prefilter``), so ``k`` rows come back whenever ``k`` rows match.

Two traps measured on pylance 14 shape the query:

- the metric is always passed: rows not yet in the index are scanned with the
  query's metric, which defaults to L2 (2x the cosine distance on unit
  vectors), so without it indexed and unindexed rows were ranked on different
  scales; and a query metric other than the index's falls back to a full scan;
- distances are re-ranked exactly (``refine_factor``): PQ distances are
  approximate, and a segment must find itself first at distance ~0.

:func:`update_factor_index` is what ``jobs/encode_factors.py`` calls after its
commits (see ``schemas.encode_factors.FactorsIndexConfig`` for the rules).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from pipelines.lance_io import open_table, table_uri
from schemas.encode_factors import PQ_MIN_ROWS, FactorsIndexConfig
from schemas.factors import FACTOR_DIMS, VECTOR_COLUMNS
from schemas.sql import sql_quote
from schemas.storage import StorageConfig, resolve_uri

__all__ = ["similar_segments", "update_factor_index", "index_name", "plan_index_partitions", "IndexUpdate",
           "FactorsLookupError", "RESULT_COLUMNS"]

#: Columns of a search result, besides ``distance`` (cosine distance, 0 = same direction, ascending).
RESULT_COLUMNS: tuple[str, ...] = ("segment_id", "speaker", "language", "style", "environment", "channel", "corpus",
                                   "split", "duration_s", "factorizer_id")


class FactorsLookupError(LookupError):
    """No factors table, factorizer or segment to search with; the message is one line."""


def index_name(factor: str) -> str:
    """Name of the vector index on a factor's column (``speaker`` -> ``speaker_vector_idx``)."""
    return f"{VECTOR_COLUMNS[factor]}_idx"


def plan_index_partitions(rows: int, requested: int | None = None) -> int:
    """IVF partitions for a table of ``rows``: ``requested``, else sqrt(rows) capped at rows / 256.

    Why the cap: Lance trains no partition on fewer than 256 rows (it warns and trains fewer).

    Example:
        >>> [plan_index_partitions(n) for n in (10, 600, 10_000, 1_000_000)]
        [1, 2, 39, 1000]
    """
    if requested is not None:
        return requested
    return max(1, min(round(math.sqrt(rows)), rows // 256))


@dataclass
class IndexUpdate:
    """What :func:`update_factor_index` did to one factor's index."""

    factor: str
    action: str  # "created", "rebuilt", "optimized", "up to date", "empty table"
    index_type: str | None = None  # of a created or rebuilt index
    num_partitions: int | None = None
    num_sub_vectors: int | None = None
    rows: int = 0
    rows_added: int = 0

    def format(self) -> str:
        """One line for the job's summary."""
        what = f"{VECTOR_COLUMNS[self.factor]}: {self.action}"
        if self.index_type:
            shape = f", {self.num_sub_vectors} sub-vectors" if self.num_sub_vectors else ""
            plural = "" if self.num_partitions == 1 else "s"
            what += f" {self.index_type} ({self.num_partitions} partition{plural}{shape})"
        elif self.rows_added:
            what += f" (+{self.rows_added} rows)"
        return f"{what}; {self.rows} rows"


def _create(ds, factor: str, rows: int, config: FactorsIndexConfig) -> IndexUpdate:
    column, dim = VECTOR_COLUMNS[factor], FACTOR_DIMS[factor]
    if rows < PQ_MIN_ROWS:
        ds.create_index(column, index_type="IVF_FLAT", name=index_name(factor), metric=config.metric,
                        num_partitions=1, replace=True)
        return IndexUpdate(factor, "created", "IVF_FLAT", 1, rows=rows)
    partitions = plan_index_partitions(rows, config.num_partitions)
    sub_vectors = config.num_sub_vectors or max(1, dim // 8)
    ds.create_index(column, index_type="IVF_PQ", name=index_name(factor), metric=config.metric,
                    num_partitions=partitions, num_sub_vectors=sub_vectors, replace=True)
    return IndexUpdate(factor, "created", "IVF_PQ", partitions, sub_vectors, rows=rows)


def update_factor_index(lake_root: str, config: FactorsIndexConfig,
                        storage: StorageConfig | None = None) -> list[IndexUpdate]:
    """Build, rebuild or extend the vector index of each factor in ``config.factors``; returns what it did.

    - no index, or a table still under :data:`PQ_MIN_ROWS` rows with unindexed ones: (re)create an exact
      ``IVF_FLAT`` index of one partition (for a tiny table a rebuild costs nothing);
    - no index, or the flat one, on a table of :data:`PQ_MIN_ROWS` rows or more: create ``IVF_PQ`` (:func:`plan_index_partitions`, ``dim / 8`` sub-vectors);
    - unindexed rows at least as many as the indexed ones, or ``max_delta_segments`` delta segments: rebuild
      (partitions retrained for the grown table, segments merged);
    - otherwise ``optimize_indices()``: new rows join the existing partitions as a delta segment.

    Example::

        update_factor_index("data/lake", FactorsIndexConfig())   # after writing factors rows by hand
    """
    storage = storage or StorageConfig()
    ds = open_table(table_uri(resolve_uri(lake_root), "factors"), storage)
    if ds is None:
        return []
    rows = ds.count_rows()
    out = []
    for factor in config.factors:
        name = index_name(factor)
        if rows == 0:
            out.append(IndexUpdate(factor, "empty table"))
            continue
        found = [d for d in ds.describe_indices() if d.name == name]
        indexed = found[0].num_rows_indexed if found else 0
        segments = len(found[0].segments) if found else 0
        flat = bool(found) and found[0].index_type == "IVF_FLAT"
        added = rows - indexed
        if not found or (rows < PQ_MIN_ROWS and added > 0) or (flat and rows >= PQ_MIN_ROWS):
            update = _create(ds, factor, rows, config)
            update.action = "rebuilt" if found else "created"
        elif added <= 0:
            update = IndexUpdate(factor, "up to date", rows=rows)
        elif added >= indexed or segments >= config.max_delta_segments:
            update = _create(ds, factor, rows, config)
            update.action = "rebuilt"
        else:
            ds.optimize.optimize_indices(index_names=[name])
            update = IndexUpdate(factor, "optimized", rows=rows)
        update.rows_added = max(added, 0)
        out.append(update)
        ds = open_table(table_uri(resolve_uri(lake_root), "factors"), storage)
    return out


def _query_vector(vector: Sequence[float] | np.ndarray, factor: str) -> np.ndarray:
    dim = FACTOR_DIMS[factor]
    q = np.asarray(vector, dtype=np.float32)
    if q.shape != (dim,):
        raise ValueError(f"a {factor} vector has {dim} values; got shape {tuple(q.shape)}")
    if not np.all(np.isfinite(q)) or not np.any(q):
        raise ValueError(f"the {factor} vector must be finite and nonzero (cosine distance is undefined otherwise)")
    return q


def _vector_of(ds, lake: str, segment_id: str, factorizer_id: str, factor: str) -> np.ndarray:
    row = ds.to_table(columns=[VECTOR_COLUMNS[factor]], limit=1,
                      filter=f"segment_id = {sql_quote(segment_id)} AND factorizer_id = {sql_quote(factorizer_id)}")
    if row.num_rows == 0:
        raise FactorsLookupError(f"segment {segment_id!r} has no factors of factorizer {factorizer_id!r} in {lake} "
                                 "(unknown segment id, or not factorized yet)")
    return np.asarray(row.column(0)[0].values, dtype=np.float32)


def _factorizers(ds) -> list[str]:
    import pyarrow.compute as pc

    return sorted(pc.unique(ds.to_table(columns=["factorizer_id"]).column(0)).to_pylist())


def similar_segments(lake_root: str, *, factorizer_id: str, segment_id: str | None = None,
                     vector: Sequence[float] | np.ndarray | None = None, factor: str = "speaker", k: int = 10,
                     filter: str | None = None, storage: StorageConfig | None = None,
                     minimum_nprobes: int | None = None, refine_factor: int = 10) -> pa.Table:
    """The ``k`` segments whose ``factor`` vector (by ``factorizer_id``) is nearest to a segment's or a vector.

    Args:
        factorizer_id: whose vectors to compare (each factorizer has its own space).
        segment_id: query with this segment's vector (it comes back first, distance ~0); or
        vector: query with this vector (``FACTOR_DIMS[factor]`` floats).
        factor: ``speaker``, ``style``, ``environment`` or ``channel``.
        filter: Lance SQL over the factors columns, e.g. ``"split = 'train' AND language = 'en'"``.
        minimum_nprobes: IVF partitions searched at least (None: Lance's automatic budget, ~sqrt of the
            partitions); the search widens until ``k`` rows match the filter. Not an upper bound on purpose:
            Lance's ``nprobes`` caps the search too and then returned 0 of 5 rows under a selective filter.
        refine_factor: re-rank ``k x refine_factor`` candidates with exact distances.

    Returns:
        :data:`RESULT_COLUMNS` + ``distance`` (cosine distance, ascending).

    Raises:
        ValueError: an unknown factor, a vector of the wrong size, both or neither of segment_id / vector,
            a filter Lance cannot run.
        FactorsLookupError: no factors table, an unknown factorizer, or a segment without factors of it.

    Example::

        similar_segments("data/lake", factorizer_id="factorizer_default-3f2a...", segment_id="9c1e...",
                         k=5, filter="split = 'train'")
    """
    if factor not in VECTOR_COLUMNS:
        raise ValueError(f"unknown factor {factor!r}; factors are {', '.join(VECTOR_COLUMNS)}")
    if (segment_id is None) == (vector is None):
        raise ValueError("give exactly one of segment_id or vector to search with")
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    q = None if vector is None else _query_vector(vector, factor)
    lake = resolve_uri(lake_root)
    ds = open_table(table_uri(lake, "factors"), storage or StorageConfig())
    if ds is None:
        raise FactorsLookupError(f"no factors table under {lake} (run jobs/encode_factors.py first)")
    if q is None:
        q = _vector_of(ds, lake, segment_id, factorizer_id, factor)  # type: ignore[arg-type]
    where = f"factorizer_id = {sql_quote(factorizer_id)}" + (f" AND ({filter})" if filter else "")
    nearest = {"column": VECTOR_COLUMNS[factor], "q": q, "k": k, "metric": "cosine", "refine_factor": refine_factor}
    if minimum_nprobes is not None:
        nearest["minimum_nprobes"] = minimum_nprobes
    try:
        found = ds.to_table(columns=[*RESULT_COLUMNS, "_distance"], nearest=nearest, filter=where, prefilter=True)
    except ValueError as exc:
        if filter is None:
            raise
        raise ValueError(f"filter {filter!r} cannot run: {str(exc).splitlines()[0].split(', /')[0]}") from None
    if found.num_rows == 0 and segment_id is None:
        have = _factorizers(ds)
        if factorizer_id not in have:
            raise FactorsLookupError(f"no factors of factorizer {factorizer_id!r} in {lake} (it has: "
                                     f"{', '.join(have) or 'none'})")
    found = found.rename_columns([*RESULT_COLUMNS, "distance"])
    return found.sort_by([("distance", "ascending")])
