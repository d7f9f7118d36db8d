"""The recombine run: checkpoints -> plan (counts printed first) -> per chunk (Ray stage, one commit) -> summary, report.

Everything that can be wrong with the inputs is found on the driver before
any write or any Ray work: both checkpoints are loaded and paired (the
factorizer must have been trained on this codec's latents, and the
``latents`` table must hold that codec's rows), the filters run, factor
names are validated by the config, and the plan is built and printed as
counts. Only segments that have latents of the codec can be sources or
donors.

The plan's ``synth_id`` hashes the recipe, so the work to do is the plan
minus the ids already in ``synthetic``: a re-run writes nothing, a run killed
mid-way resumes where its last committed chunk ended, and a bigger budget
adds only the new rows. Chunks of ``commit_every_rows`` are the unit of
commit, as in the encode job.

The ``runs`` row reuses the curation columns: ``inputs_seen`` = plan rows,
``inputs_skipped_unchanged`` = already in ``synthetic``, ``inputs_processed``
= made now, ``inputs_accepted`` / ``inputs_rejected`` = passed / failed the
gates, ``segments_written`` = rows written, ``audio_s_in`` = seconds of the
distinct content sources, ``audio_s_written`` = seconds made.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pipelines.lance_io import open_table, read_column_values, table_uri, table_versions, upsert_rows, write_ray_dataset
from pipelines.ray_env import init_ray
from schemas.generate import GenerateConfig
from schemas.recombine import FACTORS, PLAN_SCHEMA, PlanError, RecombineConfig
from schemas.runs import RUNS_SCHEMA
from schemas.sql import sql_quote
from schemas.storage import resolve_uri
from schemas.synthetic import SYNTHETIC_SCHEMA

__all__ = ["run_recombine", "plan_only", "RecombineSummary", "RecombineInputError", "RecombineAccountingError"]

_TABLES = ("segments", "latents", "synthetic", "runs")


class RecombineInputError(ValueError):
    """The inputs cannot be recombined (checkpoints that do not pair, no latents); one line, nothing written."""


class RecombineAccountingError(RuntimeError):
    """The written rows do not add up (the run is marked failed)."""


@dataclass
class RecombineSummary:
    """Counts of one run (also its ``runs`` row), amplification and throughput."""

    run_id: str
    lake_root: str
    codec_id: str
    factorizer_id: str
    plan_text: str = ""
    plan_rows: int = 0
    already_made: int = 0
    to_make: int = 0
    rows_written: int = 0
    passed: int = 0
    seed_s: float = 0.0
    synthetic_s: float = 0.0
    synthetic_passed_s: float = 0.0
    wall_s: float = 0.0
    work_s: float = 0.0
    coverage: dict[str, str] = field(default_factory=dict)
    report_path: str | None = None
    table_versions: dict[str, int] = field(default_factory=dict)

    @property
    def pass_rate(self) -> float:
        return self.passed / self.rows_written if self.rows_written else float("nan")

    def format(self) -> str:
        speed = (f"; {self.synthetic_s / self.work_s:.1f}x real time" if self.work_s and self.synthetic_s else "")
        lines = [
            f"run {self.run_id} -> {self.lake_root}",
            f"  codec {self.codec_id}; factorizer {self.factorizer_id}",
            f"  plan: {self.plan_rows} rows, {self.already_made} already in synthetic, {self.to_make} to make "
            f"-> {self.rows_written} rows written, {self.passed} passed the gates ({100 * self.pass_rate:.1f}%)",
            f"  amplification: {self.seed_s / 3600:.3f} h of seed sources -> {self.synthetic_s / 3600:.3f} h made, "
            f"{self.synthetic_passed_s / 3600:.3f} h passed ({self.synthetic_passed_s / max(self.seed_s, 1e-9):.1f}x)"
            f"; wall {self.wall_s:.1f} s{speed}",
        ]
        lines += [f"  coverage {k}: {v}" for k, v in self.coverage.items()]
        if self.report_path:
            lines.append(f"  report: {self.report_path}")
        return "\n".join(lines)


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _run_row(s: RecombineSummary, config: RecombineConfig, started: datetime, status: str,
             error: str | None = None, ended: datetime | None = None) -> dict:
    cfg_json = config.model_dump_json()
    return {
        "run_id": s.run_id, "job": "generate" if isinstance(config, GenerateConfig) else "recombine",
        "status": status,
        "config_hash": hashlib.sha256(cfg_json.encode()).hexdigest()[:16], "config_json": cfg_json,
        "started_at": started, "ended_at": ended, "inputs_seen": s.plan_rows, "inputs_skipped_unchanged": s.already_made,
        "inputs_processed": s.rows_written, "inputs_accepted": s.passed, "inputs_rejected": s.rows_written - s.passed,
        "segments_written": s.rows_written, "segments_filtered": 0, "segments_deduped": 0,
        "audio_s_in": s.seed_s, "audio_s_written": s.synthetic_s, "error": error,
        "table_versions_json": json.dumps(s.table_versions, sort_keys=True),
    }


def _load_models(config: RecombineConfig):
    from models.codec import load_checkpoint
    from models.factorizer import load_factorizer_checkpoint

    codec, codec_config, codec_meta = load_checkpoint(resolve_uri(config.codec_checkpoint))
    factorizer, f_config, f_meta = load_factorizer_checkpoint(resolve_uri(config.factorizer_checkpoint))
    if f_meta.codec_id != codec_meta.codec_id:
        raise RecombineInputError(f"factorizer {f_meta.factorizer_id} was trained on codec {f_meta.codec_id!r}, "
                                  f"but codec_checkpoint is {codec_meta.codec_id!r}: pair them")
    return codec, codec_config, codec_meta.codec_id, factorizer, f_config, f_meta.factorizer_id


def _latent_offsets(lake: str, config: RecombineConfig, codec_id: str):
    """(latents dataset, segment_id -> row offset at its pinned version) for this codec's rows."""
    lat = open_table(table_uri(lake, "latents"), config.storage)
    if lat is None:
        raise RecombineInputError(f"no latents table under {lake}: run jobs/encode.py first")
    meta = lat.to_table(columns=["segment_id", "codec_id"])
    mine = np.flatnonzero(np.asarray(pc.equal(meta.column("codec_id"), codec_id)))
    if len(mine) == 0:
        have = ", ".join(sorted(set(meta.column("codec_id").to_pylist()))) or "none"
        raise RecombineInputError(f"latents under {lake} hold no rows of codec {codec_id!r} (it has: {have}); "
                                  "encode the lake with this codec first")
    ids = meta.column("segment_id").take(pa.array(mine)).to_pylist()
    return lat, dict(zip(ids, mine.tolist()))


