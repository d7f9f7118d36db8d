"""The curation run: list -> skip unchanged -> per chunk (Ray Data stage, dedup, atomic commits) -> account.

A chunk of sources is the unit of commit and of resume. For each chunk the
Ray Data stage (:class:`pipelines.curate_stage.CurateSources`, as tasks) runs
on the workers and its output is materialized in Ray's object store (bounded by the
chunk, spilled to disk if needed); the driver then decides dedup on the keys
alone, Ray workers write the kept segments as Lance fragments and the driver
commits them once; then ``rejects``, then ``sources`` (the marker that the
chunk is done) are merge-inserted. A run killed anywhere leaves every table
at a committed version; the re-run skips the finished chunks (their sources
rows exist and are unchanged) and recognises segments already written, so it
ends with the same tables as an uninterrupted run.
"""

from __future__ import annotations

import functools
import hashlib
import json
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Callable

import pyarrow as pa

from pipelines.curate_stage import curate_batch, make_reject
from pipelines.dedup import decide_duplicates
from pipelines.lake_state import DedupState, load_dedup_state, load_incremental_state
from pipelines.lance_io import table_uri, table_versions, upsert_rows, write_ray_dataset, read_column_values
from pipelines.ray_env import init_ray
from pipelines.sources import SourceUnit, list_sources
from schemas.curate import CurateConfig, ExecutionConfig
from schemas.rejects import REJECTS_SCHEMA, RejectReason, RejectStage
from schemas.runs import RUNS_SCHEMA
from schemas.segments import LABEL_COLUMNS, SEGMENTS_SCHEMA
from schemas.sources import SOURCES_SCHEMA
from schemas.storage import resolve_uri

if TYPE_CHECKING:
    import ray.data

__all__ = ["new_run_id", "run_curation", "run_stage", "stage_layout", "fetch_meta", "CurateSummary", "AccountingError"]


class AccountingError(RuntimeError):
    """Inputs and outputs of a run do not add up: something was lost. The run is marked failed."""


@dataclass
class CurateSummary:
    """Counts of one run (also the ``runs`` row) and where its tables are."""

    run_id: str
    lake_root: str
    inputs_seen: int = 0
    inputs_skipped_unchanged: int = 0
    inputs_processed: int = 0
    inputs_accepted: int = 0
    inputs_rejected: int = 0
    segments_found: int = 0
    segments_written: int = 0
    segments_filtered: int = 0
    segments_deduped: int = 0
    segments_already_present: int = 0
    audio_s_in: float = 0.0
    audio_s_written: float = 0.0
    wall_s: float = 0.0
    rejects_by_reason: dict[str, int] = field(default_factory=dict)
    table_versions: dict[str, int] = field(default_factory=dict)

    def format(self) -> str:
        """Human summary, a few lines."""
        reasons = ", ".join(f"{k}={v}" for k, v in sorted(self.rejects_by_reason.items())) or "none"
        return "\n".join([
            f"run {self.run_id} -> {self.lake_root}",
            f"  inputs: {self.inputs_seen} listed (files, shards, manifest rows), {self.inputs_skipped_unchanged} unchanged "
            f"(skipped unread); {self.inputs_processed} sources processed (tar members one by one) = "
            f"{self.inputs_accepted} accepted + {self.inputs_rejected} rejected",
            f"  segments: {self.segments_found} found -> {self.segments_written} written, {self.segments_filtered} filtered, "
            f"{self.segments_deduped} deduped, {self.segments_already_present} already present",
            f"  audio: {self.audio_s_in / 3600:.2f} h in, {self.audio_s_written / 3600:.2f} h written; wall {self.wall_s:.1f} s",
            f"  rejects by reason: {reasons}",
        ])


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _run_row(summary: CurateSummary, config: CurateConfig, started: datetime, status: str,
             error: str | None = None, ended: datetime | None = None) -> dict:
    cfg_json = config.model_dump_json()
    return {
        "run_id": summary.run_id, "job": "curate", "status": status,
        "config_hash": hashlib.sha256(cfg_json.encode()).hexdigest()[:16], "config_json": cfg_json,
        "started_at": started, "ended_at": ended,
        **{k: getattr(summary, k) for k in ("inputs_seen", "inputs_skipped_unchanged", "inputs_processed",
                                            "inputs_accepted", "inputs_rejected", "segments_written",
                                            "segments_filtered", "segments_deduped", "audio_s_in", "audio_s_written")},
        "error": error, "table_versions_json": json.dumps(summary.table_versions, sort_keys=True),
    }


