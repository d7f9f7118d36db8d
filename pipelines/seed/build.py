"""Build the seed corpus: plan everything, render what is missing in parallel, then manifest, shards, bad inputs.

Idempotent: an item whose spec hash is in the ledger and whose file is on
disk is reused (no write), derived outputs are rewritten only when their
content changes, files no longer planned are removed. ``force`` rebuilds all.

Example::

    from schemas.curate import load_config
    from schemas.seed import SeedConfig
    from pipelines.seed import build_seed_corpus
    summary = build_seed_corpus(load_config("configs/make_seed_corpus_tiny.yaml", SeedConfig))
    print(summary.format())
"""

from __future__ import annotations

import hashlib
import multiprocessing
import sys
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from collections.abc import Callable

from pipelines.seed.ambience import AMBIENCE_PACKAGES, list_ambience_recordings
from pipelines.seed.bad_inputs import plan_bad_inputs, write_bad_inputs
from pipelines.seed.debian import PackageInfo, ensure_packages, read_package_info
from pipelines.seed.formats import format_manifest, shard_key, write_bytes_if_changed, write_shards
from pipelines.seed.items import RenderItem, spec_hash
from pipelines.seed.ledger import Ledger
from pipelines.seed.plan import plan_real_items, plan_synthetic_items, plan_variant_items
from pipelines.seed.provenance import summarize_provenance, write_provenance
from pipelines.seed.real_speech import REAL_SOURCE_PACKAGES, list_real_utterances
from pipelines.seed.render import render_item
from pipelines.seed.sentences import read_sentences
from pipelines.seed.voices import check_distinct_voices, check_voices, voice_packages
from schemas.seed import SeedConfig
from schemas.storage import resolve_uri

__all__ = ["SeedBuildSummary", "required_packages", "plan_seed_corpus", "build_seed_corpus"]

_PART_ORDER = ("real", "synthetic", "variants-synthetic", "variants-real")


@dataclass
class SeedBuildSummary:
    """What a build produced (hours are of audio, wall time of the build)."""

    root: Path
    files: int = 0
    built: int = 0
    reused: int = 0
    removed: int = 0
    hours_by_part: dict[str, float] = field(default_factory=dict)
    hours_by_corpus: dict[str, float] = field(default_factory=dict)
    hours_by_voice: dict[str, float] = field(default_factory=dict)
    files_by_format: dict[str, int] = field(default_factory=dict)
    files_by_rate_hz: dict[int, int] = field(default_factory=dict)
    files_by_channels: dict[int, int] = field(default_factory=dict)
    shards: int = 0
    bad_inputs: int = 0
    disk_bytes: int = 0
    wall_s: float = 0.0

    def format(self) -> str:
        """Human-readable report for the job's output."""
        lines = [f"seed corpus: {self.root}",
                 f"  files: {self.files} (built {self.built}, reused {self.reused}, removed {self.removed}); "
                 f"shards: {self.shards}; bad inputs: {self.bad_inputs}; disk: {self.disk_bytes / 2**20:.1f} MiB; "
                 f"wall: {self.wall_s:.1f} s",
                 "  hours by part: " + ", ".join(f"{k} {v:.3f}" for k, v in self.hours_by_part.items()),
                 "  hours by corpus: " + ", ".join(f"{k} {v:.3f}" for k, v in sorted(self.hours_by_corpus.items())),
                 f"  voices: {len(self.hours_by_voice)} ("
                 + ", ".join(f"{k} {v * 60:.1f} min" for k, v in sorted(self.hours_by_voice.items())) + ")",
                 "  formats: " + ", ".join(f"{k} {v}" for k, v in sorted(self.files_by_format.items())),
                 "  rates: " + ", ".join(f"{k} Hz {v}" for k, v in sorted(self.files_by_rate_hz.items())),
                 "  channels: " + ", ".join(f"{k}ch {v}" for k, v in sorted(self.files_by_channels.items()))]
        return "\n".join(lines)


def required_packages(config: SeedConfig) -> list[str]:
    """Debian packages this config needs (data, synthesizers, codec tools)."""
    pkgs: list[str] = []
    for source in config.real.sources:
        pkgs += REAL_SOURCE_PACKAGES[source]
    for voice in config.synthetic.voices:
        pkgs += voice_packages(voice)
    env = config.environment
    if "ambience" in env.noise_types:
        pkgs += AMBIENCE_PACKAGES
    if "codec2" in env.channels or "telephone" in env.channels or config.bad.enabled:
        pkgs.append("codec2")
    if "opus" in env.channels:
        pkgs.append("opus-tools")
    if config.bad.enabled:
        pkgs += ["espeak-ng", "ffmpeg"]
    return list(dict.fromkeys(pkgs))


def _info(name: str, cache: dict[str, PackageInfo]) -> PackageInfo:
    if name not in cache:
        cache[name] = read_package_info(name)
    return cache[name]


