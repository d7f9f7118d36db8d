"""Writing audio as users have it (WAV/FLAC/OGG, many rates, mono/stereo), WebDataset shards and the manifest.

Every writer is byte-deterministic, so a rebuild with the same config gives
identical files: libsndfile picks a random Ogg stream serial number, so Ogg
pages are rewritten with a serial derived from the item (CRCs recomputed);
tar members get fixed mtimes and owners.
"""

from __future__ import annotations

import io
import json
import os
import struct
import tarfile
from pathlib import Path
from collections.abc import Iterable

import numpy as np
import soundfile as sf

from schemas.labels import ManifestRow

__all__ = [
    "ENCODINGS", "OPUS_RATES_HZ", "encode_audio", "normalize_ogg_serial", "zero_wav_peak_timestamp",
    "write_bytes_atomic",
    "write_bytes_if_changed", "shard_key", "write_shards", "format_manifest", "validate_row",
]

#: encoding name -> (libsndfile format, subtype, file suffix)
ENCODINGS: dict[str, tuple[str, str, str]] = {
    "wav_pcm16": ("WAV", "PCM_16", ".wav"),
    "wav_pcm24": ("WAV", "PCM_24", ".wav"),
    "wav_float": ("WAV", "FLOAT", ".wav"),
    "flac_pcm16": ("FLAC", "PCM_16", ".flac"),
    "flac_pcm24": ("FLAC", "PCM_24", ".flac"),
    "ogg_vorbis": ("OGG", "VORBIS", ".ogg"),
    "ogg_opus": ("OGG", "OPUS", ".ogg"),
}
OPUS_RATES_HZ = (8000, 12000, 16000, 24000, 48000)


def _ogg_crc_table() -> list[int]:
    table = []
    for i in range(256):
        r = i << 24
        for _ in range(8):
            r = ((r << 1) ^ 0x04C11DB7) if r & 0x80000000 else (r << 1)
        table.append(r & 0xFFFFFFFF)
    return table


_OGG_CRC = _ogg_crc_table()


def _ogg_crc(data: bytes) -> int:
    crc = 0
    for byte in data:
        crc = ((crc << 8) & 0xFFFFFFFF) ^ _OGG_CRC[((crc >> 24) & 0xFF) ^ byte]
    return crc


def normalize_ogg_serial(data: bytes, serial: int) -> bytes:
    """Set every Ogg page's stream serial number to ``serial`` and fix the page CRCs."""
    out = bytearray(data)
    pos = 0
    while pos < len(out):
        if out[pos:pos + 4] != b"OggS":
            raise ValueError(f"not an Ogg page at byte {pos}")
        nseg = out[pos + 26]
        size = 27 + nseg + sum(out[pos + 27:pos + 27 + nseg])
        struct.pack_into("<I", out, pos + 14, serial & 0xFFFFFFFF)
        struct.pack_into("<I", out, pos + 22, 0)
        struct.pack_into("<I", out, pos + 22, _ogg_crc(bytes(out[pos:pos + size])))
        pos += size
    return bytes(out)


def zero_wav_peak_timestamp(data: bytes) -> bytes:
    """Zero the time stamp libsndfile puts in the ``PEAK`` chunk of float WAVs (else every write differs)."""
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        return data
    out = bytearray(data)
    pos = 12
    while pos + 8 <= len(out):
        chunk, size = bytes(out[pos:pos + 4]), struct.unpack_from("<I", out, pos + 4)[0]
        if chunk == b"PEAK" and size >= 8:
            struct.pack_into("<I", out, pos + 12, 0)  # after the version word
        pos += 8 + size + (size & 1)
    return bytes(out)


def encode_audio(samples: np.ndarray, sample_rate_hz: int, encoding: str, *, serial: int = 1) -> bytes:
    """Encode float samples (frames, or frames x channels) to file bytes; peaks above 0.99 are scaled down."""
    fmt, subtype, _ = ENCODINGS[encoding]
    x = np.asarray(samples, dtype=np.float32)
    peak = float(np.max(np.abs(x))) if x.size else 0.0
    if peak > 0.99 and subtype != "FLOAT":
        x = x * (0.99 / peak)
    buf = io.BytesIO()
    sf.write(buf, x, sample_rate_hz, format=fmt, subtype=subtype)
    data = buf.getvalue()
    if fmt == "OGG":
        return normalize_ogg_serial(data, serial)
    return zero_wav_peak_timestamp(data) if fmt == "WAV" else data


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Write via a temporary sibling and rename: a killed build never leaves half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def write_bytes_if_changed(path: Path, data: bytes) -> bool:
    """Write only when the content differs (keeps mtimes of unchanged outputs); True if written."""
    if path.exists() and path.stat().st_size == len(data) and path.read_bytes() == data:
        return False
    write_bytes_atomic(path, data)
    return True


def shard_key(rel_path: str) -> str:
    """WebDataset key of a file: its path under ``audio/`` without suffix, dots replaced (keys end at a dot)."""
    rel = rel_path.removeprefix("audio/")
    stem, _, _ = rel.rpartition(".")
    return stem.replace(".", "_")


def validate_row(row: dict) -> dict:
    """Validate a manifest row against ``ManifestRow``; returns its JSON form without None fields."""
    return ManifestRow.model_validate(row).model_dump(mode="json", exclude_none=True)


def format_manifest(rows: Iterable[dict]) -> bytes:
    """JSONL bytes of validated rows, sorted by path."""
    lines = [json.dumps(validate_row(r), ensure_ascii=False, sort_keys=True) for r in rows]
    lines.sort(key=lambda line: json.loads(line)["path"])
    return ("\n".join(lines) + "\n").encode() if lines else b""


def _tar_member(name: str, data: bytes) -> tuple[tarfile.TarInfo, io.BytesIO]:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode, info.uid, info.gid, info.uname, info.gname = len(data), 0, 0o644, 0, 0, "", ""
    return info, io.BytesIO(data)


def write_shards(root: Path, rows: list[dict], shard_dir: Path, *, max_bytes: int, max_files: int) -> list[Path]:
    """Pack every manifest file as ``<key>.<ext>`` + ``<key>.json`` (labels without path) into tar shards.

    Shards are ``seed-000000.tar``...; old shards in ``shard_dir`` are removed
    first. Returns the shard paths.
    """
    shard_dir.mkdir(parents=True, exist_ok=True)
    for old in shard_dir.glob("seed-*.tar"):
        old.unlink()
    written: list[Path] = []
    tar: tarfile.TarFile | None = None
    count = 0
    for row in sorted(rows, key=lambda r: r["path"]):
        data = (root / row["path"]).read_bytes()
        labels = {k: v for k, v in validate_row(row).items() if k != "path"}
        blob = json.dumps(labels, ensure_ascii=False, sort_keys=True).encode()
        sample_bytes = len(data) + len(blob) + 4 * 512  # two members, header + padding each (PAX may add more)
        full = tar is not None and count > 0 and tar.offset + sample_bytes + tarfile.RECORDSIZE > max_bytes
        if tar is None or count >= max_files or full:
            if tar is not None:
                tar.close()
            path = shard_dir / f"seed-{len(written):06d}.tar"
            tar = tarfile.open(path, "w", format=tarfile.PAX_FORMAT)
            written.append(path)
            count = 0
        key = shard_key(row["path"])
        ext = row["path"].rpartition(".")[2]
        tar.addfile(*_tar_member(f"{key}.{ext}", data))
        tar.addfile(*_tar_member(f"{key}.json", blob))
        count += 1
    if tar is not None:
        tar.close()
    return written
