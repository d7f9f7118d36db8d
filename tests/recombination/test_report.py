"""The recombination HTML report: self-contained, escaped, playable, capped."""

from __future__ import annotations

import base64
import io
import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from recombination.report import ReportCell, write_recombination_report
from tests.factories import speechlike

ROWS = ("the birch canoe slid", "glue the sheet")
COLUMNS = ("source", "speaker B", "speaker C")


class _Tags(HTMLParser):
    """Collects start tags with their attributes, and the page's text."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)

    def of(self, tag: str) -> list[dict[str, str | None]]:
        return [attrs for t, attrs in self.tags if t == tag]


def _parse(path: Path) -> _Tags:
    parser = _Tags()
    parser.feed(path.read_text(encoding="utf-8"))
    parser.close()
    return parser


def _grid(durations_s: dict[tuple[str, str], float]) -> list[ReportCell]:
    return [ReportCell(row, column, speechlike(d, seed=i), caption=f"sim {0.5 + i / 20:.2f}",
                       passed=None if column == "source" else i % 2 == 0)
            for i, ((row, column), d) in enumerate(durations_s.items())]


def test_report_is_self_contained_html_with_one_player_and_image_per_cell(tmp_path):
    cells = _grid({(r, c): 1.0 for r in ROWS for c in COLUMNS})
    out = write_recombination_report(tmp_path / "sub" / "report.html", title="speaker swaps",
                                     summary={"outputs": 4, "pass rate": 0.5, "judge": "resemblyzer"},
                                     cells=cells, row_labels=ROWS, column_labels=COLUMNS)
    assert out == tmp_path / "sub" / "report.html" and out.is_file()
    assert [p.name for p in out.parent.iterdir()] == ["report.html"]  # the temp file was renamed away
    page = _parse(out)
    assert len(page.of("audio")) == len(cells) == 6
    assert len(page.of("img")) == 6
    for tag, attrs in page.tags:
        for name in ("src", "href"):
            value = attrs.get(name) or ""
            assert not value.startswith(("http://", "https://", "//")), (tag, value[:80])
    assert not re.search(r"https?://", out.read_text())
    assert all(a["src"].startswith("data:image/png;base64,") for a in page.of("img"))
    text = " ".join(page.text)
    assert "pass rate" in text and "0.5" in text and "resemblyzer" in text and "PASS" in text and "FAIL" in text
    column_headers = [a for a in page.of("th") if a.get("scope") == "col"]
    assert len(column_headers) == 3 and column_headers[0].get("class") == "source"  # the unswapped audio first
    assert [a for a in page.of("th") if a.get("scope") == "row"] == [{"scope": "row"}] * 2


def test_audio_data_uri_decodes_to_a_16_bit_wav_of_the_right_length(tmp_path):
    cells = _grid({(ROWS[0], "source"): 1.25, (ROWS[0], "speaker B"): 0.5})
    out = write_recombination_report(tmp_path / "r.html", title="t", summary={}, cells=cells,
                                     row_labels=ROWS[:1], column_labels=COLUMNS[:2], sample_rate_hz=16000)
    srcs = [a["src"] for a in _parse(out).of("audio")]
    assert len(srcs) == 2
    prefix = "data:audio/wav;base64,"
    assert all(s.startswith(prefix) for s in srcs)
    audio, rate = sf.read(io.BytesIO(base64.b64decode(srcs[0][len(prefix):])), dtype="float32")
    info = sf.info(io.BytesIO(base64.b64decode(srcs[0][len(prefix):])))
    assert rate == 16000 and info.subtype == "PCM_16" and audio.shape == (20000,)
    np.testing.assert_allclose(audio, cells[0].audio, atol=1 / 32767 + 1e-6)
    assert sf.read(io.BytesIO(base64.b64decode(srcs[1][len(prefix):])))[0].shape == (8000,)


def test_text_is_escaped(tmp_path):
    evil = "<script>alert('x')</script>"
    cells = [ReportCell(ROWS[0], "source", speechlike(0.5), caption=evil, passed=None),
             ReportCell(ROWS[0], evil, speechlike(0.5), caption="ok & fine", passed=True)]
    out = write_recombination_report(tmp_path / "r.html", title=evil, summary={evil: evil}, cells=cells,
                                     row_labels=ROWS[:1], column_labels=["source", evil])
    raw = out.read_text()
    assert "<script" not in raw
    assert "&lt;script&gt;" in raw and "ok &amp; fine" in raw
    page = _parse(out)
    assert not page.of("script")
    assert evil in " ".join(page.text)  # the reader sees the text as written


def test_max_cells_drops_and_notes(tmp_path):
    rows = [f"utt{i}" for i in range(5)]
    cells = _grid({(r, c): 0.3 for r in rows for c in COLUMNS})  # 15 cells
    out = write_recombination_report(tmp_path / "r.html", title="t", summary={"n": 15}, cells=cells,
                                     row_labels=rows, column_labels=COLUMNS, max_cells=7)
    page = _parse(out)
    assert len(page.of("audio")) == 7 and len(page.of("img")) == 7
    text = " ".join(page.text)
    assert "Showing 7 of 15 cells" in text and "8 not shown" in text and "2 rows omitted" in text
    shown_rows = [t for t in page.text if t.startswith("utt")]
    assert shown_rows == ["utt0", "utt1", "utt2"]


def test_no_note_when_everything_fits_and_empty_positions_stay_empty(tmp_path):
    cells = _grid({(ROWS[0], "source"): 0.3, (ROWS[1], "speaker C"): 0.3})
    out = write_recombination_report(tmp_path / "r.html", title="t", summary={}, cells=cells,
                                     row_labels=ROWS, column_labels=COLUMNS)
    page = _parse(out)
    assert len(page.of("audio")) == 2
    assert "Showing" not in " ".join(page.text)
    assert sum("empty" in (a.get("class") or "") for a in page.of("td")) == 4


def test_empty_and_non_finite_audio_render(tmp_path):
    bad = speechlike(0.5)
    bad[10] = np.nan
    cells = [ReportCell(ROWS[0], "source", np.zeros(0, np.float32)), ReportCell(ROWS[0], "speaker B", bad)]
    out = write_recombination_report(tmp_path / "r.html", title="t", summary={}, cells=cells,
                                     row_labels=ROWS[:1], column_labels=COLUMNS[:2])
    page = _parse(out)
    assert len(page.of("audio")) == 1
    text = " ".join(page.text)
    assert "(no audio)" in text and "non-finite" in text


@pytest.mark.parametrize("cells, match", [
    ([ReportCell("nope", "source", np.zeros(10, np.float32))], "not on the grid"),
    ([ReportCell(ROWS[0], "source", np.zeros(10, np.float32))] * 2, "two cells"),
    ([ReportCell(ROWS[0], "source", np.zeros((2, 10), np.float32))], "mono"),
])
def test_bad_cells_are_clear_errors_and_write_nothing(tmp_path, cells, match):
    with pytest.raises(ValueError, match=match):
        write_recombination_report(tmp_path / "r.html", title="t", summary={}, cells=cells,
                                   row_labels=ROWS, column_labels=COLUMNS)
    assert not any(tmp_path.iterdir())


def test_bad_arguments_are_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="max_cells"):
        write_recombination_report(tmp_path / "r.html", title="t", summary={}, cells=[], row_labels=ROWS,
                                   column_labels=COLUMNS, max_cells=0)
    with pytest.raises(ValueError, match="duplicates"):
        write_recombination_report(tmp_path / "r.html", title="t", summary={}, cells=[], row_labels=["a", "a"],
                                   column_labels=COLUMNS)
