"""Measure a lake for the corpus report: hours by label, quality histograms, rejects, synthetic coverage, versions.

Only metadata columns are read (never ``segments.audio`` or ``synthetic.codes``),
in record batches, so memory stays bounded by the number of distinct labels, not
by the corpus. ``segments`` is scanned twice from one opened version (labels and
quality ranges, then histogram counts), so both passes see the same rows.

The speaker x environment grid compares the seed (``segments``, after the optional
filter) with the synthetic outputs that passed the gates (``synthetic``, by
``target_speaker`` x ``target_environment``). A cell is *new* when synthetic
covers it and the seed has no hour there. Null labels are a value of their own
(shown as ``(none)``), so unlabelled rows are counted, not dropped.

Rendering lives in ``pipelines.corpus_report_html``; ``pipelines.lake_summary``
formats the short text of ``make demo`` from the same figures.
"""

from __future__ import annotations

import dataclasses
import json
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pipelines.lance_io import open_table, table_uri
from schemas.lake import LAKE_TABLES
from schemas.segments import QUALITY_COLUMNS
from schemas.storage import StorageConfig

__all__ = [
    "ALL_TABLES", "BREAKDOWN_COLUMNS", "CorpusReportInputError", "TableInfo", "BreakdownRow", "Breakdown",
    "QualityHistogram", "SegmentFigures", "RejectFigures", "CodecLatents", "SyntheticFigures", "GridCell",
    "CoverageGrid", "RunInfo", "CorpusReport", "measure_corpus", "report_to_json",
]

#: Every table of the lake, in the order reports list them.
ALL_TABLES: tuple[str, ...] = LAKE_TABLES
#: ``segments`` label columns whose hours the report breaks down.
BREAKDOWN_COLUMNS: tuple[str, ...] = ("speaker", "language", "split", "environment", "channel", "corpus")
_BATCH_ROWS = 65536


class CorpusReportInputError(ValueError):
    """The report cannot be made from these inputs (no segments table, a bad filter); one line."""


@dataclass(frozen=True)
class TableInfo:
    """One table: rows and current Lance version, both None when it is not written yet."""

    name: str
    rows: int | None
    version: int | None


@dataclass(frozen=True)
class BreakdownRow:
    """Hours and segments of one label value (``value`` None: unlabelled)."""

    value: str | None
    segments: int
    hours: float


@dataclass(frozen=True)
class Breakdown:
    """Hours per value of one label column, most hours first."""

    column: str
    rows: list[BreakdownRow]

    def hours(self) -> dict[str | None, float]:
        return {r.value: r.hours for r in self.rows}


@dataclass(frozen=True)
class QualityHistogram:
    """Counts of one quality metric over ``bins`` equal bins from its min to its max (finite values only)."""

    column: str
    edges: list[float]
    counts: list[int]
    missing: int  # null or non-finite
    mean: float | None
    minimum: float | None
    maximum: float | None


@dataclass(frozen=True)
class SegmentFigures:
    """What ``segments`` holds (after the report's filter)."""

    segments: int
    hours: float
    mean_duration_s: float
    breakdowns: dict[str, Breakdown]
    histograms: list[QualityHistogram]


@dataclass(frozen=True)
class RejectFigures:
    """Rejects counted by reason and by stage, most first."""

    rows: int
    by_reason: dict[str, int]
    by_stage: dict[str, int]


@dataclass(frozen=True)
class CodecLatents:
    """Latents of one codec."""

    codec_id: str
    segments: int
    hours: float
    bitrate_bps: float


@dataclass(frozen=True)
class SyntheticFigures:
    """All synthetic outputs, and those that passed the gates."""

    outputs: int
    hours: float
    passed: int
    passed_hours: float
    rejected_by: dict[str, int]  # gate -> failed outputs (an output can fail several)


@dataclass(frozen=True)
class GridCell:
    """One (speaker, environment) cell: seed hours vs synthetic hours that passed; ``new``: only synthetic has it."""

    speaker: str | None
    environment: str | None
    seed_segments: int
    seed_hours: float
    synthetic_outputs: int
    synthetic_hours: float

    @property
    def new(self) -> bool:
        return self.synthetic_outputs > 0 and self.seed_segments == 0


