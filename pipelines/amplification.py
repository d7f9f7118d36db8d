"""The amplification experiment: the same recognizer on seed only vs. seed + recombined / generated rows.

Steps (``schemas.amplification`` explains the design)::

    pool rows -> held-out speakers (drawn with holdout.seed) -> seed filter, held-out-cells filter
      -> recombine on the seed (balanced: the missing cells first), factor gates; idempotent by synth_id
      -> one jobs/train_ctc run per (condition, seed), equal steps, each resumable in its own folder
      -> PER of every model on held-out cells, unseen speakers, real recordings
      -> results.json, the chart (PNG) and the `amplification` section of bench/RESULTS.md

Every trained model is a normal ``train_ctc`` output folder, so a re-run
after a kill resumes the unfinished ones and only re-reads the others'
``eval.json``.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from pipelines.lance_io import open_table, table_uri
from schemas.amplification import AmplificationConfig
from schemas.sql import sql_list
from schemas.storage import resolve_uri
from schemas.train_ctc import CtcEvalSet, TrainCtcConfig
from schemas.train_input import TrainInputConfig, TrainInputError

__all__ = ["SeedSplit", "Condition", "RunResult", "split_seed", "conditions", "run_amplification",
           "summarize", "HELDOUT_SET"]

HELDOUT_SET = "heldout_cells"


@dataclass(frozen=True)
class SeedSplit:
    """The experiment's seed and its gap, as SQL over ``segments``, with counts."""

    seed_filter: str
    heldout_filter: str
    heldout_speakers: list[str]
    environments: list[str]
    pool_rows: int
    seed_rows: int
    heldout_rows: int
    speakers: int


@dataclass(frozen=True)
class Condition:
    """One training condition: a name, the synthetic share and which synthetic rows."""

    name: str
    ratio: float
    synthetic_filter: str

    @property
    def label(self) -> str:
        return "seed" if self.ratio == 0 else f"{self.name} {self.ratio:g}x"


@dataclass
class RunResult:
    """One trained model's scores (PER per eval set)."""

    condition: str
    ratio: float
    seed: int
    ctc_id: str
    output_dir: str
    steps: int
    train_minutes: float
    real_rows: int
    synthetic_per_epoch: int
    synthetic_pool: int
    per: dict[str, float] = field(default_factory=dict)
    rows: dict[str, int] = field(default_factory=dict)


def split_seed(config: AmplificationConfig) -> SeedSplit:
    """Choose the held-out speakers and write the seed / held-out-cells filters.

    Raises:
        TrainInputError: no segments table, a pool filter that does not run, or a pool without speakers.
    """
    lake = resolve_uri(config.lake_root)
    ds = open_table(table_uri(lake, "segments"), config.storage)
    if ds is None:
        raise TrainInputError(f"no segments table under {lake}: run jobs/curate.py first")
    try:
        pool = ds.to_table(columns=["speaker", "environment"], filter=config.pool_filter)
    except Exception as exc:  # lance: ValueError/OSError with a Rust backtrace
        raise TrainInputError(f"pool_filter {config.pool_filter!r} cannot run: "
                              f"{str(exc).strip().splitlines()[0]}") from None
    speakers = sorted({s for s in pool.column("speaker").to_pylist() if s is not None})
    if len(speakers) < 2:
        raise TrainInputError(f"pool_filter {config.pool_filter!r} gives {len(speakers)} speakers; need >= 2")
    rng = np.random.default_rng(config.holdout.seed)
    count = max(1, int(round(config.holdout.speaker_fraction * len(speakers))))
    held = sorted(rng.permutation(speakers)[:count].tolist())
    cell = f"speaker IN ({sql_list(held)}) AND environment IN ({sql_list(config.holdout.environments)})"
    envs = pool.column("environment").to_pylist()
    in_cells = sum(1 for s, e in zip(pool.column("speaker").to_pylist(), envs)
                   if s in held and e in config.holdout.environments)
    if in_cells == 0:
        raise TrainInputError(f"no pool row of the held-out speakers is in environments "
                              f"{config.holdout.environments}: nothing to hold out")
    return SeedSplit(seed_filter=f"({config.pool_filter}) AND NOT ({cell})",
                     heldout_filter=f"({config.pool_filter}) AND {cell}", heldout_speakers=held,
                     environments=list(config.holdout.environments), pool_rows=pool.num_rows,
                     seed_rows=pool.num_rows - in_cells, heldout_rows=in_cells, speakers=len(speakers))


def conditions(config: AmplificationConfig, *, generated_rows: int) -> list[Condition]:
    """Seed alone, seed + k x recombined for every ratio, and seed + generated when there are generated rows."""
    out = [Condition("recombined" if r else "seed", float(r), config.recombined_filter) for r in config.ratios]
    if config.generated_filter and generated_rows:
        out.append(Condition("generated", config.generated_ratio, config.generated_filter))
    return out


def _count_synthetic(config: AmplificationConfig, row_filter: str | None) -> int:
    if not row_filter:
        return 0
    ds = open_table(table_uri(resolve_uri(config.lake_root), "synthetic"), config.storage)
    if ds is None:
        return 0
    try:
        return ds.count_rows(filter=row_filter)
    except Exception as exc:
        raise TrainInputError(f"synthetic filter {row_filter!r} cannot run: {str(exc).strip().splitlines()[0]}") \
            from None


