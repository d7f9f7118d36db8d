"""List raw inputs: a local folder, an ``s3://`` prefix, WebDataset tar shards, a JSONL manifest.

Listing runs on the driver and touches only metadata (name, size, mtime or
ETag), so an incremental run can skip unchanged inputs without reading them.
Each listed thing is a :class:`SourceUnit`: one audio file, one tar shard
(whose members become sources when a worker streams it), or a manifest row
whose file is missing (rejected without work).
"""

from __future__ import annotations

import json
import os
import posixpath
from dataclasses import asdict, dataclass
from typing import Iterator, Literal

import fsspec

from schemas.curate import SourceSpec
from schemas.labels import ManifestRow
from schemas.storage import StorageConfig, is_remote, resolve_uri

__all__ = ["SourceUnit", "list_sources", "filesystem_for", "read_manifest", "ManifestError"]

UnitKind = Literal["file", "tar", "missing"]


class ManifestError(ValueError):
    """A manifest that cannot be parsed (bad JSON, a row without ``path``)."""


@dataclass
class SourceUnit:
    """One listed input, as it travels to a worker (plain fields: it goes through Ray)."""

    kind: UnitKind
    uri: str
    size_bytes: int | None = None
    mtime_ns: int | None = None
    etag: str | None = None
    labels_json: str | None = None  # labels known from a manifest, JSON object
    error: str | None = None  # why a "missing" unit is missing

    def to_item(self) -> dict:
        """As a dict for ``ray.data.from_items``."""
        return asdict(self)

    def change_key(self) -> tuple:
        """What must match the last ingest for the unit to count as unchanged."""
        return (self.size_bytes, self.etag) if self.etag else (self.size_bytes, self.mtime_ns)


def filesystem_for(uri: str, storage: StorageConfig) -> fsspec.AbstractFileSystem:
    """fsspec filesystem for a URI (local or s3)."""
    if uri.startswith("s3://"):
        return fsspec.filesystem("s3", **storage.fsspec_options())
    if is_remote(uri):
        return fsspec.filesystem(uri.split("://", 1)[0])
    return fsspec.filesystem("file")


def _strip(uri: str) -> str:
    return uri.split("://", 1)[1] if "://" in uri else uri


def _with_scheme(path: str, like: str) -> str:
    return f"{like.split('://', 1)[0]}://{path}" if is_remote(like) else path


def _mtime_ns(info: dict) -> int | None:
    if info.get("mtime_ns") is not None:
        return int(info["mtime_ns"])
    m = info.get("mtime") or info.get("LastModified") or info.get("created")
    if m is None:
        return None
    if hasattr(m, "timestamp"):
        return int(m.timestamp() * 1e9)
    return int(float(m) * 1e9)


def _etag(info: dict) -> str | None:
    e = info.get("ETag") or info.get("etag")
    return str(e).strip('"') if e else None


def _walk(uri: str, storage: StorageConfig, extensions: tuple[str, ...]) -> Iterator[tuple[str, dict]]:
    """(uri, info) of every file under ``uri`` with an allowed extension, sorted (deterministic)."""
    fs = filesystem_for(uri, storage)
    root = _strip(uri)
    if fs.isfile(root):
        found = {root: fs.info(root)}
    else:
        if not fs.exists(root):
            raise FileNotFoundError(f"source not found: {uri}")
        found = fs.find(root, detail=True)
    for path in sorted(found):
        info = found[path]
        if info.get("type", "file") != "file":
            continue
        ext = path.rsplit(".", 1)[-1].lower() if "." in posixpath.basename(path) else ""
        if ext in extensions:
            if not is_remote(uri):  # exact ns mtime, the same whichever lister saw the file
                info = {**info, "mtime_ns": os.stat(path).st_mtime_ns}
            yield _with_scheme(path, uri), info


def read_manifest(uri: str, storage: StorageConfig) -> list[tuple[str, dict]]:
    """(absolute uri, labels) per JSONL row; ``path`` is relative to the manifest's folder unless absolute."""
    fs = filesystem_for(uri, storage)
    base = posixpath.dirname(_strip(uri))
    rows: list[tuple[str, dict]] = []
    with fs.open(_strip(uri), "rt") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ManifestError(f"{uri}:{lineno}: not valid JSON ({exc.msg})") from None
            if not isinstance(obj, dict) or not isinstance(obj.get("path"), str):
                raise ManifestError(f"{uri}:{lineno}: each row needs a string 'path'")
            ManifestRow.model_validate({"path": obj["path"]})
            path = obj.pop("path")
            if is_remote(path) or posixpath.isabs(path):
                target = path
            else:
                target = _with_scheme(posixpath.normpath(posixpath.join(base, path)), uri)
            rows.append((target, obj))
    return rows


def _list_folder(spec: SourceSpec, storage: StorageConfig) -> Iterator[SourceUnit]:
    uri = resolve_uri(spec.uri)
    labels: dict[str, dict] = {}
    if spec.labels_manifest:
        labels = dict(read_manifest(resolve_uri(spec.labels_manifest), storage))
    exts = tuple(e.lower().lstrip(".") for e in spec.extensions)
    for path, info in _walk(uri, storage, exts):
        lab = labels.get(path)
        yield SourceUnit("file", path, info.get("size"), _mtime_ns(info), _etag(info),
                         json.dumps(lab, sort_keys=True) if lab else None)


def _list_webdataset(spec: SourceSpec, storage: StorageConfig) -> Iterator[SourceUnit]:
    uri = resolve_uri(spec.uri)
    for path, info in _walk(uri, storage, ("tar",)):
        yield SourceUnit("tar", path, info.get("size"), _mtime_ns(info), _etag(info))


def _list_manifest(spec: SourceSpec, storage: StorageConfig) -> Iterator[SourceUnit]:
    uri = resolve_uri(spec.uri)
    rows = read_manifest(uri, storage)
    fs = filesystem_for(uri, storage)
    known: dict[str, dict] = {}
    if is_remote(uri):  # one listing instead of one request per row
        prefix = posixpath.dirname(_strip(uri))
        known = {_with_scheme(p, uri): i for p, i in fs.find(prefix, detail=True).items()}
    for target, lab in rows:
        labels_json = json.dumps(lab, sort_keys=True) if lab else None
        if is_remote(target):
            info = known.get(target)
            if info is None and not is_remote(uri):  # a remote path inside a local manifest: ask its own store
                target_fs = filesystem_for(target, storage)
                info = target_fs.info(_strip(target)) if target_fs.exists(_strip(target)) else None
        else:
            try:
                st = os.stat(target)
                info = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "type": "file"} if os.path.isfile(target) else None
            except OSError:
                info = None
        if info is None:
            yield SourceUnit("missing", target, labels_json=labels_json,
                             error=f"manifest {uri} names {target}, which does not exist")
            continue
        mtime = _mtime_ns(info)
        kind: UnitKind = "tar" if target.lower().endswith(".tar") else "file"
        yield SourceUnit(kind, target, info.get("size"), mtime, _etag(info), labels_json)


def list_sources(specs: list[SourceSpec], storage: StorageConfig) -> list[SourceUnit]:
    """All units of all sources, deduplicated by URI (first spec wins), in a stable order."""
    listers = {"folder": _list_folder, "webdataset": _list_webdataset, "manifest": _list_manifest}
    seen: dict[str, SourceUnit] = {}
    for spec in specs:
        for unit in listers[spec.kind](spec, storage):
            seen.setdefault(unit.uri, unit)
    return list(seen.values())
