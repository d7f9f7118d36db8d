"""The corpus report's figures against direct pyarrow computations; its HTML: self-contained, escaped, partial lakes."""

from __future__ import annotations

import json
import re
from collections import Counter, defaultdict

import lance
import pyarrow.compute as pc
import pytest

from pipelines.corpus_report import CorpusReportInputError, measure_corpus, report_to_json
from pipelines.corpus_report_html import render_corpus_report
from pipelines.lake_summary import format_report_summary, summarize_lake
from schemas.storage import StorageConfig
from tests.corpus_lake import FAILED_CELL, NEW_CELLS, REJECT_REASONS, SEED_CELLS, build_corpus_lake
from tests.tiny_lake import segment_row, write_segments

STORAGE = StorageConfig()


@pytest.fixture(scope="module")
def lake(tmp_path_factory) -> str:
    root = str(tmp_path_factory.mktemp("corpus") / "lake")
    build_corpus_lake(root)
    return root


@pytest.fixture(scope="module")
def report(lake):
    return measure_corpus(lake, STORAGE, histogram_bins=8)


def _direct_hours(lake: str, column: str, filter: str | None = None) -> dict:
    t = lance.dataset(f"{lake}/segments.lance").to_table(columns=[column, "duration_s"], filter=filter)
    g = t.group_by(column).aggregate([("duration_s", "sum")])
    return {k: s / 3600 for k, s in zip(g.column(column).to_pylist(), g.column("duration_s_sum").to_pylist())}


@pytest.mark.parametrize("column", ["speaker", "language", "split", "environment", "channel", "corpus"])
def test_hours_by_label_equal_a_direct_pyarrow_computation(lake, report, column):
    got = report.segments.breakdowns[column].hours()
    assert got.keys() == _direct_hours(lake, column).keys()
    for key, hours in _direct_hours(lake, column).items():
        assert got[key] == pytest.approx(hours, rel=1e-9)
    assert sum(r.segments for r in report.segments.breakdowns[column].rows) == 15
    assert [r.hours for r in report.segments.breakdowns[column].rows] == sorted(got.values(), reverse=True)


def test_totals_and_null_labels_are_counted(lake, report):
    dur = lance.dataset(f"{lake}/segments.lance").to_table(columns=["duration_s"]).column("duration_s")
    assert report.segments.segments == 15
    assert report.segments.hours == pytest.approx(pc.sum(dur).as_py() / 3600)
    assert None in report.segments.breakdowns["speaker"].hours()  # unlabelled speaker kept as its own value
    assert None in report.segments.breakdowns["language"].hours()


def test_a_segments_filter_restricts_every_figure(lake):
    r = measure_corpus(lake, STORAGE, segments_filter="split = 'train'")
    assert r.segments_filter == "split = 'train'"
    assert r.segments.breakdowns["split"].hours().keys() == {"train"}
    want = _direct_hours(lake, "speaker", "split = 'train'")
    assert r.segments.breakdowns["speaker"].hours() == pytest.approx(want)
    assert sum(c.seed_segments for c in r.grid.cells) == r.segments.segments == 8
    with pytest.raises(CorpusReportInputError, match=r"^segments_filter .* cannot run: .*nosuchcol") as err:
        measure_corpus(lake, STORAGE, segments_filter="nosuchcol = 1")
    assert "\n" not in str(err.value)


def test_quality_histograms_count_every_finite_value(lake, report):
    t = lance.dataset(f"{lake}/segments.lance").to_table(columns=["snr_db", "peak_dbfs"])
    snr = next(h for h in report.segments.histograms if h.column == "snr_db")
    assert len(snr.counts) == 8 and len(snr.edges) == 9
    assert sum(snr.counts) == 14 and snr.missing == 1  # one segment has no SNR
    assert snr.minimum == pytest.approx(pc.min(t.column("snr_db")).as_py())
    assert snr.maximum == pytest.approx(pc.max(t.column("snr_db")).as_py())
    peak = next(h for h in report.segments.histograms if h.column == "peak_dbfs")
    assert peak.counts == [] and peak.missing == 15 and peak.mean is None


def test_rejects_by_reason_and_stage(report):
    assert report.rejects.by_reason == REJECT_REASONS
    assert list(report.rejects.by_reason) == ["no_speech", "low_snr", "duplicate"]  # most first
    assert report.rejects.by_stage == {"filter": 5, "dedup": 1}