def plan_seed_corpus(config: SeedConfig, packages: dict[str, PackageInfo]) -> list[RenderItem]:
    """Every output file of ``config`` (real copies, synthetic renders, variants), sorted by part then path."""
    real_utts = [u for source in config.real.sources for u in list_real_utterances(source)]
    for u in real_utts:
        _info(u.package, packages)
    real = plan_real_items(real_utts, packages, seed=config.seed, max_files=config.real.max_files_per_source)
    voices = check_voices(config.synthetic.voices)
    check_distinct_voices(config.synthetic.voices)  # one voice under two labels would fake a speaker
    for v in voices:
        _info(voice_packages(v.voice_id)[-1], packages)
    sentences = [s for path in config.synthetic.sentence_files for s in read_sentences(path)]
    synthetic = plan_synthetic_items(sentences, voices, packages, config.synthetic, config.formats, seed=config.seed)
    env = config.environment
    ambience = list_ambience_recordings() if "ambience" in env.noise_types else []
    babble_pool = [i for i in synthetic if i.labels.get("style") == "neutral"]
    variants = plan_variant_items(synthetic, env, config.formats, seed=config.seed, share=env.synthetic_share,
                                  ambience=ambience, babble_pool=babble_pool, tag="synthetic")
    variants += plan_variant_items(real, env, config.formats, seed=config.seed, share=env.real_share,
                                   ambience=ambience, babble_pool=babble_pool, tag="real")
    items = real + synthetic + variants
    paths = Counter(i.rel_path for i in items)
    keys = Counter(shard_key(i.rel_path) for i in items)
    clashes = [p for p, n in paths.items() if n > 1] + [k for k, n in keys.items() if n > 1]
    if clashes:
        raise ValueError(f"planned output paths/keys collide: {clashes[:5]}")
    return items


