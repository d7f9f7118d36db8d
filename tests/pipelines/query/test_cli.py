"""``python -m pipelines.query``: each subcommand end to end, and every bad input as one line and exit 2."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from pipelines.query.cli import build_parser, main
from tests.pipelines.query.history_lake import HistoryLake, build_history_lake

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def lake(tmp_path_factory) -> HistoryLake:
    return build_history_lake(str(tmp_path_factory.mktemp("cli") / "lake"))


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_sql_prints_a_table(lake, capsys):
    code, out, err = _run(capsys, "--lake-root", lake.root, "sql",
                          "SELECT speaker, count(*) AS n FROM segments GROUP BY 1 ORDER BY 1")
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0].split() == ["speaker", "n"] and lines[2].split() == ["t:0", "2"] and lines[-1] == "2 rows"


def test_shared_flags_work_after_the_subcommand_too(lake, capsys):
    code, out, _ = _run(capsys, "sql", "SELECT count(*) AS n FROM segments", "--lake-root", lake.root)
    assert code == 0 and out.splitlines()[2].strip() == "4"


def test_sql_as_of_run_and_pinned_version(lake, capsys):
    code, out, _ = _run(capsys, "sql", "SELECT count(*) AS n FROM segments", "--run-id", "r1",
                        "--lake-root", lake.root)
    assert code == 0 and out.splitlines()[2].strip() == "2"
    code, out, _ = _run(capsys, "sql", "SELECT count(*) AS n FROM segments", "--at", "segments@1",
                        "--lake-root", lake.root)
    assert code == 0 and out.splitlines()[2].strip() == "2"


def test_tables_history_diff_show(lake, capsys, tmp_path):
    code, out, _ = _run(capsys, "tables", "--lake-root", lake.root)
    assert code == 0 and out.splitlines()[-1] == "3 rows"
    code, out, _ = _run(capsys, "history", "segments", "--lake-root", lake.root, "--out", str(tmp_path / "h.json"))
    history = json.loads((tmp_path / "h.json").read_text())
    assert code == 0 and [(r["version"], r["run_id"]) for r in history] == [(1, "r1"), (2, "r2")]
    code, out, err = _run(capsys, "diff", "segments", "1", "2", "--lake-root", lake.root)
    assert code == 0 and "+2 added, -0 removed" in err
    assert sorted(line.split()[1] for line in out.splitlines()[2:-1]) == sorted(r["segment_id"] for r in lake.rows[2:])
    code, out, err = _run(capsys, "diff", "segments", "first", "--lake-root", lake.root)  # to the latest
    assert code == 0 and "segments v1 -> v2" in err
    code, out, _ = _run(capsys, "show", "segments@1", "--columns", "segment_id,speaker", "--lake-root", lake.root,
                        "--out", str(tmp_path / "s.parquet"))
    t = pq.read_table(tmp_path / "s.parquet")
    assert code == 0 and t.column_names == ["segment_id", "speaker"] and t.num_rows == 2
    code, out, _ = _run(capsys, "show", "segments", "--run-id", "r2", "--filter", "speaker = 't:0'",
                        "--columns", "segment_id", "--lake-root", lake.root)
    assert code == 0 and out.splitlines()[-1] == "2 rows"


def test_show_reads_only_what_the_terminal_shows_but_counts_all(lake, capsys):
    code, out, _ = _run(capsys, "show", "latents", "--max-rows", "3", "--lake-root", lake.root)
    lines = out.splitlines()
    assert code == 0 and len(lines) == 2 + 3 + 1 and lines[-1] == "4 rows (showing 3)"
    assert "codes" in lines[0] and "(" in lines[2]  # the codes list shown shortened with its length


def test_every_subcommand_is_registered_through_add_command():
    parser = build_parser()
    names = set(next(a for a in parser._actions if a.dest == "command").choices)
    assert {"sql", "tables", "history", "diff", "show"} <= names


@pytest.mark.parametrize("argv, message", [
    (["sql", "SELECT * FROM nope"], "Table with name nope does not exist"),
    (["sql", "SELECT nope FROM segments"], 'Referenced column "nope" not found'),
    (["sql", "SELEC 1"], "syntax error"),
    (["sql", "SELECT count(*) FROM segments@9"], "segments has no version 9; versions: 1-2"),
    (["sql", "SELECT 1", "--run-id", "zz"], "unknown run id 'zz'"),
    (["sql", "SELECT 1", "--at", "segments"], "give TABLE@VERSION"),
    (["show", "segments", "--version", "9"], "segments has no version 9"),
    (["show", "segments", "--run-id", "zz"], "unknown run id 'zz'"),
    (["show", "segments", "--columns", "nope"], "no column 'nope'"),
    (["show", "segments", "--filter", "nope = 1"], "bad filter 'nope = 1'"),
    (["show", "segments", "--filter", "duration_s >>> 1"], "bad filter"),
    (["show", "factors"], "table 'factors' does not exist"),
    (["show", "segmentz"], "unknown table 'segmentz'"),
    (["show", "segments@1", "--version", "2"], "give the version once"),
    (["history", "nope"], "unknown table 'nope'"),
    (["diff", "segments", "1", "9"], "segments has no version 9"),
    (["tables", "--out", "x.txt"], "unknown format '.txt'"),
    (["tables", "--max-rows", "0"], "--max-rows must be >= 1"),
])
def test_bad_input_is_one_line_and_exit_2(lake, capsys, argv, message):
    code, out, err = _run(capsys, *argv, "--lake-root", lake.root)
    assert code == 2 and out == ""
    assert err.startswith("error: ") and err.count("\n") == 1 and message in err
    assert "Traceback" not in err and ".rs:" not in err


def test_empty_lake_root_says_so(tmp_path, capsys):
    code, out, err = _run(capsys, "tables", "--lake-root", str(tmp_path / "nowhere"))
    assert code == 2 and err == f"error: no tables under {tmp_path / 'nowhere'} (wrong --lake-root?)\n"


def test_usage_errors_exit_2_without_traceback(capsys):
    code, _, err = _run(capsys, "show")
    assert code == 2 and "Traceback" not in err and "required" in err
    code, _, err = _run(capsys)
    assert code == 2 and "COMMAND" in err


def test_real_subprocess(lake, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    ok = subprocess.run([sys.executable, "-m", "pipelines.query", "--lake-root", lake.root, "sql",
                         "SELECT split, count(*) AS n FROM segments GROUP BY 1", "--out", str(tmp_path / "o.csv")],
                        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0, ok.stderr
    assert (tmp_path / "o.csv").read_text().splitlines() == ['"split","n"', '"train",4']
    bad = subprocess.run([sys.executable, "-m", "pipelines.query", "--lake-root", lake.root, "sql",
                          "SELECT * FROM nope"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and bad.stdout == ""
    assert bad.stderr.count("\n") == 1 and bad.stderr.startswith("error: Catalog Error")
    assert "Traceback" not in bad.stderr
