"""Recombination quality (issue #4, item 4): disentanglement probes, swap accuracy, parallel ground truth, speed.

Everything is measured on held-out data: segments with ``split = 'test'`` in the lake, whose speakers codec and
factorizer training never saw (the curation split is by speaker); the parallel-distance pairs also leave out
every sentence (``text_id``) that occurs in the train split. The measurements themselves live in
``pipelines.eval.recombine_quality`` (its docstring says exactly what each does); this script reads the lake,
runs them, prints progress and writes the Markdown report.

    .venv/bin/python bench/recombine_quality.py --lake-root data/lake \\
        --codec-checkpoint checkpoints/codec_50hz_2x8555.pt --factorizer-checkpoint checkpoints/factorizer_default.pt \\
        --max-rows 400 --seed 0 --out bench/recombine_quality.md --write-results

Deterministic for a seed (one torch thread by default). Exit 0, or 1 with one ``error: ...`` line when a
checkpoint is unusable, the factorizer was trained on another codec, or the lake has no latents of the codec
for test segments.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # run as a script: make `models` and `pipelines` importable
    sys.path.insert(0, str(REPO_ROOT))

from pipelines.eval.markdown import cpu_model, git_revision, replace_marked_section  # noqa: E402
from pipelines.eval.recombine_quality import (CONTENT_FEATURES, LABELS, SPEAKER_WITHIN_LANGUAGE,  # noqa: E402
                                              HeldOutRows, ParallelDistances, ParallelPlan, ProbeJudge,
                                              ProbeResult, SwapAccuracy, SwapThroughput)

__all__ = ["HeldOutError", "HeldOutSet", "RecombineQuality", "read_held_out", "measure_recombine_quality",
           "format_quality_report", "main", "RESULTS_MARKER"]

RESULTS_MARKER = "recombine-quality"
SECTION = "## Recombination quality (issue #4, item 4)"
HELD_OUT_SPLIT = "test"
#: Issue targets: speaker-ID from content within this many points of chance; swap accuracy at least this.
TARGET_CONTENT_SPEAKER_MARGIN = 0.10
TARGET_SWAP_ACCURACY = 0.90
_LIST_SPEAKERS_UP_TO = 12


class HeldOutError(ValueError):
    """The lake cannot give held-out rows for this codec; the message is one line."""


@dataclass
class HeldOutSet:
    """The held-out rows measured, the train split's sentences, and where they were read."""

    rows: HeldOutRows
    train_text_ids: set[str]
    available_rows: int
    segments_version: int
    latents_version: int


def read_held_out(lake: str, codec_id: str, *, max_rows: int, seed: int, storage=None) -> HeldOutSet:
    """Test-split segments that have latents of ``codec_id``: codes and labels (a seeded sample of ``max_rows``).

    Raises:
        HeldOutError: no segments or latents table, or no latents of the codec for test segments.
    """
    from pipelines.lance_io import open_table, table_uri
    from schemas.sql import sql_list, sql_quote
    from schemas.storage import StorageConfig

    storage = storage or StorageConfig()
    seg = open_table(table_uri(lake, "segments"), storage)
    if seg is None:
        raise HeldOutError(f"no segments table under {lake}: run jobs/curate.py first")
    lat = open_table(table_uri(lake, "latents"), storage)
    if lat is None:
        raise HeldOutError(f"no latents table under {lake}: run jobs/encode.py first")
    meta = seg.to_table(columns=["segment_id", *LABELS], filter=f"split = '{HELD_OUT_SPLIT}'")
    ids = meta.column("segment_id").to_pylist()
    codes = lat.to_table(columns=["segment_id", "num_frames", "num_stages", "num_samples", "frame_rate_hz", "codes"],
                         filter=f"codec_id = {sql_quote(codec_id)} AND segment_id IN ({sql_list(ids)})"
                         ) if ids else None
    if codes is None or codes.num_rows == 0:
        have = sorted(set(lat.to_table(columns=["codec_id"]).column("codec_id").to_pylist()))
        raise HeldOutError(f"no latents of codec {codec_id!r} for split = '{HELD_OUT_SPLIT}' segments under {lake} "
                           f"({len(ids)} test segments; latents hold codecs: {', '.join(have) or 'none'}): encode the "
                           "lake with this codec first (jobs/encode.py)")
    rates = sorted(set(codes.column("frame_rate_hz").to_pylist()))
    if len(rates) != 1:
        raise HeldOutError(f"latents of codec {codec_id!r} have several frame rates {rates}: inconsistent table")
    codes = codes.sort_by("segment_id")  # pyarrow cannot join on a table with a list column: look labels up
    pick = np.arange(codes.num_rows)
    if codes.num_rows > max_rows:
        pick = np.sort(np.random.default_rng(seed).choice(codes.num_rows, size=max_rows, replace=False))
    chosen = codes.take(pick)
    segment_ids = chosen.column("segment_id").to_pylist()
    at = {sid: k for k, sid in enumerate(ids)}
    labels = {name: meta.column(name).to_pylist() for name in LABELS}
    train_text = seg.to_table(columns=["text_id"], filter="split = 'train' AND text_id IS NOT NULL")
    rows = HeldOutRows(
        segment_ids=segment_ids,
        codes=[np.asarray(c.values.to_numpy(), np.uint16).reshape(f, s) for c, f, s in
               zip(chosen.column("codes"), chosen.column("num_frames").to_pylist(),
                   chosen.column("num_stages").to_pylist())],
        num_samples=chosen.column("num_samples").to_pylist(),
        labels={name: [values[at[sid]] for sid in segment_ids] for name, values in labels.items()},
        frame_rate_hz=float(rates[0]))
    return HeldOutSet(rows, set(train_text.column("text_id").to_pylist()), codes.num_rows, seg.version, lat.version)


