"""Listing and reading raw inputs: folders, manifests, WebDataset shards, unsafe tar members."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest

from pipelines.reader import is_unsafe_member_name, iter_raw_objects
from pipelines.sources import ManifestError, list_sources
from schemas.curate import SourceSpec
from schemas.storage import StorageConfig
from tests.factories import flac_bytes, speechlike, write_audio

S = StorageConfig()


def _tree(tmp_path: Path) -> Path:
    root = tmp_path / "raw"
    write_audio(root / "b" / "two.flac", speechlike(1.5, 16000), 16000)
    write_audio(root / "a" / "one.wav", speechlike(1.2, 22050), 22050)
    (root / "notes.txt").write_text("not audio")
    return root


def test_folder_listing_is_sorted_filtered_and_has_change_keys(tmp_path):
    root = _tree(tmp_path)
    units = list_sources([SourceSpec(kind="folder", uri=str(root))], S)
    assert [Path(u.uri).name for u in units] == ["one.wav", "two.flac"]
    assert all(u.kind == "file" and u.size_bytes > 0 and u.mtime_ns for u in units)


def test_folder_labels_manifest_is_joined_by_path(tmp_path):
    root = _tree(tmp_path)
    (root / "labels.jsonl").write_text(json.dumps({"path": "a/one.wav", "speaker": "s1", "mood": "calm"}) + "\n")
    units = list_sources([SourceSpec(kind="folder", uri=str(root), labels_manifest=str(root / "labels.jsonl"))], S)
    labels = {Path(u.uri).name: u.labels_json for u in units}
    assert json.loads(labels["one.wav"]) == {"speaker": "s1", "mood": "calm"}
    assert labels["two.flac"] is None


def test_manifest_row_for_missing_file_becomes_a_missing_unit(tmp_path):
    root = _tree(tmp_path)
    m = root / "m.jsonl"
    m.write_text("\n".join(json.dumps(r) for r in [{"path": "a/one.wav"}, {"path": "gone.wav", "speaker": "x"}]) + "\n")
    units = list_sources([SourceSpec(kind="manifest", uri=str(m))], S)
    kinds = {Path(u.uri).name: u.kind for u in units}
    assert kinds == {"one.wav": "file", "gone.wav": "missing"}
    missing = [u for u in units if u.kind == "missing"][0]
    (obj,) = list(iter_raw_objects(missing, S))
    assert obj.error_reason == "missing_file" and "gone.wav" in obj.error


def test_bad_manifest_line_is_a_clear_error(tmp_path):
    m = tmp_path / "m.jsonl"
    m.write_text('{"path": "a.wav"}\n{not json\n')
    with pytest.raises(ManifestError, match=r"m.jsonl:2: not valid JSON"):
        list_sources([SourceSpec(kind="manifest", uri=str(m))], S)


def test_missing_source_folder_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="source not found"):
        list_sources([SourceSpec(kind="folder", uri=str(tmp_path / "nope"))], S)


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def test_tar_members_are_read_in_memory_and_unsafe_names_refused(tmp_path):
    shard = tmp_path / "shards" / "s-000.tar"
    shard.parent.mkdir()
    audio = flac_bytes(speechlike(1.0), 16000)
    with tarfile.open(shard, "w") as tar:
        _add(tar, "k1.flac", audio)
        _add(tar, "k1.json", json.dumps({"speaker": "v1"}).encode())
        _add(tar, "/tmp/evil-abs.wav", audio)
        _add(tar, "../../evil-up.wav", audio)
    units = list_sources([SourceSpec(kind="webdataset", uri=str(shard.parent))], S)
    assert [u.kind for u in units] == ["tar"]
    objs = list(iter_raw_objects(units[0], S))
    try:
        good = [o for o in objs if o.error_reason is None]
        bad = [o for o in objs if o.error_reason == "unsafe_path"]
        assert len(good) == 1 and good[0].labels == {"speaker": "v1"} and good[0].fileobj.read() == audio
        assert len(bad) == 2 and all(o.container_uri == str(shard) for o in bad)
    finally:
        for o in objs:
            o.close()
    assert not Path("/tmp/evil-abs.wav").exists() and not (tmp_path.parent.parent / "evil-up.wav").exists()


@pytest.mark.parametrize("name,unsafe", [("a/b.wav", False), ("/etc/x.wav", True), ("../x.wav", True),
                                         ("a/../../x.wav", True), ("a..b.wav", False), ("C:x.wav", True)])
def test_unsafe_member_names(name, unsafe):
    assert is_unsafe_member_name(name) is unsafe


def test_file_object_has_sha256_and_size(tmp_path):
    root = _tree(tmp_path)
    import hashlib

    (unit, _) = list_sources([SourceSpec(kind="folder", uri=str(root))], S)
    (obj,) = list(iter_raw_objects(unit, S))
    data = Path(unit.uri).read_bytes()
    assert obj.sha256 == hashlib.sha256(data).hexdigest() and obj.size_bytes == len(data)
    assert obj.fileobj.read() == data
    obj.close()
