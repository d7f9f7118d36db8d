"""The encode run: checkpoint -> plan (segments minus latents already there) -> per chunk (Ray stage, one commit).

Everything that can be wrong with the inputs is found on the driver before any
write or any Ray work: the checkpoint is loaded and its codec id checked
(``CheckpointError``), the ``segments`` table opened at a pinned version and
the filter run (``EncodeInputError``). The plan is the anti-join of the
filtered segments with the ``latents`` rows of this codec on ``segment_id``,
so a re-run over the same segments writes nothing and never starts Ray, a run
after curation added segments encodes only those, and a second codec adds its
own rows beside the first's. Chunks of ``commit_every_segments`` are the unit
of commit: Ray workers write fragments (lance-ray), the driver commits once
per chunk, so a run killed mid-way leaves ``latents`` at its last chunk and
the re-run does the rest without duplicates.

The ``runs`` row reuses the curation columns: ``inputs_seen`` = segments the
filter selected, ``inputs_skipped_unchanged`` = already encoded by this codec,
``inputs_processed`` = encoded now, ``inputs_accepted`` = ``segments_written``
= latents rows written, ``segments_deduped`` = repeated segment ids encoded
once; ``config_json`` holds the absolute checkpoint path and the codec id,
which is how ``pipelines.latents.decode_latents`` finds the weights of a row.
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

from pipelines.encode_stage import INPUT_COLUMNS, EncodeSegments
from pipelines.lance_io import open_table, read_column_values, table_uri, table_versions, upsert_rows, write_ray_dataset
from pipelines.latents import LatentsLookupError, LatentStorage, measure_latent_storage
from pipelines.ray_env import init_ray
from schemas.encode import EncodeConfig
from schemas.latents import LATENTS_SCHEMA
from schemas.runs import RUNS_SCHEMA
from schemas.sql import sql_quote
from schemas.storage import StorageConfig, resolve_uri

__all__ = ["run_encode", "plan_encode", "EncodePlan", "EncodeSummary", "EncodeInputError", "EncodeAccountingError"]

_TABLES = ("segments", "latents", "runs")


class EncodeInputError(ValueError):
    """The lake or the segments filter cannot be used (no segments table, bad SQL); nothing was written."""


class EncodeAccountingError(RuntimeError):
    """``latents`` does not hold the rows the run encoded; the run is marked failed."""


@dataclass
class EncodePlan:
    """What a run will encode: rows of ``segments`` at ``segments_version`` (keys, row addresses, labels)."""

    codec_id: str
    segments_version: int
    todo: pa.Table  # INPUT_COLUMNS, longest first
    selected: int  # distinct segment ids the filter selected
    already_encoded: int
    repeated_ids: int  # rows of segments sharing a segment id with another (encoded once)

    @property
    def todo_audio_s(self) -> float:
        return float(pc.sum(self.todo.column("duration_s")).as_py() or 0.0)


@dataclass
class EncodeSummary:
    """Counts of one run (also its ``runs`` row), its throughput and the storage it measured."""

    run_id: str
    lake_root: str
    codec_id: str
    checkpoint: str
    segments_version: int = 0
    segments_selected: int = 0
    segments_already_encoded: int = 0
    segments_repeated_ids: int = 0
    segments_to_encode: int = 0
    rows_written: int = 0
    audio_s_in: float = 0.0
    audio_s_written: float = 0.0
    wall_s: float = 0.0
    encode_s: float = 0.0  # the chunks' wall time, Ray start-up excluded (what the throughput figure divides by)
    storage: LatentStorage | None = None
    table_versions: dict[str, int] = field(default_factory=dict)

    def format(self) -> str:
        """Human summary, a few lines."""
        speed = (f", encoding {self.encode_s:.1f} s = {self.audio_s_written / self.encode_s:.0f}x real time"
                 if self.rows_written and self.encode_s else "")
        lines = [
            f"run {self.run_id} -> {self.lake_root}",
            f"  codec {self.codec_id} ({self.checkpoint}); segments version {self.segments_version}",
            f"  segments: {self.segments_selected} selected, {self.segments_already_encoded} already encoded, "
            f"{self.segments_to_encode} to encode -> {self.rows_written} latents rows written",
            f"  audio: {self.audio_s_written / 3600:.3f} h encoded; wall {self.wall_s:.1f} s{speed}",
        ]
        if self.storage is not None:
            lines.append(self.storage.format())
        return "\n".join(lines)


def _now() -> datetime:
    return datetime.now(timezone.utc)


def plan_encode(lake_root: str, codec_id: str, storage: StorageConfig, *, segments_filter: str | None = None,
                sample_rate_hz: int = 16000) -> EncodePlan:
    """The segments (filtered, at the current version) that have no ``latents`` row of ``codec_id`` yet.

    Raises:
        EncodeInputError: no ``segments`` table, a filter Lance cannot run, or segments at another sample rate.
    """
    seg = open_table(table_uri(lake_root, "segments"), storage)
    if seg is None:
        raise EncodeInputError(f"no segments table under {lake_root} (run jobs/curate.py first)")
    columns = [c for c in INPUT_COLUMNS if c != "_rowaddr"] + ["sample_rate_hz"]
    try:
        listed = seg.to_table(columns=columns, filter=segments_filter, with_row_address=True)
    except ValueError as exc:
        raise EncodeInputError(f"segments_filter {segments_filter!r} cannot run: "
                               f"{str(exc).splitlines()[0].split(', /')[0]}") from None
    wrong_rate = pc.sum(pc.cast(pc.not_equal(listed.column("sample_rate_hz"), sample_rate_hz), pa.int64())).as_py()
    if wrong_rate:
        raise EncodeInputError(f"{wrong_rate} selected segments are not at the codec's {sample_rate_hz} Hz")
    ids = listed.column("segment_id").to_numpy(zero_copy_only=False)
    _, first = np.unique(ids, return_index=True)
    repeated = listed.num_rows - len(first)
    if repeated:
        listed = listed.take(pa.array(np.sort(first)))
    done = read_column_values(table_uri(lake_root, "latents"), ["segment_id"], storage,
                              f"codec_id = {sql_quote(codec_id)}")
    todo = listed.select(list(INPUT_COLUMNS))
    if done.num_rows:
        todo = todo.join(done, "segment_id", join_type="left anti")
    todo = todo.sort_by([("duration_s", "descending")]).select(list(INPUT_COLUMNS))
    return EncodePlan(codec_id=codec_id, segments_version=seg.version, todo=todo, selected=listed.num_rows,
                      already_encoded=listed.num_rows - todo.num_rows, repeated_ids=repeated)


def _run_row(summary: EncodeSummary, config: EncodeConfig, started: datetime, status: str,
             error: str | None = None, ended: datetime | None = None) -> dict:
    cfg_json = config.model_dump_json()
    return {
        "run_id": summary.run_id, "job": "encode", "status": status,
        "config_hash": hashlib.sha256(cfg_json.encode()).hexdigest()[:16], "config_json": cfg_json,
        "started_at": started, "ended_at": ended,
        "inputs_seen": summary.segments_selected, "inputs_skipped_unchanged": summary.segments_already_encoded,
        "inputs_processed": summary.rows_written, "inputs_accepted": summary.rows_written, "inputs_rejected": 0,
        "segments_written": summary.rows_written, "segments_filtered": 0,
        "segments_deduped": summary.segments_repeated_ids,
        "audio_s_in": summary.audio_s_in, "audio_s_written": summary.audio_s_written,
        "error": error, "table_versions_json": json.dumps(summary.table_versions, sort_keys=True),
    }


def _encode_chunk(chunk: pa.Table, config: EncodeConfig, lake: str, plan: EncodePlan, model_config, state_dict: dict,
                  run_id: str, at: datetime) -> None:
    """One Ray Data pass over ``chunk`` and one commit of its ``latents`` rows."""
    import ray
    import ray.data

    ex = config.execution
    n = chunk.num_rows
    concurrency = ex.concurrency or max(1, int(ray.cluster_resources().get("CPU", 1) // ex.cpus_per_actor))
    concurrency = min(concurrency, n)
    per_call = max(1, min(ex.segments_per_batch, -(-n // concurrency)))  # every actor gets work
    # Blocks of neighbours in the longest-first order: similar lengths, long ones scheduled first.
    ds = ray.data.from_arrow([chunk.slice(i, per_call) for i in range(0, n, per_call)])
    ds = ds.map_batches(
        EncodeSegments, batch_size=per_call, batch_format="pyarrow", num_cpus=ex.cpus_per_actor,
        compute=ray.data.ActorPoolStrategy(size=concurrency),
        fn_constructor_kwargs=dict(segments_uri=table_uri(lake, "segments"), segments_version=plan.segments_version,
                                   storage=config.storage, model_config=model_config, state_dict=state_dict,
                                   codec_id=plan.codec_id, run_id=run_id, encoded_at=at,
                                   torch_threads=ex.torch_threads),
    )
    write_ray_dataset(ds, table_uri(lake, "latents"), LATENTS_SCHEMA, config.storage,
                      min_rows_per_file=ex.rows_per_file)


def _verify(summary: EncodeSummary, lake: str, storage: StorageConfig) -> None:
    """The table holds exactly the rows this run encoded (nothing lost, nothing doubled)."""
    mine = read_column_values(table_uri(lake, "latents"), ["segment_id"], storage,
                              f"run_id = {sql_quote(summary.run_id)}")
    if mine.num_rows != summary.segments_to_encode:
        raise EncodeAccountingError(f"latents holds {mine.num_rows} rows of this run, {summary.segments_to_encode} "
                                    "segments were to be encoded")
    if mine.num_rows and len(pc.unique(mine.column("segment_id"))) != mine.num_rows:
        raise EncodeAccountingError("this run wrote some segment twice")


def run_encode(config: EncodeConfig, *, progress: Callable[[str], None] = print) -> EncodeSummary:
    """Encode the lake's segments with a codec checkpoint into ``latents``; returns the summary (also in ``runs``).

    Raises:
        models.codec.CheckpointError: the checkpoint is missing, corrupt, or not ``config.codec_id``
            (before anything is written).
        EncodeInputError: no segments table or a bad filter (before anything is written).
        EncodeAccountingError: the written rows do not add up (the run is marked failed).

    Example::

        from schemas.curate import load_config
        from schemas.encode import EncodeConfig
        summary = run_encode(load_config("configs/encode.yaml", EncodeConfig))
        print(summary.format())
    """
    from models.codec import load_checkpoint

    lake = resolve_uri(config.lake_root)
    checkpoint = resolve_uri(config.checkpoint)
    storage = config.storage
    model, model_config, meta = load_checkpoint(checkpoint, expected_codec_id=config.codec_id)
    plan = plan_encode(lake, meta.codec_id, storage, segments_filter=config.segments_filter,
                       sample_rate_hz=model_config.sample_rate_hz)
    config = config.model_copy(update={"lake_root": lake, "checkpoint": checkpoint, "codec_id": meta.codec_id})
    started = _now()
    summary = EncodeSummary(run_id=f"encode-{started:%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}", lake_root=lake,
                            codec_id=meta.codec_id, checkpoint=checkpoint, segments_version=plan.segments_version,
                            segments_selected=plan.selected, segments_already_encoded=plan.already_encoded,
                            segments_repeated_ids=plan.repeated_ids, segments_to_encode=plan.todo.num_rows,
                            audio_s_in=plan.todo_audio_s)
    runs_uri = table_uri(lake, "runs")
    upsert_rows(runs_uri, [_run_row(summary, config, started, "running")], RUNS_SCHEMA, ["run_id"], storage)
    t0 = time.perf_counter()
    try:
        progress(f"[encode] codec {meta.codec_id}: {plan.selected} segments selected, {plan.already_encoded} already "
                 f"encoded, {plan.todo.num_rows} to encode ({plan.todo_audio_s / 3600:.2f} h)")
        todo = plan.todo
        if todo.num_rows:
            init_ray(config.execution.ray_address)  # nothing to do -> no Ray at all: a no-op run takes seconds
        state_dict = {k: v.detach().cpu() for k, v in model.state_dict().items()}
        step = config.execution.commit_every_segments
        n_chunks = -(-todo.num_rows // step)
        t_encode = time.perf_counter()
        for i in range(n_chunks):
            chunk = todo.slice(i * step, step)
            _encode_chunk(chunk, config, lake, plan, model_config, state_dict, summary.run_id, started)
            summary.rows_written += chunk.num_rows
            summary.audio_s_written += float(pc.sum(chunk.column("duration_s")).as_py() or 0.0)
            elapsed = summary.encode_s = time.perf_counter() - t_encode
            progress(f"[encode] chunk {i + 1}/{n_chunks} committed: {summary.rows_written}/{todo.num_rows} segments, "
                     f"{summary.audio_s_written / 3600:.2f} h ({elapsed:.0f} s, "
                     f"{summary.audio_s_written / max(elapsed, 1e-9):.0f}x real time)")
        _verify(summary, lake, storage)
        summary.wall_s = time.perf_counter() - t0
        try:
            summary.storage = measure_latent_storage(lake, meta.codec_id, storage)
        except LatentsLookupError:
            summary.storage = None  # nothing encoded by this codec (an empty selection)
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
