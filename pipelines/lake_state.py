"""What the lake already holds, read once per run: which inputs are unchanged, which PCM is already stored.

Both reads are column projections (no audio), so they stay cheap as the
tables grow; at ~10M segments the dedup map is a few hundred MB of driver
memory, which is the point to move it into a Lance scalar-index lookup.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pipelines.lance_io import read_column_values, table_uri
from pipelines.sources import SourceUnit
from schemas.storage import StorageConfig

__all__ = ["IncrementalState", "DedupState", "load_incremental_state", "load_dedup_state"]


@dataclass
class IncrementalState:
    """Change keys of everything ingested before: a unit with the same key is skipped unread."""

    files: dict[str, set[tuple]] = field(default_factory=dict)  # source_uri -> {(size, mtime_ns|etag)}
    shards: dict[str, set] = field(default_factory=dict)  # container_uri -> {mtime_ns|etag}

    def is_unchanged(self, unit: SourceUnit) -> bool:
        # a missing file recorded as missing before has the same (None, None) key: not re-reported every run
        if unit.kind == "tar":
            return (unit.etag or unit.mtime_ns) in self.shards.get(unit.uri, set())
        return unit.change_key() in self.files.get(unit.uri, set())


@dataclass
class DedupState:
    """PCM hashes and row keys already in ``segments``; updated as chunks commit."""

    by_hash: dict[str, str] = field(default_factory=dict)  # pcm_hash -> segment_id kept
    rows: set[tuple[str, str]] = field(default_factory=set)  # (segment_id, source_uri)

    def add(self, segment_id: str, pcm: str, source_uri: str) -> None:
        self.by_hash.setdefault(pcm, segment_id)
        self.rows.add((segment_id, source_uri))


def load_incremental_state(lake_root: str, storage: StorageConfig) -> IncrementalState:
    t = read_column_values(table_uri(lake_root, "sources"),
                           ["source_uri", "container_uri", "size_bytes", "mtime_ns", "etag"], storage)
    state = IncrementalState()
    if t.num_rows == 0:
        return state
    for uri, container, size, mtime, etag in zip(*(t.column(c).to_pylist() for c in t.column_names)):
        if container:
            state.shards.setdefault(container, set()).add(etag or mtime)
        else:
            state.files.setdefault(uri, set()).add((size, etag) if etag else (size, mtime))
    return state


def load_dedup_state(lake_root: str, storage: StorageConfig) -> DedupState:
    t = read_column_values(table_uri(lake_root, "segments"), ["segment_id", "pcm_hash", "source_uri"], storage)
    state = DedupState()
    if t.num_rows:
        for sid, pcm, uri in zip(*(t.column(c).to_pylist() for c in ("segment_id", "pcm_hash", "source_uri"))):
            state.add(sid, pcm, uri)
    return state