def _recombine(config: AmplificationConfig, split: SeedSplit, progress: Callable[[str], None]):
    from pipelines.recombine import run_recombine
    from schemas.recombine import RecombineConfig, RecombineOutputConfig, RecombinePlanConfig

    budget = config.recombine_budget or int(math.ceil(1.5 * max(config.ratios) * split.seed_rows))
    rc = RecombineConfig(lake_root=config.lake_root, codec_checkpoint=config.codec_checkpoint,
                         factorizer_checkpoint=config.factorizer_checkpoint, storage=config.storage,
                         plan=RecombinePlanConfig(source_filter=split.seed_filter, donor_filter=split.seed_filter,
                                                  vary=["speaker", "environment"], strategy="balanced",
                                                  budget=budget, max_rows=max(budget, 1), seed=0),
                         gates=config.gates, output=RecombineOutputConfig(audio=False, report_path=None))
    progress(f"[amplification] recombining the seed: budget {budget} plan rows")
    return run_recombine(rc, progress=progress)


def _ctc_config(config: AmplificationConfig, split: SeedSplit, cond: Condition, seed: int) -> TrainCtcConfig:
    inp = TrainInputConfig(lake_root=config.lake_root, storage=config.storage,
                           codec_checkpoint=None if config.codec_id else config.codec_checkpoint,
                           codec_id=config.codec_id, real_filter=split.seed_filter,
                           synthetic_filter=cond.synthetic_filter, synthetic_per_real=cond.ratio,
                           lineage_filter=split.seed_filter, max_frames=config.max_frames, crop="start",
                           batch_size=config.batch_size, seed=seed)
    sets = [CtcEvalSet(name=HELDOUT_SET, filter=split.heldout_filter), *config.eval_sets]
    out = f"{config.output_dir.rstrip('/')}/{cond.name}_x{cond.ratio:g}_s{seed}"
    return TrainCtcConfig(input=inp, valid_filter=config.valid_filter, eval_sets=sets, output_dir=out,
                          phoneme_cache=config.phoneme_cache,
                          preset=None if config.model else config.preset, model=config.model,
                          training=config.training.model_copy(update={"seed": seed}), execution=config.execution)


def run_amplification(config: AmplificationConfig, *, progress: Callable[[str], None] = print) -> dict:
    """Run (or resume) the whole experiment; returns the results (also written to ``output_dir/results.json``)."""
    from pipelines.train_ctc import run_train_ctc

    t0 = time.perf_counter()
    config = config.model_copy(update={"lake_root": resolve_uri(config.lake_root),
                                       "output_dir": resolve_uri(config.output_dir)})
    split = split_seed(config)
    progress(f"[amplification] pool {split.pool_rows} rows, {split.speakers} speakers; held out "
             f"{len(split.heldout_speakers)} speakers x {split.environments}: {split.heldout_rows} rows; "
             f"seed {split.seed_rows} rows")
    recombine_summary = _recombine(config, split, progress) if config.recombine else None
    generated = _count_synthetic(config, config.generated_filter)
    conds = conditions(config, generated_rows=generated)
    results: list[RunResult] = []
    for cond in conds:
        for seed in config.seeds:
            progress(f"[amplification] {cond.label}, seed {seed}")
            s = run_train_ctc(_ctc_config(config, split, cond, seed), progress=progress)
            results.append(RunResult(condition=cond.name, ratio=cond.ratio, seed=seed, ctc_id=s.ctc_id,
                                     output_dir=s.output_dir, steps=s.end_step, train_minutes=s.train_seconds / 60,
                                     real_rows=s.real_rows, synthetic_per_epoch=s.synthetic_per_epoch,
                                     synthetic_pool=s.synthetic_pool,
                                     per={k: v["per"] for k, v in s.eval.items()},
                                     rows={k: int(v["rows"]) for k, v in s.eval.items()}))
    report = {"config": config.model_dump(mode="json"), "split": asdict(split),
              "recombine": None if recombine_summary is None else {
                  "run_id": recombine_summary.run_id, "plan_rows": recombine_summary.plan_rows,
                  "rows_written": recombine_summary.rows_written, "already_made": recombine_summary.already_made,
                  "passed": recombine_summary.passed},
              "generated_rows": generated, "runs": [asdict(r) for r in results],
              "summary": summarize(results), "wall_s": time.perf_counter() - t0}
    out = Path(config.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(report, indent=2))
    return report


def summarize(results: list[RunResult]) -> list[dict]:
    """Per (condition, ratio) and eval set: mean, std (ddof 1) and min/max of PER over the seeds."""
    rows = []
    keys = sorted({(r.condition, r.ratio) for r in results}, key=lambda k: (k[0] != "seed", k[0], k[1]))
    for cond, ratio in keys:
        group = [r for r in results if (r.condition, r.ratio) == (cond, ratio)]
        for name in group[0].per:
            values = np.array([r.per[name] for r in group], dtype=float)
            rows.append({"condition": cond, "ratio": ratio, "set": name, "seeds": len(values),
                         "mean": float(values.mean()), "std": float(values.std(ddof=1)) if len(values) > 1 else 0.0,
                         "min": float(values.min()), "max": float(values.max()),
                         "rows": group[0].rows.get(name, 0), "pool": group[0].synthetic_pool,
                         "synthetic_per_epoch": group[0].synthetic_per_epoch})
    return rows
