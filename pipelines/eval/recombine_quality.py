"""Recombination quality on held-out speakers and sentences: probes, swap accuracy, parallel ground truth, speed.

What each measurement does (``bench/recombine_quality.py`` reads the lake, calls these and writes the report):

- :func:`measure_probes`: a logistic-regression probe (standardized features, balanced class weights) per
  (factor, target label), scored out of fold by :class:`~sklearn.model_selection.StratifiedGroupKFold` with the
  sentence (``text_id``, else the segment) as the group, so no sentence is in a probe's training and test folds
  at once. Features: each unit-norm factor vector, the content stream pooled over its valid frames (mean and
  std per channel), and, as a reference for what the input carries, the codec latent pooled the same way.
- :func:`measure_swap_accuracy`: content of row A + speaker vector of row B (another speaker, same language),
  decoded by the codec, embedded by Resemblyzer (:class:`recombination.judges.SpeakerJudge`, never trained
  with our models) and given to the nearest speaker centroid; centroids are the mean embeddings of each
  candidate speaker's codec round trips, leaving out A and B.
- :func:`fit_speaker_probe` / :func:`measure_probe_judge`: the second judge. A logistic-regression speaker probe
  on the same Resemblyzer embeddings, fitted on the *reference* half of each voice's codec round trips (never
  on a row that conditions a swap) and asked about the *prompt* half: its round trips and real recordings
  (the judge's ceilings) and the voice-level swaps whose content row is there.
- :func:`measure_parallel_distances`: for two held-out voices that spoke the same sentence (same labels
  otherwise), the DTW-aligned mel distance between the swap (A's content, B's speaker) decoded and B's real
  recording, beside A's round trip vs B (floor) and B's round trip vs B (ceiling).
- :func:`measure_swap_throughput`: synthetic seconds per CPU second of factorize + recombine to codes on one
  torch thread, and with each output decoded to audio.

No IO and no Ray here: inputs are codes, labels, audio and loaded models.
"""

from __future__ import annotations

import math
import time
import warnings
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from schemas.factorizer import FACTOR_NAMES

__all__ = ["LABELS", "CONTENT_FEATURES", "LATENT_FEATURES", "SPEAKER_WITHIN_LANGUAGE", "HeldOutRows", "RowFeatures",
           "ProbeResult", "SwapTrial", "SwapAccuracy", "ParallelPair", "ParallelPlan", "ParallelDistances",
           "SwapThroughput", "chance_rates", "pool_latents", "measure_row_features", "measure_probe", "measure_probes",
           "decode_rows", "embed_rows", "plan_swap_trials", "measure_swap_accuracy", "find_parallel_pairs",
           "measure_dtw_mel_distance", "judge_leave_one_out", "split_voice_rows", "voice_mean_vectors",
           "measure_parallel_distances", "measure_swap_throughput", "ProbeJudge", "fit_speaker_probe",
           "measure_probe_judge"]

#: Feature-set names of the pooled content stream and of the pooled codec latent (the reference row).
CONTENT_FEATURES = "content (mean+std)"
LATENT_FEATURES = "codec latent (mean+std)"
#: Target name of the speaker probe run per language (see :func:`measure_probes`).
SPEAKER_WITHIN_LANGUAGE = "speaker within language"
#: Labels a ``HeldOutRows`` carries (segments columns).
LABELS: tuple[str, ...] = ("speaker", "language", "text_id", "style", "environment", "channel", "corpus")


@dataclass
class HeldOutRows:
    """Held-out segments with their codes and labels; row ``i`` of every list is one segment.

    Attributes:
        codes: uint16 ``[frames, stages]`` per row.
        num_samples: audio samples of each segment (to trim decoded audio).
        labels: label name -> value per row (None when unknown); keys include :data:`LABELS`.
    """

    segment_ids: list[str]
    codes: list[np.ndarray]
    num_samples: list[int]
    labels: dict[str, list[str | None]]
    frame_rate_hz: float

    def __len__(self) -> int:
        return len(self.segment_ids)

    @property
    def audio_s(self) -> float:
        return sum(len(c) for c in self.codes) / self.frame_rate_hz

    def groups(self) -> list[str]:
        """Probe groups: the sentence (``text_id``) where known, else the segment itself."""
        return [t if t is not None else f"segment:{s}" for t, s in zip(self.labels["text_id"], self.segment_ids)]


@dataclass
class RowFeatures:
    """Per row: each factor vector, the pooled content and the pooled codec latent (float32 ``[N, dim]``)."""

    features: dict[str, np.ndarray]


def chance_rates(labels: Sequence[str]) -> tuple[float, float]:
    """(majority-class rate, 1 / number of classes) of a label list.

    Example:
        >>> chance_rates(["a", "a", "a", "b"])
        (0.75, 0.5)
    """
    if not labels:
        raise ValueError("no labels")
    counts = Counter(labels)
    return max(counts.values()) / len(labels), 1.0 / len(counts)


