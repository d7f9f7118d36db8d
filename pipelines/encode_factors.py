"""The factors run: checkpoints -> plan (latents of the codec minus factors already there) -> per chunk (Ray
stage, one commit) -> the vector index.

The sibling of ``pipelines.encode``, one table further down the flow:
``latents`` rows of the factorizer's codec, labelled from ``segments``, become
``factors`` rows keyed ``(segment_id, factorizer_id)``.

Everything that can be wrong with the inputs is found on the driver before any
write or any Ray work: both checkpoints load, the factorizer reads the codec
given (its ``codec_id``) and makes vectors of the table's sizes
(``schemas.factors.FACTOR_DIMS``), the ``segments`` filter runs and the lake
holds latents of that codec. The plan is the latents rows of the codec (at a
pinned ``latents`` version) joined with the filtered segments' labels, minus
the rows this factorizer has already written, so a re-run writes nothing and
never starts Ray, a run after an encode run factorizes only the new latents,
and a second factorizer adds its own rows beside the first's. Chunks of
``commit_every_segments`` are the unit of commit (workers write fragments,
the driver commits once per chunk): a run killed mid-way leaves ``factors``
at its last chunk and the re-run does the rest without duplicates.

After the commits the vector index is created or brought up to date
(``pipelines.factor_search.update_factor_index``), also on a run that wrote
nothing, so a run that died after its last commit leaves no row unindexed
once re-run.

The ``runs`` row reuses the curation columns: ``inputs_seen`` = latents rows
selected (codec + filter), ``inputs_skipped_unchanged`` = already factorized
by this factorizer, ``inputs_processed`` = ``inputs_accepted`` =
``segments_written`` = factors rows written, ``segments_deduped`` = repeated
segment ids factorized once; ``config_json`` holds the absolute checkpoint
paths and the factorizer id.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Callable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pipelines.factor_search import IndexUpdate, update_factor_index
from pipelines.factors_stage import INPUT_COLUMNS, LABEL_COLUMNS, FactorizeLatents
from pipelines.lance_io import open_table, read_column_values, table_uri, table_versions, upsert_rows, write_ray_dataset
from pipelines.ray_env import init_ray
from schemas.encode_factors import EncodeFactorsConfig
from schemas.factors import FACTOR_DIMS, FACTORS_SCHEMA
from schemas.runs import RUNS_SCHEMA
from schemas.sql import sql_quote
from schemas.storage import StorageConfig, resolve_uri

__all__ = ["run_encode_factors", "plan_encode_factors", "EncodeFactorsPlan", "EncodeFactorsSummary",
           "FactorsInputError", "FactorsAccountingError"]

_TABLES = ("segments", "latents", "factors", "runs")


class FactorsInputError(ValueError):
    """The lake, the filter or the factorizer cannot be used (no latents of its codec, bad SQL, vector sizes the
    table does not hold); nothing was written."""


class FactorsAccountingError(RuntimeError):
    """``factors`` does not hold the rows the run factorized; the run is marked failed."""


@dataclass
class EncodeFactorsPlan:
    """What a run will factorize: rows of ``latents`` at ``latents_version`` (offsets, frames, labels)."""

    factorizer_id: str
    codec_id: str
    latents_version: int
    todo: pa.Table  # INPUT_COLUMNS, longest first
    selected: int  # latents rows of the codec whose segments the filter selected
    already_encoded: int
    repeated_ids: int  # rows sharing a segment id with another (factorized once)
    without_latents: int  # selected segments with no latents row of the codec (encode them first)

    @property
    def todo_audio_s(self) -> float:
        return float(pc.sum(self.todo.column("duration_s")).as_py() or 0.0)


@dataclass
class EncodeFactorsSummary:
    """Counts of one run (also its ``runs`` row), its throughput and what it did to the index."""

    run_id: str
    lake_root: str
    factorizer_id: str
    codec_id: str
    factorizer_checkpoint: str
    latents_version: int = 0
    rows_selected: int = 0
    rows_already_encoded: int = 0
    rows_repeated_ids: int = 0
    segments_without_latents: int = 0
    rows_to_encode: int = 0
    rows_written: int = 0
    audio_s_in: float = 0.0
    audio_s_written: float = 0.0
    wall_s: float = 0.0
    encode_s: float = 0.0  # the chunks' wall time, Ray start-up excluded
    index: list[IndexUpdate] = field(default_factory=list)
    table_versions: dict[str, int] = field(default_factory=dict)

    def format(self) -> str:
        """Human summary, a few lines."""
        speed = (f", factorizing {self.encode_s:.1f} s = {self.audio_s_written / self.encode_s:.0f}x real time"
                 if self.rows_written and self.encode_s else "")
        lines = [
            f"run {self.run_id} -> {self.lake_root}",
            f"  factorizer {self.factorizer_id} ({self.factorizer_checkpoint}) on codec {self.codec_id}; "
            f"latents version {self.latents_version}",
            f"  latents rows: {self.rows_selected} selected, {self.rows_already_encoded} already factorized, "
            f"{self.rows_to_encode} to factorize -> {self.rows_written} factors rows written",
            f"  audio: {self.audio_s_written / 3600:.3f} h factorized; wall {self.wall_s:.1f} s{speed}",
        ]
        if self.segments_without_latents:
            lines.append(f"  {self.segments_without_latents} selected segments have no latents of codec "
                         f"{self.codec_id} yet (run jobs/encode.py with it first)")
        lines += [f"  index {u.format()}" for u in self.index]
        return "\n".join(lines)


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _first_line(exc: Exception) -> str:
    return str(exc).splitlines()[0].split(", /")[0]


def plan_encode_factors(lake_root: str, factorizer_id: str, codec_id: str, storage: StorageConfig, *,
                        segments_filter: str | None = None) -> EncodeFactorsPlan:
    """The ``latents`` rows of ``codec_id`` (filtered by their segments) with no ``factors`` row of
    ``factorizer_id`` yet, with their segments' labels.

    Raises:
        FactorsInputError: no ``segments`` or ``latents`` table, a filter Lance cannot run, or no latents
            rows of ``codec_id`` at all.
    """
    seg = open_table(table_uri(lake_root, "segments"), storage)
    if seg is None:
        raise FactorsInputError(f"no segments table under {lake_root} (run jobs/curate.py first)")
    try:
        labels = seg.to_table(columns=["segment_id", *LABEL_COLUMNS], filter=segments_filter)
    except ValueError as exc:
        raise FactorsInputError(f"segments_filter {segments_filter!r} cannot run: {_first_line(exc)}") from None
    lat = open_table(table_uri(lake_root, "latents"), storage)
    if lat is None:
        raise FactorsInputError(f"no latents table under {lake_root} (run jobs/encode.py first)")
    # Row offsets (positions in this version) for the public ``take``: number the small columns of an
    # unfiltered scan, then select the codec here (as pipelines.factorizer_data does).
    rows = lat.to_table(columns=["segment_id", "codec_id", "num_frames", "duration_s"])
    rows = rows.append_column("_offset", pa.array(np.arange(rows.num_rows, dtype=np.int64)))
    mine = rows.filter(pc.equal(rows.column("codec_id"), codec_id)).drop_columns(["codec_id"])
    if mine.num_rows == 0:
        have = ", ".join(sorted(pc.unique(rows.column("codec_id")).to_pylist())) or "none"
        raise FactorsInputError(f"latents under {lake_root} has no rows of codec {codec_id!r} (it has: {have}); "
                                "run jobs/encode.py with that codec's checkpoint first")
    _, first = np.unique(labels.column("segment_id").to_numpy(zero_copy_only=False), return_index=True)
    labels = labels.take(pa.array(np.sort(first)))
    listed = mine.join(labels, "segment_id", join_type="inner")
    _, first = np.unique(listed.column("segment_id").to_numpy(zero_copy_only=False), return_index=True)
    repeated = listed.num_rows - len(first)
    if repeated:
        listed = listed.take(pa.array(np.sort(first)))
    done = read_column_values(table_uri(lake_root, "factors"), ["segment_id"], storage,
                              f"factorizer_id = {sql_quote(factorizer_id)}")
    todo = listed
    if done.num_rows:
        todo = todo.join(done, "segment_id", join_type="left anti")
    todo = todo.sort_by([("num_frames", "descending"), ("segment_id", "ascending")]).select(list(INPUT_COLUMNS))
    return EncodeFactorsPlan(factorizer_id=factorizer_id, codec_id=codec_id, latents_version=lat.version, todo=todo,
                             selected=listed.num_rows, already_encoded=listed.num_rows - todo.num_rows,
                             repeated_ids=repeated, without_latents=labels.num_rows - listed.num_rows)


def _run_row(summary: EncodeFactorsSummary, config: EncodeFactorsConfig, started: datetime, status: str,
             error: str | None = None, ended: datetime | None = None) -> dict:
    cfg_json = config.model_dump_json()
    return {
        "run_id": summary.run_id, "job": "encode_factors", "status": status,
        "config_hash": hashlib.sha256(cfg_json.encode()).hexdigest()[:16], "config_json": cfg_json,
        "started_at": started, "ended_at": ended,
        "inputs_seen": summary.rows_selected, "inputs_skipped_unchanged": summary.rows_already_encoded,
        "inputs_processed": summary.rows_written, "inputs_accepted": summary.rows_written, "inputs_rejected": 0,
        "segments_written": summary.rows_written, "segments_filtered": 0,
        "segments_deduped": summary.rows_repeated_ids,
        "audio_s_in": summary.audio_s_in, "audio_s_written": summary.audio_s_written,
        "error": error, "table_versions_json": json.dumps(summary.table_versions, sort_keys=True),
    }


def _load_models(config: EncodeFactorsConfig, factorizer_path: str, codec_path: str):
    """Both checkpoints, checked to belong together and to fit the table (one-line errors, nothing written)."""
    from models.codec import load_checkpoint
    from models.factorizer import FactorizerCheckpointError, load_factorizer_checkpoint

    codec, codec_config, codec_meta = load_checkpoint(codec_path)
    factorizer, f_config, f_meta = load_factorizer_checkpoint(factorizer_path,
                                                              expected_factorizer_id=config.factorizer_id)
    if f_meta.codec_id != codec_meta.codec_id:
        raise FactorizerCheckpointError(f"{factorizer_path}: factorizer {f_meta.factorizer_id!r} reads latents of "
                                        f"codec {f_meta.codec_id!r}, codec_checkpoint {codec_path} is codec "
                                        f"{codec_meta.codec_id!r}: give the codec it was trained on")
    if f_config.latent_dim != codec.quantizer.dim:
        raise FactorizerCheckpointError(f"{factorizer_path}: factorizer reads {f_config.latent_dim}-d latents, codec "
                                        f"{codec_meta.codec_id!r} makes {codec.quantizer.dim}-d ones")
    if f_config.factor_dims != FACTOR_DIMS:
        raise FactorsInputError(f"factorizer {f_meta.factorizer_id!r} makes vectors of sizes {f_config.factor_dims}; "
                                f"the factors table holds {FACTOR_DIMS}")
    return codec, codec_config, codec_meta, factorizer, f_config, f_meta


def _factorize_chunk(chunk: pa.Table, config: EncodeFactorsConfig, lake: str, plan: EncodeFactorsPlan, models: dict,
                     run_id: str, at: datetime) -> None:
    """One Ray Data pass over ``chunk`` and one commit of its ``factors`` rows."""
    import ray
    import ray.data

    ex = config.execution
    n = chunk.num_rows
    concurrency = ex.concurrency or max(1, int(ray.cluster_resources().get("CPU", 1) // ex.cpus_per_actor))
    concurrency = min(concurrency, n)
    per_call = max(1, min(ex.rows_per_batch, -(-n // concurrency)))  # every actor gets work
    ds = ray.data.from_arrow([chunk.slice(i, per_call) for i in range(0, n, per_call)])
    ds = ds.map_batches(
        FactorizeLatents, batch_size=per_call, batch_format="pyarrow", num_cpus=ex.cpus_per_actor,
        compute=ray.data.ActorPoolStrategy(size=concurrency),
        fn_constructor_kwargs=dict(latents_uri=table_uri(lake, "latents"), latents_version=plan.latents_version,
                                   storage=config.storage, codec_id=plan.codec_id, factorizer_id=plan.factorizer_id,
                                   run_id=run_id, encoded_at=at, torch_threads=ex.torch_threads, **models),
    )
    write_ray_dataset(ds, table_uri(lake, "factors"), FACTORS_SCHEMA, config.storage,
                      min_rows_per_file=ex.rows_per_file)


def _verify(summary: EncodeFactorsSummary, lake: str, storage: StorageConfig) -> None:
    """The table holds exactly the rows this run factorized (nothing lost, nothing doubled)."""
    mine = read_column_values(table_uri(lake, "factors"), ["segment_id"], storage,
                              f"run_id = {sql_quote(summary.run_id)}")
    if mine.num_rows != summary.rows_to_encode:
        raise FactorsAccountingError(f"factors holds {mine.num_rows} rows of this run, {summary.rows_to_encode} "
                                     "latents rows were to be factorized")
    if mine.num_rows and len(pc.unique(mine.column("segment_id"))) != mine.num_rows:
        raise FactorsAccountingError("this run wrote some segment twice")


def run_encode_factors(config: EncodeFactorsConfig, *,
                       progress: Callable[[str], None] = print) -> EncodeFactorsSummary:
    """Factorize one codec's ``latents`` rows with a factorizer checkpoint into ``factors`` and index them.

    Returns the summary (also in ``runs``).

    Raises:
        models.codec.CheckpointError: the codec checkpoint is missing or corrupt (before anything is written).
        models.factorizer.FactorizerCheckpointError: the factorizer checkpoint is missing, corrupt, not
            ``config.factorizer_id``, or of another codec than ``codec_checkpoint`` (before anything is written).
        FactorsInputError: no segments/latents table, a bad filter, no latents of the codec, or vector sizes
            the table does not hold (before anything is written).
        FactorsAccountingError: the written rows do not add up (the run is marked failed).

    Example::

        from schemas.curate import load_config
        from schemas.encode_factors import EncodeFactorsConfig
        summary = run_encode_factors(load_config("configs/encode_factors.yaml", EncodeFactorsConfig))
        print(summary.format())
    """
    lake = resolve_uri(config.lake_root)
    factorizer_path = resolve_uri(config.factorizer_checkpoint)
    codec_path = resolve_uri(config.codec_checkpoint)
    storage = config.storage
    codec, codec_config, codec_meta, factorizer, f_config, f_meta = _load_models(config, factorizer_path, codec_path)
    plan = plan_encode_factors(lake, f_meta.factorizer_id, codec_meta.codec_id, storage,
                               segments_filter=config.segments_filter)
    config = config.model_copy(update={"lake_root": lake, "factorizer_checkpoint": factorizer_path,
                                       "codec_checkpoint": codec_path, "factorizer_id": f_meta.factorizer_id})
    started = _now()
    summary = EncodeFactorsSummary(
        run_id=f"encode_factors-{started:%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}", lake_root=lake,
        factorizer_id=f_meta.factorizer_id, codec_id=codec_meta.codec_id, factorizer_checkpoint=factorizer_path,
        latents_version=plan.latents_version, rows_selected=plan.selected, rows_already_encoded=plan.already_encoded,
        rows_repeated_ids=plan.repeated_ids, segments_without_latents=plan.without_latents,
        rows_to_encode=plan.todo.num_rows, audio_s_in=plan.todo_audio_s)
    runs_uri = table_uri(lake, "runs")
    upsert_rows(runs_uri, [_run_row(summary, config, started, "running")], RUNS_SCHEMA, ["run_id"], storage)
    t0 = time.perf_counter()
    try:
        progress(f"[encode_factors] {f_meta.factorizer_id} on codec {codec_meta.codec_id}: {plan.selected} latents "
                 f"rows selected, {plan.already_encoded} already factorized, {plan.todo.num_rows} to factorize "
                 f"({plan.todo_audio_s / 3600:.2f} h)")
        todo = plan.todo
        if todo.num_rows:
            init_ray(config.execution.ray_address)  # nothing to do -> no Ray at all: a no-op run takes seconds
        models = dict(codec_config=codec_config, factorizer_config=f_config,
                      codec_state_dict={k: v.detach().cpu() for k, v in codec.state_dict().items()},
                      factorizer_state_dict={k: v.detach().cpu() for k, v in factorizer.state_dict().items()})
        step = config.execution.commit_every_segments
        n_chunks = -(-todo.num_rows // step)
        t_encode = time.perf_counter()
        for i in range(n_chunks):
            chunk = todo.slice(i * step, step)
            _factorize_chunk(chunk, config, lake, plan, models, summary.run_id, started)
            summary.rows_written += chunk.num_rows
            summary.audio_s_written += float(pc.sum(chunk.column("duration_s")).as_py() or 0.0)
            elapsed = summary.encode_s = time.perf_counter() - t_encode
            progress(f"[encode_factors] chunk {i + 1}/{n_chunks} committed: {summary.rows_written}/{todo.num_rows} "
                     f"rows, {summary.audio_s_written / 3600:.2f} h ({elapsed:.0f} s)")
        _verify(summary, lake, storage)
        if config.index.build:
            summary.index = update_factor_index(lake, config.index, storage)
            for update in summary.index:
                progress(f"[encode_factors] index {update.format()}")
        summary.wall_s = time.perf_counter() - t0
        summary.table_versions = table_versions(lake, storage, _TABLES)
        upsert_rows(runs_uri, [_run_row(summary, config, started, "succeeded", ended=_now())], RUNS_SCHEMA,
                    ["run_id"], storage, update_existing=True)
        summary.table_versions = table_versions(lake, storage, _TABLES)
        return summary
    except BaseException as exc:
        summary.wall_s = time.perf_counter() - t0
        upsert_rows(runs_uri, [_run_row(summary, config, started, "failed", error=f"{type(exc).__name__}: {exc}",
                                        ended=_now())], RUNS_SCHEMA, ["run_id"], storage, update_existing=True)
        raise
