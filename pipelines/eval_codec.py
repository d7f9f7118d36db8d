"""Codec evaluation on held-out speech: trained checkpoints against Codec2 and Opus, scored and reported.

Flow (``run_codec_eval``):

1. Check everything that would fail late, before any expensive work: each
   checkpoint loads (``CheckpointError``), each baseline is known and its
   coder runs on a short tone (``CodecNotInstalledError``), each set selects
   at least one clip.
2. Select clips per set from ``segments`` (metadata only; ids and durations).
3. Ray tasks over chunks of clips (``execution.clips_per_task``): each reads
   its clips' audio from Lance, runs every codec and scores every decode
   (``pipelines.eval.score.score_clips``); a checkpoint travels to the tasks
   once, as config + weights in the object store.
4. The driver aggregates per set and over all clips (``pipelines.eval.report``)
   and writes the Markdown report, the bar chart (codecs only: the input's
   SI-SDR of ~140 dB would flatten that panel), one JSONL line per clip x
   codec, and (optionally) the ``codec-eval`` section of ``bench/RESULTS.md``.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from pipelines.eval.baselines import BASELINES, CODEC2_MODES, run_baseline
from pipelines.eval.markdown import CodecCost, CodecInfo, SetReport, cpu_model, format_eval_report, git_revision, \
    replace_marked_section
from pipelines.eval.report import plot_codec_bars, summarize_codecs
from pipelines.eval.score import INPUT_CODEC, PCM_BITRATE_BPS, CheckpointCodec, Clip, ClipResult, score_clips
from pipelines.lance_io import open_table, read_segment_audio, table_uri
from schemas.eval_codec import RESULTS_MARKER, EvalCodecConfig
from schemas.sql import sql_list
from schemas.storage import StorageConfig, resolve_uri

__all__ = ["EvalConfigError", "EvalDataError", "EvalSet", "EvalReport", "load_codecs", "select_clips",
           "run_codec_eval", "REPORT_HEADING"]

REPORT_HEADING = "## Codec evaluation (codec issue, item 5)"
_REPO_ROOT = Path(__file__).resolve().parents[1]
_SAMPLE_RATE_HZ = 16000
_PROBE_S = 0.5


class EvalConfigError(ValueError):
    """The config names something this code does not know (a baseline, a duplicate codec name)."""


class EvalDataError(RuntimeError):
    """The lake cannot give what the config asks (no segments table, an empty set, audio not at 16 kHz)."""


@dataclass(frozen=True)
class EvalSet:
    """The clips of one held-out set, in evaluation order."""

    name: str
    filter: str
    clip_ids: list[str]
    durations_s: list[float]

    @property
    def audio_s(self) -> float:
        return float(sum(self.durations_s))


@dataclass
class EvalReport:
    """What a run produced: per-set and overall summaries, every clip result, the Markdown, the files written."""

    sets: list[SetReport]
    overall: SetReport
    results: list[ClipResult]
    markdown: str
    wall_s: float
    paths: dict[str, Path] = field(default_factory=dict)


def load_codecs(config: EvalCodecConfig) -> tuple[list[CheckpointCodec], list[str]]:
    """Load every checkpoint and check every baseline runs here; fails before any expensive work.

    Raises:
        CheckpointError: a checkpoint is missing, corrupt or not a codec checkpoint.
        CodecNotInstalledError: a baseline's coder binary is not installed.
        EvalConfigError: an unknown baseline name, or two checkpoints with the same name.
    """
    from models.codec import load_checkpoint

    baselines = list(BASELINES) if config.baselines is None else list(config.baselines)
    unknown = [b for b in baselines if b not in BASELINES]
    if unknown:
        raise EvalConfigError(f"unknown baseline(s) {unknown}; known: {sorted(BASELINES)}")
    loaded = []
    for spec in config.checkpoints:
        path = resolve_uri(spec.path)
        loaded.append((spec, path, *load_checkpoint(path)))
    default_names = [cfg.name for _, _, _, cfg, _ in loaded]
    checkpoints = []
    for spec, path, model, cfg, meta in loaded:
        name = spec.name or (cfg.name if default_names.count(cfg.name) == 1 else f"{cfg.name}@{meta.step}")
        checkpoints.append(CheckpointCodec.from_loaded(name, path, model, cfg, meta))
    names = [c.name for c in checkpoints] + baselines + [INPUT_CODEC]
    if len(set(names)) != len(names):
        raise EvalConfigError(f"codec names must be unique, got {names}; give checkpoints a `name`")
    t = np.arange(int(_PROBE_S * _SAMPLE_RATE_HZ)) / _SAMPLE_RATE_HZ
    tone = (0.3 * np.sin(2 * np.pi * 220.0 * t)).astype(np.float32)
    for name in baselines:
        run_baseline(name, tone)  # raises CodecNotInstalledError naming the Debian package
    return checkpoints, baselines


def select_clips(config: EvalCodecConfig) -> tuple[list[EvalSet], int]:
    """Each set's clips (ids, durations; ``segment_id`` order, at least ``min_clip_s``) and the table version read.

    Raises:
        EvalDataError: no ``segments`` table under the lake root, or a set that selects no clip.
    """
    lake_root = resolve_uri(config.lake_root)
    ds = open_table(table_uri(lake_root, "segments"), config.storage)
    if ds is None:
        raise EvalDataError(f"no segments table under {lake_root}; run jobs/curate.py first")
    sets = []
    for spec in config.sets:
        where = spec.segments_filter(config.holdout_corpora)
        rows = ds.to_table(columns=["segment_id", "duration_s"],
                           filter=f"({where}) AND duration_s >= {config.min_clip_s!r}").to_pylist()
        rows.sort(key=lambda r: r["segment_id"])
        rows = rows[: spec.max_clips]
        if not rows:
            raise EvalDataError(f"set {spec.name!r} selects no segment of at least {config.min_clip_s} s "
                                f"in {lake_root} (filter: {where})")
        sets.append(EvalSet(name=spec.name, filter=where, clip_ids=[r["segment_id"] for r in rows],
                            durations_s=[float(r["duration_s"]) for r in rows]))
    return sets, ds.version


def run_codec_eval(config: EvalCodecConfig, *, command: str | None = None,
                   progress: Callable[[str], None] = print) -> EvalReport:
    """Evaluate the configured codecs on the held-out sets and write the report files.

    Args:
        config: the validated job config.
        command: the command line to print in the report (default: the job with this config's defaults).
        progress: receives one line per finished chunk of clips.

    Returns:
        The :class:`EvalReport`; ``paths`` names every file written.

    Example::

        config = load_config("configs/eval_codec.yaml", EvalCodecConfig)
        report = run_codec_eval(config)
        print(report.markdown)
    """
    from pipelines.ray_env import init_ray

    started = time.perf_counter()
    context = (f"Date: {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC; git {git_revision(_REPO_ROOT)}; "
               f"machine: {cpu_model()}; load average at start {os.getloadavg()[0]:.2f}")
    checkpoints, baselines = load_codecs(config)
    sets, version = select_clips(config)
    init_ray(config.execution.ray_address, num_cpus=config.execution.num_cpus)
    results = _score_on_ray(config, sets, checkpoints, baselines, progress)
    wall_s = time.perf_counter() - started

    set_reports = [_set_report(s.name, s.filter, s.clip_ids, s.durations_s, results) for s in sets]
    overall = _overall(sets, results)
    out = config.output
    paths = {"report_md": Path(resolve_uri(out.report_md)), "chart_png": Path(resolve_uri(out.chart_png)),
             "scores_jsonl": Path(resolve_uri(out.scores_jsonl))}
    plot_codec_bars([c for c in overall.summaries if c.codec_name != INPUT_CODEC] or overall.summaries,
                    paths["chart_png"], title=f"Held-out speech: {overall.n_clips} clips, "
                                          f"{overall.audio_s / 60:.1f} min (medians, interquartile ranges)")
    _write_jsonl(results, paths["scores_jsonl"])
    cpus = _ray_cpus()
    codecs = _codec_infos(checkpoints, baselines, config.include_input)
    lake = f"`{config.lake_root}` (segments version {version}); clips of at least {config.min_clip_s:g} s"

    def render(md_path: Path) -> str:
        chart = os.path.relpath(paths["chart_png"], md_path.parent)
        jsonl = os.path.relpath(paths["scores_jsonl"], md_path.parent)
        return format_eval_report(heading=REPORT_HEADING, command=command or _default_command(), context=context,
                                  lake=lake, codecs=codecs, sets=set_reports, overall=overall, chart=chart,
                                  wall_s=wall_s, cpus=cpus, notes=[f"Per-clip scores: `{jsonl}`."])

    markdown = render(paths["report_md"])
    paths["report_md"].parent.mkdir(parents=True, exist_ok=True)
    paths["report_md"].write_text(markdown)
    if out.results_md:
        paths["results_md"] = Path(resolve_uri(out.results_md))
        replace_marked_section(paths["results_md"], RESULTS_MARKER, render(paths["results_md"]))
    return EvalReport(sets=set_reports, overall=overall, results=results, markdown=markdown, wall_s=wall_s,
                      paths=paths)


def _score_on_ray(config: EvalCodecConfig, sets: Sequence[EvalSet], checkpoints: list[CheckpointCodec],
                  baselines: list[str], progress: Callable[[str], None]) -> list[ClipResult]:
    """One task per chunk of clips; results come back in set and clip order."""
    import ray

    ex = config.execution
    task = ray.remote(num_cpus=ex.num_cpus_per_task)(_score_chunk)
    checkpoints_ref = ray.put(checkpoints)
    lake_root = resolve_uri(config.lake_root)
    pending = {}
    for s in sets:
        for i in range(0, len(s.clip_ids), ex.clips_per_task):
            ids = s.clip_ids[i:i + ex.clips_per_task]
            ref = task.remote(lake_root, config.storage, ids, s.name, checkpoints_ref, baselines,
                              config.include_input, config.with_dnsmos, ex.torch_threads)
            pending[ref] = (s.name, i)
    done: dict[tuple[str, int], list[ClipResult]] = {}
    total, started = len(pending), time.perf_counter()
    while pending:
        ready, _ = ray.wait(list(pending), num_returns=1)
        key = pending.pop(ready[0])
        done[key] = ray.get(ready[0])
        progress(f"  {len(done)}/{total} chunks scored ({time.perf_counter() - started:.0f} s)")
    return [r for key in sorted(done, key=lambda k: ([s.name for s in sets].index(k[0]), k[1])) for r in done[key]]


def _score_chunk(lake_root: str, storage: StorageConfig, clip_ids: list[str], set_name: str,
                 checkpoints: list[CheckpointCodec], baselines: list[str], include_input: bool, with_dnsmos: bool,
                 torch_threads: int) -> list[ClipResult]:
    """A Ray task: read these clips' audio and score every codec on them."""
    quoted = sql_list(clip_ids)
    audio = {sid: (samples, rate) for sid, samples, rate in
             read_segment_audio(lake_root, storage, filter=f"segment_id IN ({quoted})")}
    clips = []
    for sid in clip_ids:
        samples, rate = audio[sid]
        if rate != _SAMPLE_RATE_HZ or np.asarray(samples).ndim != 1:
            raise EvalDataError(f"segment {sid} is not 16 kHz mono (rate {rate}, shape {np.shape(samples)})")
        clips.append(Clip(sid, np.asarray(samples, dtype=np.float32)))
    return score_clips(clips, set_name=set_name, checkpoints=checkpoints, baselines=baselines,
                       include_input=include_input, with_dnsmos=with_dnsmos, torch_threads=torch_threads)


def _set_report(name: str, where: str, clip_ids: Sequence[str], durations_s: Sequence[float],
                results: Sequence[ClipResult]) -> SetReport:
    """Summaries of the results whose clips are in ``clip_ids`` (one row per codec, first seen first)."""
    wanted = set(clip_ids)
    rows = [r for r in results if r.clip_id in wanted]
    costs: dict[str, CodecCost] = {}
    for r in rows:
        cost = costs.setdefault(r.codec_name, CodecCost([], [], [], []))
        cost.codec_s.append(r.codec_s)
        cost.score_s.append(r.score_s)
        cost.codec_cpu_s.append(r.codec_cpu_s)
        cost.score_cpu_s.append(r.score_cpu_s)
    return SetReport(name=name, filter=where, n_clips=len(clip_ids), audio_s=float(sum(durations_s)),
                     summaries=summarize_codecs([r.clip_score() for r in rows]), costs=costs)


def _overall(sets: Sequence[EvalSet], results: Sequence[ClipResult]) -> SetReport:
    """All sets together; a clip in two sets counts once."""
    durations = {}
    for s in sets:
        durations.update(zip(s.clip_ids, s.durations_s))
    seen, unique = set(), []
    for r in results:
        if (r.codec_name, r.clip_id) not in seen:
            seen.add((r.codec_name, r.clip_id))
            unique.append(r)
    return _set_report("all", " OR ".join(f"({s.filter})" for s in sets), list(durations),
                       list(durations.values()), unique)


def _codec_infos(checkpoints: Sequence[CheckpointCodec], baselines: Sequence[str],
                 include_input: bool) -> list[CodecInfo]:
    infos = [CodecInfo(c.name, "checkpoint", f"`{_display(c.path)}`: {c.codec_id}, step {c.step}", c.bitrate_bps)
             for c in checkpoints]
    for name in baselines:
        roundtrip = BASELINES[name]
        keywords = dict(getattr(roundtrip, "keywords", {}))
        detail = ", ".join(f"{k}={v!r}" for k, v in keywords.items())
        nominal = (CODEC2_MODES[keywords["mode"]][0] if "mode" in keywords
                   else 1000.0 * keywords["bitrate_kbps"] if "bitrate_kbps" in keywords else None)
        infos.append(CodecInfo(name, "baseline", f"`{getattr(roundtrip, 'func', roundtrip).__name__}({detail})`",
                               nominal))
    if include_input:
        infos.append(CodecInfo(INPUT_CODEC, "input", "the unprocessed clip (16-bit PCM)", PCM_BITRATE_BPS))
    return infos


def _write_jsonl(results: Sequence[ClipResult], path: Path) -> None:
    """One JSON object per clip x codec; NaN scores as null."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as f:
        for r in results:
            row = asdict(r)
            row.update(row.pop("scores"))
            f.write(json.dumps({k: (None if isinstance(v, float) and not math.isfinite(v) else v)
                                for k, v in row.items()}) + "\n")


def _ray_cpus() -> float:
    import ray

    return float(ray.cluster_resources().get("CPU", 0.0))


def _display(path: str) -> str:
    try:
        return str(Path(path).relative_to(_REPO_ROOT))
    except ValueError:
        return path


def _default_command() -> str:
    return "python jobs/eval_codec.py --config configs/eval_codec.yaml"
