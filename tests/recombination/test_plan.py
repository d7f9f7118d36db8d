"""Recombination planning on small hand-made metadata tables: counts, constraints, determinism, errors."""

from __future__ import annotations

import heapq
import itertools
import random
import time
from collections import Counter

import numpy as np
import pyarrow as pa
import pytest

from recombination.plan import PlanError, _water_fill, plan_recombination, summarize_plan
from schemas._arrow import stable_id
from schemas.recombine import FACTORS, PLAN_SCHEMA, RecombinePlanConfig

IDS = {"codec_id": "codec-x", "factorizer_id": "fact-y"}


def _table(rows: list[tuple]) -> pa.Table:
    """(segment_id, language, speaker, style, environment, channel[, duration_s]) tuples -> plan input table."""
    out = []
    for r in rows:
        sid, lang, spk, sty, env, ch, *dur = r
        out.append({"segment_id": sid, "duration_s": dur[0] if dur else 2.0, "language": lang, "speaker": spk,
                    "style": sty, "environment": env, "channel": ch})
    schema = pa.schema([("segment_id", pa.string()), ("duration_s", pa.float64()), ("language", pa.string()),
                        *((f, pa.string()) for f in FACTORS)])
    return pa.Table.from_pylist(out, schema=schema)


# 3 English speakers with 2 segments each, 2 German speakers with 1 each; 2 environments, 2 styles.
CORPUS = _table([
    ("a1", "en", "A", "neutral", "clean", "hifi", 1.0), ("a2", "en", "A", "happy", "room", "hifi", 2.0),
    ("b1", "en", "B", "neutral", "room", "hifi", 3.0), ("b2", "en", "B", "neutral", "clean", "phone", 4.0),
    ("c1", "en", "C", "happy", "clean", "hifi", 5.0), ("c2", "en", "C", None, "room", None, 6.0),
    ("d1", "de", "D", "neutral", "clean", "hifi", 7.0), ("e1", "de", "E", "happy", "room", "phone", 8.0),
])


def _plan(sources: pa.Table = CORPUS, donors: pa.Table | None = None, **cfg) -> pa.Table:
    config = RecombinePlanConfig(**cfg)
    return plan_recombination(sources, sources if donors is None else donors, config, **IDS)


def _by_id(table: pa.Table) -> dict[str, dict]:
    return {r["segment_id"]: r for r in table.to_pylist()}


def _assert_constraints(plan: pa.Table, sources: pa.Table, donors: pa.Table, config: RecombinePlanConfig) -> None:
    src, don = _by_id(sources), _by_id(donors)
    assert plan.schema == PLAN_SCHEMA
    assert len(set(plan.column("synth_id").to_pylist())) == plan.num_rows
    for row in plan.to_pylist():
        source = src[row["content_segment_id"]]
        assert row["language"] == source["language"] and row["duration_s"] == source["duration_s"]
        assert row["varied"] == "+".join(config.vary)
        for f in FACTORS:
            assert row[f"source_{f}"] == source[f]
            if f not in config.vary:
                assert row[f"{f}_segment_id"] == row["content_segment_id"] and row[f"target_{f}"] == source[f]
                continue
            donor = don[row[f"{f}_segment_id"]]
            assert donor[f] is not None and donor[f] == row[f"target_{f}"]
            if config.no_self_swap:
                assert row[f"target_{f}"] != source[f]
            if f == "speaker" and config.language_match:
                assert donor["language"] == source["language"]  # null only with null


def _brute_force(sources: pa.Table, donors: pa.Table, config: RecombinePlanConfig) -> set[tuple]:
    """Every (content, target values) combination, straight from the definition."""
    out = set()
    for s in sources.to_pylist():
        choices = []
        for f in config.vary:
            values = {d[f] for d in donors.to_pylist() if d[f] is not None
                      and (not config.language_match or f != "speaker" or d["language"] == s["language"])}
            if config.no_self_swap:
                values.discard(s[f])
            choices.append(sorted(values))
        out |= {(s["segment_id"], *combo) for combo in itertools.product(*choices)}
    return out


def _combos(plan: pa.Table, vary: list[str]) -> set[tuple]:
    return set(zip(plan.column("content_segment_id").to_pylist(),
                   *(plan.column(f"target_{f}").to_pylist() for f in vary)))