def test_grid_marks_exactly_the_synthetic_only_cells_new(lake, report):
    grid = report.grid
    assert {(c.speaker, c.environment) for c in grid.new_cells} == NEW_CELLS
    assert {(c.speaker, c.environment) for c in grid.cells if c.seed_segments} == SEED_CELLS
    cells = {(c.speaker, c.environment): c for c in grid.cells}
    assert FAILED_CELL not in cells  # a failed output covers nothing
    syn = lance.dataset(f"{lake}/synthetic.lance").to_table(
        columns=["target_speaker", "target_environment", "duration_s"], filter="passed")
    want: dict = defaultdict(float)
    for sp, env, d in zip(*(syn.column(c).to_pylist() for c in syn.column_names)):
        want[(sp, env)] += d / 3600
    assert {k: c.synthetic_hours for k, c in cells.items() if c.synthetic_outputs} == pytest.approx(dict(want))
    assert cells[("v:b", "room")].synthetic_outputs == 2 and not cells[("v:a", "room")].new
    assert report.synthetic.outputs == 5 and report.synthetic.passed == 4
    assert report.synthetic.rejected_by == {"content": 1, "speaker": 1}
    assert grid.size == len(grid.speakers) * len(grid.environments) == 4 * 3


def test_versions_and_runs(report):
    assert report.table("segments").version == 1 and report.table("segments").rows == 15
    assert report.table("factors").rows is None and report.table("sources").version is None
    assert [r.run_id for r in report.runs] == ["r1"] and report.runs[0].table_versions == {"segments": 1, "rejects": 1}
    assert [(c.codec_id, c.segments) for c in report.latents] == [("codec_t", 6)]


def test_html_is_self_contained_and_embeds_its_images(report):
    page = render_corpus_report(report)
    assert "http://" not in page and "https://" not in page
    assert not re.search(r"<link|<script[^>]*src=|@import|url\(", page)
    sources = re.findall(r'src="([^"]*)"', page)
    assert sources and all(s.startswith("data:image/png;base64,") for s in sources)
    assert len(sources) == sum(1 for h in report.segments.histograms if h.counts)  # one PNG per metric with values
    assert page.count('class="new"') == len(NEW_CELLS)
    for section in ("Hours by speaker", "Quality metrics", "Rejects", "Speaker x environment", "Recent runs"):
        assert section in page
    assert "no_speech" in page and "not written yet" in page  # factors and sources are missing


def test_text_summary_and_the_lake_summary_share_the_figures(lake, report):
    text = format_report_summary(report, top_speakers=2)
    assert "rejects by reason: no_speech 3, low_snr 2, duplicate 1" in text
    assert "hours by speaker (4 speakers, top 2):" in text
    assert "2 new from synthetic" in text and "recent runs (1):" in text
    assert len(text.splitlines()) < 40
    lake_text = summarize_lake(lake, STORAGE)
    assert "  segments       15 rows, version 1" in lake_text and "  factors   (not written yet)" in lake_text
    assert "synthetic: 5 made" in lake_text and "speaker x environment" not in lake_text


def test_json_copy_round_trips(report):
    data = json.loads(report_to_json(report))
    assert data["rejects"]["by_reason"] == REJECT_REASONS
    assert data["grid"]["new_cells"] == len(NEW_CELLS)
    assert {(c["speaker"], c["environment"]) for c in data["grid"]["cells"] if c["new"]} == NEW_CELLS


def test_a_lake_without_synthetic_or_rejects_says_not_written_yet(tmp_path):
    lake = str(tmp_path / "lake")
    build_corpus_lake(lake, rejects=False, synthetic=False)
    r = measure_corpus(lake, STORAGE)
    assert r.synthetic is None and r.rejects is None
    assert r.grid.new_cells == [] and r.grid.synthetic_cells == 0 and r.grid.seed_cells == len(SEED_CELLS)
    page = render_corpus_report(r)
    assert "synthetic: not written yet" in page and "rejects: not written yet" in page
    text = format_report_summary(r)
    assert "synthetic: not written yet" in text and "rejects: not written yet" in text


def test_lake_text_is_escaped(tmp_path):
    lake = str(tmp_path / "lake")
    write_segments(lake, [segment_row(0.5, seed=1, speaker="<script>alert(1)</script>", environment="a&b")])
    page = render_corpus_report(measure_corpus(lake, STORAGE))
    assert "<script>alert" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "a&amp;b" in page
    assert Counter(re.findall(r"<script>", page)) == Counter({"<script>": 1})  # only the sort script


def test_capped_grid_says_so_and_still_lists_every_new_cell(report):
    page = render_corpus_report(report, grid_max_speakers=1, max_table_rows=2)
    assert "Showing 1 of 4 speakers" in page and "Showing 2 of 4 values" in page
    new_list = page.split("New cells (synthetic only)")[1]
    assert all(f"<td>{sp}</td><td>{env}</td>" in new_list for sp, env in NEW_CELLS)
