"""dask DataFrames over real Lance tables: one partition per fragment, pinned versions, stats equal pyarrow's."""

from __future__ import annotations

import json

import lance
import numpy as np
import pyarrow as pa
import pytest

from pipelines.lance_io import table_uri
from pipelines.query.errors import QueryError
from pipelines.query.cli import main
from pipelines.query.frames import measure_table, read_dask
from schemas.storage import StorageConfig
from tests.tiny_lake import segment_row, write_latents, write_segments

SPEAKERS = ["t:0", "t:1", "t:2", None]  # None: unlabelled rows are a group of their own


def _rows(start: int, n: int) -> list[dict]:
    return [segment_row(0.3 + 0.05 * i, seed=i, speaker=SPEAKERS[i % 4], split=["train", "valid"][i % 2])
            for i in range(start, start + n)]


def _write_in_three_commits(lake: str, storage: StorageConfig | None = None) -> list[int]:
    """Three merge-inserts of new rows: three fragments; returns the version after each."""
    return [write_segments(lake, _rows(start, n), storage) for start, n in ((0, 5), (5, 4), (9, 6))]


def _hours_by_speaker_pyarrow(table: pa.Table) -> dict:
    grouped = table.group_by("speaker").aggregate([("duration_s", "sum"), ("duration_s", "count")])
    return {s: (n, total / 3600) for s, total, n in zip(grouped.column("speaker").to_pylist(),
                                                        grouped.column("duration_s_sum").to_pylist(),
                                                        grouped.column("duration_s_count").to_pylist())}


def _as_dict(stats: pa.Table) -> dict:
    return {s: (n, h) for s, n, h in zip(stats.column("speaker").to_pylist(), stats.column("rows").to_pylist(),
                                         stats.column("duration_h").to_pylist())}


@pytest.fixture(scope="module")
def lake(tmp_path_factory) -> tuple[str, list[int]]:
    lake = str(tmp_path_factory.mktemp("frames") / "lake")
    versions = _write_in_three_commits(lake)
    write_latents(lake, _rows(0, 15), codec_id="codec_test-0")
    return lake, versions


def _assert_same(got: dict, want: dict) -> None:
    assert set(got) == set(want)
    for key, (n, hours) in want.items():
        assert got[key][0] == n and got[key][1] == pytest.approx(hours, rel=1e-12)


def test_one_partition_per_fragment_without_the_blob_column(lake):
    root, _ = lake
    ds = lance.dataset(table_uri(root, "segments"))
    df = read_dask(root, None, "segments")
    assert df.npartitions == len(ds.get_fragments()) == 3
    assert "audio" not in df.columns and list(df.columns) == [n for n in ds.schema.names if n != "audio"]
    full = df.compute()
    assert len(full) == ds.count_rows() == 15
    assert sorted(full["segment_id"].tolist()) == sorted(ds.to_table(columns=["segment_id"]).column(0).to_pylist())
    sizes = [len(df.get_partition(i).compute()) for i in range(df.npartitions)]
    assert sorted(sizes) == sorted(f.count_rows() for f in ds.get_fragments())
    assert df.dtypes["bit_depth"] == full.dtypes["bit_depth"]  # meta from the schema matches the data (all null)


def test_hours_by_speaker_equal_a_pyarrow_groupby(lake):
    root, _ = lake
    table = lance.dataset(table_uri(root, "segments")).to_table(columns=["speaker", "duration_s", "split"])
    stats = measure_table(root, None, "segments", by="speaker", value="duration_s")
    assert stats.column_names == ["speaker", "rows", "duration_s_sum", "duration_s_mean", "duration_s_min",
                                  "duration_s_max", "duration_h"]
    assert stats.column("speaker").to_pylist() == ["t:0", "t:1", "t:2", None]
    _assert_same(_as_dict(stats), _hours_by_speaker_pyarrow(table))
    d = measure_table(root, None, "segments", by="speaker", value="duration_s").to_pylist()[0]
    mine = np.array([r["duration_s"] for r in table.to_pylist() if r["speaker"] == "t:0"])
    assert (d["duration_s_mean"], d["duration_s_min"], d["duration_s_max"]) == pytest.approx(
        (mine.mean(), mine.min(), mine.max()))
    train = measure_table(root, None, "segments", by=["split", "speaker"], filter="split = 'train'")
    assert set(train.column("split").to_pylist()) == {"train"} and sum(train.column("rows").to_pylist()) == 8


