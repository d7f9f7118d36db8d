"""Codec speed (codec issue, item 6): encode and decode real-time factors on this CPU, batched.

What is timed: ``SpeechCodec.encode`` (waveform -> uint16 codes) and
``SpeechCodec.decode`` (codes -> waveform) under ``torch.inference_mode``,
on batches of fixed-length audio (default 8 x 10 s and 1 x 60 s), after one
untimed warm-up per shape; the median over ``--repeats`` is quoted. Speed
does not depend on the weights, so an untrained preset (``--preset``) times
the same network as its checkpoint; the audio is Gaussian noise (conv cost
does not depend on content either).

A mode is processes x torch threads: ``1x1`` is one thread (the per-core
figure the target is stated in), ``1x2`` one process with two threads (both
run in this process, threads set per mode), ``2x1`` two spawned processes
with one thread each, started together on every repeat (the whole machine;
wall = the slower of the two). x real time = audio seconds processed / wall seconds; per core =
that / (processes x threads). Target: encoding >= 100x real time per core.

    .venv/bin/python bench/codec_speed.py --checkpoint checkpoints/codec_50hz_2x8555.pt --repeats 5 --write-results
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import statistics
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Sequence

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # run as a script: make `models` and `pipelines` importable
    sys.path.insert(0, str(REPO_ROOT))

from pipelines.eval.markdown import cpu_model, git_revision, replace_marked_section  # noqa: E402

__all__ = ["ModelSource", "SpeedRow", "measure_codec_speed", "format_speed_report", "main", "RESULTS_MARKER",
           "TARGET_ENCODE_RTF_PER_CORE"]

RESULTS_MARKER = "codec-speed"
SECTION = "## Codec speed (codec issue, item 6)"
TARGET_ENCODE_RTF_PER_CORE = 100.0
_SAMPLE_RATE_HZ = 16000
_DIRECTIONS = ("encode", "decode")


@dataclass(frozen=True)
class ModelSource:
    """Where the timed codec comes from: a checkpoint path, or a preset name (untrained weights)."""

    checkpoint: str | None = None
    preset: str | None = None

    def load(self):
        """(model in eval mode, config, description)."""
        from models.codec import build_codec, load_checkpoint, preset

        if self.checkpoint:
            model, config, meta = load_checkpoint(self.checkpoint)
            return model, config, f"checkpoint `{_display(self.checkpoint)}` ({meta.codec_id}, step {meta.step})"
        config = preset(self.preset or "codec_50hz_2x8555")
        return build_codec(config).eval(), config, f"preset `{config.name}` (untrained weights; same network)"


@dataclass(frozen=True)
class SpeedRow:
    """One direction x shape x mode: wall seconds of every repeat (the slowest process when several)."""

    direction: str
    batch: int
    clip_s: float
    processes: int
    threads: int
    wall_s: list[float]

    @property
    def audio_s(self) -> float:
        """Audio seconds processed per repeat, over all processes."""
        return self.processes * self.batch * self.clip_s

    @property
    def rtf(self) -> float:
        """x real time: audio seconds per wall second (median repeat)."""
        return self.audio_s / statistics.median(self.wall_s)

    @property
    def rtf_per_core(self) -> float:
        return self.rtf / (self.processes * self.threads)


def measure_codec_speed(source: ModelSource, *, shapes: Sequence[tuple[int, float]] = ((8, 10.0), (1, 60.0)),
                        modes: Sequence[tuple[int, int]] = ((1, 1), (1, 2), (2, 1)),
                        repeats: int = 5) -> list[SpeedRow]:
    """Time encode and decode for every (batch, clip seconds) shape in every (processes, threads) mode.

    Example:
        >>> rows = measure_codec_speed(ModelSource(preset="codec_tiny_test"), shapes=[(2, 1.0)], modes=[(1, 1)],
        ...                            repeats=1)
        >>> [(r.direction, r.batch) for r in rows]
        [('encode', 2), ('decode', 2)]
    """
    if repeats < 1:
        raise ValueError("repeats must be >= 1")
    rows = []
    for processes, threads in modes:
        if processes == 1:
            outcomes = [_time_in_process(source, threads, list(shapes), repeats)]
        else:
            outcomes = _time_in_processes(source, processes, threads, list(shapes), repeats)
        errors = [o for o in outcomes if isinstance(o, str)]
        if errors:
            raise RuntimeError(f"timing worker failed: {errors[0]}")
        for (batch, clip_s) in shapes:
            for direction in _DIRECTIONS:
                per_repeat = [max(o[(batch, clip_s, direction)][r] for o in outcomes) for r in range(repeats)]
                rows.append(SpeedRow(direction, batch, clip_s, processes, threads, per_repeat))
    return rows


def _time_in_process(source: ModelSource, threads: int, shapes: list[tuple[int, float]],
                     repeats: int) -> dict[tuple[int, float, str], list[float]]:
    """Time here with ``threads`` torch threads (restored afterwards)."""
    import torch

    before = torch.get_num_threads()
    try:
        return _time_shapes(source, threads, shapes, repeats, barrier=None)
    finally:
        torch.set_num_threads(before)


def _time_in_processes(source: ModelSource, processes: int, threads: int, shapes: list[tuple[int, float]],
                       repeats: int) -> list:
    """Time in ``processes`` spawned processes at once (a barrier starts every repeat together)."""
    context = mp.get_context("spawn")  # lance and Ray are not fork-safe; spawn starts clean interpreters
    barrier, queue = context.Barrier(processes), context.Queue()
    workers = [context.Process(target=_time_worker, args=(source, threads, shapes, repeats, barrier, queue))
               for _ in range(processes)]
    for w in workers:
        w.start()
    outcomes = [queue.get() for _ in workers]
    for w in workers:
        w.join()
    return outcomes


def _time_worker(source: ModelSource, threads: int, shapes: list[tuple[int, float]], repeats: int, barrier,
                 queue) -> None:
    """In a spawned process: put {(batch, clip_s, direction): [s]}, or the error as a string."""
    try:
        queue.put(_time_shapes(source, threads, shapes, repeats, barrier))
    except BaseException as exc:  # noqa: BLE001 - reported to the parent, which raises
        queue.put(f"{type(exc).__name__}: {exc}")
        barrier.abort()  # the other processes must not wait for this one


def _time_shapes(source: ModelSource, threads: int, shapes: list[tuple[int, float]], repeats: int,
                 barrier) -> dict[tuple[int, float, str], list[float]]:
    """Encode and decode wall seconds per shape and repeat, after one untimed warm-up per shape."""
    import torch

    torch.set_num_threads(threads)
    model, _, _ = source.load()
    generator = torch.Generator().manual_seed(0)
    timings: dict[tuple[int, float, str], list[float]] = {}
    for batch, clip_s in shapes:
        wav = 0.1 * torch.randn(batch, int(round(clip_s * _SAMPLE_RATE_HZ)), generator=generator)
        codes = model.encode(wav).codes
        model.decode(codes, wav.shape[-1])  # warm-up: allocator, kernels, weight-norm caches
        for direction in _DIRECTIONS:
            times = []
            for _ in range(repeats):
                if barrier is not None:
                    barrier.wait()
                started = time.perf_counter()
                if direction == "encode":
                    model.encode(wav)
                else:
                    model.decode(codes, wav.shape[-1])
                times.append(time.perf_counter() - started)
            timings[(batch, clip_s, direction)] = times
    return timings


def format_speed_report(rows: Sequence[SpeedRow], *, command: str, model: str, load_before: float,
                        load_after: float) -> str:
    """The Markdown section: provenance, one row per measurement, and the target verdict."""
    import torch

    lines = [SECTION, "", f"Command: `{command}`  ",
             f"Date: {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC; git {git_revision(REPO_ROOT)}  ",
             f"CPU (lscpu): {cpu_model()}; torch {torch.__version__}; load average {load_before:.2f} at start, "
             f"{load_after:.2f} at end (other work on the machine slows the figures)  ",
             f"Model: {model}", "",
             f"Median (min-max) over {len(rows[0].wall_s)} repeats after a warm-up. *procs x threads*: processes "
             "timed together x torch threads each; *x real time*: audio s / wall s over all processes; *per core*: "
             "that / (procs x threads).", "",
             "| direction | batch | procs x threads | audio s | wall s | x real time | per core | target |",
             "| --- | --- | --- | ---: | ---: | ---: | ---: | --- |"]
    for r in rows:
        target = ""
        if r.direction == "encode":
            met = r.rtf_per_core >= TARGET_ENCODE_RTF_PER_CORE
            target = f">= {TARGET_ENCODE_RTF_PER_CORE:g}x per core: {'yes' if met else '**no**'}"
        lines.append(f"| {r.direction} | {r.batch} x {r.clip_s:g} s | {r.processes} x {r.threads} | {r.audio_s:g} | "
                     f"{statistics.median(r.wall_s):.3f} ({min(r.wall_s):.3f}-{max(r.wall_s):.3f}) | "
                     f"{r.rtf:,.0f}x | {r.rtf_per_core:,.0f}x | {target} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """CLI entry: time the codec, print the table, optionally record it in bench/RESULTS.md."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--checkpoint", help="codec checkpoint (models.codec.save_checkpoint)")
    which.add_argument("--preset", help="a preset name, untrained (default codec_50hz_2x8555 without --checkpoint)")
    parser.add_argument("--shapes", default="8x10,1x60", help="batch x clip seconds, comma-separated")
    parser.add_argument("--modes", default="1x1,1x2,2x1", help="processes x torch threads, comma-separated")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--write-results", action="store_true",
                        help=f"replace the <!-- {RESULTS_MARKER}:begin/end --> block of --results-md")
    parser.add_argument("--results-md", type=Path, default=REPO_ROOT / "bench/RESULTS.md")
    args = parser.parse_args(argv)
    try:
        shapes = [(int(b), float(s)) for b, s in (item.split("x") for item in args.shapes.split(","))]
        modes = [(int(p), int(t)) for p, t in (item.split("x") for item in args.modes.split(","))]
    except ValueError:
        parser.error("--shapes and --modes take comma-separated NxM items, e.g. 8x10,1x60 and 1x1,2x1")
    source = ModelSource(checkpoint=args.checkpoint, preset=args.preset)
    from models.codec import CheckpointError

    try:
        _, _, model = source.load()  # fail here, once, with the checkpoint's own message
    except (CheckpointError, KeyError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    load_before = os.getloadavg()[0]
    rows = measure_codec_speed(source, shapes=shapes, modes=modes, repeats=args.repeats)
    command = " ".join([".venv/bin/python", "bench/codec_speed.py", *(sys.argv[1:] if argv is None else argv)])
    section = format_speed_report(rows, command=command, model=model, load_before=load_before,
                                  load_after=os.getloadavg()[0])
    print(section)
    if args.write_results:
        replace_marked_section(args.results_md, RESULTS_MARKER, section)
        print(f"wrote {args.results_md}")
    return 0


def _display(path: str) -> str:
    try:
        return str(Path(path).resolve().relative_to(REPO_ROOT))
    except ValueError:
        return path


if __name__ == "__main__":
    sys.exit(main())