def _plan(lake: str, config: RecombineConfig, codec_id: str, factorizer_id: str,
          offsets: dict[str, int]) -> tuple[pa.Table, pa.Table]:
    """(the whole plan, its report grid); with a report the grid's rows are part of the plan."""
    from pipelines.plan_io import read_plan_inputs
    from recombination.plan import plan_recombination, plan_report_grid

    sources, donors = read_plan_inputs(lake, config.storage, source_filter=config.plan.source_filter,
                                       donor_filter=config.plan.donor_filter)
    keep = pa.array(list(offsets))
    sources = sources.filter(pc.is_in(sources.column("segment_id"), keep))
    donors = donors.filter(pc.is_in(donors.column("segment_id"), keep))
    if sources.num_rows == 0:
        raise PlanError(f"no segment matching source_filter {config.plan.source_filter!r} has latents of codec "
                        f"{codec_id!r}: encode them first")
    plan = plan_recombination(sources, donors, config.plan, codec_id=codec_id, factorizer_id=factorizer_id)
    if not config.output.report_path:
        return plan, plan.slice(0, 0)
    grid = plan_report_grid(plan, rows=config.output.report_rows, columns=config.output.report_columns)
    extra = grid.filter(pc.invert(pc.is_in(grid.column("synth_id"), plan.column("synth_id"))))
    return pa.concat_tables([plan, extra]), grid


def _with_offsets(plan: pa.Table, offsets: dict[str, int]) -> pa.Table:
    for col, ids in [("content_offset", "content_segment_id"), *((f"{f}_offset", f"{f}_segment_id") for f in FACTORS)]:
        plan = plan.append_column(col, pa.array([offsets[s] for s in plan.column(ids).to_pylist()], pa.int64()))
    return plan