def _pool(x, lengths) -> np.ndarray:
    """Mean and std over valid frames of ``x [B, C, T]`` -> ``[B, 2C]``."""
    import torch

    mask = (torch.arange(x.shape[-1])[None] < lengths[:, None]).to(x.dtype)[:, None]
    n = lengths.to(x.dtype)[:, None]
    mean = (x * mask).sum(-1) / n
    var = (((x - mean[..., None]) ** 2) * mask).sum(-1) / n
    return torch.cat([mean, var.sqrt()], dim=-1).numpy().astype(np.float32)


def pool_latents(codec, batch: Sequence[np.ndarray]) -> np.ndarray:
    """:data:`LATENT_FEATURES` of one batch of rows: mean and std over each row's valid frames of its quantized
    codec latent, float32 ``[rows, 2 * latent_dim]`` (rows of similar length pad less)."""
    import torch

    from models.factorizer import pad_latents

    with torch.inference_mode():
        latent, lengths = pad_latents([codec.codes_to_latent(torch.from_numpy(c.astype(np.int64))[None])[0]
                                       for c in batch])
    return _pool(latent, lengths)


def measure_row_features(factorizer, codec, codes: Sequence[np.ndarray], *, batch_size: int = 32) -> RowFeatures:
    """Factorize every row (batches of similar length; factors ignore padding) and pool content and latent."""
    from recombination.swap import factorize_codes

    order = np.argsort([len(c) for c in codes], kind="stable")
    parts: dict[str, list[np.ndarray]] = defaultdict(list)
    for start in range(0, len(order), batch_size):
        batch = [codes[i] for i in order[start:start + batch_size]]
        factors = factorize_codes(factorizer, codec, batch)
        for name in FACTOR_NAMES:
            parts[name].append(factors.vectors[name].numpy().astype(np.float32))
        parts[CONTENT_FEATURES].append(_pool(factors.content, factors.lengths))
        parts[LATENT_FEATURES].append(pool_latents(codec, batch))
    inverse = np.empty_like(order)
    inverse[order] = np.arange(len(order))
    return RowFeatures({name: np.concatenate(p)[inverse] for name, p in parts.items()})


@dataclass(frozen=True)
class ProbeResult:
    """Out-of-fold scores of one probe; NaN scores (with ``note``) when it could not be fitted."""

    features: str
    target: str
    rows: int
    classes: int
    folds: int
    accuracy: float
    balanced_accuracy: float
    majority_rate: float
    uniform_rate: float
    dropped_rows: int = 0
    note: str = ""