# --- counts per strategy -------------------------------------------------------------------------------------------

def test_cross_product_counts_by_hand():
    plan = _plan(vary=["speaker"])
    # English sources: 6 x 2 other English speakers; German sources: 2 x 1 other German speaker.
    assert plan.num_rows == 6 * 2 + 2 * 1
    assert Counter(plan.column("language").to_pylist()) == {"en": 12, "de": 2}


@pytest.mark.parametrize("vary", [["speaker", "environment"], ["style", "channel"], list(FACTORS)])
def test_cross_product_is_the_whole_space(vary):
    config = RecombinePlanConfig(vary=vary)
    plan = plan_recombination(CORPUS, CORPUS, config, **IDS)
    expected = _brute_force(CORPUS, CORPUS, config)
    assert plan.num_rows == len(expected) and _combos(plan, vary) == expected
    _assert_constraints(plan, CORPUS, CORPUS, config)


def test_donors_per_target_takes_other_donors_of_the_same_values():
    plan = _plan(vary=["environment"], donors_per_target=3)
    rows = plan.to_pylist()
    per_combo = Counter((r["content_segment_id"], r["target_environment"]) for r in rows)
    # 4 clean and 4 room donors: 3 rows per (source, target environment), each with its own donor.
    assert set(per_combo.values()) == {3} and len(per_combo) == 8
    donors = Counter((r["content_segment_id"], r["environment_segment_id"]) for r in rows)
    assert set(donors.values()) == {1}
    # Fewer donors than asked: as many rows as there are donors.
    two = _plan(vary=["speaker"], donors_per_target=5)
    assert Counter(two.column("content_segment_id").to_pylist())["a1"] == 2 * 2  # B, C with 2 segments each
    assert Counter(two.column("content_segment_id").to_pylist())["d1"] == 1


def test_random_draws_budget_rows_of_the_same_space():
    config = RecombinePlanConfig(vary=["speaker", "environment"], strategy="random", budget=5, seed=3)
    plan = plan_recombination(CORPUS, CORPUS, config, **IDS)
    full = _plan(vary=["speaker", "environment"], seed=3)
    assert plan.num_rows == 5
    assert set(plan.column("synth_id").to_pylist()) <= set(full.column("synth_id").to_pylist())  # same donors too
    _assert_constraints(plan, CORPUS, CORPUS, config)
    # A budget above the space gives the whole space.
    everything = _plan(vary=["speaker", "environment"], strategy="random", budget=1000, seed=3)
    assert everything.equals(full.set_column(full.schema.get_field_index("strategy"), PLAN_SCHEMA.field("strategy"),
                                             pa.array(["random"] * full.num_rows)))


@pytest.mark.parametrize("strategy", ["random", "balanced"])
def test_budget_counts_rows_with_several_donors_per_target(strategy):
    plan = _plan(vary=["environment"], strategy=strategy, budget=7, donors_per_target=3)
    assert plan.num_rows == 7 and len(set(plan.column("synth_id").to_pylist())) == 7


def test_seeds_change_the_random_plan():
    plans = {seed: _plan(vary=["speaker", "style"], strategy="random", budget=6, seed=seed) for seed in range(4)}
    assert plans[0].equals(_plan(vary=["speaker", "style"], strategy="random", budget=6, seed=0))
    combos = {seed: frozenset(_combos(p, ["speaker", "style"])) for seed, p in plans.items()}
    assert len(set(combos.values())) > 1


def test_cross_product_budget_is_a_stable_subset():
    full = _plan(vary=["speaker", "environment"])
    small = _plan(vary=["speaker", "environment"], budget=4)
    larger = _plan(vary=["speaker", "environment"], budget=9)
    assert (small.num_rows, larger.num_rows) == (4, 9)
    assert set(small.column("synth_id").to_pylist()) < set(larger.column("synth_id").to_pylist()) < \
        set(full.column("synth_id").to_pylist())


# --- balanced ------------------------------------------------------------------------------------------------------

