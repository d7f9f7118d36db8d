"""Vector search over ``factors`` and its index, on tables written straight with Lance (no models, no Ray)."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import lance
import numpy as np
import pytest

from pipelines.factor_search import (FactorsLookupError, IndexUpdate, index_name, plan_index_partitions,
                                     similar_segments, update_factor_index)
from pipelines.lance_io import table_uri, upsert_rows
from schemas.encode_factors import PQ_MIN_ROWS, FactorsIndexConfig
from schemas.factors import FACTOR_DIMS, FACTORS_KEY, FACTORS_SCHEMA, VECTOR_COLUMNS, FactorRow
from schemas.storage import StorageConfig

FID = "factorizer_tiny-000000000000"
SPEAKERS = 6


def _unit(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    v = rng.standard_normal((n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def _rows(start: int, n: int, *, factorizer_id: str = FID, seed: int = 0) -> list[dict]:
    """``n`` factors rows whose speaker vectors cluster around one of SPEAKERS voices (row i -> voice i % 6)."""
    rng = np.random.default_rng([seed, start])
    centres = _unit(np.random.default_rng(99), SPEAKERS, FACTOR_DIMS["speaker"])
    rows = []
    for i in range(start, start + n):
        voice = i % SPEAKERS
        speaker = centres[voice] + 0.15 * rng.standard_normal(FACTOR_DIMS["speaker"]).astype(np.float32)
        row = {
            "segment_id": f"seg{i:05d}", "factorizer_id": factorizer_id, "codec_id": "codec_tiny_test-x",
            "num_frames": 50 + i % 7, "duration_s": 1.0 + (i % 7) / 50, "split": "train" if i % 4 else "valid",
            "speaker": f"test:{voice}", "language": "en" if i % 2 else "de", "style": None, "environment": "room",
            "channel": None, "corpus": "test", "run_id": "test", "encoded_at": datetime(2026, 1, 1, tzinfo=timezone.utc),
            "content_codes": [i % 25] * 3,
        }
        row["speaker_vector"] = (speaker / np.linalg.norm(speaker)).tolist()
        for name in ("style", "environment", "channel"):
            row[VECTOR_COLUMNS[name]] = _unit(rng, 1, FACTOR_DIMS[name])[0].tolist()
        rows.append(row)
    return rows


def _write(lake: Path, rows: list[dict]) -> None:
    FactorRow.model_validate(rows[0])
    upsert_rows(table_uri(str(lake), "factors"), rows, FACTORS_SCHEMA, list(FACTORS_KEY), StorageConfig())


def _table(lake: Path) -> lance.LanceDataset:
    return lance.dataset(table_uri(str(lake), "factors"))


def _exact(lake: Path, query: np.ndarray, factorizer_id: str = FID, factor: str = "speaker") -> dict[str, float]:
    """Cosine distance of every row of a factorizer to ``query``, by brute force."""
    t = _table(lake).to_table(columns=["segment_id", VECTOR_COLUMNS[factor]],
                              filter=f"factorizer_id = '{factorizer_id}'")
    vectors = np.stack(t.column(1).to_numpy(zero_copy_only=False))
    d = 1 - vectors @ query / np.linalg.norm(vectors, axis=1) / np.linalg.norm(query)
    return dict(zip(t.column(0).to_pylist(), d.tolist()))


def _vector(lake: Path, segment_id: str, factor: str = "speaker") -> np.ndarray:
    t = _table(lake).to_table(columns=[VECTOR_COLUMNS[factor]], filter=f"segment_id = '{segment_id}'")
    return np.asarray(t.column(0)[0].values, dtype=np.float32)


def _index(lake: Path, factor: str = "speaker"):
    (desc,) = [d for d in _table(lake).describe_indices() if d.name == index_name(factor)]
    return desc


def _assert_exact_top_k(lake: Path, result, query: np.ndarray, k: int) -> None:
    exact = _exact(lake, query)
    best = sorted(exact.values())[:k]
    assert result.num_rows == k
    np.testing.assert_allclose(result.column("distance").to_numpy(), best, atol=1e-5)
    for sid, d in zip(result.column("segment_id").to_pylist(), result.column("distance").to_pylist()):
        assert d == pytest.approx(exact[sid], abs=1e-5)


def test_partitions_follow_the_table_size():
    assert [plan_index_partitions(n) for n in (1, 511, 512, 10_000, 1_000_000)] == [1, 1, 2, 39, 1000]
    assert plan_index_partitions(10_000, 7) == 7


def test_a_tiny_table_gets_an_exact_flat_index_and_a_segment_finds_itself(tmp_path):
    lake = tmp_path / "lake"
    _write(lake, _rows(0, 20))
    (update,) = update_factor_index(str(lake), FactorsIndexConfig())
    assert (update.action, update.index_type, update.num_partitions, update.rows) == ("created", "IVF_FLAT", 1, 20)
    assert _index(lake).num_rows_indexed == 20
    got = similar_segments(str(lake), factorizer_id=FID, segment_id="seg00007", k=4)
    assert got.column_names == ["segment_id", "speaker", "language", "style", "environment", "channel", "corpus",
                                "split", "duration_s", "factorizer_id", "distance"]
    assert got.column("segment_id")[0].as_py() == "seg00007" and abs(got.column("distance")[0].as_py()) < 1e-5
    assert set(got.column("speaker").to_pylist()) == {"test:1"}  # 7, 13, 19, 1: the same voice
    _assert_exact_top_k(lake, got, _vector(lake, "seg00007"), 4)
    by_vector = similar_segments(str(lake), factorizer_id=FID, vector=_vector(lake, "seg00007"), k=4)
    assert by_vector.column("segment_id").to_pylist() == got.column("segment_id").to_pylist()
    train_en = similar_segments(str(lake), factorizer_id=FID, segment_id="seg00007", k=20,
                                filter="split = 'train' AND language = 'en'")
    assert set(train_en.column("split").to_pylist()) == {"train"} and set(train_en.column("language").to_pylist()) == {"en"}
    assert train_en.num_rows == sum(1 for i in range(20) if i % 4 and i % 2)
    style = similar_segments(str(lake), factorizer_id=FID, segment_id="seg00003", factor="style", k=3)  # unindexed
    assert style.column("segment_id")[0].as_py() == "seg00003" and abs(style.column("distance")[0].as_py()) < 1e-5


def test_the_index_grows_from_flat_to_pq_then_takes_appends_and_rebuilds_when_the_table_doubles(tmp_path):
    lake, config = tmp_path / "lake", FactorsIndexConfig()
    _write(lake, _rows(0, 100))
    assert update_factor_index(str(lake), config)[0].index_type == "IVF_FLAT"
    _write(lake, _rows(100, PQ_MIN_ROWS))  # 356 rows: the flat index is replaced by PQ
    (update,) = update_factor_index(str(lake), config)
    assert (update.action, update.index_type, update.num_partitions, update.num_sub_vectors) == \
        ("rebuilt", "IVF_PQ", 1, 8)
    assert _index(lake).num_rows_indexed == 356
    for sid in ("seg00005", "seg00300"):
        got = similar_segments(str(lake), factorizer_id=FID, segment_id=sid, k=10)
        assert got.column("segment_id")[0].as_py() == sid
        _assert_exact_top_k(lake, got, _vector(lake, sid), 10)  # refined: PQ candidates, exact distances

    _write(lake, _rows(356, 40))  # not yet indexed: searched with the same (cosine) metric as the indexed rows
    for sid in ("seg00010", "seg00390"):
        got = similar_segments(str(lake), factorizer_id=FID, segment_id=sid, k=10)
        assert got.column("segment_id")[0].as_py() == sid
        _assert_exact_top_k(lake, got, _vector(lake, sid), 10)
    (update,) = update_factor_index(str(lake), config)
    assert (update.action, update.rows_added, update.rows) == ("optimized", 40, 396)
    assert _index(lake).num_rows_indexed == 396
    version = _table(lake).version
    assert update_factor_index(str(lake), config)[0].action == "up to date" and _table(lake).version == version
    got = similar_segments(str(lake), factorizer_id=FID, segment_id="seg00390", k=5)
    assert got.column("segment_id")[0].as_py() == "seg00390"

    _write(lake, _rows(396, 400))  # the table doubles: partitions are retrained for its new size
    (update,) = update_factor_index(str(lake), config)
    assert (update.action, update.index_type, update.num_partitions) == ("rebuilt", "IVF_PQ", 3)
    assert _index(lake).num_rows_indexed == 796 and len(_index(lake).segments) == 1
    # a selective filter far from the query's voice still gets k rows (the search widens past the near partitions)
    query = _vector(lake, "seg00001")
    got = similar_segments(str(lake), factorizer_id=FID, vector=query, k=5, filter="speaker = 'test:4'")
    far = {sid: d for sid, d in _exact(lake, query).items() if int(sid[3:]) % SPEAKERS == 4}
    assert set(got.column("speaker").to_pylist()) == {"test:4"}
    np.testing.assert_allclose(got.column("distance").to_numpy(), sorted(far.values())[:5], atol=1e-5)

    _write(lake, _rows(796, 10))  # max_delta_segments=1: never a delta segment, always a rebuild
    assert update_factor_index(str(lake), FactorsIndexConfig(max_delta_segments=1))[0].action == "rebuilt"
    assert _index(lake).num_rows_indexed == 806 and len(_index(lake).segments) == 1


def test_each_factorizer_searches_only_its_own_rows(tmp_path):
    lake = tmp_path / "lake"
    _write(lake, _rows(0, 12) + _rows(0, 12, factorizer_id="other-111111111111", seed=1))
    update_factor_index(str(lake), FactorsIndexConfig())
    got = similar_segments(str(lake), factorizer_id="other-111111111111", segment_id="seg00002", k=30)
    assert got.num_rows == 12 and set(got.column("factorizer_id").to_pylist()) == {"other-111111111111"}
    assert got.column("segment_id")[0].as_py() == "seg00002"


def test_bad_queries_are_one_line_errors(tmp_path):
    lake = tmp_path / "lake"
    with pytest.raises(FactorsLookupError, match=r"no factors table under .* \(run jobs/encode_factors.py first\)"):
        similar_segments(str(lake), factorizer_id=FID, segment_id="seg00000")
    _write(lake, _rows(0, 8))
    cases = [
        (ValueError, "unknown factor 'pitch'; factors are speaker, style, environment, channel",
         dict(segment_id="seg00000", factor="pitch")),
        (ValueError, r"a speaker vector has 64 values; got shape \(16,\)", dict(vector=np.ones(16))),
        (ValueError, r"a channel vector has 16 values; got shape \(64,\)", dict(vector=np.ones(64), factor="channel")),
        (ValueError, "must be finite and nonzero", dict(vector=np.zeros(64))),
        (ValueError, "exactly one of segment_id or vector", dict()),
        (ValueError, "exactly one of segment_id or vector", dict(segment_id="seg00000", vector=np.ones(64))),
        (ValueError, "k must be >= 1", dict(segment_id="seg00000", k=0)),
        (FactorsLookupError, f"segment 'nope' has no factors of factorizer '{FID}'", dict(segment_id="nope")),
        (ValueError, "filter 'no_such_column = 1' cannot run: ", dict(segment_id="seg00000", filter="no_such_column = 1")),
    ]
    for error, message, kw in cases:
        with pytest.raises(error, match=message) as info:
            similar_segments(str(lake), factorizer_id=FID, **kw)
        assert "\n" not in str(info.value)
    with pytest.raises(FactorsLookupError, match=f"no factors of factorizer 'nope-1' in .* \\(it has: {FID}\\)"):
        similar_segments(str(lake), factorizer_id="nope-1", vector=np.ones(64))
    with pytest.raises(FactorsLookupError, match="segment 'seg00000' has no factors of factorizer 'nope-1'"):
        similar_segments(str(lake), factorizer_id="nope-1", segment_id="seg00000")
    assert similar_segments(str(lake), factorizer_id=FID, segment_id="seg00000", filter="split = 'test'").num_rows == 0


def test_index_update_formats_one_line():
    u = IndexUpdate("speaker", "created", "IVF_PQ", 4, 8, rows=1200)
    assert u.format() == "speaker_vector: created IVF_PQ (4 partitions, 8 sub-vectors); 1200 rows"
    assert IndexUpdate("speaker", "optimized", rows=10, rows_added=3).format() == \
        "speaker_vector: optimized (+3 rows); 10 rows"