def test_a_version_is_pinned_and_columns_filters_are_pushed_into_the_scan(lake):
    root, versions = lake
    first = read_dask(root, None, "segments", columns=["segment_id", "duration_s"], version=versions[0])
    assert first.npartitions == 1 and len(first.compute()) == 5
    train = read_dask(root, None, "segments", columns=["speaker", "duration_s"], filter="split = 'train'")
    assert list(train.columns) == ["speaker", "duration_s"] and len(train.compute()) == 8
    codes = read_dask(root, None, "latents", columns=["segment_id", "num_frames", "num_stages", "codes"]).compute()
    assert all(len(c) == f * n for c, f, n in zip(codes["codes"], codes["num_frames"], codes["num_stages"]))
    assert train["duration_s"].sum().compute() == pytest.approx(sum(r["duration_s"] for r in _rows(0, 15)
                                                                    if r["split"] == "train"))


def test_bad_requests_are_one_line_query_errors(lake, tmp_path):
    root, _ = lake
    cases = [
        (dict(table="segments", columns=["audio"]), "segments.audio is a blob column"),
        (dict(table="segments", columns=["speaker", "nope"]), "segments has no column 'nope'"),
        (dict(table="segments", filter="split = = 1"), "filter 'split = = 1' cannot run on segments"),
        (dict(table="segments", filter="nope = 1"), "cannot run on segments"),
        (dict(table="segments", version=99), "segments has no version 99"),
        (dict(table="segmentz"), "unknown table 'segmentz'"),
        (dict(table="factors"), "table 'factors' does not exist"),
    ]
    for kwargs, message in cases:
        with pytest.raises(QueryError, match=message) as exc:
            read_dask(root, None, **kwargs)
        assert "\n" not in str(exc.value)
    with pytest.raises(QueryError, match="segments.speaker is string, not a number"):
        measure_table(root, None, "segments", by="split", value="speaker")
    with pytest.raises(QueryError, match="latents.codes holds lists or structs"):
        measure_table(root, None, "latents", by="codes")
    with pytest.raises(QueryError, match="at least one column"):
        measure_table(root, None, "segments", by=[])


def test_the_stats_command_reads_a_table_at_a_version_and_fails_in_one_line(lake, tmp_path, capsys):
    root, versions = lake
    out = tmp_path / "stats.json"
    argv = ["stats", f"segments@{versions[1]}", "--by", "speaker", "--by", "split", "--value", "duration_s"]
    assert main([*argv, "--lake-root", root, "--out", str(out)]) == 0
    got = json.loads(out.read_text())
    assert sum(r["rows"] for r in got) == 9 and {"speaker", "split", "duration_h"} <= set(got[0])
    capsys.readouterr()
    for argv, message in [(["segments", "--by", "audio"], "error: segments.audio is a blob column"),
                          (["segments", "--by", "speaker", "--filter", "x = = 1"], "error: filter 'x = = 1' cannot"),
                          (["segments@99", "--by", "speaker"], "error: segments has no version 99")]:
        assert main(["stats", "--lake-root", root, *argv]) == 2
        err = capsys.readouterr().err
        assert err.startswith(message) and err.count("\n") == 1, err


@pytest.mark.integration
def test_dask_reads_a_table_on_loopback_s3(s3_bucket):
    endpoint, bucket = s3_bucket
    storage = StorageConfig(s3_endpoint_url=endpoint, s3_allow_http=True)
    root = f"s3://{bucket}/lake"
    _write_in_three_commits(root, storage)
    ds = lance.dataset(table_uri(root, "segments"), storage_options=storage.lance_options())
    df = read_dask(root, storage, "segments", columns=["speaker", "duration_s"])
    assert df.npartitions == len(ds.get_fragments()) == 3
    stats = measure_table(root, storage, "segments", by="speaker", value="duration_s")
    _assert_same(_as_dict(stats), _hours_by_speaker_pyarrow(ds.to_table(columns=["speaker", "duration_s"])))
