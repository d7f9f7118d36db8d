"""Throughput of the streaming training input (issue #5, item 1): latent frames per second into a consumer.

The same rows (one epoch's plan of ``pipelines.train_input``: every real row + its synthetic quota), the same
window cropping (``--max-frames``, a uniformly drawn start in longer rows) and the same batch size, through:

- ``lance+ray-train``: ``make_training_dataset`` -> ``TorchTrainer`` (1 worker, 0.5 CPU) ->
  ``get_dataset_shard("train").iter_torch_batches`` (the reference: ratio 1.00);
- ``lance+ray-data``: the same dataset, ``iter_torch_batches`` in the driver;
- ``lance-direct``: ``read_training_batch`` called in a plain loop (no Ray): what the Lance takes cost alone;
- ``webdataset-w0`` / ``-w1``: the rows exported to tar shards, ``webdataset`` + torch ``DataLoader``
  (0 workers, or 1 spawned persistent worker);
- ``parquet``: the rows in one Parquet file, ``pyarrow.dataset`` row groups.

Shuffle: Lance reads a full per-epoch permutation (done on the plan); WebDataset and Parquet shuffle shard /
row-group order per epoch plus a ``--shuffle-buffer`` of samples (``bench/train_input_readers.py``). The
consumer only counts (frames, rows): this measures the input, not a model. Each input runs ``--warmup`` passes,
then ``--epochs`` timed passes; figures are medians.

    .venv/bin/python bench/train_input.py --lake-root data/lake --synthetic-per-real 1 --write-results
    .venv/bin/python bench/train_input.py --generate-rows 10000 --synthetic-per-real 1 --write-results

Exit 0, or 1 with one ``error: ...`` line (a lake the input cannot read, see ``pipelines.train_input``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # run as a script: make `pipelines` importable
    sys.path.insert(0, str(REPO_ROOT))

from bench.train_input_readers import (export_rows, iter_parquet_batches,  # noqa: E402
                                       make_webdataset_loader)
from pipelines.eval.markdown import cpu_model, git_revision, replace_marked_section  # noqa: E402

__all__ = ["PassResult", "InputResult", "write_generated_lake", "measure_inputs", "format_results", "main",
           "RESULTS_MARKER", "METHODS"]

RESULTS_MARKER = "train-input"
METHODS = ("lance+ray-data", "lance+ray-train", "lance-direct", "webdataset-w0", "webdataset-w1", "parquet")
_SHUFFLE = {"lance": "full permutation per epoch (plan)", "webdataset": "shard order + sample buffer",
            "parquet": "row-group order + sample buffer"}


@dataclass
class PassResult:
    """One timed pass over the epoch."""

    seconds: float
    frames: int
    rows: int


@dataclass
class InputResult:
    """The timed passes of one input (warm-up excluded)."""

    method: str
    passes: list[PassResult]
    stages: int

    @property
    def seconds(self) -> float:
        return statistics.median(p.seconds for p in self.passes)

    @property
    def frames_per_s(self) -> float:
        return self.passes[0].frames / self.seconds

    @property
    def rows_per_s(self) -> float:
        return self.passes[0].rows / self.seconds

    @property
    def mb_per_s(self) -> float:
        """uint16 code payload delivered (valid frames x stages x 2 bytes), in MB/s."""
        return self.frames_per_s * self.stages * 2 / 1e6


def write_generated_lake(lake: Path, *, rows: int, synthetic_per_real: float, seed: int = 0,
                         codec_id: str = "codec_bench-0-w0", stages: int = 2) -> str:
    """A lake shaped like the demo's (1-6 s rows at 50 Hz, 2 stages, 80/10/10 splits, 80 % of synthetic passed),
    with random codes and 2-byte audio placeholders (the input never reads audio). Returns its root."""
    import lance
    import pyarrow as pa

    from pipelines.lance_io import table_uri
    from schemas.latents import LATENTS_SCHEMA
    from schemas.segments import SEGMENTS_SCHEMA
    from schemas.synthetic import SYNTHETIC_SCHEMA

    rng = np.random.default_rng(seed)
    when = datetime(2026, 1, 1, tzinfo=timezone.utc)

    def table(schema: pa.Schema, columns: dict[str, Any], n: int) -> pa.Table:
        return pa.table({f.name: pa.array(columns[f.name], f.type) if f.name in columns else pa.nulls(n, f.type)
                         for f in schema}, schema=schema)

    def codes_column(frames: np.ndarray) -> pa.Array:
        offsets = np.concatenate([[0], np.cumsum(frames * stages)]).astype(np.int32)
        values = rng.integers(0, 1000, size=int(offsets[-1]), dtype=np.uint16)
        return pa.ListArray.from_arrays(pa.array(offsets), pa.array(values, pa.uint16()))

    ids = [f"seg{i:07d}" for i in range(rows)]
    duration = rng.uniform(1.0, 6.0, rows).round(3)
    frames = np.ceil(duration * 50).astype(np.int64)
    split = rng.choice(["train", "valid", "test"], size=rows, p=[0.8, 0.1, 0.1])
    speaker, env = rng.integers(0, 50, rows), rng.choice(["clean", "room", "noise", "room+noise"], rows)
    text = rng.integers(0, 200, rows)
    segs = {"segment_id": ids, "source_uri": [f"file:///gen/{i}.wav" for i in ids], "source_sha256": ids,
            "start_s": np.zeros(rows), "end_s": duration, "duration_s": duration, "sample_rate_hz": [16000] * rows,
            "pcm_hash": ids, "split": split, "speaker": [f"gen:{s}" for s in speaker], "language": ["en"] * rows,
            "text_id": [f"t{t}" for t in text], "transcript": [f"sentence {t}" for t in text], "environment": env,
            "channel": ["clean"] * rows, "clipping_ratio": np.zeros(rows), "silence_ratio": np.zeros(rows),
            "source_sample_rate_hz": [16000] * rows, "source_channels": [1] * rows, "source_format": ["WAV"] * rows,
            "run_id": ["gen"] * rows, "ingested_at": [when] * rows, "audio": [b"\0\0"] * rows}
    lat = {"segment_id": ids, "codec_id": [codec_id] * rows, "num_frames": frames, "num_stages": [stages] * rows,
           "frame_rate_hz": [50.0] * rows, "bitrate_bps": [1000.0] * rows, "num_samples": frames * 320,
           "sample_rate_hz": [16000] * rows, "duration_s": duration, "split": split,
           "speaker": segs["speaker"], "segments_version": [1] * rows, "run_id": ["gen"] * rows,
           "encoded_at": [when] * rows}
    opts = {"mode": "create", "max_rows_per_file": 4096}
    lance.write_dataset(table(SEGMENTS_SCHEMA, segs, rows), table_uri(str(lake), "segments"), **opts)
    lance.write_dataset(table(LATENTS_SCHEMA, {**lat, "codes": codes_column(frames)}, rows),
                        table_uri(str(lake), "latents"), **opts)
    train = np.flatnonzero(split == "train")
    n_syn = int(round(synthetic_per_real * len(train) / 0.8))
    if n_syn:
        content, donor = rng.choice(train, n_syn), rng.choice(train, n_syn)
        syn_frames = frames[content]
        syn = {"synth_id": [f"syn{j:07d}" for j in range(n_syn)], "content_segment_id": [ids[c] for c in content],
               "speaker_segment_id": [ids[d] for d in donor], "language": ["en"] * n_syn,
               "target_speaker": [segs["speaker"][d] for d in donor],
               "target_environment": [env[c] for c in content], "duration_s": duration[content],
               "varied": ["speaker"] * n_syn, "strategy": ["random"] * n_syn, "codec_id": [codec_id] * n_syn,
               "factorizer_id": ["factorizer_bench"] * n_syn, "plan_seed": [seed] * n_syn, "run_id": ["gen"] * n_syn,
               "created_at": [when] * n_syn, "num_frames": syn_frames, "num_stages": [stages] * n_syn,
               "frame_rate_hz": [50.0] * n_syn, "passed": rng.random(n_syn) < 0.8, "rejected_by": [""] * n_syn,
               "codes": codes_column(syn_frames)}
        for f in ("style", "environment", "channel"):
            syn[f"{f}_segment_id"] = syn["content_segment_id"]
        lance.write_dataset(table(SYNTHETIC_SCHEMA, syn, n_syn), table_uri(str(lake), "synthetic"), **opts)
    return str(lake)


def _count(batches: Iterable[dict[str, Any]]) -> PassResult:
    t0, frames, rows = time.perf_counter(), 0, 0
    for batch in batches:
        frames += int(batch["lengths"].sum())
        rows += int(len(batch["lengths"]))
    return PassResult(time.perf_counter() - t0, frames, rows)


def _train_worker(config: dict[str, Any]) -> None:
    """Ray Train worker: time each pass over the shard, write them to a file (Train V2 keeps no free metrics)."""
    import ray.train

    shard = ray.train.get_dataset_shard("train")
    passes = []
    for _ in range(config["passes"]):
        t0, frames, rows = time.perf_counter(), 0, 0
        for batch in shard.iter_torch_batches(batch_size=config["batch_size"], prefetch_batches=config["prefetch"]):
            frames += int(batch["lengths"].sum())
            rows += int(len(batch["lengths"]))
        passes.append({"seconds": time.perf_counter() - t0, "frames": frames, "rows": rows})
    with open(config["out"], "w") as f:
        json.dump(passes, f)
    ray.train.report({"passes": len(passes)})


def _lance_direct(index, plan, batch_size: int) -> Iterable[dict[str, Any]]:
    import torch

    from pipelines.train_input import read_training_batch

    sources = {n: (index.uris[n], index.versions[n]) for n in ("latents", "synthetic", "factors")
               if n in index.versions}
    step = index.config.rows_per_block
    for start in range(0, plan.num_rows, step):
        block = plan.slice(start, step)
        out = read_training_batch({c: block.column(c).to_numpy() for c in block.column_names}, sources=sources,
                                  max_frames=index.config.max_frames, num_stages=index.num_stages)
        for i in range(0, block.num_rows, batch_size):
            yield {k: torch.from_numpy(v[i:i + batch_size]) for k, v in out.items()}


def measure_inputs(index, *, methods: Iterable[str], warmup: int, epochs: int, shuffle_buffer: int, work_dir: Path,
                   progress: Callable[[str], None] = print) -> tuple[list[InputResult], dict[str, Any]]:
    """Time every input in ``methods`` over epoch 1's plan of ``index``; returns the results and export facts."""
    from pipelines.train_input import make_training_dataset, plan_epoch, train_data_config

    cfg, methods = index.config, list(methods)
    batch_size, max_frames, stages, seed = cfg.batch_size, cfg.max_frames, index.num_stages, cfg.seed
    plan, passes = plan_epoch(index, 1), warmup + epochs
    facts: dict[str, Any] = {"rows": plan.num_rows, "frames": int(np.sum(plan.column("length").to_numpy())),
                             "synthetic": int(np.sum(plan.column("origin").to_numpy()))}
    if any(m.startswith(("webdataset", "parquet")) for m in methods):
        t0 = time.perf_counter()
        facts.update(export_rows(index, plan, work_dir / "export"))
        facts["export_s"] = time.perf_counter() - t0
        progress(f"exported {plan.num_rows} rows to {len(facts['shards'])} shards "
                 f"({facts['wds_bytes'] / 1e6:.1f} MB) and Parquet ({facts['parquet_bytes'] / 1e6:.1f} MB) "
                 f"in {facts['export_s']:.1f} s")
    results = []
    for method in methods:
        if method == "lance+ray-train":
            runs = _ray_train_passes(make_training_dataset(index, 1), train_data_config(), batch_size, passes,
                                     work_dir)
        elif method == "lance+ray-data":
            ds = make_training_dataset(index, 1)
            runs = [_count(ds.iter_torch_batches(batch_size=batch_size, prefetch_batches=4)) for _ in range(passes)]
        elif method == "lance-direct":
            runs = [_count(_lance_direct(index, plan, batch_size)) for _ in range(passes)]
        elif method.startswith("webdataset-w"):
            loader = make_webdataset_loader(facts["shards"], batch_size=batch_size, max_frames=max_frames,
                                            stages=stages, shuffle_buffer=shuffle_buffer, seed=seed,
                                            num_workers=int(method[len("webdataset-w"):]))
            runs = [_count(loader) for _ in range(passes)]
            del loader
        elif method == "parquet":
            runs = [_count(iter_parquet_batches(facts["parquet"], batch_size=batch_size, max_frames=max_frames,
                                                stages=stages, shuffle_buffer=shuffle_buffer, epoch=e, seed=seed))
                    for e in range(passes)]
        else:
            raise ValueError(f"unknown method {method!r}: choose from {', '.join(METHODS)}")
        if any((r.frames, r.rows) != (facts["frames"], facts["rows"]) for r in runs):
            raise RuntimeError(f"{method} delivered {[(r.rows, r.frames) for r in runs]} (rows, frames), "
                               f"the plan has {(facts['rows'], facts['frames'])}")
        result = InputResult(method, runs[warmup:], stages)
        results.append(result)
        progress(f"{method}: {result.frames_per_s:,.0f} frames/s ({result.rows_per_s:,.0f} rows/s), passes "
                 + ", ".join(f"{r.seconds:.2f}" for r in runs) + " s")
    return results, facts