def _read_references(lake: str, rows: HeldOutRows, indices: Sequence[int], sample_rate_hz: int,
                     storage=None) -> dict[int, np.ndarray]:
    """Real recordings (``segments.audio``) of the given rows."""
    from pipelines.lance_io import read_segment_audio
    from schemas.sql import sql_list
    from schemas.storage import StorageConfig

    if not indices:
        return {}
    wanted = {rows.segment_ids[i]: i for i in indices}
    out = {}
    for sid, samples, rate in read_segment_audio(lake, storage or StorageConfig(),
                                                 filter=f"segment_id IN ({sql_list(sorted(wanted))})"):
        if rate != sample_rate_hz:
            raise HeldOutError(f"segment {sid} is stored at {rate} Hz, the codec works at {sample_rate_hz} Hz")
        out[wanted[sid]] = samples.astype(np.float32, copy=False)
    return out


@dataclass
class RecombineQuality:
    """Everything the report shows."""

    held_out: HeldOutSet
    probes: list[ProbeResult]
    swaps: SwapAccuracy | None
    parallel_plan: ParallelPlan
    parallel: ParallelDistances | None
    throughput: SwapThroughput
    seconds: dict[str, float]
    voice_swaps: tuple[SwapAccuracy, SwapAccuracy] | None = None   # (one donor row, the voice's mean), halved judge
    probe_judge: ProbeJudge | None = None   # the second judge, on the voice's-mean swaps