def _project_meta(batch: pa.Table) -> pa.Table:
    """Everything but the audio: what the driver needs to decide and account."""
    seg = batch.column("segment")
    keys = {n: pa.compute.struct_field(seg, n) for n in
            ("segment_id", "source_uri", "source_sha256", "pcm_hash", "start_s", "end_s", "duration_s")}
    import pyarrow.compute as pc

    label_count = None
    for name in LABEL_COLUMNS:
        valid = pc.cast(pc.is_valid(pc.struct_field(seg, name)), pa.int32())
        label_count = valid if label_count is None else pc.add(label_count, valid)
    keys["label_count"] = label_count
    return pa.table({"kind": batch.column("kind"), **keys, "reject": batch.column("reject"),
                     "source": batch.column("source")})


@functools.cache
def _remote_project_meta():
    """``_project_meta`` as a Ray remote function, made once per process (Ray re-exports it to a new cluster itself)."""
    import ray

    return ray.remote(num_cpus=1)(_project_meta)


def _select_segments(batch: pa.Table, keep: set[tuple[str, str]]) -> pa.Table:
    """Keep the chosen segment rows and flatten them to the ``segments`` schema."""
    import pyarrow.compute as pc

    seg = batch.filter(pc.equal(batch.column("kind"), "segment")).column("segment").combine_chunks()
    if len(seg) == 0:
        return SEGMENTS_SCHEMA.empty_table()
    ids = seg.field("segment_id").to_pylist()
    uris = seg.field("source_uri").to_pylist()
    mask = pa.array([(i, u) in keep for i, u in zip(ids, uris)])
    flat = pa.Table.from_arrays(seg.flatten(), names=[f.name for f in seg.type]).filter(mask)
    return flat.cast(SEGMENTS_SCHEMA)


