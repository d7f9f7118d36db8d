"""The S2S evaluation: conversions, the judges' arithmetic, and a whole evaluation on a tiny real lake.

The lake (``tests.tiny_lake.recombine_lake``) has 12 English rows of 3 speakers (``t:0..2``), clean and room
in runs of three, with transcripts, and random codes under the shipped codec's id; the recognizer and the S2S
model are freshly initialized (the test is of the plumbing and the arithmetic, not of their skill).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from models.ctc import build_ctc, ctc_tiny_test
from models.ctc.checkpoint import CtcCheckpointError, save_ctc_checkpoint
from models.s2s import build_s2s, load_s2s_checkpoint, s2s_tiny_test, save_s2s_checkpoint
from pipelines.eval_ctc import load_eval_rows, score_ctc
from pipelines.eval_s2s import (CLEAN, EnvironmentProbe, convert_rows, evaluate_s2s, format_markdown,
                                speaker_centroid)
from pipelines.phonemes import PhonemeInventory, Phonemizer
from schemas.train_s2s import TrainS2SConfig
from tests.models import one_torch_thread  # noqa: F401  (autouse: one intra-op thread)
from tests.tiny_lake import recombine_lake, write_latents

ROOT = Path(__file__).resolve().parents[2]


def _s2s(speaker_dim: int = 0):
    torch.manual_seed(0)
    config = s2s_tiny_test().model_copy(update={"speaker_dim": speaker_dim})
    return build_s2s(config).eval(), config


def test_conversions_keep_row_order_and_scale_lengths_by_the_rate():
    model, _ = _s2s()
    rng = np.random.default_rng(0)
    codes = [rng.integers(0, 1000, size=(n, 2)).astype(np.uint16) for n in (30, 7, 18)]
    same = convert_rows(model, codes, batch_size=2)
    assert [c.shape for c in same] == [(30, 2), (7, 2), (18, 2)] and all(c.dtype == np.uint16 for c in same)
    alone = convert_rows(model, codes[1:2])[0]  # padding in a batch never changes a row's output
    np.testing.assert_array_equal(alone, same[1])
    slower = convert_rows(model, codes, rate=1.5)
    assert [len(c) for c in slower] == [45, 11, 27] and max(int(c.max()) for c in slower) < 1000


def test_speaker_centroid_leaves_each_row_out():
    e = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [np.nan, np.nan]])
    centroid, loo = speaker_centroid(e)
    np.testing.assert_allclose(centroid, np.array([2.0, 2.0]) / math.sqrt(8))
    # row 0 against the unit mean of rows 1 and 2: (1, 2)/sqrt(5)
    np.testing.assert_allclose(loo[:3], [1 / math.sqrt(5), 1 / math.sqrt(5), 1.0])  # row 2 = the others' mean
    assert math.isnan(loo[3])
    with pytest.raises(ValueError, match=">= 2 judgeable rows"):
        speaker_centroid(e[[0, 3]])


def test_text_distances_tell_the_right_sentence_by_audio_alone():
    from types import SimpleNamespace

    from pipelines.eval_s2s import _text_distances

    t = np.arange(16000) / 16000
    rng = np.random.default_rng(0)
    tone = lambda f: (0.3 * np.sin(2 * np.pi * f * t)).astype(np.float32)  # noqa: E731
    refs = {("en", "a"): tone(300), ("en", "b"): (0.3 * rng.standard_normal(16000)).astype(np.float32)}
    rows = SimpleNamespace(labels={"language": ["en", "en", "en"], "text_id": ["a", "b", "zzz"]})
    source = [tone(310), (0.3 * rng.standard_normal(16000)).astype(np.float32), tone(300)]
    output = [(0.3 * rng.standard_normal(16000)).astype(np.float32), tone(300), tone(300)]
    out = _text_distances(rows, source, output, refs)
    assert out["text_rows"] == 2  # "zzz" has no reference
    assert out["dtw_closer_rate_source"] == 1.0 and out["dtw_closer_rate_output"] == 0.0  # outputs swapped
    assert out["dtw_same_text_source"] < out["dtw_other_text_source"]
    assert _text_distances(rows, source, output, {("en", "a"): tone(300)}) == {"text_rows": 0}


def test_environment_probe_learns_separable_rows_and_needs_clean():
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(0, 0.1, (20, 4)), rng.normal(3, 0.1, (20, 4))])
    labels = [CLEAN] * 20 + ["room"] * 20
    probe = EnvironmentProbe().fit(x, labels)
    assert probe.classes == [CLEAN, "room"] and probe.predict(x) == labels and probe.predict(x[:0]) == []
    with pytest.raises(ValueError, match="needs 'clean'"):
        EnvironmentProbe().fit(x, ["room"] * 20 + ["noise"] * 20)


@pytest.fixture(scope="module")
def lake(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval_s2s")
    lake, _, _, rows = recombine_lake(root, transcripts=True)
    from models.codec import load_checkpoint

    # the shipped codec's decoder (a fresh tiny one decodes near-silence, which no speaker judge can judge);
    # the codes are random all the same
    codec = ROOT / "checkpoints" / "codec_50hz_2x8555.pt"
    codec_id = load_checkpoint(codec)[2].codec_id
    write_latents(lake, rows, codec_id=codec_id)
    phonemizer = Phonemizer(cache_dir=root / "phonemes")
    inventory = PhonemeInventory.from_sequences(phonemizer([r["transcript"] for r in rows], "en"))
    rec_config = ctc_tiny_test().model_copy(update={"num_classes": inventory.num_classes})
    torch.manual_seed(0)
    recognizer = save_ctc_checkpoint(root / "recognizer.pt", build_ctc(rec_config), rec_config, codec_id=codec_id,
                                     phonemes=inventory.symbols)
    model, s2s_config = _s2s()
    s2s = save_s2s_checkpoint(root / "s2s.pt", model, s2s_config, codec_id=codec_id, target_voice="t0_clean")
    return {"root": root, "lake": lake, "codec": codec, "rows": rows, "recognizer": recognizer, "s2s": s2s}


def _config(lake, **eval_overrides) -> TrainS2SConfig:
    return TrainS2SConfig.model_validate({
        "input": {"lake_root": lake["lake"], "codec_checkpoint": str(lake["codec"]), "real_filter": "true",
                  "max_frames": 100, "batch_size": 4, "synthetic_per_real": 0},
        "target_filter": "speaker = 't:0' AND environment = 'clean'", "target_voice": "t0_clean",
        "output_dir": str(lake["root"] / "out"), "phoneme_cache": str(lake["root"] / "phonemes"),
        "eval": {"recognizer_checkpoint": str(lake["recognizer"]), "probe_filter": "speaker <> 't:1'",
                 "target_rows": 4,
                 "sets": [{"name": "others", "filter": "speaker = 't:1'"},
                          {"name": "nobody", "filter": "speaker = 'nobody'"}], **eval_overrides}})


def test_a_whole_evaluation_scores_every_set_against_its_source(lake):
    from models.ctc.checkpoint import load_ctc_checkpoint

    config = _config(lake, speaker_judge=True, dnsmos=True)
    model, _, meta = load_s2s_checkpoint(lake["s2s"])
    lines: list[str] = []
    result = evaluate_s2s(config, model, meta, progress=lines.append)
    others, nobody = result["sets"]["others"], result["sets"]["nobody"]
    assert nobody == {"rows": 0, "skipped": 1} or nobody["rows"] == 0
    assert others["rows"] == 4 and others["env_not_clean_rows"] == 2  # t:1's rows: clean, room, clean, room
    # the source PER is the recognizer's own on those rows, read the same way
    recognizer, _, rec_meta = load_ctc_checkpoint(lake["recognizer"])
    rows = load_eval_rows(config.input, "speaker = 't:1'", PhonemeInventory(tuple(rec_meta.phonemes)),
                          Phonemizer(cache_dir=lake["root"] / "phonemes"))
    assert others["per_source"] == pytest.approx(score_ctc(recognizer, rows)["per"])
    assert others["per_output"] >= 0 and 0 <= others["env_clean_rate_output"] <= 1
    for key in ("speaker_sim_source", "speaker_sim_output", "dnsmos_bak_source", "dnsmos_bak_output",
                "dnsmos_ovrl_output"):
        assert math.isfinite(others[key]), key
    assert 0 <= others["speaker_closer_rate"] <= 1 and others["speaker_judged_rows"] <= 4
    assert result["target"]["rows"] == 2 and math.isfinite(result["target"]["speaker_sim_loo"])
    assert result["probe_classes"] == [CLEAN, "room"] and result["probe_rows"] == 8
    assert any(line.startswith("eval others: 4 rows; PER") for line in lines)
    table = format_markdown(result)
    assert "| others | 4 |" in table and "| nobody | 0 |" in table and "leave-one-out" in table
    assert others["per_output_other_text"] >= 0
    # t:1 speaks n1, n0, n3, n2; the target voice (t:0 clean) recorded n0 and n2
    assert others["text_rows"] == 2 and 0 <= others["dtw_closer_rate_output"] <= 1
    assert others["dtw_same_text_output"] > 0 and others["dtw_other_text_source"] > 0


def test_the_probe_never_fits_on_rows_of_an_eval_set(lake):
    config = _config(lake, speaker_judge=False, dnsmos=False, probe_filter="true")
    model, _, meta = load_s2s_checkpoint(lake["s2s"])
    result = evaluate_s2s(config, model, meta, progress=lambda _: None)
    assert result["probe_rows"] == 8  # 12 rows, minus the 4 of the set "others"
    assert "speaker_sim_output" not in result["sets"]["others"]


def test_a_missing_or_foreign_recognizer_is_a_clear_error(lake, tmp_path):
    model, _, meta = load_s2s_checkpoint(lake["s2s"])
    with pytest.raises(FileNotFoundError, match="train one with"):
        evaluate_s2s(_config(lake, recognizer_checkpoint=str(tmp_path / "none.pt")), model, meta)
    other = tmp_path / "other.pt"
    config = ctc_tiny_test()
    save_ctc_checkpoint(other, build_ctc(config), config, codec_id="codec_other-1-w1",
                        phonemes=[f"p{i}" for i in range(10)])
    with pytest.raises(CtcCheckpointError, match="trained on codec"):
        evaluate_s2s(_config(lake, recognizer_checkpoint=str(other)), model, meta)


def test_the_job_reuses_eval_json_of_the_same_weights(lake, monkeypatch):
    import pipelines.eval_s2s as eval_s2s
    from pipelines.run_outputs import RunOutputs
    from pipelines.train_s2s import EVAL_FILE, _evaluate

    config = _config(lake, speaker_judge=False, dnsmos=False)
    model, _, meta = load_s2s_checkpoint(lake["s2s"])
    outputs = RunOutputs(config.output_dir, config.input.storage)
    first = _evaluate(config, model, meta, outputs, lambda _: None)
    stored = json.loads((lake["root"] / "out" / EVAL_FILE).read_text())
    assert stored["sets"] == json.loads(json.dumps(first["sets"])) and stored["s2s_id"] == meta.s2s_id

    def boom(*_, **__):
        raise AssertionError("evaluated again")

    monkeypatch.setattr(eval_s2s, "evaluate_s2s", boom)
    assert _evaluate(config, model, meta, outputs, lambda _: None)["sets"] == stored["sets"]
    changed = _config(lake, speaker_judge=False, dnsmos=False, rate=1.2)
    with pytest.raises(AssertionError, match="evaluated again"):
        _evaluate(changed, model, meta, outputs, lambda _: None)


def test_the_bench_script_puts_eval_json_into_results_md(lake, tmp_path):
    from bench.s2s_eval import RESULTS_MARKER, main
    from pipelines.run_outputs import RunOutputs
    from pipelines.train_s2s import _evaluate

    config = _config(lake, speaker_judge=False, dnsmos=False).model_copy(update={"output_dir": str(tmp_path / "run")})
    model, _, meta = load_s2s_checkpoint(lake["s2s"])
    _evaluate(config, model, meta, RunOutputs(config.output_dir, config.input.storage), lambda _: None)
    results = tmp_path / "RESULTS.md"
    results.write_text("# Results\n\nkept\n")
    assert main(["--output-dir", config.output_dir, "--results-md", str(results)]) == 0
    text = results.read_text()
    assert text.startswith("# Results\n\nkept\n") and f"<!-- {RESULTS_MARKER}:begin -->" in text
    assert "| others | 4 |" in text and meta.s2s_id in text
    assert main(["--output-dir", str(tmp_path / "none"), "--results-md", str(results)]) == 1


def test_a_model_conditioned_on_the_target_speaker_gets_the_voices_mean_vector(lake, tmp_path):
    from pipelines.eval_s2s import _target_speaker_vector
    from tests.train_input_lake import write_factors

    factorizer_id = "factorizer_t-9-w9"
    write_factors(lake["lake"], lake["rows"], factorizer_id=factorizer_id,
                  codec_id=load_s2s_checkpoint(lake["s2s"])[2].codec_id)  # speaker vector of row i: all i + 0.5
    model, config = _s2s(speaker_dim=64)
    path = save_s2s_checkpoint(tmp_path / "s2s_spk.pt", model, config, codec_id=load_s2s_checkpoint(lake["s2s"])[2]
                               .codec_id, target_voice="t0_clean", factorizer_id=factorizer_id)
    model, _, meta = load_s2s_checkpoint(path)
    cfg = _config(lake, speaker_judge=False, dnsmos=False)
    cfg = cfg.model_copy(update={"condition_on_target_speaker": True,
                                 "input": cfg.input.model_copy(update={"factorizer_id": factorizer_id})})
    target_keys = [r["segment_id"] for r in lake["rows"] if r["speaker"] == "t:0" and r["environment"] == "clean"]
    vector = _target_speaker_vector(cfg, meta, target_keys)
    assert vector.shape == (64,) and np.allclose(vector, 1 / 8)  # the unit mean of constant vectors
    result = evaluate_s2s(cfg, model, meta, progress=lambda _: None)
    assert result["sets"]["others"]["rows"] == 4
    with pytest.raises(ValueError, match="no speaker vectors"):
        _target_speaker_vector(cfg, meta, ["no-such-segment"])
