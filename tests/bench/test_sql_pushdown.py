"""The SQL pushdown bench (bench/sql_pushdown.py) on 200 rows: every pair of queries agrees on its rows."""

from __future__ import annotations

from bench.sql_pushdown import make_latents, time_queries
from schemas.storage import StorageConfig


def test_bench_queries_agree(tmp_path):
    import lance

    lance.write_dataset(make_latents(200, 10), str(tmp_path / "latents.lance"), mode="create")
    rows = {label: n for label, _, n in time_queries(str(tmp_path), StorageConfig(), repeats=1)}
    assert rows["filter pushed (10% rows)"] == rows["filter in DuckDB (10% rows)"] == 20
    assert rows["point lookup pushed"] == rows["point lookup in DuckDB"] == 1
    assert rows["projection: no codes"] == 50
