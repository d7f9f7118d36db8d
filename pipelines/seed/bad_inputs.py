"""Deliberately broken inputs under ``bad/``, each with the reject reason curation must give it.

Kept apart from ``audio/`` so the good manifest stays clean. ``EXPECTED.json``
maps a path (relative to ``bad/``) to the reason, or to null for inputs that
are valid and must be accepted (the long file: it must be streamed, not
loaded whole). Members of the unsafe tar are keyed ``<tar>::<member name>``:
the reader must refuse each unsafe member, never write outside its work dir,
and may still take the safe one.
"""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path
from collections.abc import Callable

import numpy as np
import soundfile as sf

from pipelines.seed.effects import resample
from pipelines.seed.formats import encode_audio, validate_row, write_bytes_atomic, write_bytes_if_changed
from pipelines.seed.items import SynthSource
from pipelines.seed.voices import synthesize

__all__ = ["REJECT_REASONS", "BadInput", "plan_bad_inputs", "expected_reasons", "write_bad_inputs"]

REJECT_REASONS = ("empty_file", "decode_error", "unsupported_format", "non_finite_samples", "no_speech",
                  "unsafe_path", "missing_file")
_TEXT = "This recording is part of the broken inputs. It must never reach the training set."
_VOICE = "espeak-ng:en-us+m3"
_RATE = 16000
_UNSAFE_TAR = "shards/unsafe-000000.tar"
_UNSAFE_MEMBERS = ("/etc/evil.wav", "../evil.wav", "nested/../../evil.wav")
_SYMLINK_MEMBER = "link_to_passwd.wav"


@dataclass(frozen=True)
class BadInput:
    """One broken input: where it goes, what curation must say, how to make its bytes."""

    rel_path: str
    reason: str | None
    description: str
    make: Callable[[], bytes]
    spec: str


def _speech() -> np.ndarray:
    x, sr, _ = synthesize(SynthSource(_VOICE, _TEXT))
    return resample(x, sr, _RATE)


def _wav(x: np.ndarray, subtype: str = "PCM_16") -> bytes:
    return encode_audio(x, _RATE, "wav_float" if subtype == "FLOAT" else "wav_pcm16")


def _ffmpeg(x: np.ndarray, args: list[str], suffix: str) -> bytes:
    """Encode with ffmpeg (bit-exact flags so the bytes do not depend on the build date)."""
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "in.wav", Path(tmp) / f"out{suffix}"
        src.write_bytes(_wav(x))
        cmd = ["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-i", str(src), "-map_metadata", "-1",
               "-fflags", "+bitexact", "-flags:a", "+bitexact", *args, str(dst)]
        subprocess.run(cmd, check=True, capture_output=True)
        return dst.read_bytes()


def _codec2_bits(x: np.ndarray) -> bytes:
    with tempfile.TemporaryDirectory() as tmp:
        raw, bits = Path(tmp) / "in.raw", Path(tmp) / "speech.c2"
        np.round(resample(x, _RATE, 8000) * 32767 * 0.9).astype("<i2").tofile(raw)
        subprocess.run(["c2enc", "1200", str(raw), str(bits)], check=True, capture_output=True)
        return bits.read_bytes()


def _non_finite(x: np.ndarray) -> bytes:
    y = x.astype(np.float32).copy()
    y[::97] = np.nan
    y[1::211] = np.inf
    y[2::307] = -np.inf
    return _wav(y, "FLOAT")


def _unsafe_tar(x: np.ndarray) -> bytes:
    wav = _wav(x)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        def add(name: str, data: bytes) -> None:
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), 0, 0o644
            tar.addfile(info, io.BytesIO(data))

        add("ok_000.wav", wav)
        add("ok_000.json", json.dumps({"transcript": _TEXT, "language": "en"}).encode())
        for name in _UNSAFE_MEMBERS:
            add(name, wav)
        link = tarfile.TarInfo(_SYMLINK_MEMBER)
        link.type, link.linkname, link.mtime = tarfile.SYMTYPE, "/etc/passwd", 0
        tar.addfile(link)
    return buf.getvalue()


def _long_file(seconds: float) -> Callable[[], bytes]:
    def make() -> bytes:
        x = _speech()
        gap = np.zeros(int(0.8 * _RATE), dtype=np.float32)
        unit = np.concatenate([x, gap])
        n = int(seconds * _RATE)
        buf = io.BytesIO()
        with sf.SoundFile(buf, "w", _RATE, 1, format="FLAC", subtype="PCM_16") as f:
            written = 0
            while written < n:  # stream in blocks: never the whole hour in memory
                block = np.tile(unit, 60)[: n - written]
                f.write(block)
                written += block.size
        return buf.getvalue()
    return make


