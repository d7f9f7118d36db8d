"""Training data for the factorizer: codec latents joined with the labels the seed corpus carries.

The factorizer learns from one codec's ``latents`` rows and the labels of
their ``segments`` rows: speaker, style, environment and channel, each turned
into a class index by a vocabulary built on the training split (a label seen
fewer than ``min_count`` times, or missing, is ``-100``: "unknown", ignored
by the loss). The same vocabulary, stored in the factorizer checkpoint, maps
the valid and test splits, so class ``i`` means the same everywhere.

As for the codec (``pipelines.codec_data``), the driver reads only metadata
(row offset, frame count, labels) at pinned table versions and draws the
whole run's window plan from the seed, in 1000-step chunks, so a resumed or
extended run sees exactly the windows it would have seen. Ray Data streams
the plan through :func:`read_windows`, which takes the codes of a block's
rows in one Lance ``take`` and cuts each window; nothing is materialized
beyond the blocks in flight.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pipelines.lance_io import open_pinned, open_table, table_uri
from schemas.factorizer import FACTOR_NAMES as HEADS
from schemas.factorizer import UNKNOWN_LABEL as UNKNOWN
from schemas.storage import StorageConfig

if TYPE_CHECKING:
    from pipelines.factorizer_pairs import ParallelPairs

__all__ = ["HEADS", "UNKNOWN", "LatentIndex", "WindowPlan", "channel_class", "build_vocab", "index_latents",
           "make_window_plan", "read_windows", "read_index_rows", "read_pair_rows"]

_STEPS_PER_DRAW = 1000
_NO_FRAMES = np.zeros(0, dtype=np.int32)


def channel_class(label: str | None) -> str | None:
    """Channel family of a seed label: the codec mode's bit rate is dropped, the effect chain kept.

    Why: the seed has a dozen rare channel labels (``codec2_700c``,
    ``telephone+codec2_1600``, ``opus_12k``, ...) with tens of rows each; the
    families (``codec2``, ``telephone+codec2``, ``opus``, ``eq``, ...) are
    learnable classes and still say what the channel did.

    Example:
        >>> [channel_class(x) for x in ("telephone+codec2_700c", "opus_6k", "clean", None)]
        ['telephone+codec2', 'opus', 'clean', None]
    """
    if label is None:
        return None
    return "+".join(re.sub(r"_[0-9]+[a-z]*$", "", part) for part in label.split("+"))


def _head_labels(meta: pa.Table, head: str) -> list[str | None]:
    values = meta.column(head).to_pylist()
    return [channel_class(v) for v in values] if head == "channel" else values


def build_vocab(meta: pa.Table, *, min_count: int) -> dict[str, list[str]]:
    """Per head, the labels seen at least ``min_count`` times, sorted (class index = position)."""
    vocab = {}
    for head in HEADS:
        counts = Counter(v for v in _head_labels(meta, head) if v is not None)
        vocab[head] = sorted(v for v, n in counts.items() if n >= min_count)
    return vocab


@dataclass(frozen=True)
class LatentIndex:
    """The latents rows a run reads, at one table version, with their labels as class indices."""

    uri: str
    version: int
    codec_id: str
    segment_ids: list[str]
    row_offsets: np.ndarray          # int64, positions in the latents table at ``version``
    num_frames: np.ndarray           # int64
    labels: dict[str, np.ndarray]    # head -> int64 class index, UNKNOWN where unlabelled
    vocab: dict[str, list[str]]
    frame_rate_hz: float

    @property
    def hours(self) -> float:
        return float(self.num_frames.sum()) / self.frame_rate_hz / 3600

    def __len__(self) -> int:
        return len(self.segment_ids)


def index_latents(lake_root: str, storage: StorageConfig, *, codec_id: str, segments_filter: str,
                  vocab: dict[str, list[str]] | None = None, min_count: int = 5,
                  latents_version: int | None = None) -> LatentIndex:
    """Metadata and labels of ``codec_id``'s latents rows whose segments match ``segments_filter``.

    ``vocab`` None builds it from these rows (the training split); give the
    training vocabulary to index valid/test rows.

    Raises:
        FileNotFoundError: no ``segments`` or ``latents`` table.
        ValueError: no latents of ``codec_id`` for the filtered segments (the message says how to make them).
    """
    seg_uri, lat_uri = table_uri(lake_root, "segments"), table_uri(lake_root, "latents")
    seg = open_table(seg_uri, storage)
    if seg is None:
        raise FileNotFoundError(f"no segments table at {seg_uri}: run jobs/curate.py first")
    lat = open_table(lat_uri, storage, version=latents_version)
    if lat is None:
        raise FileNotFoundError(f"no latents table at {lat_uri}: run jobs/encode.py first")
    labels = seg.to_table(columns=["segment_id", *HEADS], filter=segments_filter)
    # Row offsets (positions in the pinned version) for the public ``take``: scan the small metadata columns
    # unfiltered, number the rows, then filter here.
    rows = lat.to_table(columns=["segment_id", "codec_id", "num_frames", "frame_rate_hz"])
    rows = rows.append_column("_offset", pa.array(np.arange(rows.num_rows, dtype=np.int64)))
    rows = rows.filter(pc.equal(rows.column("codec_id"), codec_id)).drop_columns(["codec_id"])
    joined = rows.join(labels, keys="segment_id", join_type="inner").sort_by("segment_id")
    if joined.num_rows == 0:
        raise ValueError(f"no latents of codec {codec_id!r} in {lat_uri} for segments matching "
                         f"{segments_filter!r}: encode them first (jobs/encode.py with that codec's checkpoint)")
    vocab = vocab if vocab is not None else build_vocab(joined, min_count=min_count)
    classes = {}
    for head in HEADS:
        lookup = {label: i for i, label in enumerate(vocab.get(head, []))}
        classes[head] = np.array([lookup.get(v, UNKNOWN) if v is not None else UNKNOWN
                                  for v in _head_labels(joined, head)], dtype=np.int64)
    rates = pc.unique(joined.column("frame_rate_hz")).to_pylist()
    if len(rates) != 1:
        raise ValueError(f"latents of {codec_id!r} have several frame rates {rates}: the table is inconsistent")
    return LatentIndex(uri=lat_uri, version=lat.version, codec_id=codec_id,
                       segment_ids=joined.column("segment_id").to_pylist(),
                       row_offsets=np.asarray(joined.column("_offset"), dtype=np.int64),
                       num_frames=np.asarray(joined.column("num_frames"), dtype=np.int64),
                       labels=classes, vocab=vocab, frame_rate_hz=float(rates[0]))


@dataclass(frozen=True)
class WindowPlan:
    """Every window of a run in step order: columns step, row_offset, offset, length and one per head."""

    table: pa.Table
    max_frames: int
    batch_size: int

    def from_step(self, step: int) -> pa.Table:
        """The windows of steps ``step, step+1, ...`` (what a run resumed at ``step`` still has to read)."""
        return self.table.slice(step * self.batch_size)


def make_window_plan(index: LatentIndex, *, steps: int, batch_size: int, max_frames: int, seed: int,
                     pairs: "ParallelPairs | None" = None, pairs_per_batch: int = 0) -> WindowPlan:
    """Draw ``steps x batch_size`` windows (rows uniformly, a random start in rows longer than ``max_frames``).

    Rows are drawn uniformly rather than by duration: the labels are per
    utterance, and short utterances carry as much speaker information per
    row as long ones.

    With ``pairs`` (``pipelines.factorizer_pairs``) and ``pairs_per_batch`` > 0, the last ``pairs_per_batch``
    windows of every step are the A side of a uniformly drawn pair, and the plan gains ``tgt_row_offset``
    (B's row, -1 elsewhere) and ``tgt_frames`` (B's frame aligned to each frame of the window, empty
    elsewhere). The other windows are exactly those of a plan without pairs.
    """
    use_pairs = pairs is not None and len(pairs) > 0 and pairs_per_batch > 0
    if use_pairs and pairs_per_batch > batch_size:
        raise ValueError(f"pairs_per_batch {pairs_per_batch} exceeds batch_size {batch_size}")
    picks, offsets, pair_picks = [], [], []
    for chunk_start in range(0, steps, _STEPS_PER_DRAW):
        # one generator per chunk: a longer run's plan starts with a shorter run's plan (see pipelines.codec_data)
        rng = np.random.default_rng([seed, chunk_start // _STEPS_PER_DRAW])
        n = (min(chunk_start + _STEPS_PER_DRAW, steps) - chunk_start) * batch_size
        full = _STEPS_PER_DRAW * batch_size
        chunk = rng.integers(0, len(index), size=full)
        room = np.maximum(index.num_frames[chunk] - max_frames, 0)
        start = (rng.random(full) * (room + 1)).astype(np.int64)
        pair = np.full(full, -1, dtype=np.int64)
        if use_pairs:  # drawn after the plain windows, so those stay as they were
            slots = (np.arange(full) % batch_size) >= batch_size - pairs_per_batch
            pair[slots] = rng.integers(0, len(pairs), size=int(slots.sum()))
            chunk[slots] = pairs.src[pair[slots]]
            room = np.maximum(index.num_frames[chunk[slots]] - max_frames, 0)
            start[slots] = (rng.random(int(slots.sum())) * (room + 1)).astype(np.int64)
        picks.append(chunk[:n])
        offsets.append(start[:n])
        pair_picks.append(pair[:n])
    pick = np.concatenate(picks) if picks else np.zeros(0, dtype=np.int64)
    offset = np.concatenate(offsets) if offsets else np.zeros(0, dtype=np.int64)
    length = np.minimum(index.num_frames[pick], max_frames)
    columns = {
        "step": pa.array(np.repeat(np.arange(steps, dtype=np.int64), batch_size)),
        "row_offset": pa.array(index.row_offsets[pick]),
        "offset": pa.array(offset),
        "length": pa.array(length),
    }
    columns.update({head: pa.array(index.labels[head][pick]) for head in HEADS})
    if use_pairs:
        pair = np.concatenate(pair_picks)
        columns["tgt_row_offset"] = pa.array(np.where(pair >= 0, index.row_offsets[pairs.tgt[np.maximum(pair, 0)]], -1))
        frames = [pairs.path_of(k)[o:o + n] if k >= 0 else _NO_FRAMES for k, o, n in zip(pair, offset, length)]
        columns["tgt_frames"] = pa.array(frames, type=pa.list_(pa.int32()))
    return WindowPlan(table=pa.table(columns), max_frames=max_frames, batch_size=batch_size)


def read_windows(batch: dict[str, np.ndarray], *, uri: str, version: int, max_frames: int,
                 storage: StorageConfig | None = None) -> dict[str, np.ndarray]:
    """Ray Data map_batches function: plan rows -> windows of codes.

    Returns ``codes`` uint16 ``[n, max_frames, stages]`` (zero-padded past
    ``lengths``), ``lengths`` int64 ``[n]``, ``step`` and the head labels. A plan with pairs (see
    :func:`make_window_plan`) adds ``target_codes`` (B's codes at the frames aligned to each window frame,
    zero where a window has no pair) and ``has_target`` (bool ``[n]``).
    """
    ds = open_pinned(uri, version, storage or StorageConfig())
    offsets = batch["row_offset"].astype(np.int64)
    targets = batch["tgt_row_offset"].astype(np.int64) if "tgt_row_offset" in batch else None
    wanted = set(offsets.tolist()) | (set(targets[targets >= 0].tolist()) if targets is not None else set())
    unique = sorted(wanted)
    table = ds.take(unique, columns=["codes", "num_frames", "num_stages"])
    position = dict(zip(unique, range(len(unique))))
    stages = int(table.column("num_stages")[0].as_py()) if table.num_rows else 1
    flat = table.column("codes").combine_chunks()

    def row_codes(row: int) -> np.ndarray:
        return flat[position[row]].values.to_numpy().reshape(-1, stages)

    out = np.zeros((len(offsets), max_frames, stages), dtype=np.uint16)
    for i, (row, offset, length) in enumerate(zip(offsets, batch["offset"], batch["length"])):
        out[i, :length] = row_codes(int(row))[int(offset):int(offset) + int(length)]
    result = {"step": batch["step"].astype(np.int64), "codes": out, "lengths": batch["length"].astype(np.int64)}
    result.update({head: batch[head].astype(np.int64) for head in HEADS})
    if targets is not None:
        target = np.zeros_like(out)
        for i, (row, frames) in enumerate(zip(targets, batch["tgt_frames"])):
            if row >= 0:
                frames = np.asarray(frames, dtype=np.int64)
                target[i, :len(frames)] = row_codes(int(row))[frames]
        result["target_codes"], result["has_target"] = target, targets >= 0
    return result


def read_index_rows(index: LatentIndex, storage: StorageConfig, *, rows: int, max_frames: int) -> dict[str, np.ndarray]:
    """The first ``rows`` rows of ``index`` (sorted by segment id), each from its start: a fixed validation set."""
    positions = np.arange(min(rows, len(index)))
    return read_windows(_from_start(index, positions, max_frames), uri=index.uri, version=index.version,
                        max_frames=max_frames, storage=storage)


def _from_start(index: LatentIndex, positions: np.ndarray, max_frames: int) -> dict:
    """A plan of one window per row at ``positions`` of ``index``, each from the row's start, with its labels."""
    n = len(positions)
    plan = {"step": np.zeros(n, dtype=np.int64), "row_offset": index.row_offsets[positions],
            "offset": np.zeros(n, dtype=np.int64), "length": np.minimum(index.num_frames[positions], max_frames)}
    plan.update({head: index.labels[head][positions] for head in HEADS})
    return plan


def read_pair_rows(index: LatentIndex, pairs: "ParallelPairs", storage: StorageConfig, *,
                   max_frames: int) -> dict[str, np.ndarray]:
    """Every pair of ``pairs`` (positions in ``index``) as a window from A's start with B's aligned codes:
    a fixed validation set for the parallel swap target."""
    plan = _from_start(index, pairs.src, max_frames)
    plan["tgt_row_offset"] = index.row_offsets[pairs.tgt]
    plan["tgt_frames"] = [pairs.path_of(k)[:n] for k, n in enumerate(plan["length"])]
    return read_windows(plan, uri=index.uri, version=index.version, max_frames=max_frames, storage=storage)
