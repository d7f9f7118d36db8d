"""Plan recombination: which (content, speaker, style, environment, channel) combinations to make.

Pure planning over two small metadata tables (no IO, no models): ``sources``
(the content segments) and ``donors`` (segments that may lend a factor), both
with :data:`schemas.recombine.PLAN_INPUT_COLUMNS`. The plan is a
:data:`schemas.recombine.PLAN_SCHEMA` table; ``summarize_plan`` prints it as
counts for a human to approve before any model runs.

The space. For a source ``s`` and a varied factor ``f``, the candidate
*target values* are the distinct non-null ``f`` labels among the donors, minus
the source's own label (``no_self_swap``), and for the speaker only those with
donors in the source's language (``language_match``; null matches only null).
A *combination* is a source plus one target value per varied factor; it yields
up to ``donors_per_target`` rows, row ``j`` taking each value's ``j``-th donor
(cycling), where donors of a value are ordered from a hash of (seed, source,
value) so that each source draws its own donors.

Strategies:

- ``cross_product``: every combination; its size is computed first and a plan
  above ``max_rows`` fails; a ``budget`` keeps the rows of smallest
  ``synth_id`` (a seeded uniform subset that only grows when the budget does).
- ``random``: ``budget`` combinations drawn uniformly without replacement by
  index into the space (never enumerated, so a space of 10^12 is fine).
- ``balanced``: cells are the target (speaker, environment) pairs (or the
  values of whichever of the two is varied; of all varied factors if neither
  is). Water-filling: the cell with the fewest rows so far, counting the
  donors' own rows in it as the seed, gets the next combination, so cells
  absent from the seed fill first and coverage evens out; ties go by a seeded
  hash of the cell. Within a cell, combinations are drawn uniformly.

Determinism: inputs are sorted by ``segment_id`` (duplicates dropped) first, so
the same inputs and seed give the same plan in any row order.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from schemas._arrow import stable_id
from schemas.recombine import FACTORS, PLAN_INPUT_COLUMNS, PLAN_SCHEMA, PlanError, RecombinePlanConfig

__all__ = ["PlanError", "plan_recombination", "plan_report_grid", "summarize_plan"]

_GRID = ("speaker", "environment")


@dataclass(frozen=True)
class _Rows:
    """An input table sorted by segment_id, one numpy array per column."""

    ids: np.ndarray  # object (str)
    duration_s: np.ndarray  # float64
    language: np.ndarray  # object (str | None)
    labels: dict[str, np.ndarray]  # factor -> object (str | None)

    @property
    def size(self) -> int:
        return len(self.ids)


@dataclass(frozen=True)
class _Targets:
    """The donor side of one varied factor: target values (grouped by language for the speaker) and their donors."""

    value: np.ndarray  # object: target value per target index
    offset: np.ndarray  # int64: first donor of each target in ``donors``
    count: np.ndarray  # int64: donors of each target
    donors: np.ndarray  # int64: donor row indices, grouped by target, sorted by segment_id within
    hash: np.ndarray  # uint64: per target, mixes into the donor order
    by_group: dict[str | None, tuple[int, int]]  # group -> target index range [start, stop)
    index: dict[tuple[str | None, str], int]  # (group, value) -> target index


@dataclass(frozen=True)
class _Space:
    """Every combination, indexed but never built: sources grouped into profiles that share candidate lists.

    Profile ``p`` holds source rows ``members[member_off[p]:][:n_members[p]]`` and, for varied factor ``i``,
    target indices ``candidates[i][cand_off[i][p]:][:n_cand[i][p]]``. Its combination ``k`` is member
    ``k // per_source[p]`` with the target digits of ``k % per_source[p]`` (C order, last factor fastest).
    """

    members: np.ndarray
    member_off: np.ndarray
    n_members: np.ndarray
    candidates: tuple[np.ndarray, ...]
    cand_off: tuple[np.ndarray, ...]
    n_cand: tuple[np.ndarray, ...]

    @property
    def per_source(self) -> np.ndarray:
        return np.prod(np.stack(self.n_cand), axis=0)

    @property
    def sizes(self) -> np.ndarray:
        return self.n_members * self.per_source

    def total(self) -> int:
        return sum(int(n) for n in self.sizes)


@dataclass(frozen=True)
class _Combos:
    """Chosen combinations, in priority order: a source row and a target index per varied factor."""

    source: np.ndarray  # int64
    target: tuple[np.ndarray, ...]  # per varied factor, int64


def _h64(*parts: object) -> int:
    return int(stable_id(*parts)[:16], 16)


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser on uint64 (a cheap, well-spread, platform-independent hash)."""
    with np.errstate(over="ignore"):
        z = x + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def _prepare(table: pa.Table, role: str) -> _Rows:
    missing = [c for c in PLAN_INPUT_COLUMNS if c not in table.column_names]
    if missing:
        raise PlanError(f"{role} table lacks column(s) {', '.join(missing)}")
    table = table.select(list(PLAN_INPUT_COLUMNS))
    # Sort on every column so that even inconsistent duplicate ids resolve the same way in any input order.
    table = table.take(pc.sort_indices(table, sort_keys=[(c, "ascending") for c in PLAN_INPUT_COLUMNS]))
    ids = np.array(table.column("segment_id").to_pylist(), dtype=object)
    first = np.ones(len(ids), dtype=bool)
    first[1:] = ids[1:] != ids[:-1]
    table = table.filter(pa.array(first))

    def col(name: str) -> np.ndarray:
        return np.array(table.column(name).to_pylist(), dtype=object)

    return _Rows(ids=col("segment_id"), duration_s=np.asarray(table.column("duration_s").to_numpy(), dtype=np.float64),
                 language=col("language"), labels={f: col(f) for f in FACTORS})


