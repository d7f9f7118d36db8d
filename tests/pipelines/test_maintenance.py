"""Lake maintenance on real Lance tables: compaction, indexes, cleanup under retention, tags and restore."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import lance
import numpy as np
import pytest

from pipelines.lance_io import blob_columns, open_table, read_segment_audio, table_uri, upsert_rows, write_ray_dataset
from pipelines.factor_search import similar_segments
from pipelines.maintenance import (MaintenanceInputError, _blob_sample, compact_tables, format_versions,
                                   index_tables)
from pipelines.retention import cleanup_tables, plan_cleanup
from pipelines.tags import list_tags, restore_versions, tag_versions, untag_versions
from schemas.latents import LATENTS_SCHEMA
from schemas.maintenance import IndexMaintenanceConfig, MaintainConfig, RetentionConfig
from schemas.runs import RUNS_SCHEMA
from schemas.storage import StorageConfig
from tests.pipelines.test_factor_search import FID
from tests.pipelines.test_factor_search import _rows as factor_rows
from tests.pipelines.test_factor_search import _write as write_factors
from tests.tiny_lake import segment_row, write_latents, write_segments


def _lake(tmp_path: Path, appends: int = 6) -> tuple[str, list[dict]]:
    """A segments table built by ``appends`` one-row commits (one fragment and one version each)."""
    lake = str(tmp_path / "lake")
    rows = [segment_row(0.25 + 0.05 * i, seed=i, speaker=f"t:{i % 2}") for i in range(appends)]
    for r in rows:
        write_segments(lake, [r])
    return lake, rows


def _segments(lake: str, version: int | str | None = None, storage: StorageConfig | None = None) -> lance.LanceDataset:
    return open_table(table_uri(lake, "segments"), storage or StorageConfig(), version=version)


def _record_run(lake: str, run_id: str, job: str, versions: dict[str, int], ended: datetime,
                status: str = "succeeded") -> None:
    """A ``runs`` row as a job writes it (only the columns the maintenance rules read matter)."""
    row = {"run_id": run_id, "job": job, "status": status, "config_hash": "x", "config_json": "{}",
           "started_at": ended - timedelta(minutes=1), "ended_at": ended, "error": None,
           "table_versions_json": json.dumps(versions)}
    row |= {c: 0 for c in ("inputs_seen", "inputs_skipped_unchanged", "inputs_processed", "inputs_accepted",
                           "inputs_rejected", "segments_written", "segments_filtered", "segments_deduped")}
    row |= {"audio_s_in": 0.0, "audio_s_written": 0.0}
    upsert_rows(table_uri(lake, "runs"), [row], RUNS_SCHEMA, ["run_id"], StorageConfig())


def _audio(lake: str, storage: StorageConfig | None = None) -> dict[str, np.ndarray]:
    return {sid: x for sid, x, _ in read_segment_audio(lake, storage or StorageConfig())}


def test_compaction_merges_small_appends_and_keeps_rows_blobs_and_query_results(tmp_path):
    lake, rows = _lake(tmp_path, appends=8)
    before = _segments(lake)
    query = dict(columns=["segment_id", "speaker", "duration_s"], filter="speaker = 't:1' AND duration_s > 0.3")
    expected = before.to_table(**query).sort_by("segment_id")
    audio = _audio(lake)
    assert len(before.get_fragments()) == 8

    assert blob_columns(before.schema) == ["audio"] and len(_blob_sample(before, "segments", ["audio"])) == 4
    report = compact_tables(MaintainConfig(lake_root=lake))

    after = _segments(lake)
    assert len(after.get_fragments()) == 1 and after.count_rows() == 8
    assert "segments: fragments 8 -> 1, rows 8 -> 8" in report.format()
    assert after.to_table(**query).sort_by("segment_id").equals(expected)
    now = _audio(lake)  # the blob column is read by row address, which compaction changed
    assert set(now) == set(audio) and all(np.array_equal(now[k], audio[k]) for k in audio)
    # the run is recorded with the version compaction ended at; a second compaction has nothing to do
    run = lance.dataset(table_uri(lake, "runs")).to_table(filter=f"run_id = '{report.run_id}'").to_pylist()[0]
    assert run["job"] == "maintain:compact" and run["status"] == "succeeded"
    assert json.loads(run["table_versions_json"]) == {"segments": after.version}
    assert (run["inputs_seen"], run["inputs_processed"], run["inputs_skipped_unchanged"]) == (1, 1, 0)
    again = compact_tables(MaintainConfig(lake_root=lake, tables=["segments"]))
    assert _segments(lake).version == after.version and "nothing to compact" in again.format()
    # `runs` (2 rows, 5 commits: each run wrote its row twice) compacts while this run records itself in it
    third = compact_tables(MaintainConfig(lake_root=lake))
    assert any(line.startswith("runs: fragments 3 -> 1, rows 3 -> 3") for line in third.lines), third.lines


def test_index_then_upsert_then_lookup_finds_the_new_row(tmp_path):
    lake, rows = _lake(tmp_path, appends=3)
    write_latents(lake, rows, codec_id="c1")
    config = MaintainConfig(lake_root=lake, record_runs=False)
    report = index_tables(config)
    assert {"segments.segment_id_idx: created; 3 rows indexed",
            "latents.segment_id_idx: created; 3 rows indexed"} <= set(report.lines)

    new = segment_row(0.4, seed=50)
    write_segments(lake, [new, rows[0]])  # merge_insert on the indexed key: one new row, the old one skipped
    write_latents(lake, [new], codec_id="c1")
    seg = _segments(lake)
    assert seg.count_rows() == 4
    lookup = f"segment_id = '{new['segment_id']}'"
    assert seg.to_table(columns=["segment_id"], filter=lookup).num_rows == 1
    assert [sid for sid, _, _ in read_segment_audio(lake, StorageConfig(), filter=lookup)] == [new["segment_id"]]
    assert "ScalarIndexQuery" in seg.scanner(columns=["segment_id"], filter=lookup).explain_plan()

    again = index_tables(config)
    assert "segments.segment_id_idx: optimized (+1 rows); 4 rows indexed" in again.lines
    assert _segments(lake).stats.index_stats("segment_id_idx")["num_unindexed_rows"] == 0
    assert "up to date" in index_tables(config, ["segments"]).lines[0]
    rebuilt = index_tables(config, ["latents"], rebuild=True)
    assert rebuilt.lines == ["latents.segment_id_idx: rebuilt; 4 rows indexed"]


@pytest.mark.slow  # ~60 s here: Ray start-up and lance-ray's write tasks
def test_lance_ray_appends_to_an_indexed_table(tmp_path, ray_session):
    import ray.data

    lake, rows = _lake(tmp_path, appends=2)
    write_latents(lake, rows[:1], codec_id="c1")
    index_tables(MaintainConfig(lake_root=lake, tables=["latents"], record_runs=False))
    write_latents(tmp_path / "scratch", rows[1:], codec_id="c1")  # a row to append, made the usual way
    extra = lance.dataset(table_uri(str(tmp_path / "scratch"), "latents")).to_table()
    write_ray_dataset(ray.data.from_arrow(extra), table_uri(lake, "latents"), LATENTS_SCHEMA, StorageConfig())
    lat = lance.dataset(table_uri(lake, "latents"))
    assert lat.count_rows() == 2
    assert lat.to_table(filter=f"segment_id = '{rows[1]['segment_id']}'").num_rows == 1


def test_index_keeps_the_factors_vector_index_and_rebuilds_it(tmp_path):
    lake = tmp_path / "lake"
    write_factors(lake, factor_rows(0, 40))
    config = MaintainConfig(lake_root=str(lake), record_runs=False)
    first = index_tables(config)
    assert "factors.speaker_vector_idx: created; 40 rows indexed" in first.lines
    assert "factors.segment_id_idx: created; 40 rows indexed" in first.lines
    write_factors(lake, factor_rows(40, 5))
    assert "factors.speaker_vector_idx: rebuilt; 45 rows indexed" in index_tables(config).lines
    assert "factors.speaker_vector_idx: rebuilt" in " ".join(index_tables(config, rebuild=True).lines)
    names = {d.name: d.num_rows_indexed for d in lance.dataset(table_uri(str(lake), "factors")).describe_indices()}
    assert names == {"speaker_vector_idx": 45, "segment_id_idx": 45}
    # compaction remaps both indexes: the search still finds a segment first, at distance ~0
    assert "factors: fragments 2 -> 1, rows 45 -> 45" in compact_tables(config).format()
    found = similar_segments(str(lake), factorizer_id=FID, segment_id="seg00042", k=3)
    assert found.column("segment_id")[0].as_py() == "seg00042" and found.column("distance")[0].as_py() < 1e-4


def test_cleanup_keeps_tagged_pinned_and_recent_versions(tmp_path):
    lake, _ = _lake(tmp_path, appends=8)  # segments versions 1..8
    segments = table_uri(lake, "segments")
    lance.dataset(segments).tags.create("golden", 2)
    t0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
    _record_run(lake, "curate-old", "curate", {"segments": 3}, t0)  # an older run of the job: not protected
    _record_run(lake, "curate-new", "curate", {"segments": 5}, t0 + timedelta(hours=1))  # its latest: kept
    _record_run(lake, "curate-bad", "curate", {"segments": 6}, t0 + timedelta(hours=2), status="failed")
    config = MaintainConfig(lake_root=lake, tables=["segments"], retention={"keep_days": 1, "keep_last_versions": 2})

    # every version is minutes old: the day-long window keeps them all
    assert plan_cleanup(config)[0].remove == []
    later = datetime.now(timezone.utc) + timedelta(days=2)
    plan = plan_cleanup(config, now=later)[0]
    assert plan.remove == [1, 3, 4, 6]
    assert plan.keep == {2: ["tag golden"], 5: ["run curate"], 7: ["last 2"], 8: ["current", "last 2"]}

    report, plans = cleanup_tables(config, dry_run=True, now=later)
    assert "would remove 4 versions (1, 3-4, 6)" in report.format()
    assert plans[0].estimated_bytes == 0  # appends only: the current version still reads every data file
    assert format_versions([v["version"] for v in lance.dataset(segments).versions()]) == "1-8"  # untouched

    report, plans = cleanup_tables(config, now=later)
    assert "removed 4 versions (1, 3-4, 6)" in report.format() and plans[0].bytes_removed > 0
    left = lance.dataset(segments)
    assert [v["version"] for v in left.versions()] == [2, 5, 7, 8]
    for ref, rows in (("golden", 2), (5, 5), (8, 8)):  # time travel, blobs included, still works
        old = lance.dataset(segments, version=ref)
        assert old.count_rows() == rows
        addr = old.to_table(columns=["segment_id"], with_row_address=True).column("_rowaddr").to_pylist()
        assert len(list(old.read_blobs("audio", addresses=addr))) == rows
    run = lance.dataset(table_uri(lake, "runs")).to_table(filter=f"run_id = '{report.run_id}'").to_pylist()[0]
    assert run["job"] == "maintain:cleanup" and json.loads(run["table_versions_json"]) == {"segments": 8}
    # once untagged, the version is cleanup's to take
    assert untag_versions(config, "golden").lines == ["segments: golden (version 2) deleted"]
    assert plan_cleanup(config, now=later)[0].remove == [2]


def test_tag_a_run_then_restore_after_a_bad_run(tmp_path):
    lake, rows = _lake(tmp_path, appends=4)
    good = _segments(lake).version
    _record_run(lake, "curate-good", "curate", {"segments": good}, datetime(2026, 1, 1, tzinfo=timezone.utc))
    config = MaintainConfig(lake_root=lake)
    report = tag_versions(config, "good", run_id="curate-good")
    assert report.table_versions == {"segments": good}
    write_segments(lake, [segment_row(0.3, seed=100 + i) for i in range(3)])  # the bad run
    bad = _segments(lake).version
    assert _segments(lake).count_rows() == 7

    restored = restore_versions(config, name="good")
    now = _segments(lake)
    assert now.count_rows() == 4 and now.version == bad + 1
    assert set(_audio(lake)) == {r["segment_id"] for r in rows}
    assert _segments(lake, version=bad).count_rows() == 7  # the bad version stays in history
    assert restored.table_versions == {"segments": bad + 1}
    assert [t.format().split(" (")[0] for t in list_tags(config)] == [f"segments: good -> version {good}"]
    runs = lance.dataset(table_uri(lake, "runs")).to_table(columns=["job"]).column("job").to_pylist()
    assert "curate" in runs and "maintain:restore" in runs  # the run log was not rewound
    assert not any(line.startswith("runs:") for line in restored.lines)  # (the tag was on segments only)
    tag_versions(config, "both")  # segments and runs
    assert "runs: not rewound" in restore_versions(config, name="both").format()

    # numbered restore of one table, and a tag over every table's current version
    restore_versions(config, table="segments", version=bad)
    assert _segments(lake).count_rows() == 7
    tagged = tag_versions(config, "all-now")
    assert set(tagged.table_versions) == {"segments", "runs"}


@pytest.mark.parametrize("call, message", [
    (lambda c: compact_tables(c, ["nope"]), "unknown table 'nope'; the lake's tables are sources, segments"),
    (lambda c: index_tables(c, ["latents"]), "no table 'latents' under"),
    (lambda c: tag_versions(c, "x", table="segments", version=99), "segments has no version 99 (versions: 1-2;"),
    (lambda c: tag_versions(c, "bad name"), "bad tag name 'bad name'"),
    (lambda c: tag_versions(c, "t", run_id="nope"), "no runs table under"),
    (lambda c: tag_versions(c, "t", version=1), "--version needs --table"),
    (lambda c: tag_versions(c, "keep"), "tag 'keep' already exists on segments (version 1); pass --replace"),
    (lambda c: restore_versions(c, name="nope"), "no tag 'nope' on any table under"),
    (lambda c: restore_versions(c, table="segments", version=7), "segments has no version 7"),
    (lambda c: restore_versions(c), "give exactly one of --name"),
    (lambda c: untag_versions(c, "nope"), "no tag 'nope' on any table under"),
    (lambda c: index_tables(c.model_copy(update={"index": IndexMaintenanceConfig(scalar={"segments": ["nope"]})})),
     "index.scalar: table segments has no column 'nope'"),
])
def test_bad_inputs_name_what_exists_and_change_nothing(tmp_path, call, message):
    lake, _ = _lake(tmp_path, appends=2)
    lance.dataset(table_uri(lake, "segments")).tags.create("keep", 1)
    config = MaintainConfig(lake_root=lake)
    with pytest.raises(MaintenanceInputError) as err:
        call(config)
    assert message in str(err.value) and "\n" not in str(err.value)
    assert _segments(lake).version == 2 and open_table(table_uri(lake, "runs"), StorageConfig()) is None


def test_missing_lake_is_an_input_error(tmp_path):
    with pytest.raises(MaintenanceInputError, match="no tables under"):
        compact_tables(MaintainConfig(lake_root=str(tmp_path / "nothing")))


def test_compact_and_cleanup_on_s3(s3_bucket):
    endpoint, bucket = s3_bucket
    storage = StorageConfig(s3_endpoint_url=endpoint, s3_allow_http=True)
    lake = f"s3://{bucket}/lake"
    rows = [segment_row(0.3, seed=i) for i in range(4)]
    for r in rows:
        write_segments(lake, [r], storage)
    audio = _audio(lake, storage)
    config = MaintainConfig(lake_root=lake, storage=storage, retention={"keep_days": 0, "keep_last_versions": 1},
                            record_runs=False)
    report = compact_tables(config)
    assert "segments: fragments 4 -> 1, rows 4 -> 4" in report.format()
    now = _audio(lake, storage)
    assert all(np.array_equal(now[k], audio[k]) for k in audio)
    dry = cleanup_tables(config, dry_run=True)[1][0]
    assert dry.estimated_bytes > 0  # compaction rewrote the files: the old ones are read by old versions only
    report, plans = cleanup_tables(config)
    assert plans[0].remove == dry.remove and plans[0].bytes_removed >= dry.estimated_bytes
    seg = _segments(lake, storage=storage)
    assert [v["version"] for v in seg.versions()] == [seg.version] and seg.count_rows() == 4
    assert set(_audio(lake, storage)) == set(audio)


@pytest.mark.slow  # a real curation run, twice (~1-2 min on 2 cores)
def test_curation_stays_incremental_and_idempotent_on_a_compacted_indexed_lake(tmp_path, ray_session):
    from pipelines.curate import run_curation
    from tests.pipelines.test_curate import _config as curate_config
    from tests.raw_corpus import make_raw_corpus

    raw, lake = tmp_path / "raw", tmp_path / "lake"
    make_raw_corpus(raw)
    first = run_curation(curate_config(raw, lake), progress=lambda _: None)
    config = MaintainConfig(lake_root=str(lake))
    compact_tables(config)
    built = index_tables(config)
    assert {"segments.segment_id_idx: created", "sources.source_uri_idx: created", "runs.run_id_idx: created"} <= {
        line.split(";")[0] for line in built.lines}
    rows = {t: lance.dataset(table_uri(str(lake), t)).count_rows() for t in ("segments", "sources", "rejects")}
    again = run_curation(curate_config(raw, lake), progress=lambda _: None)  # merge-inserts on indexed keys
    assert again.inputs_processed == 0 and again.inputs_skipped_unchanged == first.inputs_seen
    assert {t: lance.dataset(table_uri(str(lake), t)).count_rows() for t in rows} == rows
    cleanup_tables(config.model_copy(update={"retention": RetentionConfig(keep_days=0, keep_last_versions=1)}))
    new = segment_row(0.5, seed=7)
    write_segments(lake, [new])
    assert index_tables(config, ["segments"]).lines == [
        f"segments.segment_id_idx: optimized (+1 rows); {rows['segments'] + 1} rows indexed"]