def measure_recombine_quality(codec, factorizer, held_out: HeldOutSet, *, lake: str, max_swaps: int,
                              max_pairs: int, throughput_rows: int, repeats: int, seed: int, batch_size: int = 16,
                              judge=None, progress: Callable[[str], None] = print) -> RecombineQuality:
    """Run the four measurements on ``held_out`` (``judge``: a SpeakerJudge, loaded here when None and needed)."""
    from pipelines.eval import recombine_quality as rq

    rows, seconds = held_out.rows, {}
    started = time.perf_counter()
    progress(f"factorizing {len(rows)} held-out rows ({rows.audio_s / 60:.1f} min)")
    features = rq.measure_row_features(factorizer, codec, rows.codes)
    probes = rq.measure_probes(features, rows.labels, rows.groups(), seed=seed)
    seconds["probes"] = time.perf_counter() - started

    started = time.perf_counter()
    labelled = [i for i, s in enumerate(rows.labels["speaker"]) if s is not None]
    progress(f"decoding and embedding {len(labelled)} rows with a speaker label (judge centroids)")
    round_trips = rq.decode_rows(codec, rows, labelled)
    swaps = voice_swaps = probe_judge = None
    if labelled:
        if judge is None:
            from recombination.judges import SpeakerJudge

            judge = SpeakerJudge()
        embeddings = rq.embed_rows(judge, round_trips, len(rows), codec.sample_rate_hz)
        usable = np.all(np.isfinite(embeddings), axis=1).tolist()
        trials = rq.plan_swap_trials(rows.labels["speaker"], rows.labels["language"], usable, max_trials=max_swaps,
                                     seed=seed)
        progress(f"swap trials: {len(trials)}")
        swaps = rq.measure_swap_accuracy(factorizer, codec, rows, judge, trials, embeddings=embeddings,
                                         batch_size=batch_size, progress=progress)
        progress(f"embedding the real recordings of the {len(labelled)} rows (the judge's own limit)")
        real = rq.embed_rows(judge, _read_references(lake, rows, labelled, codec.sample_rate_hz), len(rows),
                             codec.sample_rate_hz)
        swaps.judge_real_loo_hits, swaps.judge_real_loo_candidates = rq.judge_leave_one_out(
            real, rows.labels["speaker"])
        voice_swaps, probe_judge = _measure_voice_swaps(factorizer, codec, rows, judge, trials, embeddings, real,
                                                        usable, features.features["speaker"], seed=seed,
                                                        batch_size=batch_size, progress=progress)
    seconds["swaps"] = time.perf_counter() - started

    started = time.perf_counter()
    plan = rq.find_parallel_pairs(rows.labels, exclude_text_ids=held_out.train_text_ids, max_pairs=max_pairs,
                                  seed=seed)
    progress(f"parallel pairs: {len(plan.pairs)} (of {plan.same_sentence_pairs} same-sentence pairs)")
    parallel = None
    if plan.pairs:
        references = _read_references(lake, rows, sorted({p.b for p in plan.pairs}), codec.sample_rate_hz)
        parallel = rq.measure_parallel_distances(factorizer, codec, rows, plan.pairs, references,
                                                 batch_size=batch_size, round_trips=round_trips, progress=progress)
    seconds["parallel"] = time.perf_counter() - started

    started = time.perf_counter()
    take = np.sort(np.random.default_rng(seed).permutation(len(rows))[:throughput_rows])
    progress(f"timing the swap on {len(take)} rows, one thread, {repeats} repeats")
    throughput = rq.measure_swap_throughput(factorizer, codec, [rows.codes[i] for i in take], repeats=repeats)
    seconds["throughput"] = time.perf_counter() - started
    return RecombineQuality(held_out, probes, swaps, plan, parallel, throughput, seconds, voice_swaps, probe_judge)


def _measure_voice_swaps(factorizer, codec, rows, judge, trials, embeddings, real_embeddings, usable, speaker_vectors,
                         *, seed: int, batch_size: int, progress: Callable[[str], None]
                         ) -> tuple[tuple[SwapAccuracy, SwapAccuracy] | None, ProbeJudge | None]:
    """The same trials twice under a judge with half of each voice's rows: one donor row's speaker vector,
    then the mean over the other half (see ``rq.split_voice_rows``); then the second judge (a probe fitted on
    the reference half) on the second run. (None, None) when no trial has such a target."""
    from pipelines.eval import recombine_quality as rq

    speakers = rows.labels["speaker"]
    prompt, reference = rq.split_voice_rows(speakers, usable, seed=seed)
    voices = rq.voice_mean_vectors(speaker_vectors, speakers, prompt)
    kept = [t for t in trials if speakers[t.donor_row] in voices and speakers[t.content_row] in voices]
    if not kept:
        return None, None
    judged = np.where(reference[:, None], embeddings, np.nan)
    progress(f"voice-level swaps: {len(kept)} trials, {len(voices)} voices, judge on {int(reference.sum())} rows")
    one = rq.measure_swap_accuracy(factorizer, codec, rows, judge, kept, embeddings=judged, batch_size=batch_size)
    mean = rq.measure_swap_accuracy(factorizer, codec, rows, judge, kept, embeddings=judged, batch_size=batch_size,
                                    voice_vectors=voices)
    probe = rq.measure_probe_judge(embeddings, real_embeddings, speakers, prompt, reference, mean, seed=seed)
    return (one, mean), probe


def _f(x: float, digits: int = 3) -> str:
    return "n/a" if x is None or not math.isfinite(x) else f"{x:.{digits}f}"


