"""Query latency (performance issue): the same queries on the same latents in Lance, Parquet and WebDataset shards.

Why: the project keeps latents in Lance on the claim that one table serves both training scans and
interactive queries (rows by id, filters, vector search by voice). This bench measures that claim against
the two layouts users would otherwise keep: Parquet files read through ``pyarrow.dataset``, and WebDataset
tar shards (``<key>.codes.npy``, ``<key>.json``, ``<key>.vec.npy``) read through ``webdataset``.

Data: ``--rows`` synthetic latents rows from a fixed seed (:func:`generate_latents`): ``LATENTS_SCHEMA`` plus
``language`` and a 64-d unit-norm ``speaker_vector`` clustered by speaker (300 speakers, split by speaker as
curation does), codes uint16 at 50 Hz x 2 stages of log-normal durations (1-15 s, ~5 s mean, so ~1 kB of codes
per row). The same rows, in the same order, go to:

- Lance: ``max_rows_per_file`` 4096 (the encode job's ``rows_per_file``), a BTREE index on ``segment_id`` (as
  ``jobs/maintain.py`` names and builds key indexes), and
  the speaker-vector index built by ``pipelines.factor_search.update_factor_index`` (IVF_PQ, cosine,
  ``plan_index_partitions`` partitions, dim / 8 sub-vectors: exactly what ``jobs/encode_factors.py`` builds;
  that is why the table sits at ``<data-dir>/lake/factors.lance``). "Lance, no scalar index" is the same table
  queried with ``use_scalar_index=False``.
- Parquet: files of 25,000 rows, row groups of 8,192 rows, pyarrow's default Snappy compression, unsorted
  (arrival order, like the Lance table).
- WebDataset: shards of 10,000 samples; the key is the ``segment_id``.

Queries: point lookup of one row by id, 1,000 random rows by id in one call, a filtered scan
(``speaker = X AND split = 'test'`` with codes), a projection-only aggregate (hours by speaker), and top-10
cosine search for 50 query vectors (Lance ANN and exact; Parquet and WebDataset: load the vectors, numpy brute
force; also numpy alone on vectors already in RAM). Ids, offsets, the filter's speaker and the query vectors are
drawn once from the seed and asked of every format; the run checks that all formats return the same ids, hours
and exact top-10 (exit 1 if not) and reports the ANN's recall@10 against the exact top-10.

Timing: *warm* = the same open handle after one untimed warm-up, ``--repeats`` calls; *cold-ish* = a freshly
opened handle for each of ``--repeats`` calls (Lance's and pyarrow's metadata and index caches empty; the OS page
cache stays warm: dropping it needs root, and the machine is shared). WebDataset keeps no handle or cache, so
it gets ``--wds-repeats`` calls (each a full scan) with neither warm-up nor cold-ish. Point lookups are one call
per random id; a store that scans for every id (Parquet, WebDataset) stops after ``--lookup-budget-s`` seconds
(at least 5 ids), so a run stays a few minutes long; the table's *calls* column says how many were timed.

    .venv/bin/python bench/query_latency.py --rows 100000 --repeats 5 --write-results

``--reuse-data`` keeps the layouts of an earlier run with the same rows and seed (the build takes a minute or
two, mostly the tar shards). The data are deterministic for a seed; the figures are wall times on whatever else
the machine is doing, so compare ratios within one run.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import statistics
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # run as a script: make `schemas` and `pipelines` importable
    sys.path.insert(0, str(REPO_ROOT))

from pipelines.eval.markdown import cpu_model, git_revision, replace_marked_section  # noqa: E402
from schemas.factors import FACTOR_DIMS, FACTORS_SCHEMA  # noqa: E402
from schemas.latents import LATENTS_SCHEMA  # noqa: E402
from schemas.sql import sql_list, sql_quote  # noqa: E402

RESULTS_MARKER = "query-latency"
SECTION = "## Query latency: Lance vs Parquet vs WebDataset (performance issue)"

#: The bench table: the latents columns, ``language`` and the speaker vector (as in ``factors``).
BENCH_SCHEMA = (LATENTS_SCHEMA.insert(LATENTS_SCHEMA.get_field_index("corpus") + 1,
                                      pa.field("language", pa.string(), nullable=True))
                .append(FACTORS_SCHEMA.field("speaker_vector")))
VECTOR_COLUMN = "speaker_vector"
VECTOR_DIM = FACTOR_DIMS["speaker"]
CODEC_ID = "codec_50hz_2x8555-c00f7e96c129-w96b8776e94"
FRAME_RATE_HZ, NUM_STAGES, SAMPLE_RATE_HZ = 50.0, 2, 16000
K = 10
LANCE_ROWS_PER_FILE = 4096  # schemas.encode: the encode job's lance-ray rows_per_file
PARQUET_ROWS_PER_FILE, PARQUET_ROW_GROUP_ROWS = 25_000, 8192
WDS_ROWS_PER_SHARD = 10_000
#: A fixed integer member mtime: reproducible shards, and no per-member PAX header (``TarWriter``'s default
#: float ``time.time()`` made Python's tarfile add one to every member: 2 more 512-byte blocks and a slower read).
_TAR_MTIME = 1_796_000_000
_LANGUAGES = ("en", "de", "fr", "es", "nl", "cs", "it")
_SCALAR_COLUMNS = [f.name for f in BENCH_SCHEMA if f.name not in ("codes", VECTOR_COLUMN)]


# --------------------------------------------------------------------------------------------------- data


def generate_latents(rows: int, *, seed: int = 0, speakers: int = 300) -> pa.Table:
    """``rows`` latents-like rows of :data:`BENCH_SCHEMA`, the same for the same seed.

    Speakers have uneven row counts (Dirichlet weights); ``split`` is by speaker (1 in 10 test, 1 in 10 valid),
    so ``speaker = X AND split = 'test'`` returns all of a test speaker's rows; ``language`` and ``corpus`` are
    per speaker. Vectors are a speaker's unit centre plus noise, renormalised (cosine ~0.8 to the centre), so
    nearest neighbours are mostly the same speaker's rows.
    """
    rng = np.random.default_rng(seed)
    hexed = rng.bytes(16 * rows).hex()  # 32 hex digits per id, like schemas' blake2b-128 ids
    ids = [hexed[32 * i:32 * i + 32] for i in range(rows)]
    speaker_of_row = rng.choice(speakers, size=rows, p=rng.dirichlet(np.full(speakers, 4.0)))
    speaker_names = np.array([f"spk{s:04d}" for s in range(speakers)], dtype=object)
    split_of = np.array(["test" if s % 10 == 0 else "valid" if s % 10 == 1 else "train" for s in range(speakers)],
                        dtype=object)
    language_of = np.array(_LANGUAGES, dtype=object)[rng.integers(0, len(_LANGUAGES), speakers)]
    corpus_of = np.array([f"corpus{c}" for c in range(4)], dtype=object)[rng.integers(0, 4, speakers)]
    duration_s = np.clip(rng.lognormal(np.log(4.5), 0.6, rows), 1.0, 15.0)
    num_frames = np.round(duration_s * FRAME_RATE_HZ).astype(np.int32)
    offsets = np.zeros(rows + 1, dtype=np.int32)
    np.cumsum(num_frames.astype(np.int64) * NUM_STAGES, out=offsets[1:])
    codes = rng.integers(0, 1000, int(offsets[-1]), dtype=np.uint16)  # FSQ 8x5x5x5: codes below 1000
    centres = _unit(rng.standard_normal((speakers, VECTOR_DIM)))
    vectors = _unit(centres[speaker_of_row] + 0.1 * rng.standard_normal((rows, VECTOR_DIM))).astype(np.float32)
    start = datetime(2026, 11, 25, tzinfo=timezone.utc)
    columns = {
        "segment_id": pa.array(ids, pa.string()),
        "codec_id": pa.array([CODEC_ID] * rows, pa.string()),
        "num_frames": pa.array(num_frames, pa.int32()),
        "num_stages": pa.array(np.full(rows, NUM_STAGES, np.int16), pa.int16()),
        "frame_rate_hz": pa.array(np.full(rows, FRAME_RATE_HZ)),
        "bitrate_bps": pa.array(np.full(rows, 996.6)),
        "num_samples": pa.array(np.round(duration_s * SAMPLE_RATE_HZ).astype(np.int64)),
        "sample_rate_hz": pa.array(np.full(rows, SAMPLE_RATE_HZ, np.int32)),
        "duration_s": pa.array(duration_s),
        "split": pa.array(split_of[speaker_of_row], pa.string()),
        "speaker": pa.array(speaker_names[speaker_of_row], pa.string()),
        "corpus": pa.array(corpus_of[speaker_of_row], pa.string()),
        "language": pa.array(language_of[speaker_of_row], pa.string()),
        "segments_version": pa.array(np.full(rows, 7, np.int64)),
        "run_id": pa.array(["bench-query-latency"] * rows, pa.string()),
        "encoded_at": pa.array([start + timedelta(microseconds=i) for i in range(rows)],
                               pa.timestamp("us", tz="UTC")),
        "codes": pa.ListArray.from_arrays(pa.array(offsets), pa.array(codes)),
        VECTOR_COLUMN: pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1)), VECTOR_DIM),
    }
    return pa.Table.from_pydict(columns, schema=BENCH_SCHEMA)


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


@dataclass(frozen=True)
class QueryInputs:
    """What every format is asked: the same ids, row offsets, filter and query vectors."""

    point_ids: list[str]
    random_offsets: list[int]
    random_ids: list[str]
    filter_speaker: str
    filter_split: str
    query_vectors: np.ndarray  # (n, dim) float32, unit-norm


def plan_queries(table: pa.Table, *, seed: int = 0, point_lookups: int = 200, random_rows: int = 1000,
                 vector_queries: int = 50) -> QueryInputs:
    """Random ids and offsets, the test speaker with the median row count, and perturbed row vectors as queries."""
    rng = np.random.default_rng(seed + 1)
    n = table.num_rows
    ids = table.column("segment_id").to_pylist()
    offsets = sorted(rng.choice(n, size=min(random_rows, n), replace=False).tolist())
    point = rng.choice(n, size=min(point_lookups, n), replace=False).tolist()
    test = table.filter(pc.equal(table.column("split"), "test"))
    counts = test.group_by("speaker").aggregate([("speaker", "count")]).sort_by("speaker")
    order = np.argsort(counts.column("speaker_count").to_numpy(), kind="stable")
    speaker = counts.column("speaker")[int(order[len(order) // 2])].as_py()
    vectors = _vectors_of(table)
    base = vectors[rng.choice(n, size=vector_queries, replace=False)]
    queries = _unit(base + 0.05 * rng.standard_normal(base.shape)).astype(np.float32)
    return QueryInputs([ids[i] for i in point], offsets, [ids[i] for i in offsets], speaker, "test", queries)


def _vectors_of(table: pa.Table) -> np.ndarray:
    column = table.column(VECTOR_COLUMN).combine_chunks()
    return column.values.to_numpy(zero_copy_only=False).reshape(-1, VECTOR_DIM)


@dataclass
class BuiltData:
    """Where each format was written, how long each build took (s) and its size on disk (bytes)."""

    lance_uri: str
    parquet_dir: Path
    wds_shards: list[str]
    build_s: dict[str, float] = field(default_factory=dict)
    size_bytes: dict[str, int] = field(default_factory=dict)
    index_notes: list[str] = field(default_factory=list)
    codes_mib: float = 0.0


_MANIFEST = "manifest.json"


def fingerprint(table: pa.Table) -> str:
    """A short digest of the generated rows: a reused build must hold these rows (not an older generator's)."""
    ids = table.column("segment_id")
    return (f"{table.num_rows}:{ids[0].as_py()}:{ids[-1].as_py()}:{pc.sum(table.column('num_frames')).as_py()}:"
            f"{pc.sum(table.column('duration_s')).as_py():.6f}")


def read_built(data_dir: Path, table: pa.Table) -> BuiltData | None:
    """The layouts an earlier run wrote under ``data_dir`` from the same rows (and schema), else None."""
    try:
        meta = json.loads((data_dir / _MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    if (meta.get("fingerprint"), meta.get("schema")) != (fingerprint(table), str(BENCH_SCHEMA)):
        return None
    return BuiltData(meta["lance_uri"], Path(meta["parquet_dir"]), meta["wds_shards"], meta["build_s"],
                     meta["size_bytes"], meta["index_notes"], meta["codes_mib"])


def write_formats(table: pa.Table, data_dir: Path) -> BuiltData:
    """Write ``table`` as Lance (+ indices), Parquet and WebDataset under ``data_dir`` (replacing what was there)."""
    import lance
    import pyarrow.dataset as pads

    from pipelines.factor_search import update_factor_index
    from pipelines.maintenance import scalar_index_name
    from schemas.encode_factors import FactorsIndexConfig

    if data_dir.exists():
        shutil.rmtree(data_dir)
    lake, parquet_dir, wds_dir = data_dir / "lake", data_dir / "parquet", data_dir / "wds"
    lance_uri = str(lake / "factors.lance")
    build: dict[str, float] = {}
    t = time.perf_counter()
    lance.write_dataset(table, lance_uri, schema=BENCH_SCHEMA, mode="create", max_rows_per_file=LANCE_ROWS_PER_FILE)
    build["lance write"] = time.perf_counter() - t
    t = time.perf_counter()
    lance.dataset(lance_uri).create_scalar_index("segment_id", "BTREE", name=scalar_index_name("segment_id"))
    build["lance BTREE segment_id"] = time.perf_counter() - t
    t = time.perf_counter()
    updates = update_factor_index(str(lake), FactorsIndexConfig(factors=["speaker"]))
    build["lance vector index"] = time.perf_counter() - t
    t = time.perf_counter()
    pads.write_dataset(table, parquet_dir, format="parquet", max_rows_per_file=PARQUET_ROWS_PER_FILE,
                       max_rows_per_group=PARQUET_ROW_GROUP_ROWS, min_rows_per_group=PARQUET_ROW_GROUP_ROWS,
                       basename_template="part-{i}.parquet")
    build["parquet write"] = time.perf_counter() - t
    t = time.perf_counter()
    shards = write_webdataset(table, wds_dir)
    build["webdataset write"] = time.perf_counter() - t
    codes_mib = table.column("codes").combine_chunks().values.nbytes / 2**20
    built = BuiltData(lance_uri, parquet_dir, shards, build, index_notes=[u.format() for u in updates],
                      codes_mib=codes_mib)
    built.size_bytes = {"Lance data": _du(Path(lance_uri) / "data"),
                        "Lance indices": _du(Path(lance_uri) / "_indices"),
                        "Parquet": _du(parquet_dir), "WebDataset": _du(wds_dir)}
    meta = {"fingerprint": fingerprint(table), "schema": str(BENCH_SCHEMA), "lance_uri": lance_uri,
            "parquet_dir": str(parquet_dir), "wds_shards": shards, "build_s": build, "size_bytes": built.size_bytes,
            "index_notes": built.index_notes, "codes_mib": codes_mib}
    (data_dir / _MANIFEST).write_text(json.dumps(meta, indent=1))
    return built


def write_webdataset(table: pa.Table, out_dir: Path, rows_per_shard: int = WDS_ROWS_PER_SHARD) -> list[str]:
    """Tar shards of ``<segment_id>.codes.npy`` (frames x stages uint16), ``.json`` (the labels), ``.vec.npy``."""
    import webdataset as wds

    out_dir.mkdir(parents=True, exist_ok=True)
    codes = table.column("codes").combine_chunks()
    flat, offsets = codes.values.to_numpy(), codes.offsets.to_numpy()
    vectors = _vectors_of(table)
    scalars = {name: table.column(name).to_pylist() for name in _SCALAR_COLUMNS}
    scalars["encoded_at"] = [v.isoformat() for v in scalars["encoded_at"]]
    shards = []
    for first in range(0, table.num_rows, rows_per_shard):
        path = out_dir / f"shard-{first // rows_per_shard:06d}.tar"
        with wds.TarWriter(str(path), mtime=_TAR_MTIME) as sink:
            for i in range(first, min(first + rows_per_shard, table.num_rows)):
                meta = {name: values[i] for name, values in scalars.items()}
                sink.write({"__key__": meta["segment_id"],
                            "codes.npy": flat[offsets[i]:offsets[i + 1]].reshape(-1, meta["num_stages"]),
                            "json": meta, "vec.npy": vectors[i]})
        shards.append(str(path))
    return shards


def _du(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.exists() else 0


# --------------------------------------------------------------------------------------------------- stores


def top_k_numpy(vectors: np.ndarray, ids: Sequence[str], queries: np.ndarray, k: int = K) -> list[list[str]]:
    """Exact top-``k`` ids by cosine for each query: the brute-force baseline a user would write.

    The stored vectors are unit-norm (the ``factors`` contract), so one float32 matrix product ranks by cosine;
    the best ``4 k`` candidates are then re-ranked in float64 with true cosine (ties by id), so the order does
    not depend on float32 rounding and every format's brute force gives the same lists.
    """
    v = np.asarray(vectors, dtype=np.float32)
    sims = np.asarray(queries, dtype=np.float32) @ v.T
    n_cand = min(4 * k, v.shape[0])
    cand = np.argpartition(-sims, n_cand - 1, axis=1)[:, :n_cand]
    out = []
    for q, rows in zip(np.asarray(queries, dtype=np.float64), cand):
        c = v[rows].astype(np.float64)
        cos = (c @ q) / (np.linalg.norm(c, axis=1) * np.linalg.norm(q))
        order = sorted(range(len(rows)), key=lambda j: (-cos[j], ids[rows[j]]))[:k]
        out.append([ids[rows[j]] for j in order])
    return out


def recall_at_k(found: Sequence[Sequence[str]], exact: Sequence[Sequence[str]], k: int = K) -> float:
    """Mean over queries of |found[:k] & exact[:k]| / k."""
    if len(found) != len(exact) or not exact:
        raise ValueError("recall needs one result list per query")
    return float(np.mean([len(set(f[:k]) & set(e[:k])) / k for f, e in zip(found, exact)]))


class LanceStore:
    """Queries on the Lance table; ``scalar_index=False`` forbids the BTREE (``use_scalar_index=False``)."""

    def __init__(self, uri: str, *, scalar_index: bool = True) -> None:
        self.uri, self.scalar_index = uri, scalar_index
        self.open()

    def open(self) -> None:
        """A fresh handle: new session, empty metadata and index caches."""
        import lance

        self.ds = lance.dataset(self.uri)

    def _table(self, **kwargs) -> pa.Table:
        return self.ds.to_table(use_scalar_index=self.scalar_index, **kwargs)

    def lookup(self, segment_id: str) -> pa.Table:
        return self._table(filter=f"segment_id = {sql_quote(segment_id)}")

    def lookup_many(self, ids: Sequence[str]) -> pa.Table:
        return self._table(filter=f"segment_id IN ({sql_list(ids)})")

    def take(self, offsets: Sequence[int]) -> pa.Table:
        """Rows by position (what an index built elsewhere, e.g. a training sampler, would hold)."""
        return self.ds.take(list(offsets))

    def filtered(self, speaker: str, split: str) -> pa.Table:
        return self._table(filter=f"speaker = {sql_quote(speaker)} AND split = {sql_quote(split)}")

    def hours_by_speaker(self) -> pa.Table:
        return _hours(self._table(columns=["speaker", "duration_s"]))

    def nearest(self, queries: np.ndarray, *, exact: bool, batch: bool = False, k: int = K) -> list[list[str]]:
        """Top-``k`` ids per query: ANN as ``pipelines.factor_search`` queries (cosine, refine_factor 10), or flat."""
        spec = {"column": VECTOR_COLUMN, "k": k, "metric": "cosine"}
        spec.update({"use_index": False} if exact else {"refine_factor": 10})
        if batch:
            found = self.ds.to_table(columns=["segment_id", "_distance"], nearest={**spec, "q": queries})
            return _group_by_query(found, len(queries))
        out = []
        for q in queries:
            found = self.ds.to_table(columns=["segment_id", "_distance"], nearest={**spec, "q": q})
            out.append(_ranked_ids(found))
        return out

    def load_vectors(self) -> tuple[np.ndarray, list[str]]:
        t = self.ds.to_table(columns=["segment_id", VECTOR_COLUMN])
        return _vectors_of(t), t.column("segment_id").to_pylist()


def _ranked_ids(found: pa.Table) -> list[str]:
    rows = sorted(zip(found.column("_distance").to_pylist(), found.column("segment_id").to_pylist()))
    return [sid for _, sid in rows]


def _group_by_query(found: pa.Table, n: int) -> list[list[str]]:
    out: list[list[tuple[float, str]]] = [[] for _ in range(n)]
    for qi, dist, sid in zip(found.column("query_index").to_pylist(), found.column("_distance").to_pylist(),
                             found.column("segment_id").to_pylist()):
        out[qi].append((dist, sid))
    return [[sid for _, sid in sorted(rows)] for rows in out]


def _hours(table: pa.Table) -> pa.Table:
    agg = table.group_by("speaker").aggregate([("duration_s", "sum")]).sort_by("speaker")
    hours = pc.divide(agg.column("duration_s_sum"), 3600.0)
    return pa.table({"speaker": agg.column("speaker"), "hours": hours})


class ParquetStore:
    """The same queries through ``pyarrow.dataset`` (filters pushed into the scan; row-group statistics prune)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.open()

    def open(self) -> None:
        """A fresh dataset object (file listing and footers read again)."""
        import pyarrow.dataset as pads

        self.ds = pads.dataset(self.directory, format="parquet")

    def lookup(self, segment_id: str) -> pa.Table:
        return self.ds.to_table(filter=pc.field("segment_id") == segment_id)

    def lookup_many(self, ids: Sequence[str]) -> pa.Table:
        return self.ds.to_table(filter=pc.field("segment_id").isin(list(ids)))

    def filtered(self, speaker: str, split: str) -> pa.Table:
        return self.ds.to_table(filter=(pc.field("speaker") == speaker) & (pc.field("split") == split))

    def hours_by_speaker(self) -> pa.Table:
        return _hours(self.ds.to_table(columns=["speaker", "duration_s"]))

    def load_vectors(self) -> tuple[np.ndarray, list[str]]:
        t = self.ds.to_table(columns=["segment_id", VECTOR_COLUMN])
        return _vectors_of(t), t.column("segment_id").to_pylist()

    def nearest(self, queries: np.ndarray, k: int = K) -> list[list[str]]:
        """Load the vector column (timed with it) and brute-force in numpy."""
        vectors, ids = self.load_vectors()
        return top_k_numpy(vectors, ids, queries, k)


class WebDatasetStore:
    """The same queries on tar shards: a sequential scan with ``webdataset``, decoding only what each query needs.

    Raw samples are iterated (no ``.decode()``), so a sample that does not match costs the tar read and a key
    compare (or a JSON parse); ``select_files`` skips the members a query does not use. A lookup stops as soon as
    every wanted key was seen: that is the honest "scan until found".
    """

    def __init__(self, shards: Sequence[str]) -> None:
        self.shards = list(shards)

    def open(self) -> None:
        """Nothing is kept between queries."""

    def _samples(self, members: Sequence[str] | None = None):
        import webdataset as wds

        select = None
        if members is not None:
            wanted = tuple("." + m for m in members)
            select = lambda name: name.endswith(wanted)  # noqa: E731
        return wds.WebDataset(self.shards, shardshuffle=False, empty_check=False, select_files=select)

    def lookup(self, segment_id: str) -> pa.Table:
        return self.lookup_many([segment_id])

    def lookup_many(self, ids: Sequence[str]) -> pa.Table:
        wanted, rows = set(ids), []
        for sample in self._samples():
            if sample["__key__"] in wanted:
                rows.append(_decode(sample))
                wanted.discard(sample["__key__"])
                if not wanted:
                    break
        return _rows_to_table(rows)

    def filtered(self, speaker: str, split: str) -> pa.Table:
        rows = []
        for sample in self._samples():
            meta = json.loads(sample["json"])
            if meta["speaker"] == speaker and meta["split"] == split:
                rows.append(_decode(sample, meta))
        return _rows_to_table(rows)

    def hours_by_speaker(self) -> pa.Table:
        totals: dict[str, float] = {}
        for sample in self._samples(["json"]):
            meta = json.loads(sample["json"])
            totals[meta["speaker"]] = totals.get(meta["speaker"], 0.0) + meta["duration_s"]
        names = sorted(totals)
        return pa.table({"speaker": names, "hours": [totals[s] / 3600.0 for s in names]})

    def load_vectors(self) -> tuple[np.ndarray, list[str]]:
        ids, vectors = [], []
        for sample in self._samples(["vec.npy"]):
            ids.append(sample["__key__"])
            vectors.append(np.load(io.BytesIO(sample["vec.npy"])))
        return np.stack(vectors), ids

    def nearest(self, queries: np.ndarray, k: int = K) -> list[list[str]]:
        vectors, ids = self.load_vectors()
        return top_k_numpy(vectors, ids, queries, k)


def _decode(sample: dict, meta: dict | None = None) -> dict:
    row = dict(meta if meta is not None else json.loads(sample["json"]))
    row["codes"] = np.load(io.BytesIO(sample["codes.npy"]))
    row[VECTOR_COLUMN] = np.load(io.BytesIO(sample["vec.npy"]))
    return row


def _rows_to_table(rows: list[dict]) -> pa.Table:
    """Decoded samples as a table of the bench schema's names (codes flattened frame-major, as in Lance)."""
    columns = {name: [r[name] for r in rows] for name in _SCALAR_COLUMNS}
    columns["codes"] = [r["codes"].reshape(-1) for r in rows]
    columns[VECTOR_COLUMN] = [r[VECTOR_COLUMN] for r in rows]
    return pa.table(columns)


# --------------------------------------------------------------------------------------------------- timing


@dataclass
class Timing:
    """One query on one store: wall ms per call, warm (same handle) and cold-ish (fresh handle), and rows out."""

    query: str
    store: str
    warm_ms: list[float]
    cold_ms: list[float]
    rows: int
    baseline: bool = False  # the Lance figure the ratio column divides by
    output: object = field(default=None, repr=False)  # what the last call returned (for the agreement checks)

    @property
    def median_ms(self) -> float:
        return statistics.median(self.warm_ms)

    @property
    def p90_ms(self) -> float:
        return float(np.percentile(self.warm_ms, 90))


def _ms(fn: Callable[[], object]) -> tuple[float, object]:
    t = time.perf_counter()
    out = fn()
    return (time.perf_counter() - t) * 1e3, out


def time_query(query: str, store_name: str, store, call: Callable[[object], object], *, repeats: int,
               cold: bool = True, baseline: bool = False) -> Timing:
    """``repeats`` cold-ish calls (fresh handle each) and ``repeats`` warm calls after one warm-up."""
    cold_ms = []
    if cold:
        for _ in range(repeats):
            store.open()
            cold_ms.append(_ms(lambda: call(store))[0])
    store.open()
    _, out = _ms(lambda: call(store))
    warm_ms = [_ms(lambda: call(store))[0] for _ in range(repeats)]
    return Timing(query, store_name, warm_ms, cold_ms, _count(out), baseline, out)


def time_lookups(store_name: str, store, ids: Sequence[str], *, cold_repeats: int, cold: bool = True,
                 warm_up: bool = True, budget_s: float = float("inf"), min_ids: int = 5,
                 baseline: bool = False) -> Timing:
    """One timed lookup per id on a warm handle, after a warm-up on another id; cold-ish: a fresh handle per id.

    A store without an index scans for every id, so ids are timed until ``budget_s`` of lookups is spent (at
    least ``min_ids``): the run stays a few minutes long on a busy machine, and the table says how many were timed.
    ``warm_up=False`` for a store that keeps nothing between calls (WebDataset).
    """
    cold_ms = []
    if cold:
        for sid in ids[:cold_repeats]:
            store.open()
            cold_ms.append(_ms(lambda: store.lookup(sid))[0])
    store.open()
    if warm_up:
        store.lookup(ids[-1])
    warm_ms, rows, first = [], 0, None
    for sid in ids[:-1] if len(ids) > 1 else ids:
        ms, out = _ms(lambda: store.lookup(sid))
        warm_ms.append(ms)
        rows, first = max(rows, _count(out)), out if first is None else first
        if len(warm_ms) >= min_ids and sum(warm_ms) > budget_s * 1e3:
            break
    return Timing(Q_POINT, store_name, warm_ms, cold_ms, rows, baseline, first)  # output: the lookup of ids[0]


def time_scans(query: str, store_name: str, store, call: Callable[[object], object], *, repeats: int,
               baseline: bool = False) -> Timing:
    """``repeats`` timed calls and no warm-up, for a store that keeps no state between calls (WebDataset)."""
    timed = [_ms(lambda: call(store)) for _ in range(repeats)]
    return Timing(query, store_name, [ms for ms, _ in timed], [], _count(timed[-1][1]), baseline, timed[-1][1])


def _count(out: object) -> int:
    if isinstance(out, pa.Table):
        return out.num_rows
    if isinstance(out, list):
        return sum(len(x) for x in out)
    return 0


# Query names (one table row each, in this order).
Q_POINT = "point lookup: 1 row by segment_id"
Q_RANDOM = "random access: 1,000 rows by id, one call"
Q_FILTER = "filtered scan: speaker = X AND split = 'test', all columns"
Q_AGG = "projection aggregate: hours by speaker (speaker, duration_s)"
Q_VECTOR = "vector search: top-10 cosine, 50 queries"


@dataclass
class BenchResult:
    """Every timing, the ANN recall and the checks that all formats agreed."""

    timings: list[Timing]
    recall_ann: float
    recall_ann_batch: float
    agreement: dict[str, bool]


LANCE, LANCE_NO_INDEX, PARQUET, WDS = ("Lance, BTREE on segment_id", "Lance, no scalar index",
                                       "Parquet (pyarrow dataset)", "WebDataset (scan)")


def run_queries(built: BuiltData, inputs: QueryInputs, *, repeats: int = 5, wds_repeats: int = 3,
                lookup_budget_s: float = 15.0, cold: bool = True,
                progress: Callable[[str], None] = lambda _: None) -> BenchResult:
    """Run every query on every store; check that they return the same rows (ids) and the same exact top-10.

    Lance and Parquet: :func:`time_query` (cold-ish, warm-up, ``repeats`` warm calls). WebDataset:
    :func:`time_scans` (``wds_repeats`` calls, no warm-up: it has nothing to warm, and each call is a full scan).
    """
    lance_idx = LanceStore(built.lance_uri, scalar_index=True)
    lance_scan = LanceStore(built.lance_uri, scalar_index=False)
    parquet = ParquetStore(built.parquet_dir)
    wds_store = WebDatasetStore(built.wds_shards)
    stores = {LANCE: lance_idx, LANCE_NO_INDEX: lance_scan, PARQUET: parquet, WDS: wds_store}
    timings: list[Timing] = []

    def run(query: str, name: str, store, call: Callable[[object], object], **kw) -> Timing:
        if store is wds_store:
            t = time_scans(query, name, store, call, repeats=wds_repeats, **kw)
        else:
            t = time_query(query, name, store, call, repeats=repeats, cold=cold, **kw)
        timings.append(t)
        return t

    progress("point lookups")
    first = []
    for name, store in stores.items():
        t = time_lookups(name, store, inputs.point_ids, cold_repeats=repeats, cold=cold and store is not wds_store,
                         warm_up=store is not wds_store, budget_s=lookup_budget_s, baseline=store is lance_idx)
        timings.append(t)
        first.append(_ids(t.output))
    agree = {"point lookup": all(ids == inputs.point_ids[:1] for ids in first)}

    progress("random access")
    outs = [run(Q_RANDOM, name, store, lambda s: s.lookup_many(inputs.random_ids), baseline=store is lance_idx).output
            for name, store in stores.items()]
    outs.append(run(Q_RANDOM, "Lance, take(row offsets)", lance_idx, lambda s: s.take(inputs.random_offsets)).output)
    agree["random access"] = all(sorted(_ids(o)) == sorted(inputs.random_ids) for o in outs)

    progress("filtered scan")
    outs = [run(Q_FILTER, name, store, lambda s: s.filtered(inputs.filter_speaker, inputs.filter_split),
                baseline=store is lance_idx).output for name, store in stores.items()]
    found = {tuple(sorted(_ids(o))) for o in outs}
    agree["filtered scan"] = len(found) == 1 and len(next(iter(found))) > 0

    progress("aggregate")
    outs = [run(Q_AGG, "Lance" if store is lance_idx else name, store, lambda s: s.hours_by_speaker(),
                baseline=store is lance_idx).output for name, store in stores.items() if store is not lance_scan]
    agree["aggregate"] = len({(tuple(o.column("speaker").to_pylist()),
                               tuple(np.round(o.column("hours").to_numpy(), 9).tolist())) for o in outs}) == 1

    progress("vector search")
    q = inputs.query_vectors
    ann = run(Q_VECTOR, "Lance ANN (IVF_PQ + refine 10), 50 calls", lance_idx, lambda s: s.nearest(q, exact=False),
              baseline=True).output
    ann_batch = run(Q_VECTOR, "Lance ANN, one batch call (2-D q)", lance_idx,
                    lambda s: s.nearest(q, exact=False, batch=True)).output
    exact = [run(Q_VECTOR, "Lance exact (flat, use_index=False), 50 calls", lance_idx,
                 lambda s: s.nearest(q, exact=True)).output,
             run(Q_VECTOR, "Lance: load vectors + numpy", lance_idx,
                 lambda s: top_k_numpy(*s.load_vectors(), q)).output,
             run(Q_VECTOR, "Parquet: load vectors + numpy", parquet, lambda s: s.nearest(q)).output,
             run(Q_VECTOR, "WebDataset: scan vec.npy + numpy", wds_store, lambda s: s.nearest(q)).output]
    vectors, ids = parquet.load_vectors()
    in_ram = time_query(Q_VECTOR, "numpy only, vectors already in RAM (any format)", parquet,
                        lambda s: top_k_numpy(vectors, ids, q), repeats=repeats, cold=False)
    timings.append(in_ram)
    agree["exact top-10"] = all(e == in_ram.output for e in exact)
    return BenchResult(timings, recall_at_k(ann, in_ram.output), recall_at_k(ann_batch, in_ram.output), agree)


def _ids(table: pa.Table) -> list[str]:
    return table.column("segment_id").to_pylist()


# --------------------------------------------------------------------------------------------------- report


def format_report(result: BenchResult, built: BuiltData, inputs: QueryInputs, *, rows: int, command: str,
                  load_before: float, load_after: float, repeats: int, wds_repeats: int, reused: bool) -> str:
    """The Markdown section: provenance, sizes, the latency table, recall and agreement."""
    import lance
    import webdataset

    mib = 1024 * 1024
    sizes = "; ".join(f"{name} {size / mib:,.1f} MiB" for name, size in built.size_bytes.items())
    build = "; ".join(f"{name} {s:.1f} s" for name, s in built.build_s.items())
    lines = [SECTION, "",
             f"Command: `{command}`  ",
             f"Date: {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC; git {git_revision(REPO_ROOT)}  ",
             f"Machine: {cpu_model()}; Python {sys.version.split()[0]}, pylance {lance.__version__}, pyarrow "
             f"{pa.__version__}, webdataset {webdataset.__version__}; load average {load_before:.2f} at start, "
             f"{load_after:.2f} at end (other work on the machine inflates and scatters the figures: compare the "
             "ratios)  ",
             f"Data: {rows:,} rows ({built.codes_mib:,.1f} MiB of uint16 codes); on disk: {sizes}  ",
             f"Layouts: Lance files of {LANCE_ROWS_PER_FILE:,} rows, BTREE on segment_id, "
             f"{'; '.join(built.index_notes)}; Parquet files of {PARQUET_ROWS_PER_FILE:,} rows, row groups of "
             f"{PARQUET_ROW_GROUP_ROWS:,}, Snappy, unsorted; WebDataset shards of {WDS_ROWS_PER_SHARD:,} samples "
             "(`.codes.npy`, `.json`, `.vec.npy`)  ",
             f"Build (not a figure here{', reused from an earlier run' if reused else ''}): {build}", "",
             f"*Warm*: wall ms per call on an open handle after one untimed warm-up, median and p90 over *calls* "
             f"({repeats} repeats; point lookups: one call per random id, up to {len(inputs.point_ids)}, while a "
             "store's lookups stay within the time budget). WebDataset keeps nothing between calls: "
             f"{wds_repeats} calls, no warm-up, no cold-ish. *Cold-ish*: median of {repeats} calls, each on a freshly "
             "opened handle (library caches empty; the OS page cache stays warm). *x Lance*: warm median / the row "
             f"marked *. Filtered scan: speaker `{inputs.filter_speaker}`, split `{inputs.filter_split}`. Vector "
             f"search: one call = all {len(inputs.query_vectors)} queries, top-{K} each.", "",
             "| query | format | calls | rows out | warm median ms | warm p90 ms | cold-ish median ms | x Lance |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    base = {t.query: t.median_ms for t in result.timings if t.baseline}
    last = None
    for t in result.timings:
        query = t.query if t.query != last else ""
        last = t.query
        star = " *" if t.baseline else ""
        cold = _fmt(statistics.median(t.cold_ms)) if t.cold_ms else "-"
        ratio = t.median_ms / base[t.query] if base.get(t.query) else float("nan")
        lines.append(f"| {query} | {t.store}{star} | {len(t.warm_ms)} | {t.rows:,} | {_fmt(t.median_ms)} | "
                     f"{_fmt(t.p90_ms)} | {cold} | {_fmt(ratio)} |")
    checks = ", ".join(f"{name} {'yes' if ok else '**NO**'}" for name, ok in result.agreement.items())
    lines += ["", f"Recall@{K} of Lance ANN against the exact top-{K} (numpy, float64): {result.recall_ann:.3f} "
              f"(50 calls), {result.recall_ann_batch:.3f} (batch call). Same rows from every format: {checks}."]
    return "\n".join(lines) + "\n"


def _fmt(x: float) -> str:
    return f"{x:,.2f}" if x < 10 else f"{x:,.1f}" if x < 1000 else f"{x:,.0f}"


def main(argv: list[str] | None = None) -> int:
    """CLI entry: build the three layouts, time the queries, print the table, optionally record it."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=5, help="timed warm calls per query after one warm-up")
    parser.add_argument("--wds-repeats", type=int, default=3, help="timed calls per WebDataset query (full scans)")
    parser.add_argument("--point-lookups", type=int, default=200, help="random ids, timed one call each")
    parser.add_argument("--lookup-budget-s", type=float, default=15.0,
                        help="stop a store's point lookups after this many seconds (at least 5 ids)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-dir", type=Path, default=REPO_ROOT / "data/bench/query_latency",
                        help="where the three layouts are written")
    parser.add_argument("--reuse-data", action="store_true",
                        help="keep the layouts under --data-dir if an earlier run wrote the same rows from them")
    parser.add_argument("--no-cold", action="store_true", help="skip the cold-ish (fresh handle) timings")
    parser.add_argument("--write-results", action="store_true",
                        help=f"replace the <!-- {RESULTS_MARKER}:begin/end --> block of --results-md")
    parser.add_argument("--results-md", type=Path, default=REPO_ROOT / "bench/RESULTS.md")
    args = parser.parse_args(argv)
    if args.rows < 300 or min(args.repeats, args.wds_repeats, args.point_lookups) < 1:
        parser.error("--rows >= 300 (a PQ index needs 256 rows); --repeats, --wds-repeats, --point-lookups >= 1")
    load_before = os.getloadavg()[0]

    def progress(msg: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)

    progress(f"generating {args.rows:,} rows (seed {args.seed})")
    table = generate_latents(args.rows, seed=args.seed)
    inputs = plan_queries(table, seed=args.seed, point_lookups=args.point_lookups)
    built = read_built(args.data_dir, table) if args.reuse_data else None
    reused = built is not None
    if built is None:
        progress(f"writing Lance, Parquet and WebDataset under {args.data_dir}")
        built = write_formats(table, args.data_dir)
    del table
    result = run_queries(built, inputs, repeats=args.repeats, wds_repeats=args.wds_repeats,
                         lookup_budget_s=args.lookup_budget_s, cold=not args.no_cold, progress=progress)
    command = " ".join([".venv/bin/python", "bench/query_latency.py", *(sys.argv[1:] if argv is None else argv)])
    section = format_report(result, built, inputs, rows=args.rows, command=command, load_before=load_before,
                            load_after=os.getloadavg()[0], repeats=args.repeats, wds_repeats=args.wds_repeats,
                            reused=reused)
    print(section)
    if args.write_results:
        replace_marked_section(args.results_md, RESULTS_MARKER, section)
        print(f"wrote {args.results_md}")
    if not all(result.agreement.values()):
        print("error: the formats disagreed: " + ", ".join(k for k, ok in result.agreement.items() if not ok),
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