def measure_probe(features: np.ndarray, labels: Sequence[str | None], groups: Sequence[str], *, feature_name: str,
                  target_name: str, strata: Sequence[str | None] | None = None, n_splits: int = 5,
                  min_class_rows: int = 3, seed: int = 0) -> ProbeResult:
    """Out-of-fold accuracy of a standardized logistic-regression probe ``features -> labels``.

    Rows without a label are left out, and so are classes with fewer than ``min_class_rows`` rows (counted in
    ``dropped_rows``). Folds: :class:`StratifiedGroupKFold` (``n_splits``, fewer when there are fewer sentence
    groups or rows in the largest class; shuffled by ``seed``) with one group per sentence, so a sentence never
    sits on both sides. A training fold holding a single class predicts that class. Chance: the majority-class
    rate (plain accuracy of always guessing the commonest class) and 1 / classes (balanced accuracy of any
    guess that ignores the features).

    With ``strata`` (e.g. each row's language), one probe per stratum that has at least two classes, trained
    and scored on that stratum's rows alone ("which of this language's speakers"), predictions pooled; chance
    is then per stratum too: majority rate = the strata's commonest-class rows / rows, 1 / classes = mean over
    classes of 1 / (classes in their stratum). Other rows count as dropped.
    """
    from sklearn.metrics import balanced_accuracy_score

    stratified = strata is not None
    strata = list(strata) if stratified else [""] * len(labels)
    labelled = [i for i, y in enumerate(labels) if y is not None and strata[i] is not None]
    counts = Counter((strata[i], labels[i]) for i in labelled)
    keep = [i for i in labelled if counts[(strata[i], labels[i])] >= min_class_rows]
    by_stratum: dict[str, list[int]] = defaultdict(list)
    for i in keep:
        by_stratum[strata[i]].append(i)
    x_all = np.asarray(features, dtype=np.float64)
    truth, predicted, majority_rows, inverse_classes, folds_used = [], [], 0, [], 0
    for stratum in sorted(by_stratum):
        members = by_stratum[stratum]
        y = [labels[i] for i in members]
        per_class = Counter(y)
        folds = min(n_splits, len({groups[i] for i in members}), max(per_class.values()))  # sklearn refuses more
        if len(per_class) < 2 or folds < 2:
            continue
        out_of_fold = _out_of_fold(x_all[members], y, [groups[i] for i in members], folds, seed)
        truth += [f"{stratum}\x1f{v}" for v in y]  # a class is (stratum, label)
        predicted += [f"{stratum}\x1f{v}" for v in out_of_fold]
        majority_rows += max(per_class.values())
        inverse_classes += [1.0 / len(per_class)] * len(per_class)
        folds_used = max(folds_used, folds)
    dropped = len(labelled) - len(truth)
    if not truth:
        where = " in any stratum" if stratified else ""
        return ProbeResult(feature_name, target_name, 0, 0, 0, math.nan, math.nan, math.nan, math.nan, dropped,
                           f"fewer than 2 classes with >= {min_class_rows} rows in 2 sentence groups{where}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a predicted class absent from the truth
        balanced = float(balanced_accuracy_score(truth, predicted))
    accuracy = float(np.mean([t == p for t, p in zip(truth, predicted)]))
    return ProbeResult(feature_name, target_name, len(truth), len(set(truth)), folds_used, accuracy, balanced,
                       majority_rows / len(truth), float(np.mean(inverse_classes)), dropped)


def _out_of_fold(x: np.ndarray, y: Sequence[str], groups: Sequence[str], folds: int, seed: int) -> list[str]:
    """Out-of-fold predictions of a standardized, class-balanced logistic regression (stratified group k-fold)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedGroupKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    y_arr = np.asarray(y, dtype=str)
    predicted = np.empty(len(y_arr), dtype=object)
    splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "least populated class has fewer members than n_splits", convergence
        for train, test in splitter.split(x, y_arr, np.asarray(groups, dtype=str)):
            if len(set(y_arr[train].tolist())) < 2:
                predicted[test] = y_arr[train][0]
                continue
            probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, class_weight="balanced"))
            probe.fit(x[train], y_arr[train])
            predicted[test] = probe.predict(x[test])
    return [str(v) for v in predicted]


def measure_probes(row_features: RowFeatures, labels: Mapping[str, Sequence[str | None]], groups: Sequence[str], *,
                   targets: Sequence[str] = ("speaker", "environment"), within_language: bool = True,
                   n_splits: int = 5, min_class_rows: int = 3, seed: int = 0) -> list[ProbeResult]:
    """One :func:`measure_probe` per (feature set, target): factors, then content, then the codec latent.

    With ``within_language``, the speaker target is probed a second time per language
    (:data:`SPEAKER_WITHIN_LANGUAGE`): held-out voices often differ in language too, and content is meant to
    carry the language, so only the within-language question isolates speaker information in the content.
    """
    order = [name for name in (*FACTOR_NAMES, CONTENT_FEATURES, LATENT_FEATURES) if name in row_features.features]
    jobs = [(target, labels[target], None) for target in targets]
    if within_language and "speaker" in targets:
        jobs.insert(list(targets).index("speaker") + 1, (SPEAKER_WITHIN_LANGUAGE, labels["speaker"],
                                                         labels["language"]))
    return [measure_probe(row_features.features[name], values, groups, feature_name=name, target_name=target,
                          strata=strata, n_splits=n_splits, min_class_rows=min_class_rows, seed=seed)
            for target, values, strata in jobs for name in order]


def decode_rows(codec, rows: HeldOutRows, indices: Sequence[int],
                cache: dict[int, np.ndarray] | None = None) -> dict[int, np.ndarray]:
    """Codec round trips (stored codes -> audio, trimmed to the segment) of ``indices``, one row at a time."""
    from pipelines.latents import decode_codes

    cache = {} if cache is None else cache
    for i in indices:
        if i not in cache:
            cache[i] = decode_codes(codec, rows.codes[i], rows.num_samples[i])
    return cache


def embed_rows(judge, wavs: Mapping[int, np.ndarray], n: int, sample_rate_hz: int) -> np.ndarray:
    """Resemblyzer embeddings ``[n, 256]`` of the given rows' audio; NaN rows for the others and the unjudgeable."""
    from recombination.judges import EMBEDDING_DIM

    out = np.full((n, EMBEDDING_DIM), np.nan, dtype=np.float32)
    for i, wav in wavs.items():
        out[i] = judge.embed(wav, sample_rate_hz)
    return out


@dataclass(frozen=True)
class SwapTrial:
    """Content of row ``content_row`` with the speaker vector of row ``donor_row`` (another speaker)."""

    content_row: int
    donor_row: int


def plan_swap_trials(speakers: Sequence[str | None], languages: Sequence[str | None], usable: Sequence[bool], *,
                     max_trials: int, seed: int = 0) -> list[SwapTrial]:
    """Pick up to ``max_trials`` (content row, donor row) pairs: different speakers, same language.

    Only usable rows (judgeable round trips) of speakers with at least two of them take part, so both the
    source and the target keep a centroid when the trial's two rows are left out. Content rows are taken in a
    seeded random order, each at most once; the target speaker is drawn uniformly among the eligible ones
    (not weighted by their row counts), then the donor row among that speaker's rows in the language.
    """
    rng = np.random.default_rng(seed)
    per_speaker = Counter(s for s, ok in zip(speakers, usable) if ok and s is not None)
    by_speaker_language: dict[tuple[str, str], list[int]] = defaultdict(list)
    for i, (s, lang, ok) in enumerate(zip(speakers, languages, usable)):
        if ok and s is not None and lang is not None and per_speaker[s] >= 2:
            by_speaker_language[(s, lang)].append(i)
    eligible = sorted(i for rows in by_speaker_language.values() for i in rows)
    trials = []
    for i in rng.permutation(eligible).tolist() if eligible else []:
        if len(trials) >= max_trials:
            break
        s, lang = speakers[i], languages[i]
        targets = sorted(t for (t, tl) in by_speaker_language if tl == lang and t != s)
        if not targets:
            continue
        target = targets[int(rng.integers(len(targets)))]
        donors = by_speaker_language[(target, lang)]
        trials.append(SwapTrial(i, donors[int(rng.integers(len(donors)))]))
    return trials


@dataclass
class SwapAccuracy:
    """Swap outputs classified by the independent judge, with the judge's own leave-one-out accuracy.

    Per-trial arrays; an unjudgeable output (too little speech) has a NaN embedding and counts as a miss.
    """

    trials: list[SwapTrial]
    assigned: list[str | None]             # judge's speaker for each swap output
    targets: list[str]
    sources: list[str]
    candidates: np.ndarray                 # candidate speakers per trial
    cos_target: np.ndarray                 # output vs target centroid
    cos_source: np.ndarray                 # output vs source centroid
    identity_assigned: list[str | None]    # content + its own factors (no swap), classified
    factor_cos_target: np.ndarray          # factorizer's re-encoded speaker vector vs the one put in
    factor_cos_source: np.ndarray          # ... vs the content row's own speaker vector
    judge_loo_hits: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))  # unswapped round trips
    judge_loo_candidates: np.ndarray = field(default_factory=lambda: np.zeros(0))
    judge_real_loo_hits: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))  # the real recordings
    judge_real_loo_candidates: np.ndarray = field(default_factory=lambda: np.zeros(0))
    output_embeddings: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.float32))  # [trials, 256]

    def share(self, which: str) -> float:
        """Share of trials assigned to ``"target"``, ``"source"``, or (``"identity"``) identity outputs to source."""
        if not self.trials:
            return math.nan
        if which == "identity":
            return float(np.mean([a == s for a, s in zip(self.identity_assigned, self.sources)]))
        truth = self.targets if which == "target" else self.sources
        return float(np.mean([a == t for a, t in zip(self.assigned, truth)]))

    @property
    def chance(self) -> float:
        return float(np.mean(1.0 / self.candidates)) if self.trials else math.nan

    @property
    def judged(self) -> int:
        return sum(a is not None for a in self.assigned)