def _group_of(factor: str, language: str | None, config: RecombinePlanConfig) -> str | None:
    return language if factor == "speaker" and config.language_match else None


def _targets(factor: str, donors: _Rows, config: RecombinePlanConfig) -> _Targets:
    by_key: dict[tuple[str | None, str], list[int]] = {}
    for i, value in enumerate(donors.labels[factor]):
        if value is not None:
            by_key.setdefault((_group_of(factor, donors.language[i], config), value), []).append(i)
    keys = sorted(by_key, key=lambda k: (k[0] is not None, k[0] or "", k[1]))
    count = np.array([len(by_key[k]) for k in keys], dtype=np.int64)
    by_group: dict[str | None, tuple[int, int]] = {}
    for t, (group, _) in enumerate(keys):
        by_group[group] = (by_group.get(group, (t, t))[0], t + 1)
    return _Targets(
        value=np.array([k[1] for k in keys], dtype=object),
        offset=np.concatenate([[0], np.cumsum(count)[:-1]]).astype(np.int64),
        count=count,
        donors=np.array([i for k in keys for i in by_key[k]], dtype=np.int64),
        hash=np.array([_h64("target", factor, g, v) for g, v in keys], dtype=np.uint64),
        by_group=by_group,
        index={k: t for t, k in enumerate(keys)},
    )


