"""Open listed units as seekable byte streams with their sha256, safely.

A file unit yields one :class:`RawObject`; a tar shard yields one per audio
member, streamed in order (``r|*``), so a shard is read once and never
extracted to disk by name: a member called ``/etc/x.wav`` or ``../../x.wav``
is refused (``unsafe_path``) and nothing is ever written outside memory or a
private temp file. Remote objects are copied once into a spooled temp file
(memory up to 32 MiB, disk beyond) while hashing, so a 1-hour file costs
disk, not RAM, and S3 is read once.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
import tarfile
import tempfile
from dataclasses import dataclass
from typing import IO, Iterator

from pipelines.sources import SourceUnit, filesystem_for, _strip
from schemas.curate import AUDIO_EXTENSIONS
from schemas.storage import StorageConfig, is_remote

__all__ = ["RawObject", "iter_raw_objects", "is_unsafe_member_name"]

_SPOOL_BYTES = 32 * 1024 * 1024
_BLOCK = 1024 * 1024


@dataclass
class RawObject:
    """One source's bytes (or why there are none)."""

    source_uri: str
    container_uri: str | None
    size_bytes: int | None
    sha256: str
    labels: dict
    fileobj: IO[bytes] | None = None
    error_reason: str | None = None  # a RejectReason value when the object cannot be used
    error: str | None = None

    def close(self) -> None:
        if self.fileobj is not None:
            self.fileobj.close()


def _spool(src: IO[bytes]) -> tuple[IO[bytes], str, int]:
    """Copy a stream into a spooled temp file while hashing; returns (file at 0, sha256, size)."""
    out = tempfile.SpooledTemporaryFile(max_size=_SPOOL_BYTES)
    h = hashlib.sha256()
    size = 0
    while chunk := src.read(_BLOCK):
        h.update(chunk)
        out.write(chunk)
        size += len(chunk)
    out.seek(0)
    return out, h.hexdigest(), size


def is_unsafe_member_name(name: str) -> bool:
    """True for absolute names and names that climb out with ``..`` (tar-slip)."""
    if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        return True
    parts = name.replace("\\", "/").split("/")
    return ".." in parts


def _open_file(unit: SourceUnit, storage: StorageConfig, labels: dict) -> RawObject:
    try:
        if is_remote(unit.uri):
            fs = filesystem_for(unit.uri, storage)
            with fs.open(_strip(unit.uri), "rb") as src:
                fh, sha, size = _spool(src)
        else:
            with open(unit.uri, "rb") as src:
                sha = hashlib.file_digest(src, "sha256").hexdigest()
                size = src.tell()
            fh = open(unit.uri, "rb")
    except FileNotFoundError:
        return RawObject(unit.uri, None, None, "", labels, None, "missing_file", f"missing_file: {unit.uri} disappeared after listing")
    except OSError as exc:
        return RawObject(unit.uri, None, None, "", labels, None, "read_error", f"read_error: {unit.uri}: {exc}")
    return RawObject(unit.uri, None, size, sha, labels, fh)


def _wds_key(name: str) -> tuple[str, str]:
    """WebDataset sample key and extension: ``dir/abc.flac`` -> (``dir/abc``, ``flac``)."""
    base = posixpath.basename(name)
    if "." not in base:
        return name, ""
    stem, ext = base.split(".", 1)
    return posixpath.join(posixpath.dirname(name), stem), ext.lower()


def _iter_tar(unit: SourceUnit, storage: StorageConfig, labels: dict) -> Iterator[RawObject]:
    """Audio members of a shard, each with the labels of its sample's ``.json`` member."""
    fs = filesystem_for(unit.uri, storage)
    pending: list[RawObject] = []
    pending_key: str | None = None
    sample_labels: dict = {}

    def flush() -> Iterator[RawObject]:
        for obj in pending:
            obj.labels = {**labels, **sample_labels, **obj.labels}
            yield obj
        pending.clear()

    try:
        src = fs.open(_strip(unit.uri), "rb") if is_remote(unit.uri) else open(unit.uri, "rb")
    except OSError as exc:
        yield RawObject(unit.uri, unit.uri, None, "", labels, None, "read_error", f"read_error: {unit.uri}: {exc}")
        return
    try:
        with src, tarfile.open(fileobj=src, mode="r|*") as tar:
            for member in tar:
                member_uri = f"{unit.uri}#{member.name}"
                key, ext = _wds_key(member.name)
                if key != pending_key:
                    yield from flush()
                    pending_key, sample_labels = key, {}
                if is_unsafe_member_name(member.name) or member.issym() or member.islnk() or member.isdev():
                    if ext in AUDIO_EXTENSIONS or ext == "json" or not member.isfile():
                        yield RawObject(member_uri, unit.uri, member.size, "", {}, None, "unsafe_path",
                                        f"unsafe_path: tar member {member.name!r} is absolute, climbs out with '..', "
                                        f"or is a link/device; not read")
                    continue
                if not member.isfile():
                    continue
                if ext == "json":
                    data = tar.extractfile(member).read()  # type: ignore[union-attr]
                    try:
                        sample_labels = json.loads(data)
                    except json.JSONDecodeError:
                        sample_labels = {}
                    continue
                if ext not in AUDIO_EXTENSIONS:
                    continue
                fh, sha, size = _spool(tar.extractfile(member))  # type: ignore[arg-type]
                pending.append(RawObject(member_uri, unit.uri, size, sha, {}, fh))
            yield from flush()
    except (tarfile.TarError, OSError, EOFError) as exc:
        yield from flush()
        yield RawObject(f"{unit.uri}#", unit.uri, None, "", labels, None, "read_error",
                        f"read_error: {unit.uri} is not a readable tar shard ({exc})")


def iter_raw_objects(unit: SourceUnit, storage: StorageConfig) -> Iterator[RawObject]:
    """The sources inside one unit; callers must ``close()`` each object they get."""
    labels = json.loads(unit.labels_json) if unit.labels_json else {}
    if unit.kind == "missing":
        yield RawObject(unit.uri, None, None, "", labels, None, "missing_file", f"missing_file: {unit.error}")
    elif unit.kind == "tar":
        yield from _iter_tar(unit, storage, labels)
    else:
        yield _open_file(unit, storage, labels)