def _centroid_classifier(embeddings: np.ndarray, speakers: Sequence[str | None]):
    """A function (embedding, rows to leave out) -> (speaker names, cosines to their centroids)."""
    ok = np.all(np.isfinite(embeddings), axis=1) & np.array([s is not None for s in speakers])
    names = sorted({speakers[i] for i in np.flatnonzero(ok)})
    index = {n: k for k, n in enumerate(names)}
    sums = np.zeros((len(names), embeddings.shape[1]), np.float64)
    counts = np.zeros(len(names))
    for i in np.flatnonzero(ok):
        sums[index[speakers[i]]] += embeddings[i]
        counts[index[speakers[i]]] += 1

    def classify(embedding: np.ndarray, leave_out: Sequence[int]) -> tuple[list[str], np.ndarray]:
        s, c = sums.copy(), counts.copy()
        for i in set(leave_out):
            if ok[i]:
                s[index[speakers[i]]] -= embeddings[i]
                c[index[speakers[i]]] -= 1
        live = np.flatnonzero(c > 0)
        centroids = s[live] / np.linalg.norm(s[live], axis=1, keepdims=True)
        e = np.asarray(embedding, np.float64)
        cos = centroids @ e / np.linalg.norm(e) if np.all(np.isfinite(e)) else np.full(len(live), np.nan)
        return [names[k] for k in live], cos

    return classify


