"""jobs/eval_codec.py as users run it: exit codes, one-line errors, overrides that keep bench/ untouched."""

from __future__ import annotations

from pathlib import Path

import yaml

from jobs.eval_codec import main
from tests.pipelines.eval_lake import tiny_checkpoint, tiny_eval_lake


def _write_config(path: Path, lake: Path, checkpoint: Path, **extra) -> Path:
    path.write_text("# python jobs/eval_codec.py --config " + str(path) + "\n" + yaml.safe_dump({
        "lake_root": str(lake), "checkpoints": [str(checkpoint)], "baselines": ["codec2_1200"],
        "sets": [{"name": "test", "split": "test"}, {"name": "other", "filter": "corpus = 'codec2'"}],
        "with_dnsmos": False, "include_input": False,
        "output": {"report_md": str(path.parent / "never.md"), "chart_png": str(path.parent / "never.png"),
                   "scores_jsonl": str(path.parent / "never.jsonl"), "results_md": str(path.parent / "never-R.md")},
        **extra}))
    return path


def test_missing_checkpoint_is_a_one_line_error_and_exit_1(tmp_path, capsys):
    config = _write_config(tmp_path / "eval.yaml", tmp_path, tmp_path / "missing.pt")
    assert main(["--config", str(config)]) == 1
    err = capsys.readouterr().err.strip()
    assert err == f"error: CheckpointError: {tmp_path / 'missing.pt'}: no such checkpoint file"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["eval.yaml"]


def test_bad_config_and_unknown_baseline_exit_2(tmp_path, tmp_path_factory, capsys):
    checkpoint = tiny_checkpoint(tmp_path_factory)
    assert main(["--config", str(_write_config(tmp_path / "a.yaml", tmp_path, checkpoint, colour="red"))]) == 2
    assert "colour: unknown key" in capsys.readouterr().err
    assert main(["--config", str(_write_config(tmp_path / "b.yaml", tmp_path, checkpoint,
                                               baselines=["mp3_128k"]))]) == 2
    assert "unknown baseline(s) ['mp3_128k']" in capsys.readouterr().err
    assert main(["--config", str(_write_config(tmp_path / "c.yaml", tmp_path, checkpoint)), "--max-clips", "0"]) == 2


def test_a_quick_look_writes_only_to_the_output_dir(tmp_path, tmp_path_factory, ray_session, capsys):
    lake, checkpoint = tiny_eval_lake(tmp_path_factory), tiny_checkpoint(tmp_path_factory)
    config = _write_config(tmp_path / "eval.yaml", tmp_path / "no-lake-here", tmp_path / "no-checkpoint-here.pt")
    out = tmp_path / "quick"
    argv = ["--config", str(config), "--lake-root", str(lake), "--checkpoint", str(checkpoint), "--max-clips", "1",
            "--output-dir", str(out)]
    assert main(argv) == 0
    stdout = capsys.readouterr().out
    assert "### Set `test`: 1 clips" in stdout and "| codec2_1200 |" in stdout and "| codec_tiny_test |" in stdout
    assert sorted(p.name for p in out.iterdir()) == ["chart.png", "report.md", "scores.jsonl"]
    assert len((out / "scores.jsonl").read_text().splitlines()) == 2 * 2  # 2 sets x 1 clip x 2 codecs
    assert not any(p.name.startswith("never") for p in tmp_path.iterdir())
