"""Results out: the terminal table, and each file format read back equal to what was written."""

from __future__ import annotations

import base64
import json
from datetime import datetime, timezone

import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import pytest

from pipelines.query.errors import QueryError
from pipelines.query.output import TOTAL_ROWS_KEY, format_table, write_output


def _table(n: int = 3) -> pa.Table:
    return pa.table({
        "segment_id": pa.array([f"seg{i}" for i in range(n)]),
        "hours": pa.array([0.5 * i for i in range(n)], pa.float64()),
        "frames": pa.array(list(range(n)), pa.int32()),
        "speaker": pa.array(["a" * 100 if i == 0 else None for i in range(n)], pa.string()),
        "at": pa.array([datetime(2026, 1, 1, i % 24, i % 60, tzinfo=timezone.utc) for i in range(n)],
                       pa.timestamp("us", "UTC")),
        "codes": pa.array([list(range(i + 5)) for i in range(n)], pa.list_(pa.uint16())),
    })


def test_terminal_table_aligns_truncates_and_counts():
    text = format_table(_table(60), max_rows=50)
    lines = text.splitlines()
    assert lines[0].split() == ["segment_id", "hours", "frames", "speaker", "at", "codes"]
    assert set(lines[1].replace(" ", "")) == {"-"}
    assert len(lines) == 2 + 50 + 1 and lines[-1] == "60 rows (showing 50)"
    assert "a" * 39 + "…" in lines[2] and "a" * 41 not in text          # long cell cut at 40
    assert "[0, 1, 2, 3, ...] (5)" in lines[2] and "null" in lines[3]
    widths = {len(line) for line in lines[2:52]}
    assert len(widths) <= 2  # rows line up (the last column is not padded)
    assert lines[3].index("0.5") + 3 == lines[0].index("hours") + 5  # numbers right-aligned under the header
    assert format_table(_table(1)).splitlines()[-1] == "1 row"


def test_footer_uses_the_total_the_reader_counted():
    t = _table(2).replace_schema_metadata({TOTAL_ROWS_KEY: "1234"})
    assert format_table(t).splitlines()[-1] == "1234 rows (showing 2)"


def test_terminal_output_goes_to_stdout(capsys):
    write_output(_table(2), None)
    assert capsys.readouterr().out.endswith("2 rows\n")


def test_parquet_round_trips(tmp_path):
    t = _table()
    write_output(t, str(tmp_path / "out.parquet"))
    assert pq.read_table(tmp_path / "out.parquet").equals(t)


def test_csv_round_trips_flat_columns_and_lists_as_json(tmp_path):
    t = _table()
    write_output(t, str(tmp_path / "sub" / "out.csv"))
    back = pcsv.read_csv(tmp_path / "sub" / "out.csv",  # a null is an empty field
                         convert_options=pcsv.ConvertOptions(strings_can_be_null=True))
    assert back.column("segment_id").to_pylist() == t.column("segment_id").to_pylist()
    assert back.column("hours").to_pylist() == t.column("hours").to_pylist()
    assert back.column("frames").to_pylist() == t.column("frames").to_pylist()
    assert back.column("speaker").to_pylist() == t.column("speaker").to_pylist()
    assert back.column("at").cast(pa.timestamp("us", "UTC")).equals(t.column("at"))
    assert [json.loads(v) for v in back.column("codes").to_pylist()] == t.column("codes").to_pylist()


@pytest.mark.parametrize("suffix", [".json", ".jsonl"])
def test_json_round_trips(tmp_path, suffix):
    t = _table().append_column("blob", pa.array([b"\x00\x01", None, b"x"], pa.binary()))
    path = tmp_path / f"out{suffix}"
    write_output(t, str(path))
    text = path.read_text()
    rows = json.loads(text) if suffix == ".json" else [json.loads(line) for line in text.splitlines()]
    want = t.to_pylist()
    assert len(rows) == len(want)
    for got, row in zip(rows, want):
        assert got["segment_id"] == row["segment_id"] and got["hours"] == row["hours"]
        assert got["codes"] == row["codes"] and got["speaker"] == row["speaker"]
        assert datetime.fromisoformat(got["at"]) == row["at"]
        assert (None if got["blob"] is None else base64.b64decode(got["blob"])) == row["blob"]


def test_unknown_extension_is_a_query_error(tmp_path):
    with pytest.raises(QueryError, match=r"unknown format '\.txt'; use one of \.csv, \.parquet, \.json, \.jsonl"):
        write_output(_table(), str(tmp_path / "out.txt"))
    with pytest.raises(QueryError, match="no extension"):
        write_output(_table(), str(tmp_path / "out"))
    assert not list(tmp_path.iterdir())


def test_unwritable_path_is_a_query_error(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(QueryError, match="cannot write"):
        write_output(_table(), str(tmp_path / "file" / "out.csv"))
