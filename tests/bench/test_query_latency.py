"""The query-latency bench (bench/query_latency.py) on 2,000 rows: every format answers every query with the same rows.

The timings mean nothing at this size; what is checked is that Lance, Parquet and WebDataset return the same ids
for the same lookup, random ids and filter, the same hours per speaker and the same exact top-10, that these
match the generated rows, and that ANN recall is computed as defined.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from bench.query_latency import (BENCH_SCHEMA, K, LanceStore, ParquetStore, WebDatasetStore, generate_latents, main,
                                 plan_queries, recall_at_k, run_queries, top_k_numpy, write_formats)

ROWS = 2000


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    """The generated rows, the query inputs, the three layouts and one store of each."""
    table = generate_latents(ROWS, seed=3)
    inputs = plan_queries(table, seed=3, point_lookups=5, random_rows=1000, vector_queries=8)
    built = write_formats(table, tmp_path_factory.mktemp("query_latency"))
    stores = {"lance": LanceStore(built.lance_uri), "lance_scan": LanceStore(built.lance_uri, scalar_index=False),
              "parquet": ParquetStore(built.parquet_dir), "wds": WebDatasetStore(built.wds_shards)}
    return table, inputs, built, stores


def _ids(t: pa.Table) -> list[str]:
    return t.column("segment_id").to_pylist()


def test_generated_rows_are_deterministic_latents_sized_and_clustered():
    a, b = generate_latents(500, seed=1), generate_latents(500, seed=1)
    assert a.schema == BENCH_SCHEMA and a.equals(b) and not a.equals(generate_latents(500, seed=2))
    assert set(pc.utf8_length(a.column("segment_id")).to_pylist()) == {32} and len(set(a.column(0).to_pylist())) == 500
    codes_len = pc.list_value_length(a.column("codes")).to_numpy()
    assert np.array_equal(codes_len, a.column("num_frames").to_numpy() * 2)
    duration = a.column("duration_s").to_numpy()
    assert duration.min() >= 1.0 and duration.max() <= 15.0 and 600 < codes_len.mean() * 2 < 1600  # ~1 kB a row
    vectors = a.column("speaker_vector").combine_chunks().values.to_numpy().reshape(-1, 64)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    speakers = np.array(a.column("speaker").to_pylist())
    nearest = top_k_numpy(vectors, list(range(len(vectors))), vectors[:20], k=2)
    assert sum(speakers[n[1]] == speakers[i] for i, n in enumerate(nearest)) >= 18  # neighbours share the voice
    splits = a.group_by("speaker").aggregate([("split", "count_distinct")]).column("split_count_distinct")
    assert pc.max(splits).as_py() == 1  # split by speaker


def test_a_point_lookup_returns_the_same_row_everywhere(bench):
    table, inputs, _, stores = bench
    for sid in inputs.point_ids[:3]:
        truth = table.filter(pc.equal(table.column("segment_id"), sid))
        for name, store in stores.items():
            row = store.lookup(sid)
            assert _ids(row) == [sid], name
            assert row.column("codes")[0].values.to_numpy().tolist() == truth.column("codes")[0].values.to_pylist()
            assert row.column("speaker").to_pylist() == truth.column("speaker").to_pylist()


def test_random_rows_by_id_are_the_same_set_everywhere_and_take_agrees(bench):
    table, inputs, _, stores = bench
    want = sorted(inputs.random_ids)
    assert len(set(want)) == 1000 and want == sorted(table.take(inputs.random_offsets).column("segment_id").to_pylist())
    for name, store in stores.items():
        assert sorted(_ids(store.lookup_many(inputs.random_ids))) == want, name
    assert _ids(stores["lance"].take(inputs.random_offsets)) == table.take(inputs.random_offsets).column(
        "segment_id").to_pylist()


def test_the_filter_returns_the_same_rows_everywhere(bench):
    table, inputs, _, stores = bench
    mask = pc.and_(pc.equal(table.column("speaker"), inputs.filter_speaker), pc.equal(table.column("split"), "test"))
    want = sorted(table.filter(mask).column("segment_id").to_pylist())
    assert want
    for name, store in stores.items():
        found = store.filtered(inputs.filter_speaker, inputs.filter_split)
        assert sorted(_ids(found)) == want, name
        assert set(found.column("split").to_pylist()) == {"test"}


def test_hours_by_speaker_agree_with_the_rows(bench):
    table, _, _, stores = bench
    truth = table.group_by("speaker").aggregate([("duration_s", "sum")]).sort_by("speaker")
    for name in ("lance", "parquet", "wds"):
        hours = stores[name].hours_by_speaker()
        assert hours.column("speaker").to_pylist() == truth.column("speaker").to_pylist(), name
        assert np.allclose(hours.column("hours").to_numpy() * 3600, truth.column("duration_s_sum").to_numpy())


def test_exact_search_gives_identical_top10_and_ann_recall_is_high(bench):
    table, inputs, _, stores = bench
    q = inputs.query_vectors
    vectors = table.column("speaker_vector").combine_chunks().values.to_numpy().reshape(-1, 64)
    truth = top_k_numpy(vectors, table.column("segment_id").to_pylist(), q)
    assert all(len(t) == K for t in truth)
    assert stores["lance"].nearest(q, exact=True) == truth
    assert stores["parquet"].nearest(q) == truth and stores["wds"].nearest(q) == truth
    ann = stores["lance"].nearest(q, exact=False)
    assert recall_at_k(ann, truth) == pytest.approx(np.mean([len(set(a) & set(t)) / K for a, t in zip(ann, truth)]))
    assert recall_at_k(ann, truth) >= 0.8
    assert stores["lance"].nearest(q, exact=False, batch=True) == ann or recall_at_k(
        stores["lance"].nearest(q, exact=False, batch=True), truth) >= 0.8


def test_recall_counts_the_overlap_of_the_top_k():
    exact = [[f"e{i}" for i in range(10)], [f"f{i}" for i in range(10)]]
    found = [exact[0][:7] + ["x", "y", "z"], list(reversed(exact[1]))]
    assert recall_at_k(found, exact) == pytest.approx((0.7 + 1.0) / 2)
    assert recall_at_k(found, exact, k=5) == pytest.approx((1.0 + 0.0) / 2)
    with pytest.raises(ValueError):
        recall_at_k(found[:1], exact)


def test_run_queries_times_every_query_on_every_format_and_they_agree(bench):
    _, inputs, built, _ = bench
    result = run_queries(built, inputs, repeats=1, wds_repeats=1, lookup_budget_s=0.0, cold=False)
    assert result.agreement == {"point lookup": True, "random access": True, "filtered scan": True,
                                "aggregate": True, "exact top-10": True}
    assert 0.8 <= result.recall_ann <= 1.0
    by_query: dict[str, set[str]] = {}
    for t in result.timings:
        by_query.setdefault(t.query, set()).add(t.store)
        assert t.warm_ms and all(ms > 0 for ms in t.warm_ms)
    assert len(by_query) == 5 and all(len(stores) >= 3 for stores in by_query.values())
    assert sum(t.baseline for t in result.timings) == 5  # one Lance row per query to divide by


def test_main_writes_its_marked_section(tmp_path):
    results = tmp_path / "RESULTS.md"
    results.write_text("# Benchmark results\n\nkept\n")
    argv = ["--rows", "400", "--repeats", "1", "--wds-repeats", "1", "--point-lookups", "5", "--no-cold",
            "--data-dir", str(tmp_path / "data"), "--write-results", "--results-md", str(results)]
    assert main(argv) == 0
    text = results.read_text()
    assert text.startswith("# Benchmark results\n\nkept\n\n<!-- query-latency:begin -->\n## Query latency")
    assert text.rstrip().endswith("<!-- query-latency:end -->") and "400 rows" in text
    assert "| point lookup: 1 row by segment_id | Lance, BTREE on segment_id * |" in text
    assert "Same rows from every format: point lookup yes" in text
    assert main([*argv, "--reuse-data"]) == 0 and "reused from an earlier run" in results.read_text()