# Seed cells (speaker, environment): (A, clean) x2, (B, room) x2, (C, clean), (C, noise); five cells are new.
GRID = _table([
    ("a1", "en", "A", None, "clean", None), ("a2", "en", "A", None, "clean", None),
    ("b1", "en", "B", None, "room", None), ("b2", "en", "B", None, "room", None),
    ("c1", "en", "C", None, "clean", None), ("c2", "en", "C", None, "noise", None),
])
NEW_CELLS = {("A", "room"), ("A", "noise"), ("B", "clean"), ("B", "noise"), ("C", "room")}


def _cells(plan: pa.Table) -> Counter:
    return Counter(zip(plan.column("target_speaker").to_pylist(), plan.column("target_environment").to_pylist()))


def test_balanced_fills_cells_absent_from_the_seed_first():
    config = RecombinePlanConfig(vary=["speaker", "environment"], strategy="balanced", budget=5)
    plan = plan_recombination(GRID, GRID, config, **IDS)
    assert _cells(plan) == Counter({cell: 1 for cell in NEW_CELLS})  # one row in each new cell, none elsewhere
    assert all(plan.column("new_cell").to_pylist())
    _assert_constraints(plan, GRID, GRID, config)
    assert summarize_plan(plan).splitlines()[-1] == \
        "speaker x environment cells: 5 (5 new, 0 already in the seed); rows in new cells: 5"
    random_plan = _plan(GRID, vary=["speaker", "environment"], strategy="random", budget=5)
    assert sum(random_plan.column("new_cell").to_pylist()) <= 5  # (the random plan has no such guarantee)


def test_balanced_evens_out_counts_including_the_seed():
    plan = _plan(GRID, vary=["speaker", "environment"], strategy="balanced", budget=9)
    cells = _cells(plan)
    assert plan.num_rows == 9
    assert all(cells[c] >= 1 for c in NEW_CELLS)
    # (A, clean) and (B, room) already hold 2 seed rows: they get none until every other cell reaches 2.
    assert cells[("A", "clean")] == cells[("B", "room")] == 0
    # Every cell that got rows ends within one row of the others (seed + planned), up to its capacity.
    seed = _cells(GRID.rename_columns(["segment_id", "duration_s", "language", "target_speaker", "style",
                                       "target_environment", "channel"]))
    totals = [seed[c] + cells[c] for c in cells]
    assert max(totals) - min(totals) <= 1
    summary = summarize_plan(plan)
    assert "rows in new cells:" in summary and "already in the seed" in summary


def test_balanced_over_one_factor_balances_its_values():
    rows = _table([(f"{s}{i}", "en", s, None, None, None) for s in "PQRS" for i in range(3)])
    plan = _plan(rows, vary=["speaker"], strategy="balanced", budget=8)
    assert Counter(plan.column("target_speaker").to_pylist()) == {"P": 2, "Q": 2, "R": 2, "S": 2}
    # Without speaker or environment varied, the cells are the varied factors' values.
    styles = _table([(f"x{i}", "en", None, f"st{i % 4}", None, None) for i in range(8)])
    plan = _plan(styles, vary=["style"], strategy="balanced", budget=4)
    assert Counter(plan.column("target_style").to_pylist()) == {"st0": 1, "st1": 1, "st2": 1, "st3": 1}


def test_water_fill_is_the_greedy_lowest_cell_first():
    rng = np.random.default_rng(1)
    for _ in range(200):
        cells = int(rng.integers(1, 12))
        seed, capacity = rng.integers(0, 6, cells), rng.integers(0, 6, cells)
        tie = rng.integers(0, 2**63, cells).astype(np.uint64)
        budget = int(rng.integers(0, capacity.sum() + 3))
        heap = [(int(seed[c]), int(tie[c]), c) for c in range(cells) if capacity[c]]
        heapq.heapify(heap)
        greedy = np.zeros(cells, dtype=np.int64)
        for _ in range(min(budget, int(capacity.sum()))):
            level, t, c = heapq.heappop(heap)
            greedy[c] += 1
            if greedy[c] < capacity[c]:
                heapq.heappush(heap, (level + 1, t, c))
        assert _water_fill(seed, capacity, budget, tie).tolist() == greedy.tolist()


