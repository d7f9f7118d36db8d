"""Judge a speech-to-speech normalization model on held-out inputs, with models it never trained with.

Issue #5 item 3 asks three questions of every converted row; each is answered by an outside judge, and each
answer is printed beside the same judge's answer on the unconverted source (what the model must beat) and,
where one exists, on the target voice itself (the ceiling):

- **content kept**: phoneme error rate of a CTC recognizer trained separately (``jobs/train_ctc.py``) on the
  output codes, against the *source* row's transcript (:func:`pipelines.eval_ctc.score_ctc`);
- **target-voice similarity**: Resemblyzer cosine (:class:`recombination.judges.SpeakerJudge`) of the decoded
  output to the centroid of the target voice's decoded rows; the ceiling is each target row's cosine to the
  centroid of the others;
- **environment removed**: among sources that are not ``clean``, the share of outputs that an environment probe
  calls ``clean`` (logistic regression on the pooled codec latent, fitted on real rows no eval set holds), and
  DNSMOS P.835 BAK (background noise, 1-5; :class:`recombination.judges.NaturalnessJudge`).

Measurements (:func:`convert_rows`, :func:`pooled_latents`, :class:`EnvironmentProbe`, :func:`score_set`) take
loaded models and codes, no IO; :func:`evaluate_s2s` reads the lake and the recognizer, and runs them.

Example::

    result = evaluate_s2s(config, s2s, meta, progress=print)       # the job's eval block, the trained model
    result["sets"]["real_holdout"]["per_output"], result["target"]["speaker_sim_loo"]
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["CLEAN", "EVAL_VERSION", "EnvironmentProbe", "convert_rows", "pooled_latents", "decode_all",
           "speaker_centroid", "score_set", "text_references", "fetch_recognizer", "load_recognizer", "evaluate_s2s",
           "format_line", "format_markdown"]

#: The environment label of a row with no room and no added noise.
CLEAN = "clean"
#: Bumped when a measurement changes: a stored eval.json of another version is measured again.
EVAL_VERSION = 3


def convert_rows(s2s, codes: Sequence[np.ndarray], *, rate: float = 1.0, speaker: np.ndarray | None = None,
                 batch_size: int = 16) -> list[np.ndarray]:
    """Greedy conversions of whole rows: uint16 ``[frames * rate, stages]`` per source row, in order.

    ``speaker``: one target speaker vector ``[dim]`` for every row (a conditioned model), else None.
    """
    import torch

    from models.s2s.model import target_lengths_for

    s2s.eval()
    out: list[np.ndarray] = [np.zeros((0, 0), np.uint16)] * len(codes)
    order = np.argsort([len(c) for c in codes], kind="stable")  # similar lengths per batch: less padding
    for start in range(0, len(order), batch_size):
        rows = order[start:start + batch_size]
        frames = max(len(codes[i]) for i in rows)
        padded = np.zeros((len(rows), frames, codes[rows[0]].shape[1]), dtype=np.int64)
        for k, i in enumerate(rows):
            padded[k, :len(codes[i])] = codes[i]
        lengths = torch.tensor([len(codes[i]) for i in rows])
        vector = None if speaker is None else torch.from_numpy(np.tile(speaker[None], (len(rows), 1)))
        with torch.no_grad():
            conv = s2s.convert(torch.from_numpy(padded), lengths, target_lengths_for(lengths, rate), speaker=vector)
        for k, i in enumerate(rows):
            out[i] = conv.codes[k, :int(conv.lengths[k])].numpy().astype(np.uint16)
    return out


def pooled_latents(codec, codes: Sequence[np.ndarray], *, batch_size: int = 32) -> np.ndarray:
    """Mean and std over frames of each row's quantized codec latent, float32 ``[rows, 2 * latent_dim]`` in row
    order: the recombination report's latent features (:func:`pipelines.eval.recombine_quality.pool_latents`),
    in batches of similar length."""
    from pipelines.eval.recombine_quality import pool_latents

    if not len(codes):
        return np.zeros((0, 0), np.float32)
    order = np.argsort([len(c) for c in codes], kind="stable")
    parts = [pool_latents(codec, [codes[i] for i in order[start:start + batch_size]])
             for start in range(0, len(order), batch_size)]
    out = np.empty_like(np.concatenate(parts))
    out[order] = np.concatenate(parts)
    return out


class EnvironmentProbe:
    """Which environment a row sounds recorded in, from its pooled codec latent (standardized, class-balanced
    logistic regression): a judge that shares nothing with the S2S model but the codec.

    Example:
        >>> probe = EnvironmentProbe().fit(features, ["clean", "room", ...])
        >>> probe.predict(pooled_latents(codec, outputs))
    """

    def __init__(self, *, seed: int = 0) -> None:
        self.seed = seed
        self._model = None
        self.classes: list[str] = []

    def fit(self, features: np.ndarray, labels: Sequence[str]) -> "EnvironmentProbe":
        """Fit on labelled rows; classes with fewer than 3 rows are left out (too few to learn).

        Raises:
            ValueError: fewer than two classes (with ``clean`` among them) remain.
        """
        import warnings

        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        counts = Counter(labels)
        keep = [i for i, y in enumerate(labels) if counts[y] >= 3]
        self.classes = sorted({labels[i] for i in keep})
        if len(self.classes) < 2 or CLEAN not in self.classes:
            raise ValueError(f"the environment probe needs '{CLEAN}' and another environment with >= 3 rows each; "
                             f"probe rows have {dict(counts)}")
        self._model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, class_weight="balanced",
                                                                         random_state=self.seed))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # convergence on tiny sets
            self._model.fit(np.asarray(features, np.float64)[keep], [labels[i] for i in keep])
        return self

    def predict(self, features: np.ndarray) -> list[str]:
        if self._model is None:
            raise RuntimeError("fit the probe first")
        if not len(features):
            return []
        return [str(v) for v in self._model.predict(np.asarray(features, np.float64))]


def decode_all(codec, codes: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Each row's codes decoded to a float32 waveform at the codec's rate (one row at a time: no padding)."""
    from pipelines.latents import decode_codes

    return [decode_codes(codec, c) for c in codes]