def stage_layout(count: int, execution: ExecutionConfig, cluster_cpus: float) -> tuple[int, int]:
    """(calls at once, sources per call) for ``count`` sources: ``sources_per_batch``, or fewer so every worker gets work."""
    ex = execution
    concurrency = min(ex.concurrency or max(1, int(cluster_cpus // ex.num_cpus_per_worker)), count)
    return concurrency, max(1, min(ex.sources_per_batch, -(-count // concurrency)))


def run_stage(units: list[SourceUnit], config: CurateConfig, run_id: str, at: datetime) -> "ray.data.Dataset":
    """Curate ``units`` on the cluster as Ray Data tasks; the result rows, materialized in the object store.

    One input block per call of ``execution.sources_per_batch`` sources (fewer
    when that would leave a CPU without work), at most ``concurrency`` calls
    at once (default: every CPU of the cluster).

    Two Ray Data defaults cost idle CPUs here, where the tasks are the bottleneck
    (2 h bench, 2 CPUs; ``bench/RESULTS.md``): its scheduling loop noticed a
    finished task only within 0.1 s (``pipelines.ray_idle.WakeOnCompletion``
    fixes that), and its per-operator resource reservation held the second
    task back ~1 s at the start; a one-operator dataset has nothing to reserve for.
    """
    import ray.data

    from pipelines.ray_idle import install_wake_on_completion

    ex = config.execution
    concurrency, per_call = stage_layout(len(units), ex, ray.cluster_resources().get("CPU", 1))
    ds = ray.data.from_items([u.to_item() for u in units], override_num_blocks=max(1, -(-len(units) // per_call)))
    ds = ds.map_batches(
        curate_batch, batch_size=per_call, batch_format="pyarrow", num_cpus=ex.num_cpus_per_worker,
        compute=ray.data.TaskPoolStrategy(size=concurrency),
        fn_kwargs=dict(segmentation=config.segmentation, filters=config.filters, split=config.split,
                       storage=config.storage, max_source_s=ex.max_source_s, run_id=run_id, ingested_at=at),
    )
    ds.context.op_resource_reservation_enabled = False
    install_wake_on_completion(ds.context)
    return ds.materialize()


def fetch_meta(ds: "ray.data.Dataset") -> list[dict]:
    """The stage's rows without their audio, on the driver: one plain Ray task per materialized block.

    A second Ray Data pass (``map_batches`` + ``to_arrow_refs``) did the same
    in ~2.8 s of planning and scheduling per chunk; the blocks already sit in
    the object store, so a task each is all it takes.
    """
    import ray

    parts = ray.get([_remote_project_meta().remote(ref) for ref in ds.to_arrow_refs()])
    return pa.concat_tables(parts).to_pylist() if parts else []


def _process_chunk(units: list[SourceUnit], config: CurateConfig, lake: str, run_id: str, at: datetime,
                   dedup: DedupState, summary: CurateSummary) -> None:
    storage = config.storage
    ds = run_stage(units, config, run_id, at)
    rows = fetch_meta(ds)

    sources = {(r["source"]["source_uri"], r["source"]["sha256"]): r["source"] for r in rows if r["kind"] == "source"}
    rejects = [r["reject"] for r in rows if r["kind"] == "reject"]
    segs = [r for r in rows if r["kind"] == "segment" and
            sources.get((r["source_uri"], r["source_sha256"]), {}).get("status") == "accepted"]

    decision = decide_duplicates([(s["segment_id"], s["pcm_hash"], s["source_uri"], s["start_s"], s["label_count"])
                                  for s in segs],
                                 dedup.by_hash if config.dedup else {}, dedup.rows)
    dupes = decision.duplicates if config.dedup else {}
    keep = {(s["segment_id"], s["source_uri"]) for s in segs} - set(dupes) - decision.already_present
    per_source = {k: {"written": 0, "deduped": 0, "present": 0} for k in sources}
    for s in segs:
        key = (s["segment_id"], s["source_uri"])
        counts = per_source[(s["source_uri"], s["source_sha256"])]
        if key in dupes:
            counts["deduped"] += 1
            rejects.append(make_reject(source_uri=s["source_uri"], sha256=s["source_sha256"], stage=RejectStage.DEDUP,
                                       reason=RejectReason.DUPLICATE, segment_id=s["segment_id"], start_s=s["start_s"],
                                       end_s=s["end_s"], duplicate_of=dupes[key], run_id=run_id, at=at,
                                       error=f"duplicate: same PCM as segment {dupes[key]}"))
        elif key in decision.already_present:
            counts["present"] += 1
        else:
            counts["written"] += 1
            summary.audio_s_written += s["duration_s"]

    # 1. segments: workers write fragments, one commit.
    if keep:
        write_ray_dataset(ds.map_batches(_select_segments, fn_kwargs={"keep": keep}, batch_format="pyarrow"),
                          table_uri(lake, "segments"), SEGMENTS_SCHEMA, storage)
    for s in segs:
        if (s["segment_id"], s["source_uri"]) in keep:
            dedup.add(s["segment_id"], s["pcm_hash"], s["source_uri"])

    # 2. final source status, with a source-level reject when dedup took every segment.
    for key, src in sources.items():
        c = per_source[key]
        src["segments_written"], src["segments_deduped"] = c["written"], c["deduped"]
        if src["status"] == "accepted" and c["written"] + c["present"] == 0:
            src["status"], src["reason"] = "rejected", RejectReason.DUPLICATE.value
            rejects.append(make_reject(source_uri=src["source_uri"], sha256=src["sha256"], stage=RejectStage.DEDUP,
                                       reason=RejectReason.DUPLICATE, run_id=run_id, at=at,
                                       error=f"duplicate: all {c['deduped']} segments duplicate audio already kept"))
        found = src["segments_found"]
        if found != c["written"] + c["deduped"] + c["present"] + src["segments_filtered"] and src["status"] == "accepted":
            raise AccountingError(f"{src['source_uri']}: {found} segments found but "
                                  f"{c['written']}+{c['deduped']}+{c['present']}+{src['segments_filtered']} accounted")
        summary.inputs_processed += 1
        summary.inputs_accepted += src["status"] == "accepted"
        summary.inputs_rejected += src["status"] == "rejected"
        summary.segments_found += found
        summary.segments_written += c["written"]
        summary.segments_deduped += c["deduped"]
        summary.segments_already_present += c["present"]
        summary.segments_filtered += src["segments_filtered"]
        summary.audio_s_in += src["duration_s"] or 0.0
    for r in rejects:
        summary.rejects_by_reason[r["reason"]] = summary.rejects_by_reason.get(r["reason"], 0) + 1

    # 3. rejects, then 4. sources: the marker that this chunk is done.
    upsert_rows(table_uri(lake, "rejects"), rejects, REJECTS_SCHEMA, ["reject_id"], storage)
    upsert_rows(table_uri(lake, "sources"), list(sources.values()), SOURCES_SCHEMA, ["source_uri", "sha256"], storage,
                update_existing=True)


def _verify(summary: CurateSummary, lake: str, config: CurateConfig) -> None:
    """Inputs = accepted + rejected, and the tables hold what the counters say (nothing lost on the way)."""
    if summary.inputs_processed != summary.inputs_accepted + summary.inputs_rejected:
        raise AccountingError(f"{summary.inputs_processed} processed != {summary.inputs_accepted} accepted + "
                              f"{summary.inputs_rejected} rejected")
    run_filter = f"run_id = '{summary.run_id}'"
    written = read_column_values(table_uri(lake, "segments"), ["segment_id"], config.storage, run_filter).num_rows
    if written != summary.segments_written:
        raise AccountingError(f"segments table holds {written} rows of this run, counters say {summary.segments_written}")
    srcs = read_column_values(table_uri(lake, "sources"), ["status"], config.storage, run_filter)
    if srcs.num_rows != summary.inputs_processed:
        raise AccountingError(f"sources table holds {srcs.num_rows} rows of this run, counters say {summary.inputs_processed}")


def new_run_id(at: datetime | None = None) -> str:
    """A fresh curation run id (``curate-<UTC time>-<random>``)."""
    return f"curate-{(at or _now()):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}"


def run_curation(config: CurateConfig, *, progress: Callable[[str], None] = print,
                 run_id: str | None = None) -> CurateSummary:
    """Run the curation job end to end; returns its summary (also written to ``runs``).

    ``run_id`` names the run (default: :func:`new_run_id`); a scheduler that takes a lock first passes the id
    it holds the lock under, so the lock names the ``runs`` row from the start.

    Example::

        from schemas.curate import load_config
        summary = run_curation(load_config("configs/curate.yaml"))
        print(summary.format())
    """
    lake = resolve_uri(config.lake_root)
    storage = config.storage
    started = _now()
    summary = CurateSummary(run_id=run_id or new_run_id(started), lake_root=lake)
    runs_uri = table_uri(lake, "runs")
    upsert_rows(runs_uri, [_run_row(summary, config, started, "running")], RUNS_SCHEMA, ["run_id"], storage)
    t0 = time.perf_counter()
    try:
        units = list_sources(config.sources, storage)  # before Ray: a bad path fails in a second
        state = load_incremental_state(lake, storage)
        todo = [u for u in units if not state.is_unchanged(u)]
        summary.inputs_seen = len(units)
        summary.inputs_skipped_unchanged = len(units) - len(todo)
        progress(f"[curate] {len(units)} inputs listed, {summary.inputs_skipped_unchanged} unchanged since last run, "
                 f"{len(todo)} to process")
        dedup = load_dedup_state(lake, storage)
        if todo:
            init_ray(config.execution.ray_address)  # nothing new -> no Ray at all: a no-op run takes seconds
        step = config.execution.commit_every_sources
        n_chunks = (len(todo) + step - 1) // step
        for i in range(n_chunks):
            chunk = todo[i * step:(i + 1) * step]
            _process_chunk(chunk, config, lake, summary.run_id, started, dedup, summary)
            progress(f"[curate] chunk {i + 1}/{n_chunks} committed: {summary.inputs_processed} processed, "
                     f"{summary.inputs_accepted} accepted, {summary.inputs_rejected} rejected, "
                     f"{summary.segments_written} segments written ({time.perf_counter() - t0:.0f} s)")
        _verify(summary, lake, config)
        summary.wall_s = time.perf_counter() - t0
        summary.table_versions = table_versions(lake, storage)
        upsert_rows(runs_uri, [_run_row(summary, config, started, "succeeded", ended=_now())], RUNS_SCHEMA,
                    ["run_id"], storage, update_existing=True)
        summary.table_versions = table_versions(lake, storage)
        return summary
    except BaseException as exc:
        summary.wall_s = time.perf_counter() - t0
        upsert_rows(runs_uri, [_run_row(summary, config, started, "failed", error=f"{type(exc).__name__}: {exc}",
                                        ended=_now())], RUNS_SCHEMA, ["run_id"], storage, update_existing=True)
        raise
