"""The codec evaluation end to end on a tiny lake: a tiny checkpoint, Codec2 700C and Opus 6k, the default sets."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from models.codec import CheckpointError
from pipelines.eval import CodecNotInstalledError
from pipelines.eval_codec import EvalConfigError, EvalDataError, load_codecs, run_codec_eval, select_clips
from schemas.eval_codec import EvalCodecConfig
from tests.pipelines.eval_lake import HOLDOUT_CLIPS, TEST_CLIPS, tiny_checkpoint, tiny_eval_lake

CODECS = ["codec_tiny_test", "codec2_700c", "opus_6k", "input"]


def _config(lake: Path, checkpoint: Path, out: Path, **overrides) -> EvalCodecConfig:
    return EvalCodecConfig.model_validate({
        "lake_root": str(lake), "checkpoints": [str(checkpoint)], "baselines": ["codec2_700c", "opus_6k"],
        "output": {"report_md": str(out / "eval.md"), "chart_png": str(out / "eval.png"),
                   "scores_jsonl": str(out / "scores.jsonl"), "results_md": str(out / "RESULTS.md")},
        "execution": {"clips_per_task": 1},
        **overrides,
    })


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory, ray_session):
    lake, checkpoint = tiny_eval_lake(tmp_path_factory), tiny_checkpoint(tmp_path_factory)
    out = tmp_path_factory.mktemp("eval-out")
    (out / "RESULTS.md").write_text("# Benchmark results\n\n## Curation\n\nkept as is\n\n"
                                    "<!-- codec-eval:begin -->\nold figures\n<!-- codec-eval:end -->\n\ntail\n")
    config = _config(lake, checkpoint, out)
    return config, out, run_codec_eval(config, command="eval-test", progress=lambda _: None)


def test_every_set_has_a_row_per_codec_with_finite_metrics(evaluated):
    _, _, report = evaluated
    assert [(s.name, s.n_clips) for s in report.sets] == [("test", TEST_CLIPS), ("real_holdout", HOLDOUT_CLIPS)]
    assert report.overall.n_clips == TEST_CLIPS + HOLDOUT_CLIPS and report.overall.audio_s == pytest.approx(
        sum(s.audio_s for s in report.sets))
    for s in [*report.sets, report.overall]:
        assert [c.codec_name for c in s.summaries] == CODECS, s.name
        for c in s.summaries:
            assert c.n_clips == s.n_clips
            for metric in ("pesq_wb", "stoi", "si_sdr_db", "mel_distance", "dnsmos_ovrl"):
                assert getattr(c, metric).n == s.n_clips and math.isfinite(getattr(c, metric).median), (c, metric)
    by_name = {c.codec_name: c for c in report.overall.summaries}
    assert 996 < by_name["codec_tiny_test"].bitrate_bps < 1010  # 996.6 bit/s nominal, plus the last partial frame
    assert by_name["codec2_700c"].bitrate_bps == pytest.approx(800, rel=0.03)  # 28-bit frames stored as 4 bytes
    assert 3000 < by_name["opus_6k"].bitrate_bps < 7000
    assert by_name["input"].pesq_wb.median > 4.5 and by_name["input"].mel_distance.median == 0
    assert by_name["opus_6k"].pesq_wb.median > by_name["codec_tiny_test"].pesq_wb.median  # untrained: noise


def test_report_chart_and_scores_are_written(evaluated):
    _, out, report = evaluated
    md = (out / "eval.md").read_text()
    assert md == report.markdown and "Command: `eval-test`" in md
    assert "### Set `test`: 2 clips" in md and "### Set `real_holdout`: 2 clips" in md and "](eval.png)" in md
    assert "filter `corpus IN ('alsa', 'codec2', 'linphone', 'pocketsphinx')`" in md
    assert "| all | codec_tiny_test |" in md and "(codec2_700c): **no**" in md  # untrained: misses the target
    assert (out / "eval.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rows = [json.loads(line) for line in (out / "scores.jsonl").read_text().splitlines()]
    assert len(rows) == (TEST_CLIPS + HOLDOUT_CLIPS) * len(CODECS)
    assert {(r["set_name"], r["codec_name"]) for r in rows} >= {("test", c) for c in CODECS}
    one = next(r for r in rows if r["codec_name"] == "codec2_700c")
    assert one["duration_s"] > 1 and one["codec_cpu_s"] > 0 and one["delay_samples"] is not None
    assert all(isinstance(r["pesq_wb"], float) and r["score_s"] > 0 for r in rows)


def test_results_md_section_is_replaced_and_the_rest_kept(evaluated):
    _, out, _ = evaluated
    text = (out / "RESULTS.md").read_text()
    assert text.startswith("# Benchmark results\n\n## Curation\n\nkept as is\n\n<!-- codec-eval:begin -->\n## Codec")
    assert text.endswith("<!-- codec-eval:end -->\n\ntail\n") and "old figures" not in text
    assert text.count("<!-- codec-eval:begin -->") == 1


def test_missing_or_corrupt_checkpoint_fails_before_any_work(tmp_path):
    config = _config(tmp_path, tmp_path / "nope.pt", tmp_path)
    with pytest.raises(CheckpointError, match="nope.pt: no such checkpoint file"):
        run_codec_eval(config, progress=lambda _: None)
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        load_codecs(_config(tmp_path, tmp_path / "bad.pt", tmp_path))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.pt"]  # nothing written


def test_missing_coder_and_unknown_baseline_fail_clearly(tmp_path, tmp_path_factory, monkeypatch):
    checkpoint = tiny_checkpoint(tmp_path_factory)
    with pytest.raises(EvalConfigError, match="unknown baseline"):
        load_codecs(_config(tmp_path, checkpoint, tmp_path, baselines=["codec2_9999"]))
    monkeypatch.setenv("PATH", str(tmp_path))  # no c2enc on this PATH
    with pytest.raises(CodecNotInstalledError, match="apt-get install codec2"):
        load_codecs(_config(tmp_path, checkpoint, tmp_path))


def test_sets_are_held_out_in_id_order_and_an_empty_set_is_an_error(tmp_path_factory, tmp_path):
    lake, checkpoint = tiny_eval_lake(tmp_path_factory), tiny_checkpoint(tmp_path_factory)
    config = _config(lake, checkpoint, tmp_path)
    (test, holdout), version = select_clips(config)
    assert test.clip_ids == sorted(test.clip_ids) and (len(test.clip_ids), len(holdout.clip_ids)) == (2, 2)
    assert not set(test.clip_ids) & set(holdout.clip_ids)  # a held-out corpus's test clip is only in real_holdout
    assert version >= 1 and all(d == 2.5 for d in test.durations_s + holdout.durations_s)  # the 0.3 s clip is out
    capped = config.model_copy(update={"sets": [config.sets[0].model_copy(update={"max_clips": 1})]})
    assert select_clips(capped)[0][0].clip_ids == test.clip_ids[:1]
    with pytest.raises(EvalDataError, match="set 'test' selects no segment of at least 30"):
        select_clips(config.model_copy(update={"min_clip_s": 30.0}))
    with pytest.raises(EvalDataError, match="no segments table"):
        select_clips(config.model_copy(update={"lake_root": str(tmp_path)}))


def test_config_rejects_ambiguous_sets_and_duplicate_names():
    with pytest.raises(ValueError, match="either `filter` or `split`"):
        EvalCodecConfig.model_validate({"sets": [{"name": "a", "split": "test", "filter": "true"}]})
    with pytest.raises(ValueError, match="set names must be unique"):
        EvalCodecConfig.model_validate({"sets": [{"name": "a", "split": "test"}, {"name": "a", "holdout": True}]})
    with pytest.raises(ValueError, match="Extra inputs"):
        EvalCodecConfig.model_validate({"output": {"report": "x"}})
    assert EvalCodecConfig().checkpoints[0].path == "checkpoints/codec_50hz_2x8555.pt"