# --- constraints ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("strategy", ["cross_product", "random", "balanced"])
@pytest.mark.parametrize("vary", [["speaker"], ["speaker", "environment"], list(FACTORS)])
def test_constraints_hold_on_every_row(strategy, vary):
    config = RecombinePlanConfig(vary=vary, strategy=strategy, budget=None if strategy == "cross_product" else 7)
    _assert_constraints(plan_recombination(CORPUS, CORPUS, config, **IDS), CORPUS, CORPUS, config)


def test_relaxed_constraints_widen_the_space():
    config = RecombinePlanConfig(vary=["speaker"], no_self_swap=False, language_match=False)
    plan = plan_recombination(CORPUS, CORPUS, config, **IDS)
    assert plan.num_rows == 8 * 5  # every source x every speaker
    assert _combos(plan, ["speaker"]) == _brute_force(CORPUS, CORPUS, config)
    assert any(r["target_speaker"] == r["source_speaker"] for r in plan.to_pylist())
    assert any(r["language"] == "de" and r["target_speaker"] == "A" for r in plan.to_pylist())


def test_null_language_matches_only_null_and_null_labels_may_be_sources():
    rows = _table([("n1", None, None, None, "clean", None), ("n2", None, "N", None, "room", None),
                   ("n3", None, "M", None, "room", None), ("e1", "en", "A", None, "clean", None)])
    plan = _plan(rows, vary=["speaker"])
    got = {(r["content_segment_id"], r["target_speaker"]) for r in plan.to_pylist()}
    # n1 (unknown speaker, unknown language) may take N or M; nobody unknown takes A; e1 has no other en speaker.
    assert got == {("n1", "N"), ("n1", "M"), ("n2", "M"), ("n3", "N")}


# --- determinism and ids -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("strategy", ["cross_product", "random", "balanced"])
def test_plan_does_not_depend_on_input_row_order(strategy):
    config = RecombinePlanConfig(vary=["speaker", "style"], strategy=strategy, seed=11,
                                 budget=None if strategy == "cross_product" else 6, donors_per_target=2)
    first = plan_recombination(CORPUS, CORPUS, config, **IDS)
    for shuffle_seed in range(3):
        order = list(range(CORPUS.num_rows))
        random.Random(shuffle_seed).shuffle(order)
        shuffled = CORPUS.take(order)
        # Duplicated rows are dropped too.
        assert plan_recombination(shuffled, pa.concat_tables([shuffled, shuffled]), config, **IDS).equals(first)


def test_synth_id_is_the_recipe_hash():
    plan = _plan(vary=["speaker", "environment"], seed=5)
    row = plan.to_pylist()[0]
    assert row["synth_id"] == stable_id("recombine", row["content_segment_id"], row["speaker_segment_id"],
                                        row["style_segment_id"], row["environment_segment_id"],
                                        row["channel_segment_id"], "codec-x", "fact-y", 5)
    assert row["style_segment_id"] == row["channel_segment_id"] == row["content_segment_id"]
    other = plan_recombination(CORPUS, CORPUS, RecombinePlanConfig(vary=["speaker", "environment"], seed=5),
                               codec_id="codec-z", factorizer_id="fact-y")
    assert not set(other.column("synth_id").to_pylist()) & set(plan.column("synth_id").to_pylist())


# --- errors --------------------------------------------------------------------------------------------------------

def _error(sources: pa.Table, donors: pa.Table | None = None, **cfg) -> str:
    with pytest.raises(PlanError) as err:
        _plan(sources, donors, **cfg)
    message = str(err.value)
    assert "\n" not in message
    return message


def test_no_sources_names_the_filter():
    message = _error(CORPUS.slice(0, 0), CORPUS, vary=["speaker"], source_filter="split = 'nope'")
    assert message == "no source rows match source_filter \"split = 'nope'\""


def test_no_donor_labels_names_the_factor_and_filter():
    rows = _table([("x", "en", "A", None, None, None), ("y", "en", "B", None, None, None)])
    message = _error(rows, vary=["speaker", "style"], donor_filter="corpus = 'tux'")
    assert message == "no donor for style: no row matching donor_filter \"corpus = 'tux'\" has a style label"