def plan_bad_inputs(long_file_s: float | None) -> list[BadInput]:
    """Every broken input (the long file only when ``long_file_s`` is set)."""
    speech = _speech

    def truncated_flac() -> bytes:
        data = encode_audio(speech(), _RATE, "flac_pcm16")
        return data[: int(len(data) * 0.4)]

    aac = ["-c:a", "aac", "-b:a", "32k", "-f", "mp4"]
    mkv = ["-c:a", "libopus", "-b:a", "16k", "-f", "matroska"]
    items = [
        BadInput("empty.wav", "empty_file", "0 bytes", lambda: b"", "empty"),
        BadInput("truncated_header.wav", "decode_error", "first 20 bytes of a WAV (header cut)",
                 lambda: _wav(speech())[:20], "trunc-header"),
        BadInput("truncated.flac", "decode_error", "FLAC cut at 40% of its bytes (decoder loses sync)",
                 truncated_flac, "trunc-flac"),
        BadInput("random_bytes.wav", "decode_error", "4 KiB of seeded random bytes named .wav",
                 lambda: b"JUNK" + np.random.default_rng(7).bytes(4092), "random"),
        BadInput("non_finite.wav", "non_finite_samples", "32-bit float WAV of speech with NaN, +inf, -inf samples",
                 lambda: _non_finite(speech()), "nonfinite"),
        BadInput("all_silence.wav", "no_speech", "5 s of digital silence, 16-bit WAV",
                 lambda: _wav(np.zeros(5 * _RATE, dtype=np.float32)), "silence"),
        BadInput("unsupported_aac.m4a", "unsupported_format",
                 "speech as AAC in MP4 (ffmpeg; magic 'ftyp' at byte 4); libsndfile has no AAC",
                 lambda: _ffmpeg(speech(), aac, ".m4a"), "aac"),
        BadInput("unsupported_opus.mkv", "unsupported_format",
                 "speech as Opus in Matroska (ffmpeg; EBML magic 1a45dfa3); libsndfile reads Opus only in Ogg",
                 lambda: _ffmpeg(speech(), mkv, ".mkv"), "mkv"),
        BadInput("unsupported_codec2.c2", "unsupported_format",
                 "codec2 1200 bit/s bitstream (c2enc; header magic c0dec2)", lambda: _codec2_bits(speech()), "c2"),
        BadInput(_UNSAFE_TAR, None, "WebDataset-style tar: one safe sample, members with absolute and '..' "
                 "names, and a symlink to /etc/passwd", lambda: _unsafe_tar(speech()), "tar"),
    ]
    if long_file_s:
        items.append(BadInput(f"long_{int(long_file_s)}s.flac", None,
                              f"valid speech, {long_file_s:g} s long: must be streamed and segmented, not rejected",
                              _long_file(long_file_s), f"long-{long_file_s}"))
    return items


def expected_reasons(items: list[BadInput]) -> dict[str, str | None]:
    """The ``EXPECTED.json`` mapping (tar members as ``<tar>::<member>``)."""
    expected: dict[str, str | None] = {}
    for item in items:
        if item.rel_path == _UNSAFE_TAR:
            expected[f"{_UNSAFE_TAR}::ok_000.wav"] = None
            for name in (*_UNSAFE_MEMBERS, _SYMLINK_MEMBER):
                expected[f"{_UNSAFE_TAR}::{name}"] = "unsafe_path"
        else:
            expected[item.rel_path] = item.reason
    expected["missing/gone.wav"] = "missing_file"
    return dict(sorted(expected.items()))


def write_bad_inputs(bad_dir: Path, items: list[BadInput], done: dict[str, str]) -> dict[str, str]:
    """Write what is missing or changed (``done``: rel_path -> spec digest), plus manifest and EXPECTED.json.

    Returns the new ``done`` mapping (for the ledger).
    """
    new_done = {}
    for item in items:
        digest = hashlib.sha256(f"{item.spec}|{item.description}".encode()).hexdigest()[:16]
        path = bad_dir / item.rel_path
        if done.get(item.rel_path) != digest or not path.exists():
            write_bytes_atomic(path, item.make())
        new_done[item.rel_path] = digest
    rows = [validate_row({"path": i.rel_path, "corpus": "bad", "reject_reason": i.reason,
                          "note": i.description, "language": "en"}) for i in items if i.rel_path != _UNSAFE_TAR]
    rows.append(validate_row({"path": "missing/gone.wav", "corpus": "bad", "reject_reason": "missing_file",
                              "note": "listed here, absent on disk", "language": "en"}))
    manifest = "".join(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n" for r in rows).encode()
    write_bytes_if_changed(bad_dir / "manifest.jsonl", manifest)
    write_bytes_if_changed(bad_dir / "EXPECTED.json",
                           (json.dumps(expected_reasons(items), indent=2, sort_keys=True) + "\n").encode())
    readme = ["# Broken inputs (never mixed into audio/)", "",
              "Expected curation outcome per input: `EXPECTED.json` (null = valid, must be accepted).", ""]
    readme += [f"- `{i.rel_path}` -> `{i.reason}`: {i.description}" if i.rel_path != _UNSAFE_TAR else
               f"- `{i.rel_path}` -> per member, see `EXPECTED.json` (`<tar>::<member>`): {i.description}"
               for i in items]
    readme += ["", "libsndfile says 'Format not recognised' for random bytes and for the unsupported codecs alike:",
               "tell them apart by the container magic (MP4 `ftyp`, Matroska `1a45dfa3`, codec2 `c0dec2`)."]
    readme += ["- `missing/gone.wav` -> `missing_file`: listed in manifest.jsonl, absent on disk", ""]
    write_bytes_if_changed(bad_dir / "README.md", "\n".join(readme).encode())
    return new_done