def measure_swap_accuracy(factorizer, codec, rows: HeldOutRows, judge, trials: Sequence[SwapTrial], *,
                          embeddings: np.ndarray, batch_size: int = 16,
                          voice_vectors: Mapping[str, Any] | None = None,
                          progress: Callable[[str], None] = lambda _: None) -> SwapAccuracy:
    """Run the trials (and each content row without a swap), decode, embed, classify by nearest centroid.

    Args:
        embeddings: ``[len(rows), 256]`` Resemblyzer embeddings of the rows' codec round trips (NaN where not
            computed or unjudgeable): the candidates' centroids.
        voice_vectors: speaker name -> a speaker vector ``[dim]`` to put in instead of the donor row's own
            (e.g. :func:`voice_mean_vectors`: the voice, not one utterance of it); None: the donor row's.
    """
    import torch

    from pipelines.latents import decode_codes
    from recombination.swap import factorize_codes, latent_scores, recombine

    speakers = rows.labels["speaker"]
    classify = _centroid_classifier(embeddings, speakers)
    rate = codec.sample_rate_hz
    assigned, identity, cand, cos_t, cos_s, f_t, f_s, outputs = [], [], [], [], [], [], [], []
    for start in range(0, len(trials), batch_size):
        batch = trials[start:start + batch_size]
        distinct = sorted({r for t in batch for r in (t.content_row, t.donor_row)})
        pos = {r: k for k, r in enumerate(distinct)}
        factors = factorize_codes(factorizer, codec, [rows.codes[r] for r in distinct])
        content = [pos[t.content_row] for t in batch]
        donors = [pos[t.donor_row] for t in batch]
        if voice_vectors is not None:  # appended rows: a content row's own vector stays for its no-swap output
            base = factors.vectors["speaker"].shape[0]
            extra = torch.stack([torch.as_tensor(voice_vectors[speakers[t.donor_row]]) for t in batch])
            factors.vectors["speaker"] = torch.cat([factors.vectors["speaker"], extra.to(factors.vectors["speaker"])])
            donors = list(range(base, base + len(batch)))
        out = recombine(factorizer, codec, factors, content_rows=content * 2,
                        donor_rows={"speaker": donors + content})
        scores = latent_scores(factorizer, out, factors.vectors["speaker"][torch.as_tensor(content * 2)])
        f_t += scores["factor_speaker_target_sim"][:len(batch)].tolist()
        f_s += scores["factor_speaker_source_sim"][:len(batch)].tolist()
        for k, trial in enumerate(batch):
            leave_out = (trial.content_row, trial.donor_row)
            swapped = judge.embed(decode_codes(codec, out.codes[k]), rate)
            outputs.append(swapped)
            names, cos = classify(swapped, leave_out)
            assigned.append(names[int(np.argmax(cos))] if np.all(np.isfinite(cos)) else None)
            cand.append(len(names))
            cos_t.append(float(cos[names.index(speakers[trial.donor_row])]))
            cos_s.append(float(cos[names.index(speakers[trial.content_row])]))
            own = judge.embed(decode_codes(codec, out.codes[len(batch) + k]), rate)
            names, cos = classify(own, leave_out)
            identity.append(names[int(np.argmax(cos))] if np.all(np.isfinite(cos)) else None)
        progress(f"  swap trials {min(start + batch_size, len(trials))}/{len(trials)}")
    loo_hits, loo_cand = judge_leave_one_out(embeddings, speakers)
    return SwapAccuracy(trials=list(trials), assigned=assigned, targets=[speakers[t.donor_row] for t in trials],
                        sources=[speakers[t.content_row] for t in trials], candidates=np.asarray(cand, float),
                        cos_target=np.asarray(cos_t), cos_source=np.asarray(cos_s), identity_assigned=identity,
                        factor_cos_target=np.asarray(f_t), factor_cos_source=np.asarray(f_s),
                        judge_loo_hits=loo_hits, judge_loo_candidates=loo_cand,
                        output_embeddings=np.stack(outputs).astype(np.float32) if outputs
                        else np.zeros((0, 0), np.float32))


