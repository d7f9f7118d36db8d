"""The maintenance job as users run it: the shipped config, each subcommand's exit code, one-line errors."""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime, timezone

import lance
import pytest

from jobs.maintain import main
from pipelines.lance_io import table_uri
from schemas import config_model_for
from schemas.curate import load_config
from schemas.maintenance import LAKE_TABLES, MaintainConfig
from tests.conftest import ROOT
from tests.pipelines.test_maintenance import _record_run
from tests.tiny_lake import segment_row, write_segments

CONFIG = ROOT / "configs" / "maintain.yaml"


def _lake(tmp_path, appends: int = 4) -> str:
    lake = str(tmp_path / "lake")
    for i in range(appends):
        write_segments(lake, [segment_row(0.3, seed=i)])
    return lake


def _main(capsys, *argv: str) -> tuple[int, str, str]:
    code = main([*argv[:1], "--config", str(CONFIG), *argv[1:]])
    out, err = capsys.readouterr()
    return code, out, err


def test_the_shipped_config_loads_and_names_its_command():
    assert config_model_for(CONFIG) is MaintainConfig
    config = load_config(CONFIG, MaintainConfig)
    assert config.tables == list(LAKE_TABLES) and config == MaintainConfig()  # the file spells out the defaults
    first_line = CONFIG.read_text().splitlines()[0]
    assert first_line.startswith("# python jobs/maintain.py compact --config configs/maintain.yaml")


def test_every_action_exits_0_and_says_what_it_did(tmp_path, capsys):
    lake = _lake(tmp_path)
    code, out, _ = _main(capsys, "compact", "--lake-root", lake)
    assert code == 0 and "segments: fragments 4 -> 1, rows 4 -> 4" in out
    code, out, _ = _main(capsys, "index", "--lake-root", lake, "--table", "segments")
    assert code == 0 and "segments.segment_id_idx: created; 4 rows indexed" in out
    code, out, _ = _main(capsys, "index", "--lake-root", lake, "--table", "segments", "--rebuild")
    assert code == 0 and "segments.segment_id_idx: rebuilt" in out
    good = lance.dataset(table_uri(lake, "segments")).version
    _record_run(lake, "curate-1", "curate", {"segments": good}, datetime(2026, 1, 1, tzinfo=timezone.utc))
    code, out, _ = _main(capsys, "tag", "--lake-root", lake, "--name", "good", "--run-id", "curate-1")
    assert code == 0 and f"segments: good -> version {good} (run curate-1)" in out
    code, out, _ = _main(capsys, "cleanup", "--lake-root", lake, "--dry-run", "--keep-days", "0", "--keep-last", "1")
    assert code == 0 and "segments: would remove" in out
    code, out, _ = _main(capsys, "cleanup", "--lake-root", lake, "--keep-days", "0", "--keep-last", "1")
    assert code == 0 and "segments: removed" in out and f"{good} (current, last 1, tag good, run curate" in out
    write_segments(lake, [segment_row(0.3, seed=99)])  # a bad run
    code, out, _ = _main(capsys, "restore", "--lake-root", lake, "--name", "good")
    assert code == 0 and "segments: restored tag good" in out and "rows 5 -> 4" in out
    assert lance.dataset(table_uri(lake, "segments")).count_rows() == 4
    code, out, _ = _main(capsys, "tags", "--lake-root", lake, "--table", "segments")
    assert code == 0 and out.startswith(f"segments: good -> version {good}")
    runs = lance.dataset(table_uri(lake, "runs")).to_table(columns=["job", "status"]).to_pylist()
    assert {r["job"] for r in runs} >= {"maintain:compact", "maintain:index", "maintain:cleanup", "maintain:restore"}
    assert {r["status"] for r in runs} == {"succeeded"}


@pytest.mark.parametrize("argv, message", [
    (["compact", "--table", "nope"], "error: unknown table 'nope'; the lake's tables are sources, segments"),
    (["tag", "--name", "x", "--table", "segments", "--version", "42"],
     "error: segments has no version 42 (versions: 1-4; older ones may have been cleaned up)"),
    (["tag", "--name", "x", "--run-id", "nope"], "error: no run 'nope' in"),
    (["tag", "--name", "x", "--table", "latents"], "error: no table 'latents' under"),
    (["restore", "--name", "nope"], "error: no tag 'nope' on any table under"),
    (["untag", "--name", "nope", "--table", "segments"], "error: no tag 'nope' on segments under"),
    (["restore", "--table", "segments", "--version", "9"], "error: segments has no version 9"),
    (["restore", "--version", "2"], "error: --version needs --table"),
    (["tag", "--version", "x", "--name", "y"],
     "error: jobs/maintain.py tag: argument --version: invalid int value: 'x'"),
    (["tag"], "error: jobs/maintain.py tag: the following arguments are required: --name"),
    (["vacuum"], "error: jobs/maintain.py: argument action: invalid choice: 'vacuum'"),
    (["cleanup", "--keep-last", "0"],
     "error: bad retention override: keep_last_versions: Input should be greater than or equal to 1"),
])
def test_bad_input_exits_2_with_one_line_and_changes_nothing(tmp_path, capsys, argv, message):
    lake = _lake(tmp_path)
    _record_run(lake, "curate-1", "curate", {"segments": 4}, datetime(2026, 1, 1, tzinfo=timezone.utc))
    code = main([*argv, "--config", str(CONFIG), "--lake-root", lake])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith(message) and err.count("\n") == 1, err
    assert lance.dataset(table_uri(lake, "segments")).version == 4
    jobs = lance.dataset(table_uri(lake, "runs")).to_table(columns=["job"]).column("job").to_pylist()
    assert jobs == ["curate"]  # no maintenance run was recorded


def test_a_bad_config_exits_2_naming_the_key(tmp_path, capsys):
    bad = tmp_path / "maintain.yaml"
    bad.write_text("lake_root: x\nretention: {keep_weeks: 2}\n")
    assert main(["cleanup", "--config", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "keep_weeks" in err and "Traceback" not in err


def test_as_a_process(tmp_path):
    lake = _lake(tmp_path, appends=2)
    job = [sys.executable, str(ROOT / "jobs" / "maintain.py")]
    ok = subprocess.run([*job, "tag", "--config", str(CONFIG), "--lake-root", lake, "--name", "v1"],
                        capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0 and "segments: v1 -> version 2" in ok.stdout, ok.stderr
    bad = subprocess.run([*job, "restore", "--config", str(CONFIG), "--lake-root", lake, "--name", "v2"],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and bad.stderr == f"error: no tag 'v2' on any table under {lake} (tags: v1)\n"
    assert lance.dataset(table_uri(lake, "segments")).tags.get_version("v1") == 2
