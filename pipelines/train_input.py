"""Streaming training input: real ``latents`` + gated ``synthetic`` rows, labels and factor vectors, per epoch.

The pattern of ``pipelines.factorizer_data``, for every later trainer of issue #5:

1. :func:`index_training_rows` (driver, metadata only): pins the versions of
   ``segments``, ``latents``, ``synthetic`` and ``factors``, and keeps per
   usable row its row offset, frame count, split, labels (as class indices)
   and the row offsets of the factor vectors it gets. Codes are never read here.
2. :func:`plan_epoch`: one small table per epoch, deterministic from
   ``(seed, epoch)`` alone: every real row once plus ``round(ratio x n_real)``
   synthetic rows (a fresh draw each epoch), shuffled together, each with its
   crop. Epoch ``e``'s plan does not depend on what ran before, so a run
   resumed at (epoch, position) reads exactly what it would have read.
3. :func:`make_training_dataset`: Ray Data streams the plan through
   :func:`read_training_batch`, which reads a block's codes with one Lance
   ``take`` per source table (and its vectors with one ``take`` on
   ``factors``). Only the blocks in flight are in memory.

The shuffle is a full per-epoch permutation done on the plan (row offsets),
not a shuffle of the data: no ``random_shuffle`` all-to-all, no buffer, and
the order is exactly reproducible (pass :func:`train_data_config` to the
trainer so Ray Data keeps it).

Factor vectors of a synthetic row are the ones *put in*: the ``factors`` rows
of the segment behind each factor in its lineage (``speaker_segment_id``,
...), not a re-encoding of the output (the gates store how close that was).

A Ray Train worker reads it with::

    shard = ray.train.get_dataset_shard("train")
    for batch in shard.iter_torch_batches(batch_size=index.config.batch_size):
        batch["codes"]    # uint16 [n, max_frames, stages], zero past batch["lengths"]
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pipelines.lance_io import open_pinned, open_table, table_uri
from schemas.factorizer import UNKNOWN_LABEL
from schemas.factors import FACTOR_DIMS, VECTOR_COLUMNS
from schemas.storage import StorageConfig, resolve_uri
from schemas.train_input import (FACTOR_ROW_COLUMNS, LABELS, ORIGINS, SPLITS, TRAIN_PLAN_SCHEMA,
                                 TrainInputConfig, TrainInputError)

__all__ = ["TrainIndex", "index_training_rows", "plan_epoch", "read_training_batch", "make_training_dataset",
           "train_data_config", "synthetic_rows_per_epoch"]

_KEEP = "_keep"


@dataclass(frozen=True)
class TrainIndex:
    """The rows an input reads, at pinned versions; ``real`` and ``synthetic`` share one column layout.

    Columns: ``key`` (segment_id / synth_id), ``row_offset``, ``num_frames``, ``split``, one per label
    (class index), one per factor (row offset in ``factors``, -1 without a factorizer). Item ``i`` of a plan is
    ``real`` row ``i`` for ``i < n_real``, else ``synthetic`` row ``i - n_real``.
    """

    config: TrainInputConfig
    codec_id: str
    frame_rate_hz: float
    num_stages: int
    uris: dict[str, str]
    versions: dict[str, int]
    real: pa.Table
    synthetic: pa.Table
    vocab: dict[str, list[str]]
    dropped: dict[str, int] = field(default_factory=dict)

    @property
    def n_real(self) -> int:
        return self.real.num_rows

    @property
    def n_synthetic(self) -> int:
        return self.synthetic.num_rows

    def key(self, item: int) -> tuple[str, str]:
        """(origin, segment_id or synth_id) of plan item ``item``."""
        if item < self.n_real:
            return ORIGINS[0], self.real.column("key")[item].as_py()
        return ORIGINS[1], self.synthetic.column("key")[item - self.n_real].as_py()

    def format(self) -> str:
        """One line: what an epoch holds and at which versions."""
        ratio = self.config.synthetic_per_real
        dropped = ", ".join(f"{k} {v}" for k, v in self.dropped.items() if v)
        return (f"train input: {self.n_real} real rows + {synthetic_rows_per_epoch(self)} synthetic per epoch "
                f"(ratio {ratio:g}, pool {self.n_synthetic}) of codec {self.codec_id}; versions "
                + ", ".join(f"{k} {v}" for k, v in sorted(self.versions.items()))
                + (f"; dropped: {dropped}" if dropped else ""))


def _one_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0].split(", /")[0] if str(exc).strip() else type(exc).__name__


def _scan(ds, columns: list[str], keep: str | None, what: str) -> pa.Table:
    """Metadata columns of every row, numbered by row offset (the public ``take``'s index), filtered by SQL."""
    projection: dict[str, str] = {c: c for c in columns}
    if keep is not None:
        projection[_KEEP] = f"({keep})"
    try:
        table = ds.to_table(columns=projection)
    except Exception as exc:  # lance raises ValueError/OSError with a Rust backtrace: keep the first line
        raise TrainInputError(f"{what} {keep!r} cannot run: {_one_line(exc)}") from None
    table = table.append_column("row_offset", pa.array(np.arange(table.num_rows, dtype=np.int64)))
    if keep is not None:
        table = table.filter(pc.fill_null(table.column(_KEEP), False)).drop_columns([_KEEP])
    return table


def _resolve_codec_id(config: TrainInputConfig) -> str:
    if config.codec_id is not None:
        return config.codec_id
    from models.codec.checkpoint import CheckpointError, load_checkpoint

    try:
        return load_checkpoint(resolve_uri(config.codec_checkpoint))[2].codec_id
    except CheckpointError as exc:
        raise TrainInputError(_one_line(exc)) from None


def _classes(values: list[str | None], vocab: list[str]) -> pa.Array:
    lookup = {v: i for i, v in enumerate(vocab)}
    return pa.array([lookup.get(v, UNKNOWN_LABEL) if v is not None else UNKNOWN_LABEL for v in values],
                    pa.int32())


def _factor_rows(segment_ids: pa.ChunkedArray | pa.Array, factor_offsets: dict[str, int]) -> np.ndarray:
    return np.array([factor_offsets.get(s, -1) for s in segment_ids.to_pylist()], dtype=np.int64)


def index_training_rows(config: TrainInputConfig, *, vocab: dict[str, list[str]] | None = None,
                        versions: dict[str, int] | None = None) -> TrainIndex:
    """Pin the tables and index the rows ``config`` selects (metadata only; no Ray).

    ``vocab`` None builds the label vocabularies from these rows; give a training index's ``vocab`` to index
    valid/test rows with the same class indices. ``versions`` (table -> version, e.g. a resumed run's
    ``TrainIndex.versions``) reads those versions instead of the latest, so a resumed run sees the rows its
    first part saw even if the lake has moved on.

    Raises:
        TrainInputError (one line): a missing table, a filter that does not parse, no latents of the codec, no
            real row matching, no synthetic row passing while the ratio is > 0, a factorizer id not in ``factors``.
    """
    lake, storage = resolve_uri(config.lake_root), config.storage
    codec_id = _resolve_codec_id(config)
    uris = {name: table_uri(lake, name) for name in ("segments", "latents", "synthetic", "factors")}
    pinned = dict(versions or {})

    def open_named(name: str):
        try:
            return open_table(uris[name], storage, version=pinned.get(name))
        except (ValueError, OSError) as exc:  # the version was cleaned up, or never existed
            raise TrainInputError(f"{name} version {pinned.get(name)} cannot be read: {_one_line(exc)}") from None

    tables = {"segments": open_named("segments"), "latents": open_named("latents")}
    for name, job in (("segments", "jobs/curate.py"), ("latents", "jobs/encode.py")):
        if tables[name] is None:
            raise TrainInputError(f"no {name} table at {uris[name]}: run {job} first")
    want_synthetic = config.synthetic_per_real > 0
    if want_synthetic:
        tables["synthetic"] = open_named("synthetic")
        if tables["synthetic"] is None:
            raise TrainInputError(f"synthetic_per_real is {config.synthetic_per_real:g} but there is no synthetic "
                                  f"table at {uris['synthetic']}: run jobs/recombine.py or set it to 0")
    if config.factorizer_id is not None:
        tables["factors"] = open_named("factors")
        if tables["factors"] is None:
            raise TrainInputError(f"factorizer_id is set but there is no factors table at {uris['factors']}: "
                                  "run jobs/encode_factors.py first")
    versions = {name: ds.version for name, ds in tables.items()}
    dropped: dict[str, int] = {}

    # segments: labels of every row (synthetic rows take theirs from their content segment), split filter
    segs = _scan(tables["segments"], ["segment_id", "split", *LABELS], None, "segments").drop_columns(["row_offset"])
    chosen = _scan(tables["segments"], ["segment_id"], config.real_filter, "real_filter").column("segment_id")
    lat = _scan(tables["latents"], ["segment_id", "codec_id", "num_frames", "num_stages", "frame_rate_hz"],
                None, "latents")
    lat = lat.filter(pc.equal(lat.column("codec_id"), codec_id))
    if lat.num_rows == 0:
        codecs = pc.unique(_scan(tables["latents"], ["codec_id"], None, "latents").column("codec_id")).to_pylist()
        raise TrainInputError(f"no latents of codec {codec_id!r} in {uris['latents']} (codecs there: "
                              f"{', '.join(codecs) or 'none'}): encode with that codec first")
    real = lat.filter(pc.is_in(lat.column("segment_id"), value_set=chosen.combine_chunks()))
    real = real.join(segs, keys="segment_id", join_type="inner").sort_by("segment_id")
    if real.num_rows == 0:
        raise TrainInputError(f"no latents of codec {codec_id!r} for segments matching real_filter "
                              f"{config.real_filter!r} ({len(chosen)} segments match)")
    factor_offsets: dict[str, int] = {}
    if config.factorizer_id is not None:
        fac = _scan(tables["factors"], ["segment_id", "factorizer_id"], None, "factors")
        fac = fac.filter(pc.equal(fac.column("factorizer_id"), config.factorizer_id))
        if fac.num_rows == 0:
            ids = pc.unique(_scan(tables["factors"], ["factorizer_id"], None, "factors").column("factorizer_id"))
            raise TrainInputError(f"factorizer {config.factorizer_id!r} has no rows in {uris['factors']} "
                                  f"(factorizers there: {', '.join(ids.to_pylist()) or 'none'})")
        factor_offsets = dict(zip(fac.column("segment_id").to_pylist(), fac.column("row_offset").to_pylist()))
        has = pc.is_in(real.column("segment_id"), value_set=fac.column("segment_id").combine_chunks())
        dropped["real rows without factors"] = real.num_rows - pc.sum(has).as_py()
        real = real.filter(has)
        if real.num_rows == 0:
            raise TrainInputError(f"no real row has factors of {config.factorizer_id!r}: run jobs/encode_factors.py")

    synth = _index_synthetic(tables.get("synthetic"), config, codec_id, segs, factor_offsets, dropped,
                             segs_ds=tables["segments"])
    real_labels = {name: real.column(name).to_pylist() for name in LABELS}
    if vocab is None:
        vocab = {name: sorted({v for v in real_labels[name] + synth["labels"][name] if v is not None})
                 for name in LABELS}
    stages = pc.unique(pa.concat_arrays([real.column("num_stages").combine_chunks().cast(pa.int16()),
                                         pa.array(synth["num_stages"], pa.int16())])).to_pylist()
    rates = pc.unique(real.column("frame_rate_hz")).to_pylist()
    if len(stages) != 1 or len(rates) != 1:
        raise TrainInputError(f"rows of codec {codec_id!r} disagree on stages {stages} or frame rate {rates}")

    def layout(key, offsets, frames, splits, labels, factor_rows) -> pa.Table:
        split_of = {s: i for i, s in enumerate(SPLITS)}
        columns = {"key": pa.array(key, pa.string()), "row_offset": pa.array(offsets, pa.int64()),
                   "num_frames": pa.array(frames, pa.int32()),
                   "split": pa.array([split_of.get(s, -1) for s in splits], pa.int8())}
        columns.update({name: _classes(labels[name], vocab[name]) for name in LABELS})
        columns.update({FACTOR_ROW_COLUMNS[f]: pa.array(factor_rows[f], pa.int64()) for f in FACTOR_DIMS})
        return pa.table(columns)

    own = _factor_rows(real.column("segment_id"), factor_offsets) if factor_offsets else \
        np.full(real.num_rows, -1, dtype=np.int64)
    real_table = layout(real.column("segment_id").to_pylist(), real.column("row_offset").to_pylist(),
                        real.column("num_frames").to_pylist(), real.column("split").to_pylist(), real_labels,
                        {f: own for f in FACTOR_DIMS})
    synth_table = layout(synth["key"], synth["row_offset"], synth["num_frames"], synth["split"], synth["labels"],
                         synth["factor_rows"])
    index = TrainIndex(config=config, codec_id=codec_id, frame_rate_hz=float(rates[0]), num_stages=int(stages[0]),
                       uris={k: uris[k] for k in versions}, versions=versions, real=real_table,
                       synthetic=synth_table, vocab=vocab, dropped=dropped)
    if want_synthetic and index.n_synthetic == 0:
        raise TrainInputError(f"synthetic_per_real is {config.synthetic_per_real:g} but no synthetic row of codec "
                              f"{codec_id!r} matches synthetic_filter {config.synthetic_filter!r}"
                              + (f" with lineage in splits {config.lineage_splits}" if config.lineage_splits else "")
                              + (f" and in lineage_filter {config.lineage_filter!r}" if config.lineage_filter else "")
                              + (f" and factors of {config.factorizer_id!r}" if config.factorizer_id else ""))
    return index


def _index_synthetic(ds, config: TrainInputConfig, codec_id: str, segs: pa.Table, factor_offsets: dict[str, int],
                     dropped: dict[str, int], segs_ds=None) -> dict[str, Any]:
    """Synthetic rows passing the filter, of this codec, with an allowed lineage (and factors): plain lists."""
    empty = {"key": [], "row_offset": [], "num_frames": [], "num_stages": [], "split": [],
             "labels": {name: [] for name in LABELS}, "factor_rows": {f: [] for f in FACTOR_DIMS}}
    if ds is None:
        return empty
    lineage = ["content_segment_id", *(f"{f}_segment_id" for f in FACTOR_DIMS)]
    targets = [f"target_{f}" for f in FACTOR_DIMS]
    rows = _scan(ds, ["synth_id", "codec_id", "num_frames", "num_stages", *lineage, *targets, "language"],
                 config.synthetic_filter, "synthetic_filter")
    rows = rows.filter(pc.equal(rows.column("codec_id"), codec_id))
    seg = {sid: i for i, sid in enumerate(segs.column("segment_id").to_pylist())}
    seg_split = segs.column("split").to_pylist()
    allowed = set(config.lineage_splits) if config.lineage_splits is not None else None
    in_filter = None
    if config.lineage_filter is not None:
        in_filter = set(_scan(segs_ds, ["segment_id"], config.lineage_filter, "lineage_filter")
                        .column("segment_id").to_pylist())
    content_idx, keep = [], []
    for r, ids in enumerate(zip(*(rows.column(c).to_pylist() for c in lineage))):
        where = [seg.get(s) for s in ids]
        ok = all(w is not None for w in where)  # a lineage segment gone from segments: cannot label it
        if ok and allowed is not None:
            ok = all(seg_split[w] in allowed for w in where)
        if ok and in_filter is not None:
            ok = all(s in in_filter for s in ids)
        if ok and factor_offsets:
            ok = all(ids[1 + k] in factor_offsets for k in range(len(FACTOR_DIMS)))
        if ok:
            keep.append(r)
            content_idx.append(where[0])
    dropped["synthetic rows outside lineage_splits or lineage_filter, or without factors"] = rows.num_rows - len(keep)
    rows = rows.take(pa.array(keep, pa.int64()))
    content = segs.take(pa.array(content_idx, pa.int64()))
    labels = {f: rows.column(f"target_{f}").to_pylist() for f in FACTOR_DIMS}
    labels.update({"language": rows.column("language").to_pylist(),
                   "text_id": content.column("text_id").to_pylist(),
                   "transcript": content.column("transcript").to_pylist()})
    factor_rows = {f: (_factor_rows(rows.column(f"{f}_segment_id"), factor_offsets) if factor_offsets
                       else np.full(rows.num_rows, -1, dtype=np.int64)) for f in FACTOR_DIMS}
    return {"key": rows.column("synth_id").to_pylist(), "row_offset": rows.column("row_offset").to_pylist(),
            "num_frames": rows.column("num_frames").to_pylist(), "num_stages": rows.column("num_stages").to_pylist(),
            "split": content.column("split").to_pylist(), "labels": {n: labels[n] for n in LABELS},
            "factor_rows": factor_rows}


def synthetic_rows_per_epoch(index: TrainIndex) -> int:
    """``round(ratio x n_real)``, halves rounded up."""
    return int(math.floor(index.config.synthetic_per_real * index.n_real + 0.5))


def plan_epoch(index: TrainIndex, epoch: int) -> pa.Table:
    """Epoch ``epoch``'s items in order (:data:`schemas.train_input.TRAIN_PLAN_SCHEMA`), from ``(seed, epoch)`` only.

    Synthetic rows are drawn without replacement when the pool has enough; a smaller pool gives every row
    ``k`` or ``k + 1`` times (the fewest repeats that fill the quota).

    Example::

        index = index_training_rows(parse_train_input_config({"codec_id": "...", "synthetic_per_real": 4}))
        plan = plan_epoch(index, 3)   # index.n_real + synthetic_rows_per_epoch(index) rows, same on every call
    """
    rng = np.random.default_rng([index.config.seed, epoch])
    n_real, pool, n_syn = index.n_real, index.n_synthetic, synthetic_rows_per_epoch(index)
    if n_syn and n_syn <= pool:
        syn = rng.choice(pool, size=n_syn, replace=False)
    elif n_syn:
        syn = np.concatenate([np.tile(np.arange(pool), n_syn // pool), rng.choice(pool, n_syn % pool, replace=False)])
    else:
        syn = np.zeros(0, dtype=np.int64)
    order = rng.permutation(n_real + n_syn)
    items = np.concatenate([np.arange(n_real), n_real + syn.astype(np.int64)])[order]
    both = pa.concat_tables([index.real, index.synthetic]).take(pa.array(items, pa.int64()))
    frames = np.asarray(both.column("num_frames"), dtype=np.int64)
    room = np.maximum(frames - index.config.max_frames, 0)
    draw = rng.random(len(items))  # drawn even for crop="start": the rest of the plan never depends on the crop
    offset = (draw * (room + 1)).astype(np.int64) if index.config.crop == "random" else np.zeros_like(room)
    columns = {
        "epoch": pa.array(np.full(len(items), epoch), pa.int32()),
        "position": pa.array(np.arange(len(items)), pa.int64()),
        "item": pa.array(items, pa.int64()),
        "origin": pa.array((items >= n_real).astype(np.int8), pa.int8()),
        "row_offset": both.column("row_offset"),
        "offset": pa.array(offset, pa.int32()),
        "length": pa.array(np.minimum(frames, index.config.max_frames), pa.int32()),
        "num_frames": pa.array(frames, pa.int32()),
        "split": both.column("split"),
    }
    columns.update({name: both.column(name) for name in LABELS})
    columns.update({col: both.column(col) for col in FACTOR_ROW_COLUMNS.values()})
    return pa.table(columns, schema=TRAIN_PLAN_SCHEMA)


def _take_codes(uri: str, version: int, offsets: np.ndarray, storage: StorageConfig) -> tuple[dict[int, int], Any]:
    unique = np.unique(offsets)
    table = open_pinned(uri, version, storage).take(unique.tolist(), columns=["codes"])
    return {int(o): i for i, o in enumerate(unique)}, table.column("codes").combine_chunks()


def read_training_batch(batch: dict[str, np.ndarray], *, sources: dict[str, tuple[str, int]], max_frames: int,
                        num_stages: int, storage: StorageConfig | None = None) -> dict[str, np.ndarray]:
    """Ray Data ``map_batches`` function: plan rows -> items (one ``take`` per source table in the block).

    Args:
        sources: table name -> (uri, pinned version) for ``latents``, and ``synthetic`` / ``factors`` if used.

    Returns ``codes`` uint16 ``[n, max_frames, stages]`` (zero past ``lengths``), ``lengths``, ``num_frames``
    (the whole row's; more than ``lengths`` where the window is cropped), ``origin``,
    ``split``, ``epoch``, ``position``, ``item``, the labels (int64 class indices) and, with factors,
    ``<factor>_vector`` float32 ``[n, dim]``.
    """
    storage = storage or StorageConfig()
    n = len(batch["row_offset"])
    origin, row_offset = batch["origin"].astype(np.int64), batch["row_offset"].astype(np.int64)
    codes = np.zeros((n, max_frames, num_stages), dtype=np.uint16)
    for code, name in enumerate(("latents", "synthetic")):
        rows = np.flatnonzero(origin == code)
        if not len(rows):
            continue
        position, flat = _take_codes(*sources[name], row_offset[rows], storage)
        for i in rows:
            start, length = int(batch["offset"][i]), int(batch["length"][i])
            values = flat[position[int(row_offset[i])]].values.to_numpy(zero_copy_only=False)
            codes[i, :length] = values.reshape(-1, num_stages)[start:start + length]
    # num_frames > lengths marks a cropped window: its transcript covers more than the window (CTC must skip it)
    out = {"codes": codes, "lengths": batch["length"].astype(np.int64),
           "num_frames": batch["num_frames"].astype(np.int64), "origin": origin}
    out.update({name: batch[name].astype(np.int64) for name in ("split", "epoch", "position", "item", *LABELS)})
    if "factors" in sources:
        wanted = np.stack([batch[FACTOR_ROW_COLUMNS[f]].astype(np.int64) for f in FACTOR_DIMS])
        unique = np.unique(wanted)
        table = open_pinned(*sources["factors"], storage).take(unique.tolist(),
                                                               columns=list(VECTOR_COLUMNS.values()))
        where = np.searchsorted(unique, wanted)
        for k, (name, dim) in enumerate(FACTOR_DIMS.items()):
            vectors = table.column(VECTOR_COLUMNS[name]).combine_chunks().values.to_numpy().reshape(-1, dim)
            out[VECTOR_COLUMNS[name]] = vectors[where[k]].astype(np.float32)
    return out


def make_training_dataset(index: TrainIndex, epoch: int | Sequence[int], *, start_position: int = 0):
    """A Ray Dataset streaming the plan of ``epoch`` (or of several epochs, in the order given) as items.

    ``start_position`` skips the first items of the first epoch (resume mid-epoch). Ray must be initialized
    (``pipelines.ray_env.init_ray``; a no-op when it is). Give the trainer :func:`train_data_config` to keep
    the plan's order.
    """
    from pipelines.ray_env import init_ray

    init_ray()
    import ray.data

    epochs = [epoch] if isinstance(epoch, int) else list(epoch)
    plans = [plan_epoch(index, e) for e in epochs]
    if plans:
        plans[0] = plans[0].slice(start_position)
    plan = pa.concat_tables(plans) if plans else TRAIN_PLAN_SCHEMA.empty_table()
    step = index.config.rows_per_block
    blocks = [plan.slice(i, step) for i in range(0, plan.num_rows, step)] or [plan]
    sources = {name: (index.uris[name], index.versions[name]) for name in ("latents", "synthetic", "factors")
               if name in index.versions and (name != "factors" or index.config.factorizer_id)}
    return ray.data.from_arrow(blocks).map_batches(
        read_training_batch, batch_format="numpy", batch_size=None, num_cpus=index.config.read_cpus,
        fn_kwargs={"sources": sources, "max_frames": index.config.max_frames, "num_stages": index.num_stages,
                   "storage": index.config.storage})


def train_data_config():
    """``ray.train.DataConfig`` that keeps the plan's order (the per-epoch shuffle is already in it)."""
    import ray.train
    from ray.data import ExecutionOptions

    return ray.train.DataConfig(execution_options=ExecutionOptions(preserve_order=True))