@dataclass(frozen=True)
class CoverageGrid:
    """Speaker x environment coverage; ``speakers`` ranked by seed + synthetic hours, environments by hours."""

    speakers: list[str | None]
    environments: list[str | None]
    cells: list[GridCell]  # only cells with some seed or synthetic rows

    @property
    def seed_cells(self) -> int:
        return sum(1 for c in self.cells if c.seed_segments)

    @property
    def synthetic_cells(self) -> int:
        return sum(1 for c in self.cells if c.synthetic_outputs)

    @property
    def new_cells(self) -> list[GridCell]:
        return [c for c in self.cells if c.new]

    @property
    def size(self) -> int:
        return len(self.speakers) * len(self.environments)


@dataclass(frozen=True)
class RunInfo:
    """One ``runs`` row: what ran and the table versions it ended at."""

    run_id: str
    job: str
    status: str
    started_at: str
    ended_at: str | None
    table_versions: dict[str, int]


@dataclass(frozen=True)
class CorpusReport:
    """Every figure of the corpus report (a table not written yet is None, or empty for lists)."""

    lake_root: str
    generated_at: str
    segments_filter: str | None
    tables: list[TableInfo]
    segments: SegmentFigures | None
    rejects: RejectFigures | None
    synthetic: SyntheticFigures | None
    grid: CoverageGrid | None
    latents: list[CodecLatents] = field(default_factory=list)
    factors: dict[str, int] = field(default_factory=dict)
    runs: list[RunInfo] = field(default_factory=list)

    def table(self, name: str) -> TableInfo:
        return next(t for t in self.tables if t.name == name)


def _batches(ds: Any, columns: list[str], filter: str | None = None) -> Iterator[pa.Table]:
    """Projected record batches of a table; a bad filter becomes one line of ``CorpusReportInputError``."""
    try:
        for batch in ds.to_batches(columns=columns, filter=filter, batch_size=_BATCH_ROWS):
            yield pa.Table.from_batches([batch])
    except (ValueError, OSError, RuntimeError) as exc:
        if filter is None:
            raise
        first = str(exc).strip().splitlines()[0].split(", /")[0] if str(exc).strip() else type(exc).__name__
        raise CorpusReportInputError(f"segments_filter {filter!r} cannot run: {first}") from None


def _add_groups(acc: dict, t: pa.Table, keys: list[str], value: str = "duration_s") -> None:
    """Add per-key (count, sum of ``value``) of one batch into ``acc``."""
    if t.num_rows == 0:
        return
    g = t.group_by(keys, use_threads=False).aggregate([(value, "sum"), (value, "count")])
    cols = [g.column(k).to_pylist() for k in keys]
    for *key, total, n in zip(*cols, g.column(f"{value}_sum").to_pylist(), g.column(f"{value}_count").to_pylist()):
        entry = acc[tuple(key) if len(key) > 1 else key[0]]
        entry[0] += n
        entry[1] += total or 0.0


def _ranked(acc: dict) -> list:
    """Keys by total descending, then by name (None last) for a stable order."""
    return sorted(acc, key=lambda k: (-acc[k][1], str(k) if k is not None else "\uffff"))