def _pct(x: float) -> str:
    return "n/a" if x is None or not math.isfinite(x) else f"{100 * x:.1f} %"


def _yes(ok: bool) -> str:
    return "yes" if ok else "**no**"


def format_quality_report(q: RecombineQuality, *, command: str, codec: str, factorizer: str, lake: str,
                          threads: int, load_before: float, load_after: float, wall_s: float) -> str:
    """The Markdown section: provenance, the held-out set, one table per measurement, target verdicts."""
    import torch

    rows = q.held_out.rows
    speakers = sorted({s for s in rows.labels["speaker"] if s is not None})
    languages = sorted({s for s in rows.labels["language"] if s is not None})
    lines = [SECTION, "", f"Command: `{command}`  ",
             f"Date: {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC; git {git_revision(REPO_ROOT)}  ",
             f"CPU (lscpu): {cpu_model()}; torch {torch.__version__}, {threads} torch thread(s); load average "
             f"{load_before:.2f} at start, {load_after:.2f} at end; {wall_s:.0f} s wall  ",
             f"Codec: {codec}  ", f"Factorizer: {factorizer}  ",
             f"Lake: `{lake}` (segments version {q.held_out.segments_version}, latents version "
             f"{q.held_out.latents_version})", "",
             f"Held out: {len(rows)} of {q.held_out.available_rows} `split = '{HELD_OUT_SPLIT}'` segments with latents "
             f"of the codec ({rows.audio_s / 60:.1f} min), {len(speakers)} labelled speakers "
             f"({sum(s is not None for s in rows.labels['speaker'])} rows), {len(languages)} languages. Test "
             "speakers were never seen by factorizer training (the split is by speaker); whether the codec heard "
             "them depends on the lake it was trained on (see the codec training section of bench/RESULTS.md).", ""]
    if speakers and len(speakers) <= _LIST_SPEAKERS_UP_TO:
        rows_of = Counter(s for s in rows.labels["speaker"] if s is not None)
        langs_of = {s: sorted({lang for sp, lang in zip(rows.labels["speaker"], rows.labels["language"])
                               if sp == s and lang is not None}) for s in speakers}
        lines[-1:-1] = ["", "Labelled speakers (rows; languages): " + ", ".join(
            f"`{s}` ({rows_of[s]}; {'/'.join(langs_of[s]) or '?'})" for s in speakers) + "."]
    lines += _probe_section(q.probes)
    lines += _swap_section(q.swaps)
    lines += _voice_section(q.voice_swaps, q.probe_judge)
    lines += _parallel_section(q.parallel_plan, q.parallel)
    lines += _throughput_section(q.throughput)
    lines += ["Time per part (s): " + ", ".join(f"{k} {v:.0f}" for k, v in q.seconds.items()) + "."]
    return "\n".join(lines).rstrip("\n") + "\n"


