"""The amplification experiment's seed split, conditions, summary, report and chart (tiny lake, no Ray)."""

from __future__ import annotations

import math

import pytest

from pipelines.amplification import (HELDOUT_SET, RunResult, _ctc_config, conditions, split_seed, summarize)
from pipelines.amplification_report import draw_chart, render_markdown
from pipelines.lance_io import open_table, table_uri
from pipelines.train_input import index_training_rows
from schemas.amplification import AmplificationConfig
from schemas.storage import StorageConfig
from schemas.train_input import TrainInputError
from tests.train_input_lake import CODEC, train_input_lake


@pytest.fixture(scope="module")
def lake(tmp_path_factory):
    return train_input_lake(tmp_path_factory.mktemp("amplification"))


def _config(lake: str, tmp_path, **kw) -> AmplificationConfig:
    return AmplificationConfig.model_validate({
        "lake_root": lake, "codec_id": CODEC, "recombine": False, "pool_filter": "split = 'train'",
        "holdout": {"speaker_fraction": 0.34, "environments": ["room"]}, "ratios": [0, 1], "seeds": [0, 1],
        "output_dir": str(tmp_path / "amp"), "results_md": None, "chart": None, **kw})


def test_the_seed_lacks_exactly_the_held_out_cells(lake, tmp_path):
    root, segs, _ = lake
    split = split_seed(_config(root, tmp_path))
    assert len(split.heldout_speakers) == 1 and split.speakers == 3
    ds = open_table(table_uri(root, "segments"), StorageConfig())
    seed = ds.to_table(columns=["speaker", "environment"], filter=split.seed_filter).to_pylist()
    held = ds.to_table(columns=["speaker", "environment"], filter=split.heldout_filter).to_pylist()
    train = [s for s in segs if s["split"] == "train"]
    cell = [s for s in train if s["speaker"] in split.heldout_speakers and s["environment"] == "room"]
    assert len(held) == len(cell) == split.heldout_rows > 0
    assert len(seed) == split.seed_rows == len(train) - len(cell)
    assert not any(r["speaker"] in split.heldout_speakers and r["environment"] == "room" for r in seed)
    assert split_seed(_config(root, tmp_path)) == split  # the same draw every run


def test_bad_pools_fail_with_one_line(lake, tmp_path):
    root, _, _ = lake
    with pytest.raises(TrainInputError, match="pool_filter"):
        split_seed(_config(root, tmp_path, pool_filter="nope = 1"))
    with pytest.raises(TrainInputError, match="nothing to hold out"):
        split_seed(_config(root, tmp_path, holdout={"speaker_fraction": 0.34, "environments": ["hall"]}))
    with pytest.raises(ValueError, match="ratios must include 0"):
        _config(root, tmp_path, ratios=[1, 4])
    with pytest.raises(ValueError, match="recombination needs the codec"):
        _config(root, tmp_path, recombine=True)


def test_each_condition_trains_on_the_seed_and_synthetic_rows_of_seed_lineage_only(lake, tmp_path):
    root, _, recipes = lake
    cfg = _config(root, tmp_path)
    split = split_seed(cfg)
    conds = conditions(cfg, generated_rows=0)
    assert [(c.name, c.ratio) for c in conds] == [("seed", 0.0), ("recombined", 1.0)]
    assert [c.name for c in conditions(cfg, generated_rows=3)][-1] == "generated"
    ctc = _ctc_config(cfg, split, conds[1], seed=1)
    assert ctc.input.real_filter == ctc.input.lineage_filter == split.seed_filter
    assert ctc.input.seed == ctc.training.seed == 1 and ctc.output_dir.endswith("recombined_x1_s1")
    assert ctc.eval_sets[0].name == HELDOUT_SET and ctc.eval_sets[0].filter == split.heldout_filter
    index = index_training_rows(ctc.input.model_copy(update={"synthetic_filter": "passed"}))
    seed_ids = set(index.real.column("key").to_pylist())
    assert len(seed_ids) == split.seed_rows
    for key in index.synthetic.column("key").to_pylist():  # every kept synthetic row: content + donors in the seed
        recipe = recipes[int(key[3:])]
        assert recipe["content"]["segment_id"] in seed_ids
        assert all(d["segment_id"] in seed_ids for d in recipe["donors"].values())


def _result(cond: str, ratio: float, seed: int, per: float) -> RunResult:
    return RunResult(condition=cond, ratio=ratio, seed=seed, ctc_id="c", output_dir="o", steps=100,
                     train_minutes=1.0, real_rows=10, synthetic_per_epoch=int(10 * ratio), synthetic_pool=5,
                     per={HELDOUT_SET: per, "unseen_speakers": per + 0.1}, rows={HELDOUT_SET: 4, "unseen_speakers": 9})


def test_summary_report_and_chart(tmp_path):
    runs = [_result("seed", 0, 0, 0.8), _result("seed", 0, 1, 0.9), _result("recombined", 1, 0, 0.5),
            _result("recombined", 1, 1, 0.6)]
    summary = summarize(runs)
    held = {(r["condition"], r["ratio"]): r for r in summary if r["set"] == HELDOUT_SET}
    assert held[("seed", 0)]["mean"] == pytest.approx(0.85)
    assert held[("seed", 0)]["std"] == pytest.approx(math.sqrt(0.005))
    assert held[("recombined", 1)]["max"] == pytest.approx(0.6)
    report = {"config": _config("x", tmp_path).model_dump(mode="json"), "summary": summary,
              "runs": [r.__dict__ for r in runs], "wall_s": 60.0, "generated_rows": 0, "recombine": None,
              "split": {"pool_rows": 12, "speakers": 3, "heldout_speakers": ["t:0"], "environments": ["room"],
                        "seed_rows": 10, "heldout_rows": 2}}
    md = render_markdown(report, command="python jobs/experiment_amplification.py --config c.yaml", chart="a.png")
    assert "| seed only | 0 (5) | 0.850 ± 0.071" in md
    assert "| seed + recombined 1x | 10 (5) | 0.550 ± 0.071" in md
    assert f"`{HELDOUT_SET}`: seed only 0.850; beats the seed on every seed: recombined 1x" in md
    assert "condition (c) not run" in md
    png = draw_chart(report, tmp_path / "a.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
