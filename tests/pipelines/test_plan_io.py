"""read_plan_inputs on a tiny real Lance ``segments`` table: metadata columns only, filters pushed down, errors."""

from __future__ import annotations

import pytest

from pipelines.plan_io import read_plan_inputs
from recombination.plan import plan_recombination
from schemas.recombine import PLAN_INPUT_COLUMNS, PlanError, RecombinePlanConfig
from schemas.storage import StorageConfig
from tests.tiny_lake import segment_row, write_segments


@pytest.fixture
def lake(tmp_path):
    labels = [  # (speaker, language, environment, split)
        ("test:a", "en", "clean", "train"), ("test:a", "en", "room", "train"), ("test:b", "en", "clean", "train"),
        ("test:b", "en", "room", "valid"), ("test:c", "de", "clean", "train"), ("test:d", "de", "room", "test"),
    ]
    rows = []
    for seed, (speaker, language, environment, split) in enumerate(labels):
        row = segment_row(0.3, seed=seed, speaker=speaker, split=split)
        rows.append({**row, "language": language, "environment": environment})
    write_segments(tmp_path, rows)
    return str(tmp_path)


def test_reads_only_metadata_columns_with_filters(lake):
    sources, donors = read_plan_inputs(lake, StorageConfig(), source_filter="split = 'train'",
                                       donor_filter="split IN ('train', 'valid', 'test')")
    assert sources.column_names == donors.column_names == list(PLAN_INPUT_COLUMNS)
    assert "audio" not in sources.column_names
    assert sources.num_rows == 4 and set(sources.column("speaker").to_pylist()) == {"test:a", "test:b", "test:c"}
    assert donors.num_rows == 6


def test_the_same_filter_is_read_once(lake):
    sources, donors = read_plan_inputs(lake, StorageConfig(), source_filter="language = 'de'")
    assert sources is donors and sources.num_rows == 2


@pytest.mark.parametrize("bad, reason", [
    ("split = = 'train'", "sql parser error"),
    ("split = 'train' AND", "sql parser error"),
    ("no_such_column = 1", "No field named no_such_column"),
])
def test_a_filter_that_cannot_run_is_a_plan_error(lake, bad, reason):
    with pytest.raises(PlanError) as err:
        read_plan_inputs(lake, StorageConfig(), source_filter="split = 'train'", donor_filter=bad)
    message = str(err.value)
    assert message.startswith(f"donor_filter {bad!r} cannot run on segments: ") and reason in message
    assert "\n" not in message and "Valid fields" not in message and len(message) < 300
    with pytest.raises(PlanError, match=r"^source_filter "):
        read_plan_inputs(lake, StorageConfig(), source_filter=bad)


def test_no_segments_table(tmp_path):
    with pytest.raises(PlanError, match="no segments table under"):
        read_plan_inputs(str(tmp_path / "empty"), StorageConfig(), source_filter="true")


def test_read_then_plan(lake):
    config = RecombinePlanConfig(vary=["speaker", "environment"], donor_filter="true")
    sources, donors = read_plan_inputs(lake, StorageConfig(), source_filter=config.source_filter,
                                       donor_filter=config.donor_filter)
    plan = plan_recombination(sources, donors, config, codec_id="c", factorizer_id="f")
    # en sources (3) take the other en speaker and the other environment; the de source takes test:d in room.
    assert plan.num_rows == 4
    assert all(r["target_speaker"] != r["source_speaker"] for r in plan.to_pylist())
    empty = read_plan_inputs(lake, StorageConfig(), source_filter="split = 'nope'", donor_filter="true")
    with pytest.raises(PlanError, match="no source rows match source_filter"):
        plan_recombination(*empty, config, codec_id="c", factorizer_id="f")
