"""Does SQL over the lake push work into Lance? Timings of ``pipelines.query.query_lake`` on a synthetic latents table.

Why: DuckDB scans each Lance table as an Arrow dataset; projection pushdown means a query that does not name
``codes`` never reads them, filter pushdown means Lance applies the ``WHERE``. The pairs below differ only in
that: ``codec_id || '' = 'c2'`` is the same predicate in a form DuckDB cannot push, so DuckDB reads the
column and filters itself. Each figure is the best of ``--repeats`` calls (open + query), page cache warm.

    .venv/bin/python bench/sql_pushdown.py --rows 20000 --frames 500
    .venv/bin/python bench/sql_pushdown.py --rows 20000 --frames 500 --s3   # the same on a loopback S3 (moto)
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import lance  # noqa: E402
import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402

from pipelines.query.lake import query_lake  # noqa: E402
from schemas.latents import LATENTS_SCHEMA  # noqa: E402
from schemas.storage import StorageConfig  # noqa: E402

QUERIES = (
    ("projection: no codes", "SELECT speaker, sum(duration_s) FROM latents GROUP BY 1"),
    ("projection: reads codes", "SELECT sum(len(codes)) FROM latents"),
    ("filter pushed (10% rows)", "SELECT * FROM latents WHERE codec_id = 'c2'"),
    ("filter in DuckDB (10% rows)", "SELECT * FROM latents WHERE codec_id || '' = 'c2'"),
    ("point lookup pushed", "SELECT codes FROM latents WHERE segment_id = 's123'"),
    ("point lookup in DuckDB", "SELECT codes FROM latents WHERE segment_id || '' = 's123'"),
)


def make_latents(rows: int, frames: int, seed: int = 0) -> pa.Table:
    """``rows`` latents rows of ``frames`` x 2 random uint16 codes; every 10th row is codec ``c2``."""
    rng = np.random.default_rng(seed)
    n = rows * frames * 2
    codes = pa.ListArray.from_arrays(pa.array(np.arange(0, n + 1, frames * 2), pa.int32()),
                                     pa.array(rng.integers(0, 1000, n).astype(np.uint16)))
    return pa.table({
        "segment_id": [f"s{i}" for i in range(rows)], "codec_id": ["c2" if i % 10 == 0 else "c1" for i in range(rows)],
        "num_frames": [frames] * rows, "num_stages": [2] * rows, "frame_rate_hz": [50.0] * rows,
        "bitrate_bps": [1000.0] * rows, "num_samples": [frames * 320] * rows, "sample_rate_hz": [16000] * rows,
        "duration_s": rng.uniform(1, 10, rows), "split": ["train"] * rows,
        "speaker": [f"sp{i % 50}" for i in range(rows)], "corpus": ["bench"] * rows, "segments_version": [1] * rows,
        "run_id": ["bench"] * rows, "encoded_at": [datetime(2026, 1, 1, tzinfo=timezone.utc)] * rows, "codes": codes,
    }).cast(LATENTS_SCHEMA)


def time_queries(lake: str, storage: StorageConfig, repeats: int) -> list[tuple[str, float, int]]:
    """(label, best seconds, result rows) per query."""
    out = []
    for label, sql in QUERIES:
        best, rows = float("inf"), 0
        for _ in range(repeats):
            t0 = time.perf_counter()
            rows = query_lake(lake, sql, storage).num_rows
            best = min(best, time.perf_counter() - t0)
        out.append((label, best, rows))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20000)
    parser.add_argument("--frames", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--s3", action="store_true", help="write the table to a loopback S3 server (moto)")
    args = parser.parse_args(argv)
    table = make_latents(args.rows, args.frames)
    server = None
    with tempfile.TemporaryDirectory() as tmp:
        if args.s3:
            import boto3
            from moto.server import ThreadedMotoServer

            for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
                os.environ.setdefault(k, "testing")
            server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
            server.start()
            endpoint = f"http://127.0.0.1:{server._server.server_port}"
            boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(Bucket="bench-lake")
            lake, storage = "s3://bench-lake/lake", StorageConfig(s3_endpoint_url=endpoint, s3_allow_http=True)
        else:
            lake, storage = f"{tmp}/lake", StorageConfig()
        opts = storage.lance_options() if args.s3 else None
        lance.write_dataset(table, f"{lake}/latents.lance", mode="create", storage_options=opts)
        try:
            results = time_queries(lake, storage, args.repeats)
        finally:
            if server is not None:
                server.stop()
    where = "loopback S3" if args.s3 else "local disk"
    print(f"latents: {args.rows} rows x {args.frames} frames x 2 stages ({where}), best of {args.repeats}")
    for label, seconds, rows in results:
        print(f"  {label:<28} {seconds:7.3f} s  {rows:>6} rows")
    return 0


if __name__ == "__main__":
    sys.exit(main())