def _probe_section(probes: Sequence[ProbeResult]) -> list[str]:
    lines = ["### 1. Disentanglement probes", "",
             "Logistic regression (standardized features, balanced class weights) from each factor to a label, "
             "scored out of fold: stratified group k-fold with the sentence (`text_id`) as the group, so no "
             "sentence is on both sides. Classes with fewer than 3 labelled rows are left out. *Balanced*: mean "
             "recall per class, chance 1/classes; *majority*: accuracy of always guessing the commonest class. "
             "The codec latent row is the input's own information, for reference.", "",
             "| features | target | rows | classes | folds | accuracy | balanced accuracy | majority rate | "
             "chance: 1/classes |", "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for p in probes:
        note = f" ({p.note})" if p.note else ""
        lines.append(f"| {p.features} | {p.target}{note} | {p.rows} | {p.classes} | {p.folds} | {_f(p.accuracy)} | "
                     f"{_f(p.balanced_accuracy)} | {_f(p.majority_rate)} | {_f(p.uniform_rate)} |")
    by = {(p.features, p.target): p for p in probes}
    lines += ["", "*speaker within language*: one probe per language with at least two held-out speakers, on that "
              "language's rows only; chance per language. Held-out voices often differ in language as well, and "
              "content is meant to carry the language, so this row is the fair test of speaker information in the "
              "content.", ""]
    for target, what in (("speaker", "all held-out speakers"), (SPEAKER_WITHIN_LANGUAGE, "within each language")):
        content, speaker = by.get((CONTENT_FEATURES, target)), by.get(("speaker", target))
        if content is None or not math.isfinite(content.balanced_accuracy):
            lines.append(f"Target: speaker-ID from content near chance ({what}): not measurable (too few labelled "
                         "speakers).  ")
            continue
        margin = content.balanced_accuracy - content.uniform_rate
        lines.append(f"Target: speaker-ID from content within {100 * TARGET_CONTENT_SPEAKER_MARGIN:.0f} points of "
                     f"chance ({what}): balanced accuracy {_f(content.balanced_accuracy)} vs chance "
                     f"{_f(content.uniform_rate)} ({100 * margin:+.1f} points): "
                     f"{_yes(margin <= TARGET_CONTENT_SPEAKER_MARGIN)} (plain accuracy {_f(content.accuracy)} vs "
                     f"majority {_f(content.majority_rate)}); from the speaker vector (should be high): balanced "
                     f"accuracy {_f(speaker.balanced_accuracy)}, accuracy {_f(speaker.accuracy)}.  ")
    return lines + [""]


def _swap_section(s: SwapAccuracy | None) -> list[str]:
    lines = ["### 2. Swap accuracy (independent judge)", ""]
    if s is None or not s.trials:
        return lines + ["No swap trial possible: it needs two held-out speakers of one language, each with at "
                        "least two judgeable rows.", ""]
    loo = float(np.mean(s.judge_loo_hits)) if len(s.judge_loo_hits) else math.nan
    loo_chance = float(np.mean(1.0 / s.judge_loo_candidates)) if len(s.judge_loo_candidates) else math.nan
    real = float(np.mean(s.judge_real_loo_hits)) if len(s.judge_real_loo_hits) else math.nan
    real_chance = (float(np.mean(1.0 / s.judge_real_loo_candidates)) if len(s.judge_real_loo_candidates)
                   else math.nan)
    lines += ["Each trial: content of a held-out row + the speaker vector of a row of another held-out speaker "
              "of the same language (style, environment, channel stay the content row's), decoded by the codec. "
              "Judge: Resemblyzer GE2E embeddings, nearest centroid over the held-out speakers; a centroid is the "
              "mean embedding of that speaker's codec round trips, without the trial's two rows. *No swap*: the "
              "content row rebuilt from its own factors, same judge.", "",
              "| measure | value |", "| --- | ---: |",
              f"| trials (outputs the judge could embed) | {len(s.trials)} ({s.judged}) |",
              f"| speakers in the trials / candidates per trial (mean) | "
              f"{len(set(s.sources) | set(s.targets))} / {np.mean(s.candidates):.1f} |",
              f"| **swap accuracy** (assigned to the target speaker) | **{_pct(s.share('target'))}** |",
              f"| assigned to the source speaker | {_pct(s.share('source'))} |",
              f"| chance (mean 1/candidates) | {_pct(s.chance)} |",
              f"| mean cosine of the output to the target / source centroid | {_f(float(np.nanmean(s.cos_target)))} / "
              f"{_f(float(np.nanmean(s.cos_source)))} |",
              f"| no swap: assigned to its own speaker | {_pct(s.share('identity'))} |",
              f"| judge on unswapped codec round trips, leave one out ({len(s.judge_loo_hits)} rows; chance) | "
              f"{_pct(loo)} ({_pct(loo_chance)}) |",
              f"| judge on the real recordings, leave one out ({len(s.judge_real_loo_hits)} rows; chance) | "
              f"{_pct(real)} ({_pct(real_chance)}) |",
              f"| factorizer's own check: re-encoded speaker vector, cosine to target / source | "
              f"{_f(float(np.mean(s.factor_cos_target)))} / {_f(float(np.mean(s.factor_cos_source)))} |", "",
              f"Target: swap accuracy >= {100 * TARGET_SWAP_ACCURACY:.0f} %: "
              f"{_yes(s.share('target') >= TARGET_SWAP_ACCURACY)}.", ""]
    return lines


def _voice_section(v: tuple[SwapAccuracy, SwapAccuracy] | None, probe: ProbeJudge | None = None) -> list[str]:
    if v is None:
        return []
    one, mean = v
    lines = ["**The voice as the target.** Each held-out voice's judgeable rows are split into two seeded halves "
             "(voices with at least 4): the *prompt* half defines the voice, the judge's centroids come from the "
             "*reference* half only, so no output is judged against audio that conditioned it. The trials above "
             "whose two voices both have a prompt half, run twice: with the donor row's own speaker vector, and "
             "with the mean of the target voice's prompt-half speaker vectors (what a recombination that targets "
             "a voice, not one of its utterances, would put in).", "",
             "| speaker vector put in | trials | swap accuracy | assigned to the source | chance | no swap: own speaker |",
             "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for name, s in (("one donor row (the trial's, as above)", one), ("the target voice's mean over its prompt rows", mean)):
        lines.append(f"| {name} | {len(s.trials)} | {_pct(s.share('target'))} | {_pct(s.share('source'))} | "
                     f"{_pct(s.chance)} | {_pct(s.share('identity'))} |")
    return lines + [""] + _probe_judge_section(probe)


def _probe_judge_section(p: ProbeJudge | None) -> list[str]:
    if p is None:
        return []
    return ["**A second judge: a speaker probe fitted on held-apart audio.** Logistic regression (standardized, "
            f"balanced classes) on the same Resemblyzer embeddings, fitted on the reference half's codec round trips "
            f"({p.fitted_rows} rows, {p.voices} voices), never on a row that conditions a swap. It is asked about the "
            "prompt half only: its round trips (what a perfect swap could score), its real recordings (what the "
            "judge can tell apart at all), and the voice-mean swaps above whose content row is there.", "",
            "| asked | rows or trials | assigned to the right voice | to the source (swaps) | chance |",
            "| --- | ---: | ---: | ---: | ---: |",
            f"| prompt-half real recordings | {len(p.real_hits)} | {_pct(p.share(p.real_hits))} | | {_pct(p.chance)} |",
            f"| prompt-half codec round trips | {len(p.round_trip_hits)} | {_pct(p.share(p.round_trip_hits))} | | "
            f"{_pct(p.chance)} |",
            f"| swaps to the target voice's mean | {len(p.swap_hits)} | **{_pct(p.share(p.swap_hits))}** | "
            f"{_pct(p.share(p.swap_to_source))} | {_pct(p.chance)} |", ""]


def _parallel_section(plan: ParallelPlan, d: ParallelDistances | None) -> list[str]:
    lines = ["### 3. Parallel ground truth", "",
             f"Pairs (A, B): two held-out voices that spoke one sentence (same `text_id` and language; style, "
             f"environment and channel labels equal; sentence not in the train split). Same-sentence pairs of "
             f"different voices: {plan.same_sentence_pairs}; left out because the sentence is in the train split: "
             f"{plan.seen_in_training}; because other labels differ: {plan.other_labels_differ}; over the cap: "
             f"{plan.not_sampled}; measured: {len(plan.pairs)}.", ""]
    if d is None or not d.pairs:
        return lines + ["No pair to measure in this held-out set.", ""]
    lines += ["Mel distance (mean |log mel difference|, 80 bands, the codec evaluation's) after DTW alignment "
              "(`librosa.sequence.dtw`, city-block cost) to B's real recording; lower is better.", "",
              "| output compared with B's recording | median | interquartile range |", "| --- | ---: | --- |"]
    for name, values in (("swap: A's content + B's speaker, decoded", d.swap),
                         ("floor: A's codec round trip", d.floor), ("ceiling: B's codec round trip", d.ceiling)):
        q1, med, q3 = np.percentile(values, [25, 50, 75])
        lines.append(f"| {name} | {med:.3f} | {q1:.3f}-{q3:.3f} |")
    return lines + ["", f"The swap beats the floor on {_pct(d.beats_floor)} of {len(d.pairs)} pairs "
                        f"(median swap minus floor {np.median(d.swap - d.floor):+.3f}).", ""]


def _throughput_section(t: SwapThroughput) -> list[str]:
    rows = [("swap in latent space: factorize + recombine to codes", t.swap_cpu_s, t.swap_wall_s, False),
            ("the same + codec decoding of every output", t.with_decode_cpu_s, t.with_decode_wall_s, True)]
    lines = ["### 4. Throughput", "",
             f"One torch thread, a batch of {t.rows} held-out rows ({t.synthetic_s:.1f} s of output): row i's content "
             "with row i+1's speaker; `factorize_codes` + `recombine` as the recombine stage runs them (factorizer "
             "encode, decode, snap to the codec grid, re-encode check), no judges. Median over "
             f"{len(t.swap_cpu_s)} repeats after a warm-up; CPU s of this process.", "",
             "| what | CPU s | wall s | synthetic s per CPU s |", "| --- | ---: | ---: | ---: |"]
    for name, cpu, wall, dec in rows:
        lines.append(f"| {name} | {np.median(cpu):.3f} | {np.median(wall):.3f} | {t.per_cpu_s(dec):,.0f}x |")
    return lines + [""]


def main(argv: list[str] | None = None) -> int:
    """CLI entry: measure, print, write ``--out`` and (``--write-results``) the RESULTS.md section."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lake-root", default="data/lake")
    parser.add_argument("--codec-checkpoint", default="checkpoints/codec_50hz_2x8555.pt")
    parser.add_argument("--factorizer-checkpoint", default="checkpoints/factorizer_default.pt")
    parser.add_argument("--max-rows", type=int, default=400, help="held-out rows used (a seeded sample if more)")
    parser.add_argument("--max-swaps", type=int, default=200, help="swap trials at most")
    parser.add_argument("--max-pairs", type=int, default=200, help="parallel pairs at most")
    parser.add_argument("--throughput-rows", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats of the throughput batch")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--torch-threads", type=int, default=1, help="for everything but the throughput (always 1)")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "bench/recombine_quality.md")
    parser.add_argument("--write-results", action="store_true",
                        help=f"replace the <!-- {RESULTS_MARKER}:begin/end --> block of --results-md")
    parser.add_argument("--results-md", type=Path, default=REPO_ROOT / "bench/RESULTS.md")
    args = parser.parse_args(argv)
    if min(args.max_rows, args.throughput_rows, args.repeats, args.torch_threads) < 1 or min(args.max_swaps,
                                                                                              args.max_pairs) < 0:
        parser.error("--max-rows, --throughput-rows, --repeats, --torch-threads must be >= 1; caps >= 0")
    import torch

    from models.codec import CheckpointError, load_checkpoint
    from models.factorizer import FactorizerCheckpointError, load_factorizer_checkpoint
    from schemas.storage import resolve_uri

    torch.set_num_threads(args.torch_threads)
    wall_started, load_before = time.perf_counter(), os.getloadavg()[0]
    lake = resolve_uri(args.lake_root)
    try:
        codec, _, codec_meta = load_checkpoint(resolve_uri(args.codec_checkpoint))
        factorizer, _, f_meta = load_factorizer_checkpoint(resolve_uri(args.factorizer_checkpoint),
                                                           expected_codec_id=codec_meta.codec_id)
        held_out = read_held_out(lake, codec_meta.codec_id, max_rows=args.max_rows, seed=args.seed)
    except (CheckpointError, FactorizerCheckpointError, HeldOutError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    torch.manual_seed(args.seed)
    quality = measure_recombine_quality(codec, factorizer, held_out, lake=lake, max_swaps=args.max_swaps,
                                        max_pairs=args.max_pairs, throughput_rows=args.throughput_rows,
                                        repeats=args.repeats, seed=args.seed, progress=_progress)
    command = " ".join([".venv/bin/python", "bench/recombine_quality.py", *(sys.argv[1:] if argv is None else argv)])
    section = format_quality_report(
        quality, command=command, lake=args.lake_root, threads=args.torch_threads,
        codec=f"`{args.codec_checkpoint}` ({codec_meta.codec_id}, step {codec_meta.step})",
        factorizer=f"`{args.factorizer_checkpoint}` ({f_meta.factorizer_id}, step {f_meta.step}, trained on "
                   f"{f_meta.codec_id})",
        load_before=load_before, load_after=os.getloadavg()[0], wall_s=time.perf_counter() - wall_started)
    print(section)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(section)
    print(f"wrote {args.out}")
    if args.write_results:
        replace_marked_section(args.results_md, RESULTS_MARKER, section)
        print(f"wrote {args.results_md}")
    return 0


def _progress(message: str) -> None:
    print(f"[{datetime.now():%H:%M:%S}] {message}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
