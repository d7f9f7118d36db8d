"""Tiny audio and rows for tests, in one place (STYLE.md: factories are shared).

Real speech comes from espeak-ng (a real synthesizer, installed by the
Makefile); ``speechlike`` is a cheap harmonic signal with syllable-rate
modulation for tests that only need something a VAD calls speech.
"""

from __future__ import annotations

import io
import shutil
import subprocess
from pathlib import Path

import numpy as np
import soundfile as sf

__all__ = ["speechlike", "silence", "espeak", "write_audio", "flac_bytes"]


def speechlike(duration_s: float, sample_rate_hz: int = 16000, *, seed: int = 0, f0_hz: float = 140.0) -> np.ndarray:
    """A voiced, amplitude-modulated harmonic tone (float32 mono, peak ~0.5)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(duration_s * sample_rate_hz)) / sample_rate_hz
    f0 = f0_hz * (1 + 0.05 * np.sin(2 * np.pi * 0.7 * t))
    phase = 2 * np.pi * np.cumsum(f0) / sample_rate_hz
    x = sum(np.sin(k * phase) / k for k in range(1, 12))
    envelope = 0.5 * (1 + np.sin(2 * np.pi * 4.0 * t)) ** 2
    x = x * envelope + 0.003 * rng.standard_normal(t.size)
    return (0.5 * x / np.max(np.abs(x))).astype(np.float32)


def silence(duration_s: float, sample_rate_hz: int = 16000) -> np.ndarray:
    """Digital silence (float32 mono)."""
    return np.zeros(int(duration_s * sample_rate_hz), dtype=np.float32)


def espeak(text: str, *, voice: str = "en", rate_wpm: int = 160) -> tuple[np.ndarray, int]:
    """Synthesize ``text`` with espeak-ng; returns (float32 mono samples, rate)."""
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise RuntimeError("espeak-ng is not installed; run `make test` (it installs it) or apt-get install espeak-ng")
    wav = subprocess.run([exe, "-v", voice, "-s", str(rate_wpm), "--stdout", text], check=True, capture_output=True).stdout
    samples, rate = sf.read(io.BytesIO(wav), dtype="float32")
    return samples, rate


def write_audio(path: Path, samples: np.ndarray, sample_rate_hz: int, *, format: str | None = None, subtype: str | None = None) -> Path:
    """Write samples to ``path`` (format from the suffix unless given)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), samples, sample_rate_hz, format=format, subtype=subtype)
    return path


def flac_bytes(samples: np.ndarray, sample_rate_hz: int) -> bytes:
    """Encode samples as FLAC in memory."""
    buf = io.BytesIO()
    sf.write(buf, samples, sample_rate_hz, format="FLAC", subtype="PCM_16")
    return buf.getvalue()


def espeak_16k(text: str, *, voice: str = "en", rate_wpm: int = 160) -> np.ndarray:
    """espeak-ng speech resampled to 16 kHz (float32 mono), the rate the pipeline works at."""
    import soxr

    samples, rate = espeak(text, voice=voice, rate_wpm=rate_wpm)
    return soxr.resample(samples, rate, 16000).astype(np.float32)


def add_white_noise(clean: np.ndarray, snr_db: float, *, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``clean`` plus Gaussian white noise at ``snr_db`` (mean power ratio over the whole clip).

    Returns (noisy float32, the noise added) so a test can recompute the true SNR over any span.
    """
    noise = np.random.default_rng(seed).standard_normal(clean.size)
    noise *= np.sqrt(np.mean(np.square(clean, dtype=np.float64)) / 10 ** (snr_db / 10) / np.mean(noise**2))
    return (clean + noise).astype(np.float32), noise.astype(np.float32)


__all__ += ["espeak_16k", "add_white_noise"]