def split_voice_rows(speakers: Sequence[str | None], usable: Sequence[bool], *,
                     seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Per speaker, its usable rows in a seeded order, split in two halves: (prompt mask, reference mask).

    The prompt half defines the voice to swap to (:func:`voice_mean_vectors`), the reference half the judge's
    centroids, so the judge never compares an output with audio that conditioned it. A speaker with fewer
    than 4 usable rows keeps them all as references (no prompt: it is never a voice target).

    Example:
        >>> prompt, ref = split_voice_rows(["a"] * 4 + ["b"] * 2, [True] * 6)
        >>> int(prompt[:4].sum()), int(ref[:4].sum()), prompt[4:].tolist(), ref[4:].tolist()
        (2, 2, [False, False], [True, True])
    """
    rng = np.random.default_rng(seed)
    prompt, reference = np.zeros(len(speakers), bool), np.zeros(len(speakers), bool)
    for name in sorted({s for s, ok in zip(speakers, usable) if ok and s is not None}):
        rows = [i for i, (s, ok) in enumerate(zip(speakers, usable)) if ok and s == name]
        if len(rows) < 4:
            reference[rows] = True
            continue
        order = rng.permutation(rows)
        prompt[order[:len(rows) // 2]] = True
        reference[order[len(rows) // 2:]] = True
    return prompt, reference


def fit_speaker_probe(embeddings: np.ndarray, speakers: Sequence[str | None], mask: np.ndarray, *, seed: int = 0):
    """A speaker classifier (standardized features, balanced logistic regression) fitted on the masked rows.

    Why a second judge: nearest centroid is the simplest reading of an embedding; a probe fitted on the
    voices' own audio weighs the dimensions that tell *these* voices apart. Fitted on codec round trips, it
    learns the voices as the codec renders them, which is what a swap's output is. Returns None when fewer
    than two voices have a finite row under ``mask``.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    rows = [i for i in np.flatnonzero(mask) if speakers[i] is not None and np.all(np.isfinite(embeddings[i]))]
    if len({speakers[i] for i in rows}) < 2:
        return None
    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000, class_weight="balanced",
                                                               random_state=seed))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence on tiny fits
        return probe.fit(embeddings[rows], [speakers[i] for i in rows])


@dataclass
class ProbeJudge:
    """The second judge's verdicts (see :func:`measure_probe_judge`); hit arrays are per asked row or trial."""

    fitted_rows: int
    voices: int
    round_trip_hits: np.ndarray    # prompt-half codec round trips: the ceiling for a swap
    real_hits: np.ndarray          # prompt-half real recordings: the judge's own limit
    swap_hits: np.ndarray          # voice-level swaps (content row in the prompt half): assigned to the target
    swap_to_source: np.ndarray     # ... assigned to the source

    @staticmethod
    def share(hits: np.ndarray) -> float:
        return float(np.mean(hits)) if len(hits) else math.nan

    @property
    def chance(self) -> float:
        return 1.0 / self.voices if self.voices else math.nan


def measure_probe_judge(round_trip_embeddings: np.ndarray, real_embeddings: np.ndarray,
                        speakers: Sequence[str | None], prompt: np.ndarray, reference: np.ndarray,
                        swaps: SwapAccuracy, *, seed: int = 0) -> ProbeJudge | None:
    """Fit :func:`fit_speaker_probe` on the reference half's round trips, then ask it about the prompt half.

    ``swaps``: voice-level trials (:func:`measure_swap_accuracy` with ``voice_vectors`` from the prompt half),
    whose ``output_embeddings`` are judged when their content row is in the prompt half, so neither the
    conditioning voice vector nor the content row's audio was seen by the probe. A row or output without a
    finite embedding counts as a miss. None when the probe cannot be fitted.
    """
    probe = fit_speaker_probe(round_trip_embeddings, speakers, reference, seed=seed)
    if probe is None:
        return None
    known = set(probe.classes_)

    def hits(embeddings: np.ndarray, rows: Sequence[int], truth: Sequence[str]) -> np.ndarray:
        if not len(rows):
            return np.zeros(0, bool)
        x = embeddings[list(rows)]
        finite = np.all(np.isfinite(x), axis=1)
        predicted = np.full(len(rows), None, dtype=object)
        if finite.any():
            predicted[finite] = probe.predict(x[finite])
        return np.array([p is not None and p == t for p, t in zip(predicted, truth)], bool)

    asked = [i for i in np.flatnonzero(prompt) if speakers[i] in known]
    labels = [speakers[i] for i in asked]
    judged = [k for k, t in enumerate(swaps.trials) if prompt[t.content_row]]
    out = swaps.output_embeddings
    return ProbeJudge(
        fitted_rows=int(probe[0].n_samples_seen_),  # the scaler saw exactly the rows the probe was fitted on
        voices=len(known),
        round_trip_hits=hits(round_trip_embeddings, asked, labels),
        real_hits=hits(real_embeddings, asked, labels),
        swap_hits=hits(out, judged, [swaps.targets[k] for k in judged]),
        swap_to_source=hits(out, judged, [swaps.sources[k] for k in judged]))


def voice_mean_vectors(speaker_vectors: np.ndarray, speakers: Sequence[str | None],
                       mask: np.ndarray) -> dict[str, np.ndarray]:
    """Speaker name -> the unit-norm mean of the rows' speaker vectors (``RowFeatures.features["speaker"]``,
    ``[N, dim]``) over that speaker's rows in ``mask``."""
    out = {}
    for name in sorted({speakers[i] for i in np.flatnonzero(mask) if speakers[i] is not None}):
        mean = speaker_vectors[[i for i in np.flatnonzero(mask) if speakers[i] == name]].mean(0)
        out[name] = (mean / np.linalg.norm(mean)).astype(np.float32)
    return out