class _Progress:
    """Counts per part on stderr, at most every 2 s and at 100%."""

    def __init__(self, part: str, total: int, reused: int, emit: Callable[[str], None]):
        self.part, self.total, self.done, self.reused, self.emit, self.last = part, total, reused, reused, emit, 0.0
        self.started = time.monotonic()
        self.show(force=True)

    def step(self) -> None:
        self.done += 1
        self.show(force=self.done == self.total)

    def show(self, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self.last >= 2.0:
            pct = 100.0 * self.done / self.total if self.total else 100.0
            self.emit(f"[seed] {self.part}: {self.done}/{self.total} ({pct:.0f}%), {self.reused} reused, "
                      f"{now - self.started:.0f} s")
            self.last = now


def _render_job(job: tuple[RenderItem, str, str]) -> tuple[str, str, dict | None, int, str | None]:
    item, spec, root = job
    try:
        row = render_item(item, Path(root))
        return item.rel_path, spec, row, (Path(root) / item.rel_path).stat().st_size, None
    except Exception as exc:  # reported with the item's path; the rest of the build goes on
        return item.rel_path, spec, None, 0, f"{type(exc).__name__}: {exc}"


def _default_emit(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def build_seed_corpus(config: SeedConfig, *, force: bool = False,
                      emit: Callable[[str], None] = _default_emit) -> SeedBuildSummary:
    """Build (or bring up to date) the corpus described by ``config``; returns what it holds.

    Args:
        config: a validated :class:`schemas.seed.SeedConfig`.
        force: rebuild every file even if the ledger says it is current.
        emit: where progress lines go (stderr by default).

    Returns:
        A :class:`SeedBuildSummary`; raises ``MissingPackagesError`` before any work when Debian packages are
        missing and cannot be installed, ``RuntimeError`` naming the items that failed to render.
    """
    started = time.monotonic()
    root = Path(resolve_uri(config.output_dir))
    root.mkdir(parents=True, exist_ok=True)
    needed = required_packages(config)
    installed = ensure_packages(needed, install=config.install_missing_packages)
    if installed:
        emit(f"[seed] installed Debian packages: {' '.join(installed)}")
    packages: dict[str, PackageInfo] = {}
    for name in needed:
        _info(name, packages)
    items = plan_seed_corpus(config, packages)
    ledger = Ledger.load(root / ".build" / "ledger.json")
    summary = SeedBuildSummary(root=root)
    summary.removed = _remove_stale(root, ledger, {i.rel_path for i in items})
    specs = {i.rel_path: spec_hash(i) for i in items}
    summary.built = _render_all(root, items, specs, ledger, workers=config.workers, force=force, emit=emit)
    summary.reused = len(items) - summary.built

    rows = [ledger.row(i.rel_path) for i in items]
    write_bytes_if_changed(root / "manifest.jsonl", format_manifest(rows))
    shards = _write_shards_if_changed(root, rows, specs, ledger, config, force=force, emit=emit)
    if config.bad.enabled:
        bad_items = plan_bad_inputs(config.bad.long_file_s)
        emit(f"[seed] bad inputs: {len(bad_items)} (+ a missing-file manifest row)")
        done = {} if force else dict(ledger.extras.get("bad", {}))
        ledger.extras["bad"] = write_bad_inputs(root / "bad", bad_items, done)
        summary.bad_inputs = len(bad_items) + 1
    _write_provenance(root, rows, config, packages, needed)
    ledger.save()

    _fill_summary(summary, items, rows, shards)
    summary.disk_bytes = sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
    summary.wall_s = time.monotonic() - started
    return summary


def _remove_stale(root: Path, ledger: Ledger, planned: set[str]) -> int:
    """Delete files the ledger knows but the plan no longer has, and temp files of a killed run."""
    stale = sorted(set(ledger.files) - planned)
    for rel_path in stale:
        (root / rel_path).unlink(missing_ok=True)
        ledger.forget(rel_path)
    for tmp in (root / "audio").rglob("*.tmp") if (root / "audio").exists() else []:
        tmp.unlink()
    return len(stale)


def _render_all(root: Path, items: list[RenderItem], specs: dict[str, str], ledger: Ledger, *, workers: int,
                force: bool, emit: Callable[[str], None]) -> int:
    """Render every item not current in the ledger, part by part, on ``workers`` processes; returns the count."""
    by_part: dict[str, list[RenderItem]] = defaultdict(list)
    for item in items:
        by_part[item.part].append(item)
    built, failures = 0, []
    with multiprocessing.get_context("fork").Pool(workers) as pool:
        for part in [p for p in _PART_ORDER if p in by_part]:
            todo = [i for i in by_part[part] if force or not ledger.is_current(root, i.rel_path, specs[i.rel_path])]
            progress = _Progress(part, len(by_part[part]), len(by_part[part]) - len(todo), emit)
            jobs = [(i, specs[i.rel_path], str(root)) for i in todo]
            chunk = 16 if part == "real" else 2
            for n, (rel_path, spec, row, size, error) in enumerate(pool.imap_unordered(_render_job, jobs, chunk), 1):
                if error is None:
                    ledger.record(rel_path, spec, size, row)
                    built += 1
                else:
                    failures.append(f"{rel_path}: {error}")
                progress.step()
                if n % 500 == 0:
                    ledger.save()
            ledger.save()
    if failures:
        raise RuntimeError(f"{len(failures)} items failed to render (re-run resumes):\n" + "\n".join(failures[:20]))
    return built


def _write_shards_if_changed(root: Path, rows: list[dict], specs: dict[str, str], ledger: Ledger,
                             config: SeedConfig, *, force: bool, emit: Callable[[str], None]) -> int:
    """(Re)write the WebDataset shards when any file or the shard sizes changed; returns the shard count."""
    fmt = config.formats
    state = repr((sorted(specs.items()), fmt.shard_max_bytes, fmt.shard_max_files))
    digest = hashlib.sha256(state.encode()).hexdigest()
    shard_dir = root / "shards"
    count = len(list(shard_dir.glob("seed-*.tar")))
    if force or ledger.extras.get("shards") != digest or count != ledger.extras.get("shard_count"):
        emit("[seed] shards: writing WebDataset tar shards")
        ledger.extras.pop("shards", None)  # a run killed while writing shards rewrites them all
        ledger.save()
        count = len(write_shards(root, rows, shard_dir, max_bytes=fmt.shard_max_bytes, max_files=fmt.shard_max_files))
        ledger.extras["shards"], ledger.extras["shard_count"] = digest, count
    return count


def _write_provenance(root: Path, rows: list[dict], config: SeedConfig, packages: dict[str, PackageInfo],
                      needed: list[str]) -> None:
    corpus_packages = {src: list(REAL_SOURCE_PACKAGES[src]) for src in config.real.sources}
    for voice in config.synthetic.voices:
        engine = voice.partition(":")[0]
        corpus_packages[engine] = list(dict.fromkeys(corpus_packages.get(engine, []) + voice_packages(voice)))
    for pkgs in corpus_packages.values():
        for p in pkgs:
            _info(p, packages)
    tools = [t for t in ("codec2", "opus-tools", "ffmpeg") if t in needed]
    ambience = ([(n, s.path, pkg) for n, s, pkg in list_ambience_recordings()]
                if "ambience" in config.environment.noise_types else [])
    write_provenance(root, summarize_provenance(rows, packages, corpus_packages, ambience, tools))


def _fill_summary(summary: SeedBuildSummary, items: list[RenderItem], rows: list[dict], shards: int) -> None:
    hours_part: dict[str, float] = defaultdict(float)
    hours_corpus: dict[str, float] = defaultdict(float)
    hours_voice: dict[str, float] = defaultdict(float)
    for item, row in zip(items, rows, strict=True):
        h = row.get("duration_s", 0.0) / 3600
        hours_part[item.part] += h
        hours_corpus[row["corpus"]] += h
        if row.get("synthetic") and not row.get("clean_path"):
            hours_voice[row["speaker"]] += h
    summary.files = len(rows)
    summary.shards = shards
    summary.hours_by_part = {p: round(hours_part[p], 4) for p in _PART_ORDER if p in hours_part}
    summary.hours_by_corpus = {k: round(v, 4) for k, v in hours_corpus.items()}
    summary.hours_by_voice = {k: round(v, 4) for k, v in hours_voice.items()}
    summary.files_by_format = dict(Counter(r["path"].rpartition(".")[2] for r in rows))
    summary.files_by_rate_hz = dict(Counter(r.get("sample_rate_hz") for r in rows))
    summary.files_by_channels = dict(Counter(r.get("num_channels") for r in rows))