def _space(sources: _Rows, targets: dict[str, _Targets], config: RecombinePlanConfig) -> _Space:
    """Group sources by what they may receive; profiles in order of their first (sorted) source."""
    groups: dict[tuple, list[int]] = {}
    for i in range(sources.size):
        key = tuple((_group_of(f, sources.language[i], config), sources.labels[f][i] if config.no_self_swap else None)
                    for f in config.vary)
        groups.setdefault(key, []).append(i)
    candidates: list[list[np.ndarray]] = [[] for _ in config.vary]
    for key in groups:
        for i, (f, (group, own)) in enumerate(zip(config.vary, key)):
            start, stop = targets[f].by_group.get(group, (0, 0))
            allowed = np.arange(start, stop, dtype=np.int64)
            own_t = targets[f].index.get((group, own)) if own is not None else None
            candidates[i].append(allowed[allowed != own_t] if own_t is not None else allowed)

    def offsets(lengths: np.ndarray) -> np.ndarray:
        return (np.cumsum(lengths) - lengths).astype(np.int64)

    n_members = np.array([len(m) for m in groups.values()], dtype=np.int64)
    n_cand = tuple(np.array([len(c) for c in cs], dtype=np.int64) for cs in candidates)
    return _Space(members=np.array([i for m in groups.values() for i in m], dtype=np.int64),
                  member_off=offsets(n_members), n_members=n_members,
                  candidates=tuple(_concat(cs) for cs in candidates), cand_off=tuple(offsets(n) for n in n_cand),
                  n_cand=n_cand)


def _show(values: set) -> str:
    shown = sorted("null" if v is None else str(v) for v in values)
    return ", ".join(shown[:5]) + (f" (+{len(shown) - 5} more)" if len(shown) > 5 else "")


def _check_donors(sources: _Rows, donors: _Rows, targets: dict[str, _Targets], space: _Space,
                  config: RecombinePlanConfig) -> None:
    """One-line errors naming the factor and the constraint that left it without donors, or an empty plan."""
    first_language = sources.language[space.members[space.member_off]]
    for i, f in enumerate(config.vary):
        t = targets[f]
        if len(t.value) == 0:
            raise PlanError(f"no donor for {f}: no row matching donor_filter {config.donor_filter!r} has a {f} label")
        if space.n_cand[i].any():
            continue
        ungrouped = np.array([_group_of(f, lang, config) not in t.by_group for lang in first_language])
        no_language = int(space.n_members[ungrouped].sum())
        self_only = int(space.n_members.sum()) - no_language
        if not self_only:
            raise PlanError(f"no donor for {f} after language_match: no {f} donor shares a source's language "
                            f"(source languages: {_show(set(sources.language))}; "
                            f"donor languages: {_show({donors.language[d] for d in t.donors})})")
        if not no_language:
            raise PlanError(f"no donor for {f} after no_self_swap: every {f} donor has the source's own {f} "
                            f"({_show(set(t.value))})")
        raise PlanError(f"no donor for {f} after constraints: language_match leaves none for {no_language} "
                        f"sources, no_self_swap for {self_only}")
    if not space.total():
        raise PlanError(f"the plan would be empty: no source matching {config.source_filter!r} has donors for "
                        f"{'+'.join(config.vary)} all at once after constraints")


def _concat(parts: list[np.ndarray]) -> np.ndarray:
    return np.concatenate(parts).astype(np.int64) if parts else np.zeros(0, dtype=np.int64)