def test_language_match_emptying_the_speakers_is_named():
    sources = _table([("x", "en", "A", None, None, None)])
    donors = _table([("y", "fr", "F", None, None, None), ("z", None, "G", None, None, None)])
    message = _error(sources, donors, vary=["speaker"])
    assert message.startswith("no donor for speaker after language_match")
    assert "source languages: en; donor languages: fr, null" in message


def test_no_self_swap_emptying_a_factor_is_named():
    rows = _table([("x", "en", "A", None, "clean", None), ("y", "en", "B", None, "clean", None)])
    message = _error(rows, vary=["environment"])
    assert message == "no donor for environment after no_self_swap: every environment donor has the source's own " \
                      "environment (clean)"


def test_a_plan_that_would_be_empty():
    # s1 can take speaker B but no other environment; s2 can take an environment but no other German speaker.
    sources = _table([("s1", "en", "A", None, "clean", None), ("s2", "de", "D", None, None, None)])
    donors = pa.concat_tables([sources, _table([("d3", "en", "B", None, "clean", None)])])
    message = _error(sources, donors, vary=["speaker", "environment"], source_filter="true")
    assert message == "the plan would be empty: no source matching 'true' has donors for speaker+environment all " \
                      "at once after constraints"


def test_a_huge_cross_product_fails_before_it_is_built_and_random_samples_it():
    n = 3000  # 3000 sources x 2999 other speakers ~ 9M combinations
    rows = _table([(f"s{i:05d}", "en", f"v{i}", None, None, None) for i in range(n)])
    started = time.perf_counter()
    message = _error(rows, vary=["speaker"])
    assert message.startswith("cross_product would make up to 8,997,000 rows, above max_rows 5,000,000")
    plan = _plan(rows, vary=["speaker"], strategy="random", budget=50)
    assert plan.num_rows == 50 and time.perf_counter() - started < 10
    assert _error(CORPUS, vary=["speaker"], max_rows=10).startswith("cross_product would make up to 14 rows")


def test_missing_input_columns_are_named():
    assert _error(CORPUS.drop_columns(["language"]), CORPUS, vary=["speaker"]) == \
        "sources table lacks column(s) language"


# --- summary -------------------------------------------------------------------------------------------------------

def test_summary_counts():
    plan = _plan(vary=["speaker", "environment"])
    lines = summarize_plan(plan).splitlines()
    hours = sum(plan.column("duration_s").to_pylist())
    assert lines[0] == f"plan: {plan.num_rows} rows from 8 content sources (vary speaker+environment, cross_product, " \
                       "seed 0)"
    assert lines[1] == f"audio to make: {hours:,.1f} s ({hours / 3600:.2f} h)"
    assert lines[2] == "distinct targets: speaker 5, environment 2"
    assert lines[3].startswith("speaker x environment cells: ")
    style_only = summarize_plan(_plan(vary=["style"]))
    assert "cells" not in style_only and "distinct targets: style 2" in style_only
    assert summarize_plan(plan.slice(0, 0)) == "plan: 0 rows"


def test_report_grid_crosses_the_same_sources_with_the_same_targets():
    from recombination.plan import plan_report_grid

    plan = _plan(vary=["speaker", "environment"], strategy="balanced", budget=12)
    grid = plan_report_grid(plan, rows=3, columns=2)
    assert grid.schema == plan.schema and grid.num_rows > 0
    rows = grid.to_pylist()
    keys = {(r["target_speaker"], r["target_environment"]) for r in rows}
    sources = {r["content_segment_id"] for r in rows}
    assert len(keys) <= 2 and len(sources) <= 3 and len({r["language"] for r in rows}) == 1
    for r in rows:  # no self swaps; every factor not varied comes from the source itself
        assert r["target_speaker"] != r["source_speaker"] and r["target_environment"] != r["source_environment"]
        assert r["style_segment_id"] == r["channel_segment_id"] == r["content_segment_id"]
    in_plan = {r["synth_id"]: r for r in plan.to_pylist()}
    for r in rows:  # a combination the plan holds has the plan's id (same recipe)
        same = [p for p in in_plan.values() if all(p[c] == r[c] for c in (
            "content_segment_id", "speaker_segment_id", "environment_segment_id"))]
        assert not same or same[0]["synth_id"] == r["synth_id"]
    assert plan_report_grid(plan, rows=3, columns=2).equals(grid)  # deterministic