def judge_leave_one_out(embeddings: np.ndarray, speakers: Sequence[str | None]) -> tuple[np.ndarray, np.ndarray]:
    """Each embeddable, labelled row classified by nearest centroid without itself: (hit per row, candidates).

    Rows whose speaker has no other embeddable row are not asked (no fair question) but stay candidates. On
    codec round trips this is the ceiling a swap can reach with this judge; on the real recordings, the
    judge's own limit.

    Example:
        >>> e = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9], [0.5, 0.5]])
        >>> hits, cand = judge_leave_one_out(e, ["a", "a", "b", "b", "c"])
        >>> hits.tolist(), cand.tolist()
        ([True, True, True, True], [3.0, 3.0, 3.0, 3.0])
    """
    classify = _centroid_classifier(embeddings, speakers)
    hits, cand = [], []
    for i in np.flatnonzero(np.all(np.isfinite(embeddings), axis=1)):
        if speakers[i] is None:
            continue
        names, cos = classify(embeddings[i], [i])
        if speakers[i] in names:  # the speaker has another row: a fair leave-one-out question
            hits.append(names[int(np.argmax(cos))] == speakers[i])
            cand.append(len(names))
    return np.asarray(hits, bool), np.asarray(cand, float)


@dataclass(frozen=True)
class ParallelPair:
    """Row ``a`` and row ``b``: two voices, one sentence; the swap takes ``a``'s content and ``b``'s speaker."""

    a: int
    b: int
    text_id: str


@dataclass
class ParallelPlan:
    """The pairs measured, and how many same-sentence pairs were left out and why."""

    pairs: list[ParallelPair]
    same_sentence_pairs: int       # ordered pairs of different voices, same text_id and language
    seen_in_training: int          # ... whose sentence also occurs in the train split
    other_labels_differ: int       # ... whose style, environment or channel labels differ
    not_sampled: int               # over ``max_pairs``


def find_parallel_pairs(labels: Mapping[str, Sequence[str | None]], *, exclude_text_ids: set[str],
                        max_pairs: int | None = None, seed: int = 0) -> ParallelPlan:
    """Ordered pairs (A, B) of rows with the same ``text_id`` and ``language``, different (known) speakers.

    Left out: sentences in ``exclude_text_ids`` (seen in training) and pairs whose style, environment or
    channel labels differ (a missing label equals only a missing label): the swap changes the speaker alone, so
    B's rendering is its ground truth only when nothing else differs. Over ``max_pairs``, a seeded sample.

    Example:
        >>> plan = find_parallel_pairs({"speaker": ["x", "y", "y"], "text_id": ["t1", "t1", "t2"],
        ...     "language": ["en", "en", "en"], "style": [None] * 3, "environment": [None] * 3,
        ...     "channel": [None] * 3}, exclude_text_ids=set())
        >>> [(p.a, p.b) for p in plan.pairs]
        [(0, 1), (1, 0)]
    """
    groups: dict[tuple[str, str], list[int]] = defaultdict(list)
    for i, (s, t, lang) in enumerate(zip(labels["speaker"], labels["text_id"], labels["language"])):
        if s is not None and t is not None and lang is not None:
            groups[(t, lang)].append(i)
    same, seen, differ, kept = 0, 0, 0, []
    for (text_id, _), members in sorted(groups.items()):
        for a in members:
            for b in members:
                if labels["speaker"][a] == labels["speaker"][b]:
                    continue
                same += 1
                if text_id in exclude_text_ids:
                    seen += 1
                elif any(labels[k][a] != labels[k][b] for k in ("style", "environment", "channel")):
                    differ += 1
                else:
                    kept.append(ParallelPair(a, b, text_id))
    not_sampled = 0
    if max_pairs is not None and len(kept) > max_pairs:
        pick = np.sort(np.random.default_rng(seed).choice(len(kept), size=max_pairs, replace=False))
        not_sampled = len(kept) - max_pairs
        kept = [kept[k] for k in pick]
    return ParallelPlan(kept, same, seen, differ, not_sampled)


def measure_dtw_mel_distance(reference: np.ndarray, decoded: np.ndarray) -> float:
    """Mel distance after DTW: mean |log mel difference| over the aligned frame pairs and 80 bands (0 if equal).

    The log mel spectrogram is the one of :func:`pipelines.eval.metrics.measure_mel_distance`; the alignment is
    ``librosa.sequence.dtw`` with a city-block frame cost (so the path minimizes the same L1 quantity that is
    then averaged). Clips of different lengths and speaking rates can be compared.
    """
    import librosa

    from pipelines.eval.metrics import log_mel_spectrogram  # the codec eval's spectrogram, not a second copy

    x, y = log_mel_spectrogram(reference), log_mel_spectrogram(decoded)
    _, path = librosa.sequence.dtw(X=x, Y=y, metric="cityblock")
    return float(np.mean(np.abs(x[:, path[:, 0]] - y[:, path[:, 1]])))