def _finite(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    x = column.to_numpy(zero_copy_only=False).astype(np.float64, copy=False) if len(column) else np.zeros(0)
    return x[np.isfinite(x)]


def _measure_segments(ds: Any, segments_filter: str | None, bins: int) -> tuple[SegmentFigures, dict]:
    """Hours by label, the speaker x environment seed hours and quality histograms (two metadata scans)."""
    names = set(ds.schema.names)
    labels = [c for c in BREAKDOWN_COLUMNS if c in names]
    quality = [c for c in QUALITY_COLUMNS if c in names]
    pair = ["speaker", "environment"]
    by_label: dict[str, dict] = {c: defaultdict(lambda: [0, 0.0]) for c in labels}
    by_cell: dict = defaultdict(lambda: [0, 0.0])
    stats = {c: [0, 0.0, np.inf, -np.inf, 0] for c in quality}  # finite n, sum, min, max, missing
    rows, seconds = 0, 0.0
    for t in _batches(ds, ["duration_s", *labels, *quality], segments_filter):
        rows += t.num_rows
        seconds += pc.sum(t.column("duration_s")).as_py() or 0.0
        for c in labels:
            _add_groups(by_label[c], t, [c])
        if set(pair) <= names:
            _add_groups(by_cell, t, pair)
        for c in quality:
            x = _finite(t.column(c))
            s = stats[c]
            s[4] += t.num_rows - x.size
            if x.size:
                s[0] += x.size
                s[1] += float(x.sum())
                s[2], s[3] = min(s[2], float(x.min())), max(s[3], float(x.max()))
    edges = {}
    for c, (n, _, lo, hi, _) in stats.items():
        if n:
            lo, hi = (lo - 0.5, hi + 0.5) if lo == hi else (lo, hi)
            edges[c] = np.linspace(lo, hi, bins + 1)
    counts = {c: np.zeros(bins, dtype=np.int64) for c in edges}
    if edges:
        for t in _batches(ds, list(edges), segments_filter):
            for c, e in edges.items():
                counts[c] += np.histogram(_finite(t.column(c)), bins=e)[0]
    histograms = [QualityHistogram(
        column=c, edges=[float(v) for v in edges[c]] if c in edges else [],
        counts=[int(v) for v in counts[c]] if c in counts else [], missing=s[4],
        mean=s[1] / s[0] if s[0] else None, minimum=s[2] if s[0] else None, maximum=s[3] if s[0] else None)
        for c, s in stats.items()]
    breakdowns = {c: Breakdown(c, [BreakdownRow(k, acc[k][0], acc[k][1] / 3600) for k in _ranked(acc)])
                  for c, acc in by_label.items()}
    figures = SegmentFigures(segments=rows, hours=seconds / 3600, mean_duration_s=seconds / rows if rows else 0.0,
                             breakdowns=breakdowns, histograms=histograms)
    return figures, by_cell


def _measure_synthetic(ds: Any) -> tuple[SyntheticFigures, dict]:
    """Totals, failures by gate and passed outputs per (target speaker, target environment)."""
    by_cell: dict = defaultdict(lambda: [0, 0.0])
    gates: dict[str, int] = defaultdict(int)
    outputs = passed = 0
    seconds = passed_seconds = 0.0
    for t in _batches(ds, ["target_speaker", "target_environment", "passed", "duration_s", "rejected_by"]):
        outputs += t.num_rows
        seconds += pc.sum(t.column("duration_s")).as_py() or 0.0
        ok = t.filter(pc.fill_null(t.column("passed"), False))
        passed += ok.num_rows
        passed_seconds += pc.sum(ok.column("duration_s")).as_py() or 0.0
        _add_groups(by_cell, ok, ["target_speaker", "target_environment"])
        counted = pc.value_counts(t.column("rejected_by"))  # few distinct gate lists: split those, not every row
        for value, n in zip(counted.field("values").to_pylist(), counted.field("counts").to_pylist()):
            for gate in filter(None, (g.strip() for g in (value or "").split(","))):
                gates[gate] += n
    figures = SyntheticFigures(outputs=outputs, hours=seconds / 3600, passed=passed,
                               passed_hours=passed_seconds / 3600,
                               rejected_by=dict(sorted(gates.items(), key=lambda kv: (-kv[1], kv[0]))))
    return figures, by_cell


def _grid(seed: dict, synthetic: dict) -> CoverageGrid:
    cells = []
    for sp, env in sorted(set(seed) | set(synthetic), key=lambda k: tuple(str(v) for v in k)):
        seed_n, seed_s = seed.get((sp, env), (0, 0.0))
        syn_n, syn_s = synthetic.get((sp, env), (0, 0.0))
        cells.append(GridCell(sp, env, seed_n, seed_s / 3600, syn_n, syn_s / 3600))
    per_speaker: dict = defaultdict(lambda: [0, 0.0])
    per_env: dict = defaultdict(lambda: [0, 0.0])
    for c in cells:
        for acc, key in ((per_speaker, c.speaker), (per_env, c.environment)):
            acc[key][0] += 1
            acc[key][1] += c.seed_hours + c.synthetic_hours
    return CoverageGrid(speakers=_ranked(per_speaker), environments=_ranked(per_env), cells=cells)


def _counts(ds: Any, column: str) -> dict[str, int]:
    """Rows per value of one column, most first."""
    acc: dict = defaultdict(lambda: [0, 0.0])
    for t in _batches(ds, [column]):
        values = pc.value_counts(t.column(column))
        for value, n in zip(values.field("values").to_pylist(), values.field("counts").to_pylist()):
            acc[value][0] += n
            acc[value][1] += n
    return {k: acc[k][0] for k in _ranked(acc)}


def _measure_latents(ds: Any) -> list[CodecLatents]:
    acc: dict = defaultdict(lambda: [0, 0.0])
    bitrate: dict[str, float] = {}
    for t in _batches(ds, ["codec_id", "duration_s", "bitrate_bps"]):
        _add_groups(acc, t, ["codec_id"])
        g = t.group_by("codec_id", use_threads=False).aggregate([("bitrate_bps", "max")])
        bitrate.update(zip(g.column("codec_id").to_pylist(), g.column("bitrate_bps_max").to_pylist()))
    return [CodecLatents(k, acc[k][0], acc[k][1] / 3600, float(bitrate[k])) for k in sorted(acc)]


def _measure_runs(ds: Any, max_runs: int) -> list[RunInfo]:
    t = ds.to_table(columns=["run_id", "job", "status", "started_at", "ended_at", "table_versions_json"])
    rows = sorted(t.to_pylist(), key=lambda r: r["started_at"], reverse=True)[:max_runs]
    return [RunInfo(r["run_id"], r["job"], r["status"], r["started_at"].isoformat(),
                    r["ended_at"].isoformat() if r["ended_at"] else None,
                    json.loads(r["table_versions_json"]) if r["table_versions_json"] else {}) for r in rows]


def measure_corpus(lake_root: str, storage: StorageConfig, *, segments_filter: str | None = None,
                   histogram_bins: int = 30, max_runs: int = 10) -> CorpusReport:
    """Every figure of the corpus report for the lake at ``lake_root`` (a path or ``s3://`` URI).

    Args:
        lake_root: the lake (resolved: an absolute path or a URI).
        storage: how to reach S3 (ignored for local paths).
        segments_filter: Lance SQL over ``segments`` (e.g. ``"split = 'train'"``): the seed the report describes.
        histogram_bins: bins of each quality histogram.
        max_runs: most recent ``runs`` rows to list.

    Returns:
        A :class:`CorpusReport`; tables not written yet give None (or empty) figures.

    Raises:
        CorpusReportInputError: the segments filter is not valid Lance SQL.

    Example::

        report = measure_corpus("data/lake", StorageConfig(), segments_filter="split = 'train'")
        report.segments.breakdowns["speaker"].hours()   # {"flite:slt": 0.41, ...}
    """
    opened = {name: open_table(table_uri(lake_root, name), storage) for name in ALL_TABLES}
    tables = [TableInfo(name, ds.count_rows() if ds is not None else None, ds.version if ds is not None else None)
              for name, ds in opened.items()]
    segments, seed_cells = (None, {}) if opened["segments"] is None else \
        _measure_segments(opened["segments"], segments_filter, histogram_bins)
    synthetic, synth_cells = (None, {}) if opened["synthetic"] is None else _measure_synthetic(opened["synthetic"])
    rejects = None
    if opened["rejects"] is not None:
        rej = opened["rejects"]
        rejects = RejectFigures(rej.count_rows(), _counts(rej, "reason"), _counts(rej, "stage"))
    return CorpusReport(
        lake_root=lake_root, generated_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        segments_filter=segments_filter, tables=tables, segments=segments, rejects=rejects, synthetic=synthetic,
        grid=_grid(seed_cells, synth_cells) if segments is not None else None,
        latents=_measure_latents(opened["latents"]) if opened["latents"] is not None else [],
        factors=_counts(opened["factors"], "factorizer_id") if opened["factors"] is not None else {},
        runs=_measure_runs(opened["runs"], max_runs) if opened["runs"] is not None and max_runs else [])


def report_to_json(report: CorpusReport) -> str:
    """The figures as JSON (the ``--json`` copy): dataclasses as objects, derived grid counts included."""
    data = dataclasses.asdict(report)
    if report.grid is not None:
        for cell, out in zip(report.grid.cells, data["grid"]["cells"]):
            out["new"] = cell.new
        data["grid"].update(seed_cells=report.grid.seed_cells, synthetic_cells=report.grid.synthetic_cells,
                            new_cells=len(report.grid.new_cells), size=report.grid.size)
    return json.dumps(data, indent=1, allow_nan=False)