def _unit(v: np.ndarray) -> np.ndarray:
    n = float(np.linalg.norm(v))
    return v / n if n > 0 and math.isfinite(n) else np.full_like(v, np.nan)


def speaker_centroid(embeddings: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(unit centroid of the judgeable rows, each row's cosine to the centroid of the OTHER rows).

    Leave-one-out, so the ceiling is what a real row of the voice scores against a centroid it is not in,
    as an output is.
    """
    ok = np.isfinite(embeddings).all(axis=1)
    good = embeddings[ok].astype(np.float64)
    if len(good) < 2:
        raise ValueError(f"the target voice needs >= 2 judgeable rows for a centroid, got {len(good)}")
    total = good.sum(axis=0)
    loo = np.full(len(embeddings), np.nan)
    loo[np.flatnonzero(ok)] = [float(_unit(total - e) @ _unit(e)) for e in good]
    return _unit(total), loo


def _mean(values) -> float:
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    return float(v.mean()) if len(v) else math.nan


def text_references(rows) -> dict[tuple[str, str], int]:
    """(language, text_id) -> the first row of ``rows`` (the target voice's) speaking it."""
    refs: dict[tuple[str, str], int] = {}
    for i, key in enumerate(zip(rows.labels.get("language", []), rows.labels.get("text_id", []))):
        if None not in key:
            refs.setdefault(key, i)
    return refs


def _text_distances(rows, wav_source, wav_output, references: dict[tuple[str, str], np.ndarray]
                    ) -> dict[str, float]:
    """DTW mel distances of source and output to the target voice's recording of the row's sentence and of
    another sentence (the next one, in sorted order, that the voice recorded)."""
    from pipelines.eval.recombine_quality import measure_dtw_mel_distance

    keys = sorted(references)
    if len(keys) < 2:
        return {"text_rows": 0}
    same = {"source": [], "output": []}
    other = {"source": [], "output": []}
    for i, key in enumerate(zip(rows.labels["language"], rows.labels["text_id"])):
        if key not in references:
            continue
        ref, ref_other = references[key], references[keys[(keys.index(key) + 1) % len(keys)]]
        for name, wav in (("source", wav_source[i]), ("output", wav_output[i])):
            same[name].append(measure_dtw_mel_distance(ref, wav))
            other[name].append(measure_dtw_mel_distance(ref_other, wav))
    out: dict[str, float] = {"text_rows": len(same["output"])}
    if not same["output"]:
        return out
    for name in ("source", "output"):
        a, b = np.asarray(same[name]), np.asarray(other[name])
        out[f"dtw_same_text_{name}"], out[f"dtw_other_text_{name}"] = float(a.mean()), float(b.mean())
        out[f"dtw_closer_rate_{name}"] = float(np.mean(a < b))
    return out


def score_set(rows, outputs: Sequence[np.ndarray], *, recognizer, codec, probe: EnvironmentProbe,
              speaker_judge=None, centroid: np.ndarray | None = None, dnsmos=None,
              references: dict[tuple[str, str], np.ndarray] | None = None) -> dict[str, float]:
    """Scores of one eval set: ``rows`` (:class:`pipelines.eval_ctc.EvalRows`, with labels) and their outputs.

    Keys: ``rows``; ``per_source`` / ``per_output``, and ``per_output_other_text`` (each output against another
    row's transcript: what the recognizer scores when the content is NOT kept; ``per_output`` well below it
    means the words survived); ``env_not_clean_rows``, ``env_clean_rate_source`` /
    ``env_clean_rate_output`` (probe says clean, among not-clean sources), ``env_probe_accuracy`` (on the
    sources' own labels); with a speaker judge ``speaker_sim_source`` / ``speaker_sim_output`` (mean cosine to
    the target centroid) and ``speaker_closer_rate`` (output closer than its source); with DNSMOS
    ``dnsmos_bak_source`` / ``dnsmos_bak_output`` (on not-clean sources) and ``dnsmos_ovrl_*`` (all rows);
    with ``references`` (the target voice's decoded recordings by ``(language, text_id)``), for the
    ``text_rows`` rows whose sentence the voice recorded: ``dtw_same_text_*`` / ``dtw_other_text_*`` (mean DTW
    mel distance to its recording of that sentence / of another one) and ``dtw_closer_rate_*`` (share closer
    to the right sentence: content kept, judged on audio with no model; 0.5 is chance).
    """
    from pipelines.eval_ctc import score_ctc

    n = len(rows)
    out: dict[str, float] = {"rows": n}
    if n == 0:
        return out
    out["per_source"] = score_ctc(recognizer, rows)["per"]
    out["per_output"] = score_ctc(recognizer, replace(rows, codes=list(outputs)))["per"]
    if n > 1:  # the judge's chance level: each output scored against the NEXT row's transcript
        rotated = rows.targets[1:] + rows.targets[:1]
        out["per_output_other_text"] = score_ctc(recognizer, replace(rows, codes=list(outputs),
                                                                     targets=rotated))["per"]
    env = rows.labels.get("environment") or [None] * n
    labelled = [i for i in range(n) if env[i] is not None]
    dirty = [i for i in labelled if env[i] != CLEAN]
    said_source = probe.predict(pooled_latents(codec, rows.codes))
    said_output = probe.predict(pooled_latents(codec, outputs))
    out["env_not_clean_rows"] = len(dirty)
    out["env_probe_accuracy"] = _mean([said_source[i] == env[i] for i in labelled]) if labelled else math.nan
    out["env_clean_rate_source"] = _mean([said_source[i] == CLEAN for i in dirty]) if dirty else math.nan
    out["env_clean_rate_output"] = _mean([said_output[i] == CLEAN for i in dirty]) if dirty else math.nan
    out["env_clean_rate_output_all"] = _mean([s == CLEAN for s in said_output])
    if speaker_judge is None and dnsmos is None and not references:
        return out
    rate = int(codec.sample_rate_hz)
    wav_source, wav_output = decode_all(codec, rows.codes), decode_all(codec, outputs)
    if speaker_judge is not None and centroid is not None:
        source = np.array([speaker_judge.similarity(e, centroid)
                           for e in speaker_judge.embed_many(wav_source, rate)])
        output = np.array([speaker_judge.similarity(e, centroid)
                           for e in speaker_judge.embed_many(wav_output, rate)])
        both = np.isfinite(source) & np.isfinite(output)
        out["speaker_sim_source"], out["speaker_sim_output"] = _mean(source), _mean(output)
        out["speaker_closer_rate"] = _mean(output[both] > source[both]) if both.any() else math.nan
        out["speaker_judged_rows"] = int(both.sum())
    if references:
        out.update(_text_distances(rows, wav_source, wav_output, references))
    if dnsmos is not None:
        source_scores = [dnsmos(w, rate) for w in wav_source]
        output_scores = [dnsmos(w, rate) for w in wav_output]
        out["dnsmos_bak_source"] = _mean([source_scores[i].bak for i in dirty]) if dirty else math.nan
        out["dnsmos_bak_output"] = _mean([output_scores[i].bak for i in dirty]) if dirty else math.nan
        out["dnsmos_ovrl_source"] = _mean([s.ovrl for s in source_scores])
        out["dnsmos_ovrl_output"] = _mean([s.ovrl for s in output_scores])
    return out


def _target_speaker_vector(config, meta, keys: Sequence[str]) -> np.ndarray | None:
    """A conditioned model's target: the unit mean of the target rows' speaker vectors (its own factorizer's)."""
    if meta.factorizer_id is None:
        return None
    from pipelines.lance_io import read_column_values, table_uri
    from schemas.sql import sql_list
    from schemas.factors import FACTOR_DIMS, VECTOR_COLUMNS

    column = VECTOR_COLUMNS["speaker"]
    table = read_column_values(table_uri(config.input.lake_root, "factors"), [column], config.input.storage,
                               f"factorizer_id = '{meta.factorizer_id}' AND segment_id IN ({sql_list(keys)})")
    if table.num_rows == 0:
        raise ValueError(f"no speaker vectors of factorizer {meta.factorizer_id!r} for the target rows")
    vectors = table.column(column).combine_chunks().values.to_numpy().reshape(-1, FACTOR_DIMS["speaker"])
    return _unit(vectors.mean(axis=0)).astype(np.float32)


def fetch_recognizer(uri: str, storage) -> Path:
    """A local path of the recognizer checkpoint ``uri`` (downloaded once to a temp file when remote).

    Raises:
        FileNotFoundError: no such file; the message says how to make one.
    """
    import tempfile

    import fsspec

    from schemas.storage import is_remote

    fs, path = fsspec.core.url_to_fs(uri, **(storage.fsspec_options() if is_remote(uri) else {}))
    if not fs.exists(path):
        raise FileNotFoundError(f"eval.recognizer_checkpoint {uri}: no such file; train one with `python "
                                "jobs/train_ctc.py --config configs/train_ctc_en.yaml`, or set eval: null")
    if not is_remote(uri):
        return Path(path)
    local = Path(tempfile.mkdtemp(prefix="lsm-recognizer-")) / "recognizer.pt"
    fs.get(path, str(local))
    return local


def load_recognizer(uri: str, storage, codec_id: str):
    """``(model, meta)`` of the recognizer checkpoint ``uri``, which must read ``codec_id``'s codes.

    Raises:
        FileNotFoundError: no such file (the message says how to train one).
        models.ctc.CtcCheckpointError: a recognizer of another codec, or a broken file.
    """
    from models.ctc.checkpoint import load_ctc_checkpoint

    model, _, meta = load_ctc_checkpoint(fetch_recognizer(uri, storage), expected_codec_id=codec_id)
    return model, meta


def evaluate_s2s(config, s2s, meta, *, recognizer=None, progress: Callable[[str], None] = print) -> dict[str, Any]:
    """Run the ``config.eval`` block (a :class:`schemas.train_s2s.TrainS2SConfig`) on the trained ``s2s``.

    ``recognizer``: ``(model, meta)`` from :func:`load_recognizer` if the caller has it; None loads
    ``eval.recognizer_checkpoint``.

    Returns ``{"s2s_id", "recognizer", "target": {...}, "sets": {name: scores}}`` (see :func:`score_set`);
    ``target`` holds the recognizer's PER on the target voice and its leave-one-out speaker similarity.

    Raises:
        FileNotFoundError: no recognizer checkpoint (the message says how to train one).
        models.ctc.CtcCheckpointError: a recognizer of another codec, or a broken file.
        ValueError: no target or probe rows to judge with.
    """
    from models.codec import load_checkpoint
    from pipelines.eval_ctc import load_eval_rows, score_ctc
    from pipelines.phonemes import PhonemeInventory, Phonemizer

    ev = config.eval
    recognizer, rec_meta = recognizer or load_recognizer(ev.recognizer_checkpoint, config.input.storage,
                                                         meta.codec_id)
    codec, _, codec_meta = load_checkpoint(config.input.codec_checkpoint, expected_codec_id=meta.codec_id)
    inventory = PhonemeInventory(tuple(rec_meta.phonemes))
    phonemizer = Phonemizer(cache_dir=config.phoneme_cache)
    t0 = time.perf_counter()
    sets = {s.name: load_eval_rows(config.input, s.filter, inventory, phonemizer, max_rows=s.max_rows)
            for s in ev.sets}
    held_out = {k for rows in sets.values() for k in rows.keys}
    target = load_eval_rows(config.input, config.target_filter, inventory, phonemizer, max_rows=ev.target_rows)
    phonemizer.save()
    if len(target) < 2:
        raise ValueError(f"target_filter {config.target_filter!r}: {len(target)} rows with transcripts and latents; "
                         "the evaluation needs >= 2")
    probe_rows = load_eval_rows(config.input, ev.probe_filter, None, None, max_rows=ev.probe_rows)
    keep = [i for i, k in enumerate(probe_rows.keys) if k not in held_out and probe_rows.labels["environment"][i]]
    probe = EnvironmentProbe().fit(pooled_latents(codec, [probe_rows.codes[i] for i in keep]),
                                   [probe_rows.labels["environment"][i] for i in keep])
    progress(f"eval: recognizer {rec_meta.ctc_id}; environment probe on {len(keep)} rows ({', '.join(probe.classes)})"
             f"; {len(target)} target rows; {time.perf_counter() - t0:.1f} s to load")
    result: dict[str, Any] = {"s2s_id": meta.s2s_id, "recognizer": rec_meta.ctc_id, "codec": codec_meta.codec_id,
                              "probe_rows": len(keep), "probe_classes": probe.classes,
                              "target": {"rows": len(target), "per": score_ctc(recognizer, target)["per"]}, "sets": {}}
    judge = centroid = dnsmos = references = None
    target_wavs = decode_all(codec, target.codes) if (ev.speaker_judge or ev.text_references) else []
    if ev.text_references:
        references = {key: target_wavs[i] for key, i in text_references(target).items()}
    if ev.speaker_judge:
        from recombination.judges import SpeakerJudge

        judge = SpeakerJudge()
        centroid, loo = speaker_centroid(judge.embed_many(target_wavs, int(codec.sample_rate_hz)))
        result["target"]["speaker_sim_loo"] = _mean(loo)
    if ev.dnsmos:
        from recombination.judges import NaturalnessJudge

        dnsmos = NaturalnessJudge()
    speaker = _target_speaker_vector(config, meta, target.keys)
    for s in ev.sets:
        t0 = time.perf_counter()
        rows = sets[s.name]
        outputs = convert_rows(s2s, rows.codes, rate=ev.rate, speaker=speaker)
        scores = score_set(rows, outputs, recognizer=recognizer, codec=codec, probe=probe, speaker_judge=judge,
                           centroid=centroid, dnsmos=dnsmos, references=references)
        scores["skipped"] = sum(rows.skipped.values())
        result["sets"][s.name] = scores
        progress(f"eval {s.name}: {format_line(scores)} ({time.perf_counter() - t0:.1f} s)")
    return result


def format_line(scores: dict[str, float]) -> str:
    """One set's scores on one line, source -> output (the job's progress and summary)."""
    if not scores.get("rows"):
        return "no rows"
    parts = [f"{int(scores['rows'])} rows", f"PER {scores['per_source']:.3f} -> {scores['per_output']:.3f}"
             + (f" (other text {scores['per_output_other_text']:.3f})" if "per_output_other_text" in scores else "")]
    if scores.get("text_rows"):
        parts.append(f"closer to the voice's own reading of the sentence {scores['dtw_closer_rate_source']:.2f} -> "
                     f"{scores['dtw_closer_rate_output']:.2f} of {int(scores['text_rows'])}")
    if "speaker_sim_output" in scores:
        parts.append(f"target-voice sim {scores['speaker_sim_source']:.3f} -> {scores['speaker_sim_output']:.3f}")
    if scores.get("env_not_clean_rows"):
        parts.append(f"called clean {scores['env_clean_rate_source']:.2f} -> {scores['env_clean_rate_output']:.2f} "
                     f"of {int(scores['env_not_clean_rows'])} not-clean")
    if "dnsmos_bak_output" in scores and scores.get("env_not_clean_rows"):
        parts.append(f"BAK {scores['dnsmos_bak_source']:.2f} -> {scores['dnsmos_bak_output']:.2f}")
    return "; ".join(parts)


def _fmt(v: Any, digits: int = 3) -> str:
    return "n/a" if v is None or (isinstance(v, float) and not math.isfinite(v)) else f"{v:.{digits}f}"


def format_markdown(result: dict[str, Any]) -> str:
    """The eval result as a Markdown table: one row per set, source -> output for every judge."""
    target = result["target"]
    lines = ["| set | rows | PER source → output | PER output vs another row's text | "
             "right sentence closer (DTW to the voice's reading) source → output (rows) | "
             "target-voice sim source → output (closer) | not clean: probe says clean source → output | "
             "DNSMOS BAK (not clean) source → output | DNSMOS OVRL source → output |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name, s in result["sets"].items():
        if not s.get("rows"):
            lines.append(f"| {name} | 0 | | | | | | | |")
            continue
        lines.append(
            f"| {name} | {int(s['rows'])} | {_fmt(s['per_source'])} → {_fmt(s['per_output'])} | "
            f"{_fmt(s.get('per_output_other_text'))} | "
            f"{_fmt(s.get('dtw_closer_rate_source'), 2)} → {_fmt(s.get('dtw_closer_rate_output'), 2)} "
            f"({int(s.get('text_rows', 0))}) | "
            f"{_fmt(s.get('speaker_sim_source'))} → {_fmt(s.get('speaker_sim_output'))} "
            f"({_fmt(s.get('speaker_closer_rate'), 2)}) | {_fmt(s.get('env_clean_rate_source'), 2)} → "
            f"{_fmt(s.get('env_clean_rate_output'), 2)} (of {int(s.get('env_not_clean_rows', 0))}) | "
            f"{_fmt(s.get('dnsmos_bak_source'), 2)} → {_fmt(s.get('dnsmos_bak_output'), 2)} | "
            f"{_fmt(s.get('dnsmos_ovrl_source'), 2)} → {_fmt(s.get('dnsmos_ovrl_output'), 2)} |")
    lines.append("")
    lines.append(f"Target voice ({int(target['rows'])} real rows, which the recognizer may have trained on): "
                 f"recognizer PER {_fmt(target['per'])}; "
                 f"leave-one-out speaker similarity {_fmt(target.get('speaker_sim_loo'))} (the ceiling). "
                 f"Environment probe: {result['probe_rows']} rows, classes {', '.join(result['probe_classes'])}.")
    return "\n".join(lines)