def _locate(sizes: np.ndarray, index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(group, index within the group) of flat indices over consecutive groups of ``sizes``."""
    ends = np.cumsum(sizes)
    group = np.searchsorted(ends, index, side="right")
    return group, index - (ends - sizes)[group]


def _decode(space: _Space, profile: np.ndarray, index: np.ndarray,
            fixed: dict[int, np.ndarray] | None = None) -> _Combos:
    """Combinations ``index`` of profiles ``profile`` (vectorised over rows, each with its own radices).

    With ``fixed`` (factor position -> candidate position per row) those factors are pinned and ``index``
    runs over the member and the other factors only.
    """
    fixed = fixed or {}
    rest = index.astype(np.int64)
    digit: dict[int, np.ndarray] = dict(fixed)
    for i in reversed([i for i in range(len(space.n_cand)) if i not in fixed]):
        radix = space.n_cand[i][profile]
        digit[i], rest = rest % radix, rest // radix
    source = space.members[space.member_off[profile] + rest]
    return _Combos(source, tuple(space.candidates[i][space.cand_off[i][profile] + digit[i]]
                                 for i in range(len(space.n_cand))))


def _rng(config: RecombinePlanConfig) -> np.random.Generator:
    return np.random.default_rng(_h64("recombine-plan", config.strategy, config.seed))


def _all_combos(space: _Space) -> _Combos:
    return _decode(space, *_locate(space.sizes, np.arange(space.total(), dtype=np.int64)))


def _random_combos(space: _Space, config: RecombinePlanConfig, draws: int) -> _Combos:
    total = space.total()
    if total >= 2**63:
        raise PlanError(f"the random plan's space has {total:.3g} combinations, beyond int64: narrow the filters")
    picks = _rng(config).choice(total, size=min(draws, total), replace=False).astype(np.int64)
    return _decode(space, *_locate(space.sizes, picks))


def _water_fill(seed_rows: np.ndarray, capacity: np.ndarray, budget: int, tie: np.ndarray) -> np.ndarray:
    """Per cell, how many of ``budget`` combinations: always the lowest (seed rows + planned) cell next."""
    if budget >= capacity.sum():
        return capacity.copy()
    lo, hi = 0, int((seed_rows + capacity).max())  # filled(hi) = all > budget >= filled(lo) = 0

    def filled(level: int) -> int:
        return int(np.clip(level - seed_rows, 0, capacity).sum())

    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if filled(mid) <= budget else (lo, mid)
    alloc = np.clip(lo - seed_rows, 0, capacity)
    open_at_level = np.flatnonzero((seed_rows <= lo) & (alloc < capacity))
    extra = budget - int(alloc.sum())
    alloc[open_at_level[np.argsort(tie[open_at_level], kind="stable")][:extra]] += 1
    return alloc


def _balanced_combos(space: _Space, targets: dict[str, _Targets], donors: _Rows, config: RecombinePlanConfig,
                     draws: int) -> _Combos:
    vary = config.vary
    grid = [i for i, f in enumerate(vary) if f in _GRID] or list(range(len(vary)))
    # Entries: (profile, one candidate per grid factor), i.e. the part of a profile that lands in one cell.
    profiles = np.flatnonzero(space.sizes > 0)
    per_profile = np.prod(np.stack([space.n_cand[g][profiles] for g in grid]), axis=0)
    entry_profile = np.repeat(profiles, per_profile)
    rest = np.arange(len(entry_profile), dtype=np.int64) - np.repeat(np.cumsum(per_profile) - per_profile, per_profile)
    digit: dict[int, np.ndarray] = {}
    for g in reversed(grid):
        radix = space.n_cand[g][entry_profile]
        digit[g], rest = rest % radix, rest // radix
    values, cell = [], np.zeros(len(entry_profile), dtype=np.int64)
    for g in grid:
        names, code = np.unique(targets[vary[g]].value.astype(str), return_inverse=True)
        values.append(names)
        cell = cell * len(names) + code[space.candidates[g][space.cand_off[g][entry_profile] + digit[g]]]
    cells, entry_cell = np.unique(cell, return_inverse=True)
    weight = space.n_members[entry_profile] * np.prod(
        np.stack([space.n_cand[i][entry_profile] for i in range(len(vary)) if i not in grid]
                 or [np.ones(len(entry_profile), dtype=np.int64)]), axis=0)
    capacity = np.zeros(len(cells), dtype=np.int64)
    np.add.at(capacity, entry_cell, weight)
    keys = []
    for c in cells.tolist():
        key = []
        for names in reversed(values):
            c, code = divmod(c, len(names))
            key.append(str(names[code]))
        keys.append(tuple(reversed(key)))
    in_seed = Counter(zip(*(donors.labels[vary[g]] for g in grid)))
    seed_rows = np.array([in_seed.get(k, 0) for k in keys], dtype=np.int64)
    tie = np.array([_h64("cell", config.seed, *k) for k in keys], dtype=np.uint64)
    alloc = _water_fill(seed_rows, capacity, draws, tie)
    # Draw each cell's share uniformly from its entries' combinations (entries grouped by cell, weights cumulative).
    order = np.argsort(entry_cell, kind="stable")
    base = np.cumsum(capacity) - capacity
    rng = _rng(config)
    picks, level, cell_tie = [], [], []
    for c in np.flatnonzero(alloc):
        picks.append(base[c] + rng.choice(int(capacity[c]), size=int(alloc[c]), replace=False))
        level.append(seed_rows[c] + np.arange(alloc[c]))
        cell_tie.append(np.full(int(alloc[c]), tie[c], dtype=np.uint64))
    which, index = _locate(weight[order], _concat(picks))
    entry = order[which]
    combos = _decode(space, entry_profile[entry], index, {g: digit[g][entry] for g in grid})
    rank = np.lexsort((np.concatenate(cell_tie), _concat(level)))  # fill order: lowest level, then the cell's tie
    return _Combos(combos.source[rank], tuple(t[rank] for t in combos.target))


def _cross_product_rows(space: _Space, targets: dict[str, _Targets], config: RecombinePlanConfig) -> int:
    """Rows a cross_product makes at most (exact when donors_per_target is 1)."""
    if config.donors_per_target == 1:
        return space.total()
    rows = 0
    for p, size in enumerate(space.sizes.tolist()):
        if size:
            most = max(int(targets[f].count[space.candidates[i][space.cand_off[i][p]:][:space.n_cand[i][p]]].max())
                       for i, f in enumerate(config.vary))
            rows += size * min(config.donors_per_target, most)
    return rows


def _assemble(combos: _Combos, sources: _Rows, donors: _Rows, targets: dict[str, _Targets],
              config: RecombinePlanConfig, limit: int | None, model_ids: tuple[str, str]) -> dict[str, np.ndarray]:
    """Expand combinations into rows (donors chosen here) and build the plan's columns (first ``limit`` rows)."""
    vary = config.vary
    tg = [targets[f] for f in vary]
    most = np.max(np.stack([t.count[c] for t, c in zip(tg, combos.target)]), axis=0) if len(combos.source) else \
        np.zeros(0, dtype=np.int64)
    per_combo = np.minimum(config.donors_per_target, most)
    row_source = np.repeat(combos.source, per_combo)[:limit]
    j = (np.arange(per_combo.sum()) - np.repeat(np.cumsum(per_combo) - per_combo, per_combo))[:limit]
    source_hash = np.array([_h64("source", config.seed, s) for s in sources.ids], dtype=np.uint64)
    cols: dict[str, np.ndarray] = {"content_segment_id": sources.ids[row_source]}
    for f in FACTORS:
        own = sources.labels[f][row_source]
        cols[f"source_{f}"] = own
        if f in vary:
            t = targets[f]
            target = np.repeat(combos.target[vary.index(f)], per_combo)[:limit]
            start = _mix(source_hash[row_source] ^ _mix(t.hash[target])) % t.count[target].astype(np.uint64)
            donor = t.donors[t.offset[target] + (start.astype(np.int64) + j) % t.count[target]]
            cols[f"{f}_segment_id"] = donors.ids[donor]
            cols[f"target_{f}"] = t.value[target]
        else:
            cols[f"{f}_segment_id"] = cols["content_segment_id"]
            cols[f"target_{f}"] = own
    seed_pairs = set(zip(donors.labels["speaker"], donors.labels["environment"]))
    cols["new_cell"] = np.array([None if sp is None or env is None else (sp, env) not in seed_pairs
                                 for sp, env in zip(cols["target_speaker"], cols["target_environment"])], dtype=object)
    cols["language"] = sources.language[row_source]
    cols["duration_s"] = sources.duration_s[row_source]
    cols["synth_id"] = np.array([
        stable_id("recombine", c, sp, st, env, ch, *model_ids, config.seed)
        for c, sp, st, env, ch in zip(cols["content_segment_id"], cols["speaker_segment_id"], cols["style_segment_id"],
                                      cols["environment_segment_id"], cols["channel_segment_id"])],
        dtype=object)
    return cols


def plan_recombination(sources: pa.Table, donors: pa.Table, config: RecombinePlanConfig, *, codec_id: str,
                       factorizer_id: str) -> pa.Table:
    """The plan: which combinations to make, as a :data:`schemas.recombine.PLAN_SCHEMA` table.

    Args:
        sources: content segments (``pipelines.plan_io.read_plan_inputs``), columns ``PLAN_INPUT_COLUMNS``.
        donors: segments that may donate a factor, same columns.
        config: what to vary, the strategy, budget, constraints and seed.
        codec_id, factorizer_id: the models the plan is for (part of every ``synth_id``).

    Returns:
        The plan, sorted by (content_segment_id, synth_id); no two rows share a ``synth_id``.

    Raises:
        PlanError: no sources, no donors for a varied factor (naming the constraint), an empty plan, or a
            cross_product above ``config.max_rows``.

    Example::

        sources, donors = read_plan_inputs("data/lake", StorageConfig(), source_filter=cfg.source_filter,
                                           donor_filter=cfg.donor_filter)
        plan = plan_recombination(sources, donors, cfg, codec_id="codec_50hz_2x8555-...", factorizer_id="f-...")
        print(summarize_plan(plan))
    """
    src = _prepare(sources, "sources")
    if not src.size:
        raise PlanError(f"no source rows match source_filter {config.source_filter!r}")
    don = _prepare(donors, "donors")
    targets = {f: _targets(f, don, config) for f in config.vary}
    space = _space(src, targets, config)
    _check_donors(src, don, targets, space, config)
    budget = config.budget
    if config.strategy == "cross_product":
        size = _cross_product_rows(space, targets, config)
        if size > config.max_rows:
            raise PlanError(f"cross_product would make up to {size:,} rows, above max_rows {config.max_rows:,}: "
                            "narrow the filters, vary fewer factors, or use strategy 'random' with a budget")
        combos, limit = _all_combos(space), None
    else:
        # `budget` combinations give at least `budget` rows when the space has them; rows past it are cut in
        # draw (random) or fill (balanced) order.
        combos = (_random_combos(space, config, budget) if config.strategy == "random"  # type: ignore[arg-type]
                  else _balanced_combos(space, targets, don, config, budget))  # type: ignore[arg-type]
        limit = budget
    cols = _assemble(combos, src, don, targets, config, limit, (codec_id, factorizer_id))
    n = len(cols["synth_id"])
    for name, value in (("varied", "+".join(config.vary)), ("strategy", config.strategy), ("codec_id", codec_id),
                        ("factorizer_id", factorizer_id)):
        cols[name] = np.full(n, value, dtype=object)
    cols["plan_seed"] = np.full(n, config.seed, dtype=np.int64)
    table = pa.Table.from_arrays([pa.array(cols[f.name], type=f.type) for f in PLAN_SCHEMA], schema=PLAN_SCHEMA)
    if config.strategy == "cross_product" and budget is not None and n > budget:
        table = table.take(pc.sort_indices(table, sort_keys=[("synth_id", "ascending")])[:budget])
    return table.sort_by([("content_segment_id", "ascending"), ("synth_id", "ascending")])


def summarize_plan(plan: pa.Table) -> str:
    """A few lines of counts: rows, sources, target values per varied factor, audio to make, new cells.

    Example::

        plan: 1,200 rows from 300 content sources (vary speaker+environment, balanced, seed 0)
        audio to make: 3,240.0 s (0.90 h)
        distinct targets: speaker 40, environment 6
        speaker x environment cells: 180 (150 new, 30 already in the seed); rows in new cells: 1,000
    """
    if not plan.num_rows:
        return "plan: 0 rows"
    varied = plan.column("varied")[0].as_py()
    strategy = plan.column("strategy")[0].as_py()
    seed = plan.column("plan_seed")[0].as_py()
    sources = pc.count_distinct(plan.column("content_segment_id")).as_py()
    seconds = pc.sum(plan.column("duration_s")).as_py() or 0.0
    lines = [f"plan: {plan.num_rows:,} rows from {sources:,} content sources (vary {varied}, {strategy}, seed {seed})",
             f"audio to make: {seconds:,.1f} s ({seconds / 3600:.2f} h)"]
    factors = varied.split("+")
    lines.append("distinct targets: " + ", ".join(
        f"{f} {pc.count_distinct(plan.column(f'target_{f}')).as_py():,}" for f in factors))
    if any(f in _GRID for f in factors):
        known = plan.filter(pc.is_valid(plan.column("new_cell")))
        cells = known.group_by(["target_speaker", "target_environment"]).aggregate([("new_cell", "max")])
        new_cells = pc.sum(pc.cast(cells.column("new_cell_max"), pa.int64())).as_py() or 0
        new_rows = pc.sum(pc.cast(known.column("new_cell"), pa.int64())).as_py() or 0
        unknown = plan.num_rows - known.num_rows
        old_cells = cells.num_rows - new_cells
        lines.append(f"speaker x environment cells: {cells.num_rows:,} ({new_cells:,} new, {old_cells:,} already in "
                     f"the seed); rows in new cells: {new_rows:,}"
                     + (f"; rows with an unknown speaker or environment: {unknown:,}" if unknown else ""))
    return "\n".join(lines)


def plan_report_grid(plan: pa.Table, *, rows: int, columns: int) -> pa.Table:
    """A dense ``rows x columns`` block of plan rows for the HTML report: the same sources crossed with the same targets.

    Why: a ``balanced`` or ``random`` plan gives each source one or two
    targets, so a grid of its own rows (rows = sources, columns = targets) is
    mostly empty. This block takes the ``columns`` most frequent target
    combinations of ``plan`` (among sources of the plan's most common
    language, so ``language_match`` holds), each with the donors of its first
    row, and crosses them with the first ``rows`` sources of that language.
    Rows are built with the planner's recipe and ids, so a combination the
    plan already holds gets the same ``synth_id`` (the caller unions the two
    without duplicates). Cells that would swap a factor to the source's own
    label are left out (``no_self_swap``).
    """
    if plan.num_rows == 0:
        return plan
    vary = plan.column("varied")[0].as_py().split("+")
    table = plan.sort_by([("synth_id", "ascending")]).to_pylist()
    languages = Counter(r["language"] for r in table)
    language = max(languages, key=lambda x: (languages[x], x or ""))
    mine = [r for r in table if r["language"] == language]
    keys = Counter(tuple(r[f"target_{f}"] for f in vary) for r in mine)
    chosen = sorted(keys, key=lambda k: (-keys[k], [str(x) for x in k]))[:columns]
    donor_row = {}
    for r in mine:
        donor_row.setdefault(tuple(r[f"target_{f}"] for f in vary), r)
    source_row = {}
    for r in sorted(mine, key=lambda r: r["content_segment_id"]):
        source_row.setdefault(r["content_segment_id"], r)
    out = []
    for sid in list(source_row)[:rows]:
        src = source_row[sid]
        for key in chosen:
            d = donor_row[key]
            if any(src[f"source_{f}"] == d[f"target_{f}"] for f in vary):
                continue
            row = dict(src)
            for f in FACTORS:
                row[f"{f}_segment_id"] = d[f"{f}_segment_id"] if f in vary else sid
                row[f"target_{f}"] = d[f"target_{f}"] if f in vary else src[f"source_{f}"]
            row["new_cell"] = d["new_cell"]
            row["synth_id"] = stable_id("recombine", sid, row["speaker_segment_id"], row["style_segment_id"],
                                        row["environment_segment_id"], row["channel_segment_id"], row["codec_id"],
                                        row["factorizer_id"], row["plan_seed"])
            out.append(row)
    return pa.Table.from_pylist(out, schema=plan.schema)