def _ray_train_passes(dataset, data_config, batch_size: int, passes: int, work_dir: Path) -> list[PassResult]:
    import ray.train
    from ray.train.torch import TorchTrainer

    out = work_dir / "ray_train_passes.json"
    out.unlink(missing_ok=True)
    trainer = TorchTrainer(
        _train_worker, train_loop_config={"passes": passes, "batch_size": batch_size, "prefetch": 4, "out": str(out)},
        scaling_config=ray.train.ScalingConfig(num_workers=1, resources_per_worker={"CPU": 0.5}),
        run_config=ray.train.RunConfig(name=f"bench-train-input-{time.strftime('%Y%m%dT%H%M%S')}",
                                       storage_path=str((work_dir / "ray_train").resolve())),
        datasets={"train": dataset}, dataset_config=data_config)
    trainer.fit()
    return [PassResult(**p) for p in json.loads(out.read_text())]


def format_results(results: list[InputResult], facts: dict[str, Any], *, command: str, lake: str, index,
                   load_start: tuple[float, ...], load_end: tuple[float, ...], warmup: int, shuffle_buffer: int,
                   title: str = "") -> str:
    """The RESULTS.md section (Markdown)."""
    import torch

    reference = next((r for r in results if r.method == "lance+ray-train"), results[0])
    cfg = index.config
    lines = [
        f"## Training input throughput (issue #5, item 1){title}", "",
        f"Command: `{command}`  ",
        f"Date: {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC; git {git_revision(REPO_ROOT)}  ",
        f"Machine: {cpu_model()}; torch {torch.__version__}; load average {load_start[0]:.2f} at start, "
        f"{load_end[0]:.2f} at end (other helpers' jobs shared the 2 cores: figures are noisy; compare the ratios)  ",
        f"Rows: lake `{lake}`, codec `{index.codec_id}`, one epoch's plan: {facts['rows']} rows "
        f"({facts['rows'] - facts['synthetic']} real, {facts['synthetic']} synthetic from a pool of "
        f"{index.n_synthetic} passed rows, ratio {cfg.synthetic_per_real:g}), {facts['frames']:,} frames after "
        f"cropping to {cfg.max_frames} frames; "
        f"batch {cfg.batch_size}; {index.num_stages} stages; Ray Data blocks of {cfg.rows_per_block} rows"
        + (f"; factor vectors of `{cfg.factorizer_id}` joined (Lance inputs only: the exports hold codes and "
           "labels)" if cfg.factorizer_id else "; no factor vectors") + ".", "",
        f"Median of {len(reference.passes)} timed passes after {warmup} warm-up pass(es). MB/s counts the uint16 "
        f"code payload delivered. Shuffle buffer (WebDataset, Parquet): {shuffle_buffer} samples. The consumer "
        "only counts frames, so this is the input's ceiling, not a training step. For scale: factorizer training "
        "(its section above) consumed at most 16 x 200 frames x 1.99 steps/s = 6,400 frames/s.", "",
        "| input | shuffle | frames/s | rows/s | MB/s | x lance+ray-train | pass s (min-max) |",
        "| --- | --- | ---: | ---: | ---: | ---: | --- |",
    ]
    for r in results:
        kind = r.method.split("+")[0].split("-")[0]
        secs = [p.seconds for p in r.passes]
        lines.append(f"| {r.method} | {_SHUFFLE[kind]} | {r.frames_per_s:,.0f} | {r.rows_per_s:,.0f} | "
                     f"{r.mb_per_s:.2f} | {r.frames_per_s / reference.frames_per_s:.2f} | "
                     f"{r.seconds:.2f} ({min(secs):.2f}-{max(secs):.2f}) |")
    if "wds_bytes" in facts:
        lines += ["", f"Export of the same rows (full length): {len(facts['shards'])} WebDataset shards, "
                      f"{facts['wds_bytes'] / 1e6:.1f} MB; Parquet {facts['parquet_bytes'] / 1e6:.1f} MB; "
                      f"{facts['export_s']:.1f} s."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """CLI entry: index, export, time every input, print, and (``--write-results``) write the RESULTS.md section."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lake-root", default="data/lake")
    parser.add_argument("--generate-rows", type=int, default=0, help="write a generated lake of this many "
                        "segments under --work-dir and measure on it (instead of --lake-root)")
    parser.add_argument("--codec-id", default=None, help="default: the codec with the most latents rows")
    parser.add_argument("--synthetic-per-real", type=float, default=1.0)
    parser.add_argument("--real-filter", default=None, help="default: the input's (train split, held-out "
                        "corpora excluded)")
    parser.add_argument("--factorizer-id", default=None, help="also join this factorizer's vectors (Lance inputs)")
    parser.add_argument("--max-frames", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--rows-per-block", type=int, default=2048)
    parser.add_argument("--shuffle-buffer", type=int, default=1000)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--epochs", type=int, default=3, help="timed passes per input")
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--work-dir", type=Path, default=REPO_ROOT / "data/bench/train_input")
    parser.add_argument("--write-results", action="store_true")
    parser.add_argument("--results-md", type=Path, default=REPO_ROOT / "bench/RESULTS.md")
    parser.add_argument("--marker", default=RESULTS_MARKER, help="section marker in --results-md (a second run, "
                        "e.g. on a generated lake, can keep its own section)")
    args = parser.parse_args(argv)
    from pipelines.train_input import index_training_rows
    from schemas.train_input import TrainInputError, parse_train_input_config

    load_start = os.getloadavg()
    args.work_dir.mkdir(parents=True, exist_ok=True)
    lake = args.lake_root
    if args.generate_rows:
        lake = write_generated_lake(Path(tempfile.mkdtemp(prefix="lake-", dir=args.work_dir)), rows=args.generate_rows,
                                    synthetic_per_real=args.synthetic_per_real)
    try:
        config = parse_train_input_config({
            "lake_root": lake, "codec_id": args.codec_id or _commonest_codec(lake),
            "synthetic_per_real": args.synthetic_per_real,
            **({"real_filter": args.real_filter} if args.real_filter else {}),
            "max_frames": args.max_frames, "batch_size": args.batch_size, "rows_per_block": args.rows_per_block,
            "factorizer_id": args.factorizer_id})
        index = index_training_rows(config)
    except (TrainInputError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(index.format(), flush=True)
    from pipelines.ray_env import init_ray

    init_ray()  # before the first `import ray`: a local Ray stays on loopback
    results, facts = measure_inputs(index, methods=args.methods.split(","), warmup=args.warmup, epochs=args.epochs,
                                    shuffle_buffer=args.shuffle_buffer, work_dir=args.work_dir)
    command = ".venv/bin/python bench/train_input.py " + " ".join(argv if argv is not None else sys.argv[1:])
    section = format_results(results, facts, command=command.strip(), lake=lake if not args.generate_rows else
                             f"generated, {args.generate_rows} segments", index=index, load_start=load_start,
                             load_end=os.getloadavg(), warmup=args.warmup, shuffle_buffer=args.shuffle_buffer,
                             title=": generated lake" if args.generate_rows else ": demo lake" if
                             Path(lake).resolve() == (REPO_ROOT / "data/lake").resolve() else "")
    print(section)
    if args.write_results:
        print(f"wrote {replace_marked_section(args.results_md, args.marker, section)}")
    return 0


def _commonest_codec(lake: str) -> str:
    import pyarrow.compute as pc

    from pipelines.lance_io import open_table, table_uri
    from schemas.storage import StorageConfig, resolve_uri

    ds = open_table(table_uri(resolve_uri(lake), "latents"), StorageConfig())
    if ds is None:
        raise FileNotFoundError(f"no latents table under {lake}")
    counts = pc.value_counts(ds.to_table(columns=["codec_id"]).column("codec_id").combine_chunks())
    return max(counts.to_pylist(), key=lambda c: c["counts"])["values"]


if __name__ == "__main__":
    sys.exit(main())
