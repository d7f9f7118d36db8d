"""Lineage of real synthetic rows (made by the recombine run on a tiny lake): segment per factor, labels, run."""

from __future__ import annotations

import json

import lance
import pytest

from pipelines.lance_io import table_uri
from pipelines.query.errors import QueryError
from pipelines.query.cli import main
from pipelines.query.lineage import LINEAGE_FACTORS, LINEAGE_SCHEMA, read_lineage
from pipelines.recombine import run_recombine
from schemas.recombine import RecombineConfig
from tests.tiny_lake import recombine_lake


@pytest.fixture(scope="module")
def made(tmp_path_factory, ray_session):
    """Eight synthetic rows with a new speaker and environment each (random plan, no judges, no report, one actor)."""
    root = tmp_path_factory.mktemp("lineage")
    lake, codec, factorizer, rows = recombine_lake(root)
    config = RecombineConfig.model_validate({
        "lake_root": lake, "codec_checkpoint": str(codec), "factorizer_checkpoint": str(factorizer),
        "plan": {"vary": ["speaker", "environment"], "strategy": "random", "budget": 8, "seed": 3},
        "gates": {"speaker_judge": False}, "output": {"report_path": None},
        "execution": {"rows_per_batch": 8, "commit_every_rows": 8, "concurrency": 1}})
    summary = run_recombine(config, progress=lambda _: None)
    synthetic = lance.dataset(table_uri(lake, "synthetic")).to_table(columns=[
        "synth_id", "content_segment_id", "speaker_segment_id", "style_segment_id", "environment_segment_id",
        "channel_segment_id", "codec_id", "factorizer_id", "plan_seed", "run_id"]).to_pylist()
    return lake, {r["segment_id"]: r for r in rows}, summary, synthetic


@pytest.mark.integration
def test_each_factor_names_its_segment_with_the_segment_labels_and_the_run(made):
    lake, segments, summary, synthetic = made
    assert len(synthetic) == summary.rows_written == 8
    for want in synthetic:
        got = read_lineage(lake, None, want["synth_id"])
        assert got.schema == LINEAGE_SCHEMA and got.column("factor").to_pylist() == list(LINEAGE_FACTORS)
        for row in got.to_pylist():
            sid = want[f"{row['factor']}_segment_id"]
            seg = segments[sid]
            assert row["segment_id"] == sid and row["segment_found"]
            assert (row["speaker"], row["environment"], row["language"], row["corpus"]) == \
                (seg["speaker"], seg["environment"], seg["language"], seg["corpus"])
            assert row["duration_s"] == pytest.approx(seg["duration_s"])
            assert row["source_uri"] == seg["source_uri"] and row["segment_run_id"] == "tiny-lake"
            assert row["varied"] == (row["factor"] in ("speaker", "environment"))
            for name in ("codec_id", "factorizer_id", "plan_seed", "run_id"):
                assert row[name] == want[name]
            assert (row["run_id"], row["run_job"], row["run_status"]) == (summary.run_id, "recombine", "succeeded")
            assert row["strategy"] == "random" and row["plan_seed"] == 3 and len(row["run_config_hash"]) == 16
        by_factor = {r["factor"]: r for r in got.to_pylist()}
        # the swap: speaker and environment come from donors, whose labels differ from the content's
        assert by_factor["speaker"]["speaker"] != by_factor["content"]["speaker"]
        assert by_factor["environment"]["environment"] != by_factor["content"]["environment"]
        assert by_factor["style"]["segment_id"] == by_factor["content"]["segment_id"]


@pytest.mark.integration
def test_a_unique_prefix_is_enough_and_the_command_runs(made, tmp_path, capsys):
    lake, _, _, synthetic = made
    full = synthetic[0]["synth_id"]
    assert read_lineage(lake, None, full[:12]).equals(read_lineage(lake, None, full))
    out = tmp_path / "lineage.jsonl"
    assert main(["lineage", full[:8], "--lake-root", lake, "--out", str(out)]) == 0
    got = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["segment_id"] for r in got] == [synthetic[0][f"{f}_segment_id"] for f in LINEAGE_FACTORS]
    capsys.readouterr()
    assert main(["lineage", "f" * 32, "--lake-root", lake]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: unknown synth_id") and err.count("\n") == 1


@pytest.mark.integration
def test_unknown_ids_and_missing_tables_are_one_line_errors(made, tmp_path):
    lake, _, _, _ = made
    for bad, message in [("0" * 32, "unknown synth_id '0+'"), ("nope'; --", "unknown synth_id"),
                         ("", "unknown synth_id")]:
        with pytest.raises(QueryError, match=message) as exc:
            read_lineage(lake, None, bad)
        assert "\n" not in str(exc.value)
    with pytest.raises(QueryError, match="table 'synthetic' does not exist"):
        read_lineage(str(tmp_path), None, "abc")
