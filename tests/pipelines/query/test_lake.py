"""SQL over the lake: joins, blob columns left out, pushdown into Lance, versions and runs in SQL."""

from __future__ import annotations

import pytest
from lance.dataset import LanceDataset

from pipelines.query.errors import QueryError
from pipelines.query.lake import (
    connect_lake, describe_tables, parse_table_ref, query_lake, rewrite_versioned_refs, run_sql, versions_at_run,
)
from tests.pipelines.query.history_lake import HistoryLake, build_history_lake


@pytest.fixture(scope="module")
def lake(tmp_path_factory) -> HistoryLake:
    return build_history_lake(str(tmp_path_factory.mktemp("query") / "lake"))


def test_join_segments_latents_gives_counts_and_hours(lake):
    t = query_lake(lake.root, "SELECT s.speaker, count(*) AS n, sum(l.duration_s) / 3600 AS hours "
                              "FROM segments s JOIN latents l USING (segment_id) GROUP BY 1 ORDER BY 1")
    got = {r["speaker"]: (r["n"], r["hours"]) for r in t.to_pylist()}
    want = {f"t:{k}": (2, sum(lake.durations_s[k::2]) / 3600) for k in (0, 1)}
    assert got.keys() == want.keys()
    for k, (n, hours) in want.items():
        assert got[k][0] == n and got[k][1] == pytest.approx(hours, rel=1e-3)


def test_select_star_leaves_out_audio_and_never_scans_it(lake, monkeypatch):
    asked: list = []
    original = LanceDataset.scanner

    def spy(self, *args, **kwargs):
        asked.append(kwargs.get("columns"))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(LanceDataset, "scanner", spy)
    t = query_lake(lake.root, "SELECT * FROM segments LIMIT 3")
    assert t.num_rows == 3 and "segment_id" in t.column_names and "speaker" in t.column_names
    assert "audio" not in t.column_names
    assert asked and all(cols is not None and "audio" not in cols for cols in asked)


def test_projection_and_equality_filter_reach_lance(lake, monkeypatch):
    calls: list = []
    original = LanceDataset.scanner

    def spy(self, *args, **kwargs):
        calls.append((kwargs.get("columns"), str(kwargs.get("filter"))))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(LanceDataset, "scanner", spy)
    t = query_lake(lake.root, "SELECT segment_id FROM segments WHERE speaker = 't:1'")
    assert t.num_rows == 2
    (columns, where), = calls
    assert set(columns) <= {"segment_id", "speaker"}  # only what the query names
    assert "speaker" in where and "t:1" in where       # the filter ran inside Lance
    plan = run_sql(connect_lake(lake.root), "EXPLAIN SELECT segment_id FROM segments WHERE speaker = 't:1'")
    text = "\n".join(str(v) for v in plan.column(1).to_pylist())
    assert "Filters:" in text and "Projections: segment_id" in text


def test_table_at_a_version_or_tag_in_sql(lake):
    t = query_lake(lake.root, "SELECT (SELECT count(*) FROM segments@1) AS v1, (SELECT count(*) FROM segments) AS now, "
                              "(SELECT count(*) FROM segments@first) AS tagged, "
                              "(SELECT count(*) FROM segments@2 WHERE segment_id NOT IN "
                              "(SELECT segment_id FROM segments@1)) AS added")
    assert t.to_pylist() == [{"v1": 2, "now": 4, "tagged": 2, "added": 2}]
    pinned = query_lake(lake.root, "SELECT count(*) AS n FROM segments", versions={"segments": 1})
    assert pinned.column("n").to_pylist() == [2]


def test_versioned_refs_skip_string_literals():
    sql, refs = rewrite_versioned_refs("SELECT * FROM segments@3 WHERE transcript = 'mail segments@3'")
    assert sql == "SELECT * FROM segments_at_3 WHERE transcript = 'mail segments@3'"
    assert refs["segments_at_3"] == parse_table_ref("segments@3")


def test_every_table_as_of_a_run(lake):
    assert versions_at_run(lake.root, "r1") == {"segments": 1, "runs": 1}  # latents came later: absent
    con = connect_lake(lake.root, run_id="r1")
    assert run_sql(con, "SELECT count(*) AS n FROM segments").column("n").to_pylist() == [2]
    with pytest.raises(QueryError, match="latents does not exist"):
        run_sql(con, "SELECT * FROM latents")
    at_r2 = query_lake(lake.root, "SELECT count(*) AS n FROM segments s JOIN latents l USING (segment_id)",
                       run_id="r2")
    assert at_r2.column("n").to_pylist() == [4]


@pytest.mark.parametrize("sql, match", [
    ("SELECT * FROM nope", r"nope does not exist.*\(tables: latents, runs, segments\)"),
    ("SELECT nope FROM segments", 'column "nope" not found'),
    ("SELECT audio FROM segments", "blob columns are not in SQL"),
    ("SELEC 1", "syntax error"),
    ("SELECT 'a'::INT", "Could not convert"),
    ("SELECT count(*) FROM segments@9", r"segments has no version 9; versions: 1-2; tags: first"),
    ("SELECT count(*) FROM segments@nosuchtag", "segments has no version 'nosuchtag'"),
])
def test_bad_sql_is_one_line_query_error(lake, sql, match):
    with pytest.raises(QueryError, match=match) as info:
        query_lake(lake.root, sql)
    assert "\n" not in str(info.value) and ".rs:" not in str(info.value)


def test_unknown_run_and_unknown_pinned_table(lake):
    with pytest.raises(QueryError, match="unknown run id 'zz'; 2 runs"):
        connect_lake(lake.root, run_id="zz")
    with pytest.raises(QueryError, match="unknown table 'segmentz'"):
        connect_lake(lake.root, versions={"segmentz": 1})


def test_describe_tables(lake):
    t = {r["table"]: r for r in describe_tables(lake.root).to_pylist()}
    assert set(t) == {"segments", "runs", "latents"}
    assert (t["segments"]["rows"], t["segments"]["version"], t["segments"]["blob_columns"]) == (4, 2, "audio")
    assert "audio" not in t["segments"]["columns"].split(", ")
    assert t["latents"]["key"] == "segment_id, codec_id"


def test_filters_on_tables_with_uint16_codes_are_pushed_and_work(lake):
    """latents.codes is list<uint16>: Lance 14 rejected every pyarrow filter on such a table (worked around).

    DuckDB does not re-apply a filter it pushed into the scan, so the right row count shows Lance applied it.
    """
    sid = lake.rows[1]["segment_id"]
    sql = f"SELECT segment_id, len(codes) AS n FROM latents WHERE segment_id = '{sid}' AND codec_id = '{lake.codec_id}'"
    t = query_lake(lake.root, sql)
    assert t.column("segment_id").to_pylist() == [sid]
    assert t.column("n").to_pylist() == [2 * 30]  # 0.6 s at 50 Hz, 2 stages
    plan = "\n".join(str(v) for v in run_sql(connect_lake(lake.root), "EXPLAIN " + sql).column(1).to_pylist())
    scan = plan[plan.index("PYTHON_ARROW_SCAN"):]
    assert "Filters:" in scan and "segment_id" in scan.split("Projections:")[0]
