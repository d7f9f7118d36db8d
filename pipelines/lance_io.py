"""Lance table IO for the lake: where tables live, small driver-side upserts, worker-side bulk writes.

Rules from DESIGN.md: big tables (``segments``) are written by Ray workers as
fragments and committed once by the driver (lance-ray); small tables
(``sources``, ``rejects``, ``runs``) are merge-inserted from the driver on
their key, which makes every write idempotent. ``mode`` is always explicit
(lance-ray's default ``create`` overwrote a table here).
"""

from __future__ import annotations

import io
from typing import Iterable, Sequence

import lance
import numpy as np
import pyarrow as pa
import soundfile as sf

from schemas.storage import StorageConfig, is_remote

__all__ = [
    "TABLES", "table_uri", "open_table", "open_pinned", "upsert_rows", "write_ray_dataset", "table_versions",
    "read_column_values", "read_segment_audio", "read_test_clips", "blob_columns",
]

TABLES = ("sources", "segments", "rejects", "runs")


def table_uri(lake_root: str, name: str) -> str:
    """URI of a table under the lake root (``<root>/<name>.lance``)."""
    return f"{lake_root.rstrip('/')}/{name}.lance"


def _opts(uri: str, storage: StorageConfig) -> dict | None:
    return storage.lance_options() if is_remote(uri) else None


def open_table(uri: str, storage: StorageConfig, version: int | str | None = None) -> lance.LanceDataset | None:
    """The table at ``uri`` (optionally at a version or tag), or None if it does not exist yet."""
    try:
        return lance.dataset(uri, version=version, storage_options=_opts(uri, storage))
    except (ValueError, FileNotFoundError, OSError) as exc:
        if "not found" in str(exc).lower() or "does not exist" in str(exc).lower() or isinstance(exc, FileNotFoundError):
            return None
        raise


_PINNED: dict[tuple[str, int], lance.LanceDataset] = {}


def open_pinned(uri: str, version: int, storage: StorageConfig) -> lance.LanceDataset:
    """The table at one version, opened once per worker process (opening costs a manifest read).

    For Ray Data read functions that run many times per worker on a version the driver pinned.

    Raises:
        FileNotFoundError: the table or that version is gone.
    """
    key = (uri, version)
    if key not in _PINNED:
        ds = open_table(uri, storage, version=version)
        if ds is None:
            raise FileNotFoundError(f"table {uri} (version {version}) is gone")
        _PINNED[key] = ds
    return _PINNED[key]


def upsert_rows(
    uri: str,
    rows: Sequence[dict] | pa.Table,
    schema: pa.Schema,
    key: list[str],
    storage: StorageConfig,
    *,
    update_existing: bool = False,
) -> int:
    """Merge-insert rows on ``key`` (insert new keys; update matched rows only if asked). Returns new version."""
    table = rows if isinstance(rows, pa.Table) else pa.Table.from_pylist(list(rows), schema=schema)
    table = table.cast(schema)
    ds = open_table(uri, storage)
    if ds is None:
        ds = lance.write_dataset(table, uri, schema=schema, mode="create", storage_options=_opts(uri, storage))
        return ds.version
    if table.num_rows == 0:
        return ds.version
    builder = ds.merge_insert(key)
    if update_existing:
        builder = builder.when_matched_update_all()
    builder.when_not_matched_insert_all().execute(table)
    return open_table(uri, storage).version  # type: ignore[union-attr]


def write_ray_dataset(ds, uri: str, schema: pa.Schema, storage: StorageConfig, *, min_rows_per_file: int = 2048) -> None:
    """Append a Ray Dataset to a table (created on first write); workers write, the driver commits once."""
    import lance_ray

    mode = "append" if open_table(uri, storage) is not None else "create"
    lance_ray.write_lance(ds, uri, schema=schema, mode=mode, min_rows_per_file=min_rows_per_file,
                          storage_options=_opts(uri, storage))


def table_versions(lake_root: str, storage: StorageConfig, names: Iterable[str] = TABLES) -> dict[str, int]:
    """Current version of each existing table (what a run records so it can be read "as of" later)."""
    out = {}
    for name in names:
        ds = open_table(table_uri(lake_root, name), storage)
        if ds is not None:
            out[name] = ds.version
    return out


def blob_columns(schema: pa.Schema) -> list[str]:
    """Columns Lance stores as blobs (out of line: a scan yields positions, ``read_blobs`` the bytes).

    pylance 14 reports them as the ``lance.blob*`` extension type; the field metadata flag is checked too.
    """
    out = []
    for field in schema:
        extension = getattr(field.type, "extension_name", "") or ""
        if (field.metadata or {}).get(b"lance-encoding:blob") == b"true" or "blob" in extension:
            out.append(field.name)
    return out


def read_column_values(uri: str, columns: list[str], storage: StorageConfig, filter: str | None = None) -> pa.Table:
    """A projection of a table (empty table with no columns if the table does not exist)."""
    ds = open_table(uri, storage)
    if ds is None:
        return pa.table({c: [] for c in columns})
    return ds.to_table(columns=columns, filter=filter)


def read_segment_audio(lake_root: str, storage: StorageConfig, *, filter: str | None = None,
                       limit: int | None = None) -> list[tuple[str, np.ndarray, int]]:
    """(segment_id, float32 samples, sample rate) for segments matching a Lance SQL filter.

    The ``audio`` column is a Lance blob: a scan returns only its position,
    so the bytes are fetched with ``read_blobs`` by row address.

    Example::

        read_segment_audio("data/lake", StorageConfig(), filter="speaker = 'flite:slt'", limit=3)
    """
    ds = open_table(table_uri(lake_root, "segments"), storage)
    if ds is None:
        raise FileNotFoundError(f"no segments table under {lake_root}")
    meta = ds.to_table(columns=["segment_id"], filter=filter, limit=limit, with_row_address=True)
    addresses = meta.column("_rowaddr").to_pylist()
    blobs = dict(ds.read_blobs("audio", addresses=addresses, preserve_order=True)) if addresses else {}
    out = []
    for sid, addr in zip(meta.column("segment_id").to_pylist(), addresses):
        samples, rate = sf.read(io.BytesIO(blobs[addr]), dtype="float32")
        out.append((sid, samples, rate))
    return out


def read_test_clips(lake_root: str, count: int, *, min_samples: int = 8000,
                    storage: StorageConfig | None = None) -> list[np.ndarray]:
    """The first ``count`` test-split segments (scan order, held-out corpora excluded) as mono float32, dropping
    those under ``min_samples``: the clips the codec benches score, which codec training never read."""
    from schemas.codec import segments_filter

    rows = read_segment_audio(lake_root, storage or StorageConfig(), filter=segments_filter(split="test"), limit=count)
    return [s.astype(np.float32) for _, s, _ in rows if s.ndim == 1 and s.size >= min_samples]
