"""Real low-rate codec passes through Debian's tools: codec2 (``c2enc``/``c2dec``) and Opus (``opusenc``/``opusdec``).

Real binaries rather than a simulation, because codec artefacts (codec2's
vocoder buzz, Opus's SILK band-limiting at 6 kbps) are what a channel
factor must learn to see.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

from pipelines.seed.effects import resample

__all__ = ["CodecError", "codec2_roundtrip", "opus_roundtrip"]


class CodecError(RuntimeError):
    """A codec tool is missing or failed."""


def _tool(name: str, package: str) -> str:
    exe = shutil.which(name)
    if exe is None:
        raise CodecError(f"{name} not found: install the Debian package {package}")
    return exe


def _run(cmd: list[str]) -> None:
    proc = subprocess.run(cmd, capture_output=True)
    if proc.returncode != 0:
        err = proc.stderr.decode(errors="replace")[-400:]
        raise CodecError(f"{Path(cmd[0]).name} failed ({proc.returncode}): {err}")


def _to_int16(samples: np.ndarray) -> np.ndarray:
    peak = float(np.max(np.abs(samples))) if samples.size else 0.0
    x = samples / peak * 0.9 if peak > 1.0 else samples
    return np.round(np.clip(x, -1.0, 1.0) * 32767).astype("<i2")


def codec2_roundtrip(samples: np.ndarray, sample_rate_hz: int, mode_bps: int) -> tuple[np.ndarray, int, dict]:
    """Encode and decode with codec2 at ``mode_bps`` (700 means mode 700C); output is 8 kHz."""
    enc, dec = _tool("c2enc", "codec2"), _tool("c2dec", "codec2")
    mode = "700C" if mode_bps == 700 else str(mode_bps)
    x = resample(samples, sample_rate_hz, 8000)
    with tempfile.TemporaryDirectory() as tmp:
        raw_in, bits, raw_out = Path(tmp) / "in.raw", Path(tmp) / "speech.bit", Path(tmp) / "out.raw"
        _to_int16(x).tofile(raw_in)
        _run([enc, mode, str(raw_in), str(bits)])
        _run([dec, mode, str(bits), str(raw_out)])
        y = np.fromfile(raw_out, dtype="<i2").astype(np.float32) / 32768.0
    return y, 8000, {"codec": "codec2", "codec_bitrate_bps": int(mode_bps), "codec2_mode": mode}


def opus_roundtrip(samples: np.ndarray, sample_rate_hz: int, bitrate_bps: int) -> tuple[np.ndarray, int, dict]:
    """Encode with opusenc at ``bitrate_bps`` (speech tuning) and decode; returned at the input rate."""
    enc, dec = _tool("opusenc", "opus-tools"), _tool("opusdec", "opus-tools")
    with tempfile.TemporaryDirectory() as tmp:
        wav_in, packed, wav_out = Path(tmp) / "in.wav", Path(tmp) / "speech.opus", Path(tmp) / "out.wav"
        sf.write(str(wav_in), _to_int16(samples), sample_rate_hz, subtype="PCM_16")
        _run([enc, "--quiet", "--speech", "--serial", "1", "--bitrate", f"{bitrate_bps / 1000:.3f}", str(wav_in),
              str(packed)])
        _run([dec, "--quiet", "--rate", "48000", str(packed), str(wav_out)])
        y, rate = sf.read(str(wav_out), dtype="float32", always_2d=True)
    y = resample(y.mean(axis=1), rate, sample_rate_hz)[: samples.size]
    return y, sample_rate_hz, {"codec": "opus", "codec_bitrate_bps": int(bitrate_bps)}