def _make_chunk(chunk: pa.Table, config: RecombineConfig, lake: str, models: dict[str, Any], latents_version: int,
                run_id: str, at: datetime) -> None:
    """One Ray Data pass over ``chunk`` and one commit of its ``synthetic`` rows."""
    import ray
    import ray.data

    from pipelines.recombine_stage import RecombineRows

    ex = config.execution
    n = chunk.num_rows
    concurrency = ex.concurrency or max(1, int(ray.cluster_resources().get("CPU", 1) // ex.cpus_per_actor))
    per_call = max(1, min(ex.rows_per_batch, -(-n // concurrency)))
    concurrency = min(concurrency, -(-n // per_call))
    ds = ray.data.from_arrow([chunk.slice(i, per_call) for i in range(0, n, per_call)])
    ds = ds.map_batches(
        RecombineRows, batch_size=per_call, batch_format="pyarrow", num_cpus=ex.cpus_per_actor,
        compute=ray.data.ActorPoolStrategy(size=concurrency),
        fn_constructor_kwargs=dict(latents_uri=table_uri(lake, "latents"), latents_version=latents_version,
                                   storage=config.storage, gates=config.gates, with_audio=config.output.audio,
                                   run_id=run_id, created_at=at, torch_threads=ex.torch_threads, **models),
    )
    write_ray_dataset(ds, table_uri(lake, "synthetic"), SYNTHETIC_SCHEMA, config.storage,
                      min_rows_per_file=ex.rows_per_file)


def _verify(summary: RecombineSummary, lake: str, config: RecombineConfig) -> pa.Table:
    """The table holds exactly the rows this run made (nothing lost, nothing doubled); returns their metadata."""
    mine = read_column_values(table_uri(lake, "synthetic"), ["synth_id", "passed", "duration_s"], config.storage,
                              f"run_id = {sql_quote(summary.run_id)}")
    if mine.num_rows != summary.to_make:
        raise RecombineAccountingError(f"synthetic holds {mine.num_rows} rows of this run, {summary.to_make} were "
                                       "to be made")
    if mine.num_rows and len(pc.unique(mine.column("synth_id"))) != mine.num_rows:
        raise RecombineAccountingError("this run wrote some synth_id twice")
    return mine


def _coverage(plan: pa.Table, made: pa.Table) -> dict[str, str]:
    """Per varied factor: distinct target values reached; speaker x environment cells new vs already in the seed."""
    if made.num_rows == 0:
        return {}
    ok = plan.filter(pc.is_in(plan.column("synth_id"), made.filter(made.column("passed")).column("synth_id")))
    out = {}
    for f in plan.column("varied")[0].as_py().split("+") if plan.num_rows else []:
        planned = len(pc.unique(plan.column(f"target_{f}")))
        out[f] = f"{len(pc.unique(ok.column(f'target_{f}')))} of {planned} planned target values have passing rows"
    new_cells = ok.filter(pc.fill_null(ok.column("new_cell"), False))
    cells = {(a, b) for a, b in zip(new_cells.column("target_speaker").to_pylist(),
                                    new_cells.column("target_environment").to_pylist())}
    out["speaker x environment"] = f"{len(cells)} cells absent from the seed now have passing rows"
    return out


def plan_only(config: RecombineConfig) -> str:
    """The plan's counts (what ``run_recombine`` would make), without making anything."""
    from recombination.plan import summarize_plan

    lake = resolve_uri(config.lake_root)
    config = config.model_copy(update={"lake_root": lake})
    _, _, codec_id, _, _, factorizer_id = _load_models(config)
    _, offsets = _latent_offsets(lake, config, codec_id)
    plan, grid = _plan(lake, config, codec_id, factorizer_id, offsets)
    return summarize_plan(plan) + (f"\n(includes the report grid: {grid.num_rows} rows)" if grid.num_rows else "")


def run_recombine(config: RecombineConfig, *, progress: Callable[[str], None] = print) -> RecombineSummary:
    """Plan, make and gate synthetic utterances into ``synthetic``; returns the summary (also in ``runs``).

    Raises:
        models.codec.CheckpointError / models.factorizer.FactorizerCheckpointError: a checkpoint is unusable.
        RecombineInputError: checkpoints that do not pair, no latents of the codec (before anything is written).
        schemas.recombine.PlanError: a filter that does not parse, no rows, no donors (before anything is written).
        RecombineAccountingError: the written rows do not add up (the run is marked failed).
    """
    lake = resolve_uri(config.lake_root)
    config = config.model_copy(update={"lake_root": lake, "codec_checkpoint": resolve_uri(config.codec_checkpoint),
                                       "factorizer_checkpoint": resolve_uri(config.factorizer_checkpoint)})
    codec, codec_config, codec_id, factorizer, f_config, factorizer_id = _load_models(config)
    latents, offsets = _latent_offsets(lake, config, codec_id)
    plan, grid = _plan(lake, config, codec_id, factorizer_id, offsets)
    generation: dict[str, Any] = {}
    if isinstance(config, GenerateConfig):  # jobs/generate.py: same plan and gates, the generator makes the rows
        from pipelines.generate import prepare_generation

        plan, generation, no_phonemes = prepare_generation(config, lake, plan, codec_id=codec_id,
                                                           factorizer_id=factorizer_id)
        if no_phonemes:
            progress(f"[generate] {no_phonemes} plan rows dropped: their content has no phonemes")
    started = _now()
    summary = RecombineSummary(run_id=f"recombine-{started:%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}", lake_root=lake,
                               codec_id=codec_id, factorizer_id=factorizer_id, plan_rows=plan.num_rows)
    from recombination.plan import summarize_plan

    summary.plan_text = summarize_plan(plan)
    progress("[recombine] plan:\n" + summary.plan_text
             + (f"\n(with the report grid: {grid.num_rows} rows, {config.output.report_rows} sources x "
                f"{config.output.report_columns} targets)" if grid.num_rows else ""))
    existing = open_table(table_uri(lake, "synthetic"), config.storage)
    done = (existing.to_table(columns=["synth_id"], filter=f"factorizer_id = {sql_quote(factorizer_id)}")
            .column("synth_id") if existing is not None else pa.array([], pa.string()))
    todo = plan.filter(pc.invert(pc.is_in(plan.column("synth_id"), done)))
    summary.already_made, summary.to_make = plan.num_rows - todo.num_rows, todo.num_rows
    sources = plan.group_by("content_segment_id").aggregate([("duration_s", "max")])
    summary.seed_s = float(pc.sum(sources.column("duration_s_max")).as_py() or 0.0)
    runs_uri = table_uri(lake, "runs")
    upsert_rows(runs_uri, [_run_row(summary, config, started, "running")], RUNS_SCHEMA, ["run_id"], config.storage)
    t0 = time.perf_counter()
    try:
        progress(f"[recombine] {summary.plan_rows} planned, {summary.already_made} already in synthetic, "
                 f"{summary.to_make} to make")
        if todo.num_rows:
            init_ray(config.execution.ray_address)  # nothing to do -> no Ray at all
            models = {"codec_config": codec_config, "factorizer_config": f_config,
                      "codec_state": {k: v.detach().cpu() for k, v in codec.state_dict().items()},
                      "factorizer_state": {k: v.detach().cpu() for k, v in factorizer.state_dict().items()},
                      **generation}
            todo = _with_offsets(todo, offsets)
            step = config.execution.commit_every_rows
            n_chunks = -(-todo.num_rows // step)
            t_work = time.perf_counter()
            for i in range(n_chunks):
                chunk = todo.slice(i * step, step)
                _make_chunk(chunk, config, lake, models, latents.version, summary.run_id, started)
                summary.rows_written += chunk.num_rows
                summary.synthetic_s += float(pc.sum(chunk.column("duration_s")).as_py() or 0.0)
                summary.work_s = time.perf_counter() - t_work
                progress(f"[recombine] chunk {i + 1}/{n_chunks} committed: {summary.rows_written}/{todo.num_rows} "
                         f"rows, {summary.synthetic_s / 3600:.3f} h ({summary.work_s:.0f} s, "
                         f"{summary.synthetic_s / max(summary.work_s, 1e-9):.1f}x real time)")
        made = _verify(summary, lake, config)
        summary.passed = int(pc.sum(made.column("passed")).as_py() or 0) if made.num_rows else 0
        summary.synthetic_passed_s = float(pc.sum(made.filter(made.column("passed")).column("duration_s")).as_py()
                                           or 0.0) if made.num_rows else 0.0
        every = read_column_values(table_uri(lake, "synthetic"), ["synth_id", "passed"], config.storage,
                                   f"factorizer_id = {sql_quote(factorizer_id)}")
        summary.coverage = _coverage(plan.select(PLAN_SCHEMA.names), every)  # this plan's rows, any run
        if config.output.report_path:
            from pipelines.recombine_report import write_report

            summary.report_path = str(write_report(lake, config, summary, grid, codec, progress=progress))
        summary.wall_s = time.perf_counter() - t0
        summary.table_versions = table_versions(lake, config.storage, _TABLES)
        upsert_rows(runs_uri, [_run_row(summary, config, started, "succeeded", ended=_now())], RUNS_SCHEMA,
                    ["run_id"], config.storage, update_existing=True)
        return summary
    except BaseException as exc:
        summary.wall_s = time.perf_counter() - t0
        upsert_rows(runs_uri, [_run_row(summary, config, started, "failed", error=f"{type(exc).__name__}: {exc}",
                                        ended=_now())], RUNS_SCHEMA, ["run_id"], config.storage, update_existing=True)
        raise
