"""Time travel: history with run ids, a table as of a version or run, diffs by key."""

from __future__ import annotations

import pytest

from pipelines.lance_io import table_uri, upsert_rows
from pipelines.query.errors import QueryError
from pipelines.query.versions import diff_versions, open_as_of, read_as_of, read_history
from schemas.runs import RUNS_SCHEMA
from schemas.storage import StorageConfig
from tests.pipelines.query.history_lake import HistoryLake, build_history_lake
from tests.tiny_lake import write_latents


@pytest.fixture(scope="module")
def lake(tmp_path_factory) -> HistoryLake:
    return build_history_lake(str(tmp_path_factory.mktemp("versions") / "lake"))


def test_history_lists_versions_rows_tags_and_runs(lake):
    h = read_history(lake.root, "segments").to_pylist()
    assert [(r["version"], r["rows"], r["rows_change"]) for r in h] == [(1, 2, 2), (2, 4, 2)]
    assert [r["run_id"] for r in h] == ["r1", "r2"]
    assert [r["during_run"] for r in h] == ["r1", "r2"]
    assert h[0]["tags"] == "first" and h[0]["committed_at"] <= h[1]["committed_at"]
    assert h[0]["committed_at"].tzinfo is not None


def test_history_of_runs_names_the_versions_each_run_committed(lake):
    h = read_history(lake.root, "runs").to_pylist()
    assert [r["rows"] for r in h] == [1, 1, 2, 2]  # r1 start, r1 end (update), r2 start, r2 end
    assert h[0]["during_run"] == "r1" and h[2]["during_run"] == "r2"


def test_as_of_version_tag_and_run_give_older_rows(lake):
    assert read_as_of(lake.root, "segments", version=1).num_rows == 2
    assert read_as_of(lake.root, "segments", version="first").num_rows == 2
    assert read_as_of(lake.root, "segments", run_id="r1").num_rows == 2
    assert read_as_of(lake.root, "segments", run_id="r2").num_rows == 4
    assert read_as_of(lake.root, "segments").num_rows == 4
    t = read_as_of(lake.root, "segments", run_id="r1", columns=["segment_id", "speaker"], filter="speaker = 't:1'")
    assert t.column_names == ["segment_id", "speaker"]
    assert t.column("segment_id").to_pylist() == [lake.rows[1]["segment_id"]]


def test_as_of_errors(lake):
    with pytest.raises(QueryError, match=r"segments has no version 7; versions: 1-2; tags: first"):
        open_as_of(lake.root, "segments", version=7)
    with pytest.raises(QueryError, match="unknown run id 'nope'"):
        open_as_of(lake.root, "segments", run_id="nope")
    with pytest.raises(QueryError, match="not both"):
        open_as_of(lake.root, "segments", version=1, run_id="r1")
    with pytest.raises(QueryError, match="'latents' did not exist yet when run 'r1' ended"):
        open_as_of(lake.root, "latents", run_id="r1")
    with pytest.raises(QueryError, match="'factors' does not exist"):
        open_as_of(lake.root, "factors")
    with pytest.raises(QueryError, match="no column 'nope'"):
        read_as_of(lake.root, "segments", columns=["nope"])
    with pytest.raises(QueryError, match="blob column"):
        read_as_of(lake.root, "segments", columns=["audio"])
    with pytest.raises(QueryError, match="bad filter") as info:
        read_as_of(lake.root, "segments", filter="duration_s >>> 1")
    assert ".rs:" not in str(info.value)


def test_diff_shows_exactly_the_added_keys(lake):
    d = diff_versions(lake.root, "segments", 1, 2)
    assert sorted(d.added.column("segment_id").to_pylist()) == sorted(r["segment_id"] for r in lake.rows[2:])
    assert d.removed.num_rows == 0 and d.updated.num_rows == 0 and d.unchanged == 2
    assert (d.rows_from, d.rows_to) == (2, 4)
    assert d.format() == "segments v1 -> v2: 2 -> 4 rows; +2 added, -0 removed, 0 updated, 2 unchanged"
    back = diff_versions(lake.root, "segments", 2, "first")
    assert back.added.num_rows == 0 and back.removed.num_rows == 2
    t = d.to_table()
    assert t.column_names == ["change", "segment_id", "run_id"] and set(t.column("change").to_pylist()) == {"added"}


def test_diff_by_composite_key_and_updates(tmp_path):
    lake = build_history_lake(str(tmp_path / "lake"))
    # r2 row: running (v3) -> succeeded (v4): same key, rewritten row
    d = diff_versions(lake.root, "runs", 3, 4)
    assert d.updated.column("run_id").to_pylist() == ["r2"] and d.added.num_rows == 0 and d.unchanged == 1
    # rewrite r1 with identical content: its row moves, but nothing changed
    same = read_as_of(lake.root, "runs", filter="run_id = 'r1'").to_pylist()
    upsert_rows(table_uri(lake.root, "runs"), same, RUNS_SCHEMA, ["run_id"], StorageConfig(), update_existing=True)
    moved = diff_versions(lake.root, "runs", 4, 5)
    assert moved.updated.num_rows == 0 and moved.unchanged == 2
    write_latents(lake.root, lake.rows[:1], codec_id="other-codec")
    lat = diff_versions(lake.root, "latents", 1, 2)
    assert lat.added.select(["segment_id", "codec_id"]).to_pylist() == [
        {"segment_id": lake.rows[0]["segment_id"], "codec_id": "other-codec"}]
    assert lat.unchanged == 4


def test_diff_unknown_version_names_existing(lake):
    with pytest.raises(QueryError, match=r"runs has no version 12; versions: 1-4"):
        diff_versions(lake.root, "runs", 1, 12)
