"""The recombination-quality bench (bench/recombine_quality.py, pipelines/eval/recombine_quality.py) on a tiny lake.

Tiny codec and factorizer (untrained): the figures mean nothing, the tests check that every measurement runs
end to end, has the right shape and range, picks the right rows, and that bad inputs fail in one line.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from bench.recombine_quality import RESULTS_MARKER, main, measure_recombine_quality, read_held_out
from pipelines.eval import recombine_quality as rq
from tests.factories import speechlike
from tests.tiny_lake import segment_row, write_latents, write_segments

EN_SPEAKERS, SENTENCES = 3, 4


class _SpectrumJudge:
    """A cheap stand-in with SpeakerJudge's ``embed``: the unit-norm mean log spectrum (256 bins) of a clip.

    The tiny codec's audio is not speech, so Resemblyzer would call every clip unjudgeable; this embeds
    anything, which is what the swap bookkeeping needs to be exercised.
    """

    def embed(self, wav: np.ndarray, sample_rate_hz: int) -> np.ndarray:
        frames = np.lib.stride_tricks.sliding_window_view(np.asarray(wav, np.float64), 510)[::255]
        spectrum = np.log(np.abs(np.fft.rfft(frames, axis=-1)) + 1e-6).mean(axis=0)
        spectrum -= spectrum.mean()
        return (spectrum / np.linalg.norm(spectrum)).astype(np.float32)


def _rows() -> list[dict]:
    """Test split: 3 English voices x 4 sentences (parallel), 1 French voice, 1 unlabelled row; train: sentence 0."""
    rows = [segment_row(0.6 + 0.1 * k, seed=10 * v + k, speaker=f"t:{v}", split="test", language="en",
                        text_id=f"en-{k}", environment=["clean", "room"][k % 2])
            for v in range(EN_SPEAKERS) for k in range(SENTENCES)]
    rows += [segment_row(0.7, seed=40 + k, speaker="t:fr", split="test", language="fr", text_id=f"fr-{k}",
                         environment="clean") for k in range(3)]
    rows.append(segment_row(0.8, seed=50, speaker=None, split="test", language="en", text_id="en-9"))
    rows.append(segment_row(0.8, seed=60, speaker="t:seen", split="train", language="en", text_id="en-0"))
    return rows


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """(lake, codec checkpoint, factorizer checkpoint, codec id): latents of the tiny codec, a paired factorizer."""
    import torch

    from models.codec import build_codec, codec_tiny_test, load_checkpoint, save_checkpoint
    from models.factorizer import build_factorizer, factorizer_tiny_test, save_factorizer_checkpoint

    root = tmp_path_factory.mktemp("recombine-quality")
    lake = root / "lake"
    rows = _rows()
    write_segments(lake, rows)
    torch.manual_seed(0)
    codec = save_checkpoint(root / "codec.pt", build_codec(codec_tiny_test()), codec_tiny_test())
    codec_id = load_checkpoint(codec)[2].codec_id
    write_latents(lake, rows, codec_id=codec_id)
    config = factorizer_tiny_test()
    factorizer = save_factorizer_checkpoint(root / "factorizer.pt", build_factorizer(config), config,
                                            codec_id=codec_id)
    return lake, codec, factorizer, codec_id


def test_chance_is_the_majority_rate_and_one_over_the_classes():
    assert rq.chance_rates(["a", "a", "b", "c"]) == (0.5, pytest.approx(1 / 3))
    assert rq.chance_rates(["x"] * 5) == (1.0, 1.0)


def test_a_probe_reads_informative_features_and_not_noise():
    rng = np.random.default_rng(0)
    labels = [f"s{i % 4}" for i in range(80)]
    groups = [f"text{i // 4}" for i in range(80)]  # each sentence spoken by all four "speakers"
    onehot = np.eye(4)[[i % 4 for i in range(80)]]
    good = rq.measure_probe(onehot + 0.1 * rng.standard_normal((80, 4)), labels, groups, feature_name="f",
                            target_name="speaker")
    noise = rq.measure_probe(rng.standard_normal((80, 4)), labels, groups, feature_name="f", target_name="speaker")
    assert (good.rows, good.classes, good.folds, good.majority_rate, good.uniform_rate) == (80, 4, 5, 0.25, 0.25)
    assert good.accuracy == 1.0 and good.balanced_accuracy == 1.0
    assert 0.0 <= noise.accuracy <= 0.5 and 0.0 <= noise.balanced_accuracy <= 0.5


def test_within_language_a_probe_that_only_hears_the_language_is_at_chance():
    rng = np.random.default_rng(1)
    speakers = [["a", "b", "c", "d"][i % 4] for i in range(80)]
    languages = ["en" if s in "ab" else "fr" for s in speakers]
    features = np.array([[lang == "en"] for lang in languages], float) + 0.05 * rng.standard_normal((80, 1))
    groups = [f"text{i // 4}" for i in range(80)]
    plain = rq.measure_probe(features, speakers, groups, feature_name="f", target_name="speaker")
    within = rq.measure_probe(features, speakers, groups, feature_name="f", target_name="speaker",
                              strata=languages)
    assert plain.balanced_accuracy > 0.4 and plain.uniform_rate == 0.25  # knowing the language halves the choice
    assert (within.rows, within.classes, within.majority_rate, within.uniform_rate) == (80, 4, 0.5, 0.5)
    assert within.balanced_accuracy < 0.65
    lonely = rq.measure_probe(features, speakers, groups, feature_name="f", target_name="speaker",
                              strata=[f"{lang}{s}" for lang, s in zip(languages, speakers)])
    assert math.isnan(lonely.accuracy) and lonely.dropped_rows == 80 and "in any stratum" in lonely.note


def test_a_probe_leaves_out_unlabelled_rows_and_small_classes_and_says_when_it_cannot_fit():
    features = np.arange(12, dtype=float)[:, None]
    labels = ["a"] * 5 + ["b"] * 5 + ["c"] * 2
    result = rq.measure_probe(features, labels, [str(i) for i in range(12)], feature_name="f", target_name="t")
    assert (result.rows, result.classes, result.dropped_rows) == (10, 2, 2) and 0 <= result.accuracy <= 1
    single = rq.measure_probe(features, ["a"] * 10 + [None, None], [str(i) for i in range(12)], feature_name="f",
                              target_name="t")
    assert (single.rows, single.dropped_rows) == (0, 10) and math.isnan(single.accuracy)
    assert "fewer than 2 classes" in single.note


def test_swap_trials_pair_different_speakers_of_one_language_and_are_seeded():
    speakers = ["a", "a", "b", "b", "c", "c", "d", None]
    languages = ["en", "en", "en", "en", "fr", "fr", "en", "en"]
    usable = [True] * 8
    trials = rq.plan_swap_trials(speakers, languages, usable, max_trials=10, seed=3)
    assert {t.content_row for t in trials} == {0, 1, 2, 3}  # c: no other French voice; d: one row only
    for t in trials:
        assert speakers[t.donor_row] != speakers[t.content_row]
        assert languages[t.donor_row] == languages[t.content_row] and t.donor_row != 6
    assert trials == rq.plan_swap_trials(speakers, languages, usable, max_trials=10, seed=3)
    assert len(rq.plan_swap_trials(speakers, languages, usable, max_trials=2, seed=3)) == 2
    assert rq.plan_swap_trials(speakers, languages, [True, False] * 4, max_trials=10, seed=3) == []


def test_parallel_pairs_need_the_same_sentence_language_and_other_labels_and_an_unseen_sentence():
    labels = {"speaker": ["a", "b", "c", "a", "b", "b", "c"],
              "text_id": ["t1", "t1", "t1", "t2", "t2", "t3", "t3"],
              "language": ["en", "en", "fr", "en", "en", "en", "en"],
              "style": [None] * 7, "environment": [None, None, None, None, None, "room", "clean"],
              "channel": [None] * 7}
    plan = rq.find_parallel_pairs(labels, exclude_text_ids={"t2"})
    assert sorted((p.a, p.b) for p in plan.pairs) == [(0, 1), (1, 0)]
    assert (plan.same_sentence_pairs, plan.seen_in_training, plan.other_labels_differ) == (6, 2, 2)
    capped = rq.find_parallel_pairs(labels, exclude_text_ids=set(), max_pairs=1, seed=0)
    assert len(capped.pairs) == 1 and capped.not_sampled == 3


def test_a_voice_vector_is_the_normalized_mean_of_its_prompt_rows(tiny):
    from models.codec import load_checkpoint
    from models.factorizer import load_factorizer_checkpoint
    from recombination.swap import factorize_codes

    lake, codec_path, factorizer_path, codec_id = tiny
    codec, _, _ = load_checkpoint(codec_path)
    factorizer, _, _ = load_factorizer_checkpoint(factorizer_path)
    rows = read_held_out(str(lake), codec_id, max_rows=100, seed=0).rows
    speakers = rows.labels["speaker"]
    prompt, reference = rq.split_voice_rows(speakers, [s is not None for s in speakers], seed=3)
    assert not (prompt & reference).any() and prompt.sum() == 2 * EN_SPEAKERS
    vectors = rq.measure_row_features(factorizer, codec, rows.codes).features["speaker"]
    voices = rq.voice_mean_vectors(vectors, speakers, prompt)
    assert sorted(voices) == [f"t:{v}" for v in range(EN_SPEAKERS)]  # the French voice has too few rows
    picked = [i for i in np.flatnonzero(prompt) if speakers[i] == "t:1"]
    own = factorize_codes(factorizer, codec, [rows.codes[i] for i in picked]).vectors["speaker"].mean(0)
    np.testing.assert_allclose(voices["t:1"], (own / own.norm()).numpy(), atol=1e-5)


def test_the_probe_judge_learns_the_voices_from_the_reference_half_only():
    rng = np.random.default_rng(0)
    speakers = [v for v in ("a", "b", "c") for _ in range(8)]
    centres = {v: rng.normal(size=16) * 3 for v in "abc"}
    emb = np.stack([centres[v] + rng.normal(size=16) for v in speakers]).astype(np.float32)
    prompt, reference = rq.split_voice_rows(speakers, [True] * len(speakers), seed=0)
    real = emb + rng.normal(size=emb.shape).astype(np.float32) * 0.1
    real[np.flatnonzero(prompt)[0]] = np.nan  # an unjudgeable real recording counts as a miss
    # swaps: content row of one voice; outputs sit on the target voice's centre, except one on the source's
    trials = [rq.SwapTrial(i, (i + 8) % 24) for i in np.flatnonzero(prompt)]
    outputs = np.stack([centres[speakers[t.donor_row]] for t in trials]).astype(np.float32)
    outputs[0] = centres[speakers[trials[0].content_row]]
    swaps = rq.SwapAccuracy(trials=trials, assigned=[None] * len(trials),
                            targets=[speakers[t.donor_row] for t in trials],
                            sources=[speakers[t.content_row] for t in trials], candidates=np.full(len(trials), 3.0),
                            cos_target=np.zeros(len(trials)), cos_source=np.zeros(len(trials)),
                            identity_assigned=[None] * len(trials), factor_cos_target=np.zeros(len(trials)),
                            factor_cos_source=np.zeros(len(trials)), output_embeddings=outputs)
    pj = rq.measure_probe_judge(emb, real, speakers, prompt, reference, swaps, seed=0)
    assert pj.fitted_rows == int(reference.sum()) == 12 and pj.voices == 3 and pj.chance == pytest.approx(1 / 3)
    assert pj.round_trip_hits.all() and len(pj.round_trip_hits) == 12
    assert pj.share(pj.real_hits) == pytest.approx(11 / 12)
    assert pj.swap_hits.tolist() == [False] + [True] * 11 and pj.swap_to_source.tolist() == [True] + [False] * 11
    # one voice alone cannot be told from anything: no probe
    assert rq.measure_probe_judge(emb, real, ["a"] * 24, prompt, reference, swaps) is None


def test_dtw_mel_distance_is_zero_to_itself_and_small_to_a_slower_copy():
    x = speechlike(1.0, seed=1, f0_hz=120.0)
    slower = np.interp(np.arange(0, len(x), 0.8), np.arange(len(x)), x).astype(np.float32)  # 25 % longer
    other = speechlike(1.0, seed=2, f0_hz=240.0)
    assert rq.measure_dtw_mel_distance(x, x) == 0.0
    assert rq.measure_dtw_mel_distance(x, slower) < rq.measure_dtw_mel_distance(x, other)


def test_every_measurement_runs_on_held_out_rows_only_and_is_deterministic(tiny):
    from models.codec import load_checkpoint
    from models.factorizer import load_factorizer_checkpoint

    lake, codec_path, factorizer_path, codec_id = tiny
    codec, _, _ = load_checkpoint(codec_path)
    factorizer, _, _ = load_factorizer_checkpoint(factorizer_path)
    held_out = read_held_out(str(lake), codec_id, max_rows=100, seed=0)
    assert len(held_out.rows) == held_out.available_rows == EN_SPEAKERS * SENTENCES + 3 + 1
    assert "t:seen" not in held_out.rows.labels["speaker"] and held_out.train_text_ids == {"en-0"}

    def run():
        return measure_recombine_quality(codec, factorizer, held_out, lake=str(lake), max_swaps=50, max_pairs=100,
                                         throughput_rows=4, repeats=1, seed=0, judge=_SpectrumJudge(),
                                         progress=lambda _: None)

    q = run()
    assert {(p.features, p.target) for p in q.probes} >= {("speaker", "speaker"), (rq.CONTENT_FEATURES, "speaker"),
                                                          ("channel", "environment")}
    speaker_probe = next(p for p in q.probes if p.features == "speaker" and p.target == "speaker")
    assert speaker_probe.classes == EN_SPEAKERS + 1 and speaker_probe.rows == EN_SPEAKERS * SENTENCES + 3
    within = next(p for p in q.probes if p.features == "speaker" and p.target == rq.SPEAKER_WITHIN_LANGUAGE)
    assert (within.classes, within.rows, within.dropped_rows) == (EN_SPEAKERS, EN_SPEAKERS * SENTENCES, 3)
    assert within.uniform_rate == pytest.approx(1 / EN_SPEAKERS)
    assert all(0 <= p.accuracy <= 1 and 0 <= p.balanced_accuracy <= 1 for p in q.probes)
    s = q.swaps
    assert len(s.trials) == EN_SPEAKERS * SENTENCES  # every English row; the one French voice has no partner
    assert all(0 <= s.share(w) <= 1 for w in ("target", "source", "identity"))
    assert s.share("target") + s.share("source") <= 1
    assert s.chance == pytest.approx(1 / (EN_SPEAKERS + 1))  # every voice keeps a centroid without the trial's rows
    assert np.all(np.abs(s.cos_target) <= 1 + 1e-6) and len(s.judge_loo_hits) == EN_SPEAKERS * SENTENCES + 3
    # parallel: 3 voices x 3 unseen sentences x 2 ordered pairs each way
    assert len(q.parallel.pairs) == 3 * (SENTENCES - 1) * 2 and q.parallel_plan.seen_in_training == 6
    assert all(held_out.rows.labels["text_id"][p.a] == held_out.rows.labels["text_id"][p.b] != "en-0"
               for p in q.parallel.pairs)
    assert np.all(q.parallel.swap > 0) and 0 <= q.parallel.beats_floor <= 1
    assert q.throughput.rows == 4 and q.throughput.per_cpu_s(False) > q.throughput.per_cpu_s(True) > 0
    # voice-level swaps: 4 rows per English voice -> 2 prompt + 2 reference; the French voice (3) has no prompt
    one, mean = q.voice_swaps
    assert [(t.content_row, t.donor_row) for t in one.trials] == [(t.content_row, t.donor_row) for t in s.trials]
    assert len(mean.trials) == len(one.trials) and mean.identity_assigned == one.identity_assigned
    assert not np.allclose(mean.factor_cos_target, one.factor_cos_target)  # another vector was put in
    assert np.all(one.candidates == EN_SPEAKERS + 1)  # the judge keeps every voice from its reference half
    assert mean.output_embeddings.shape == (len(mean.trials), 256)
    # second judge: fitted on the reference half (2 per English voice + the French voice's 3), asked the prompt half
    pj = q.probe_judge
    assert (pj.fitted_rows, pj.voices) == (EN_SPEAKERS * 2 + 3, EN_SPEAKERS + 1)
    assert len(pj.round_trip_hits) == len(pj.real_hits) == EN_SPEAKERS * 2
    assert len(pj.swap_hits) == len(pj.swap_to_source) == EN_SPEAKERS * 2  # the trials whose content row is asked
    assert not np.any(pj.swap_hits & pj.swap_to_source)
    again = run()
    assert again.probes == q.probes and again.swaps.assigned == s.assigned
    np.testing.assert_array_equal(again.parallel.swap, q.parallel.swap)


def test_the_cli_writes_the_report_and_the_results_section(tiny, tmp_path, capsys):
    lake, codec_path, factorizer_path, _ = tiny
    results, out = tmp_path / "RESULTS.md", tmp_path / "report.md"
    results.write_text("# Benchmark results\n\nkept\n")
    argv = ["--lake-root", str(lake), "--codec-checkpoint", str(codec_path), "--factorizer-checkpoint",
            str(factorizer_path), "--max-rows", "10", "--max-pairs", "4", "--throughput-rows", "2", "--repeats", "1",
            "--out", str(out), "--write-results", "--results-md", str(results)]
    assert main(argv) == 0
    report = out.read_text()
    for heading in ("## Recombination quality", "### 1. Disentanglement probes", "### 2. Swap accuracy",
                    "### 3. Parallel ground truth", "### 4. Throughput"):
        assert heading in report
    assert "Command: `.venv/bin/python bench/recombine_quality.py --lake-root" in report and "CPU (lscpu): " in report
    assert "Held out: 10 of 16 `split = 'test'` segments" in report
    text = results.read_text()
    assert text.startswith("# Benchmark results\n\nkept\n\n<!-- recombine-quality:begin -->\n## Recombination")
    assert text.rstrip().endswith(f"<!-- {RESULTS_MARKER}:end -->")
    assert "factorizing 10 held-out rows" in capsys.readouterr().out


def test_a_lake_without_latents_of_the_codec_is_one_line(tiny, tmp_path, capsys):
    lake = tmp_path / "lake"
    rows = [segment_row(0.6, seed=1, speaker="t:0", split="test")]
    write_segments(lake, rows)
    write_latents(lake, rows, codec_id="codec_other-000000000000")
    _, codec_path, factorizer_path, codec_id = tiny
    assert main(["--lake-root", str(lake), "--codec-checkpoint", str(codec_path),
                 "--factorizer-checkpoint", str(factorizer_path)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"error: no latents of codec {codec_id!r} for split = 'test'")
    assert "codec_other-000000000000" in err


def test_a_factorizer_of_another_codec_is_one_line(tiny, tmp_path, capsys):
    from models.factorizer import build_factorizer, factorizer_tiny_test, save_factorizer_checkpoint

    lake, codec_path, _, codec_id = tiny
    other = save_factorizer_checkpoint(tmp_path / "f.pt", build_factorizer(factorizer_tiny_test()),
                                       factorizer_tiny_test(), codec_id="codec_other-000000000000")
    assert main(["--lake-root", str(lake), "--codec-checkpoint", str(codec_path),
                 "--factorizer-checkpoint", str(other)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "was trained on codec 'codec_other-000000000000'" in err and codec_id in err
