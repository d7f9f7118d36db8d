"""The plan row model and PLAN_SCHEMA agree; the plan config validates factors, strategy and budget."""

from __future__ import annotations

import pyarrow as pa
import pytest
from pydantic import ValidationError

from recombination.plan import plan_recombination
from schemas._arrow import check_model_matches_schema
from schemas.recombine import FACTORS, PLAN_INPUT_COLUMNS, PLAN_SCHEMA, PlanRow, RecombinePlanConfig
from schemas.segments import SEGMENTS_SCHEMA


def test_row_model_matches_table_schema():
    assert check_model_matches_schema(PlanRow, PLAN_SCHEMA) == []
    assert list(PlanRow.model_fields) == PLAN_SCHEMA.names


def test_plan_inputs_are_metadata_columns_of_segments():
    assert set(PLAN_INPUT_COLUMNS) <= set(SEGMENTS_SCHEMA.names)
    assert "audio" not in PLAN_INPUT_COLUMNS and set(FACTORS) <= set(PLAN_INPUT_COLUMNS)


def test_a_plan_validates_row_by_row():
    rows = pa.Table.from_pylist([
        {"segment_id": f"s{i}", "duration_s": 1.5, "language": "en", "speaker": f"v{i}", "style": None,
         "environment": "clean", "channel": None} for i in range(3)])
    plan = plan_recombination(rows, rows, RecombinePlanConfig(vary=["speaker"]), codec_id="c", factorizer_id="f")
    assert plan.schema == PLAN_SCHEMA and plan.num_rows == 6
    for row in plan.to_pylist():
        PlanRow.model_validate(row)


def test_defaults_and_normalisation():
    cfg = RecombinePlanConfig(vary=["environment", "speaker"])
    assert cfg.vary == ["speaker", "environment"]  # canonical order, so `varied` strings compare
    assert cfg.donor_filter == cfg.source_filter == "split = 'train'"
    assert (cfg.strategy, cfg.no_self_swap, cfg.language_match, cfg.donors_per_target) == ("cross_product", True,
                                                                                          True, 1)
    assert RecombinePlanConfig(vary=["style"], donor_filter="true").donor_filter == "true"


def test_unknown_factor_names_the_allowed_ones():
    with pytest.raises(ValidationError) as err:
        RecombinePlanConfig(vary=["speaker", "pitch"])
    assert "unknown factor(s) 'pitch'" in str(err.value)
    assert "allowed are speaker, style, environment, channel" in str(err.value)


@pytest.mark.parametrize("kwargs, message", [
    ({"vary": []}, "at least 1 item"),
    ({"vary": ["speaker", "speaker"]}, "twice"),
    ({"vary": ["speaker"], "strategy": "random"}, "strategy 'random' needs a budget"),
    ({"vary": ["speaker"], "strategy": "balanced"}, "strategy 'balanced' needs a budget"),
    ({"vary": ["speaker"], "strategy": "greedy"}, "cross_product"),
    ({"vary": ["speaker"], "budget": 0}, "greater than or equal to 1"),
    ({"vary": ["speaker"], "budget": 11, "max_rows": 10}, "budget 11 is above max_rows 10"),
    ({"vary": ["speaker"], "donors_per_target": 0}, "greater than or equal to 1"),
    ({"vary": ["speaker"], "sources": "x"}, "Extra inputs are not permitted"),
])
def test_bad_configs_are_named(kwargs, message):
    with pytest.raises(ValidationError, match=message):
        RecombinePlanConfig(**kwargs)