@dataclass
class ParallelDistances:
    """Per pair: DTW mel distance to B's real recording of the swap, of A's round trip, of B's round trip."""

    pairs: list[ParallelPair]
    swap: np.ndarray
    floor: np.ndarray
    ceiling: np.ndarray

    @property
    def beats_floor(self) -> float:
        """Share of pairs where the swap is closer to B's recording than A's own round trip is."""
        return float(np.mean(self.swap < self.floor)) if len(self.pairs) else math.nan


def measure_parallel_distances(factorizer, codec, rows: HeldOutRows, pairs: Sequence[ParallelPair],
                               references: Mapping[int, np.ndarray], *, batch_size: int = 16,
                               round_trips: dict[int, np.ndarray] | None = None,
                               progress: Callable[[str], None] = lambda _: None) -> ParallelDistances:
    """Distances of every pair; ``references`` maps row ``b`` to its real audio (16 kHz, from ``segments``)."""
    from pipelines.latents import decode_codes
    from recombination.swap import factorize_codes, recombine

    round_trips = decode_rows(codec, rows, sorted({r for p in pairs for r in (p.a, p.b)}), round_trips)
    swap, floor, ceiling = [], [], []
    for start in range(0, len(pairs), batch_size):
        batch = pairs[start:start + batch_size]
        distinct = sorted({r for p in batch for r in (p.a, p.b)})
        pos = {r: k for k, r in enumerate(distinct)}
        factors = factorize_codes(factorizer, codec, [rows.codes[r] for r in distinct])
        out = recombine(factorizer, codec, factors, content_rows=[pos[p.a] for p in batch],
                        donor_rows={"speaker": [pos[p.b] for p in batch]})
        for k, p in enumerate(batch):
            reference = references[p.b]
            swap.append(measure_dtw_mel_distance(reference, decode_codes(codec, out.codes[k], rows.num_samples[p.a])))
            floor.append(measure_dtw_mel_distance(reference, round_trips[p.a]))
            ceiling.append(measure_dtw_mel_distance(reference, round_trips[p.b]))
        progress(f"  parallel pairs {min(start + batch_size, len(pairs))}/{len(pairs)}")
    return ParallelDistances(list(pairs), np.asarray(swap), np.asarray(floor), np.asarray(ceiling))


@dataclass(frozen=True)
class SwapThroughput:
    """CPU and wall seconds per repeat for one batch, without and with decoding the outputs to audio."""

    rows: int
    synthetic_s: float
    swap_cpu_s: list[float]
    swap_wall_s: list[float]
    with_decode_cpu_s: list[float]
    with_decode_wall_s: list[float]

    def per_cpu_s(self, with_decode: bool) -> float:
        """Synthetic seconds per CPU second (median repeat)."""
        return self.synthetic_s / float(np.median(self.with_decode_cpu_s if with_decode else self.swap_cpu_s))


def measure_swap_throughput(factorizer, codec, codes: Sequence[np.ndarray], *, repeats: int = 3) -> SwapThroughput:
    """Time factorize + recombine (row ``i``'s content, row ``i+1``'s speaker) on one torch thread.

    The timed swap is exactly what the recombine stage runs per batch: :func:`recombination.swap.factorize_codes`
    on every row, then :func:`recombination.swap.recombine` (the factorizer decode, the snap to the codec grid
    and the re-encode check). "With decoding" adds the codec decoder on each output, one row at a time as the
    stage does. One untimed warm-up, then ``repeats``; CPU time is this process's (``time.process_time``).
    """
    import torch

    from pipelines.latents import decode_codes
    from recombination.swap import factorize_codes, recombine

    if repeats < 1 or not codes:
        raise ValueError("need rows and repeats >= 1")
    n = len(codes)
    donors = [(i + 1) % n for i in range(n)]

    def swap():
        factors = factorize_codes(factorizer, codec, list(codes))
        return recombine(factorizer, codec, factors, content_rows=range(n), donor_rows={"speaker": donors})

    def swap_and_decode():
        return [decode_codes(codec, c) for c in swap().codes]

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        timings = {}
        for name, fn in (("swap", swap), ("decode", swap_and_decode)):
            fn()
            cpu, wall = [], []
            for _ in range(repeats):
                c0, w0 = time.process_time(), time.perf_counter()
                fn()
                cpu.append(time.process_time() - c0)
                wall.append(time.perf_counter() - w0)
            timings[name] = (cpu, wall)
    finally:
        torch.set_num_threads(before)
    synthetic_s = sum(len(c) for c in codes) / codec.frame_rate_hz
    return SwapThroughput(n, synthetic_s, *timings["swap"], *timings["decode"])
