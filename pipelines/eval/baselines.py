"""Classic codec baselines (Codec2, Opus) as round trips on 16 kHz mono float audio.

Why the real binaries: the project's codec is judged against what people
actually ship, so each baseline runs the Debian command-line coder
(``c2enc``/``c2dec`` from ``codec2``, ``opusenc``/``opusdec`` from
``opus-tools``) over pipes, not a re-implementation.

Why alignment: a codec delays its output (framing, look-ahead, resampling),
and sample-level metrics (SI-SDR, STOI) need the decoded signal on the
reference's time axis. :func:`align_to_reference` finds the lag by
cross-correlation within a bounded window (default +-100 ms), of envelopes
first and then of waveforms, and shifts and trims the output to the input's
length. Opus comes out within 1-2 samples of the input (opusdec removes the
pre-skip); Codec2 lags 15-35 ms, by an amount that varies by a few ms from
clip to clip because it interpolates its parameters between frames.

Bit rates are measured from the bytes the encoder wrote, over the input's
duration. Codec2 writes headerless frames padded to whole bytes, so 700C
(28 bits / 40 ms) costs 800 bit/s as stored; ``nominal_bitrate_bps`` keeps
the mode's name. Opus sits in Ogg: ``bitrate_bps`` counts the Opus packets
only, ``container_bitrate_bps`` the whole Ogg file (headers and page
overhead, large on short clips).
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from functools import partial
from types import MappingProxyType
from typing import Callable, Literal, Mapping

import numpy as np
import soxr
from scipy import signal

from pipelines.audio.flac import quantize_pcm16

__all__ = [
    "BASELINES",
    "CODEC2_MODES",
    "CodecNotInstalledError",
    "CodecRoundTrip",
    "align_to_reference",
    "roundtrip_codec2",
    "roundtrip_opus",
    "run_baseline",
]

SAMPLE_RATE_HZ = 16000
Codec2Mode = Literal["700C", "1200", "1600", "3200"]

# mode -> (nominal bit/s, frame length in samples at 8 kHz)
CODEC2_MODES: dict[str, tuple[int, int]] = {"700C": (700, 320), "1200": (1200, 320), "1600": (1600, 320),
                                            "3200": (3200, 160)}
_CODEC2_RATE_HZ = 8000
_MAX_LAG_S = 0.1
_ENVELOPE_BAND = signal.butter(4, [100, 3800], btype="bandpass", fs=SAMPLE_RATE_HZ, output="sos")
_ENVELOPE_SMOOTH = signal.butter(2, 100, fs=SAMPLE_RATE_HZ, output="sos")
_ENVELOPE_MIN_SAMPLES = 64
_REFINE_LAG_SAMPLES = 24  # 1.5 ms: about half the period of a high voice


class CodecNotInstalledError(RuntimeError):
    """A baseline's command-line coder is not on this machine."""


@dataclass(frozen=True)
class CodecRoundTrip:
    """One clip through a codec: the decoded audio on the input's time axis and what it cost.

    ``decoded`` is float32 at 16 kHz, the same length as the input.
    ``delay_samples`` is the lag removed by alignment (positive: the codec
    delayed the signal); ``alignment_correlation`` the normalized correlation
    of input and aligned output (near 1 for waveform coders, lower for
    Codec2, which synthesizes its own phase).
    """

    codec_name: str
    decoded: np.ndarray
    sample_rate_hz: int
    nominal_bitrate_bps: float
    bitrate_bps: float
    container_bitrate_bps: float
    encoded_bytes: int
    payload_bytes: int
    delay_samples: int
    alignment_correlation: float


def roundtrip_codec2(samples: np.ndarray, mode: Codec2Mode, *, c2enc: str = "c2enc",
                     c2dec: str = "c2dec") -> CodecRoundTrip:
    """Encode and decode 16 kHz mono ``samples`` with Codec2 at ``mode`` (narrowband: via 8 kHz).

    Args:
        samples: float mono audio at 16 kHz, values in [-1, 1].
        mode: one of ``CODEC2_MODES`` ("700C", "1200", "1600", "3200"; case-insensitive).
        c2enc, c2dec: executables (names on PATH or paths).

    Returns:
        The aligned round trip; the input is zero-padded to whole frames before encoding.

    Example:
        >>> x = np.sin(np.linspace(0, 2000, 16000)).astype(np.float32) * 0.3
        >>> rt = roundtrip_codec2(x, "1200")
        >>> rt.decoded.shape == x.shape, round(rt.bitrate_bps)
        (True, 1200)
    """
    key = mode.upper()
    if key not in CODEC2_MODES:
        raise ValueError(f"unknown Codec2 mode {mode!r}; expected one of {sorted(CODEC2_MODES)}")
    x = _check_samples(samples)
    nominal_bps, frame_samples = CODEC2_MODES[key]
    narrow = soxr.resample(x, SAMPLE_RATE_HZ, _CODEC2_RATE_HZ, quality="HQ")
    narrow = np.pad(narrow, (0, -narrow.size % frame_samples))
    bits = _run_coder(c2enc, [key, "-", "-"], quantize_pcm16(narrow).tobytes(), package="codec2")
    pcm = _run_coder(c2dec, [key, "-", "-"], bits, package="codec2")
    wide = soxr.resample(np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0, _CODEC2_RATE_HZ,
                         SAMPLE_RATE_HZ, quality="HQ")
    bitrate = _bitrate_bps(len(bits), x.size)
    return _finish(f"codec2_{key.lower()}", x, wide, nominal_bps, bitrate, bitrate, len(bits), len(bits))


def roundtrip_opus(samples: np.ndarray, bitrate_kbps: float, *, opusenc: str = "opusenc",
                   opusdec: str = "opusdec") -> CodecRoundTrip:
    """Encode and decode 16 kHz mono ``samples`` with Opus (VBR, 20 ms frames, speech tuning).

    Opus is fed 16 kHz directly (wideband input) and left to choose its coded
    bandwidth: at 6 and 8 kbit/s libopus 1.3 picks narrowband (4 kHz), and
    that is its best setting here: forcing wideband (OPUS_SET_BANDWIDTH)
    lowered PESQ-WB on espeak-ng speech from 1.58 to 1.16 at 6 kbit/s and
    from 2.04 to 1.73 at 8. Decoding is to float (no dither), so the round
    trip is deterministic.

    Args:
        samples: float mono audio at 16 kHz, values in [-1, 1].
        bitrate_kbps: target bit rate in kbit/s (opusenc accepts 6-256).
        opusenc, opusdec: executables (names on PATH or paths).

    Example:
        >>> x = np.sin(np.linspace(0, 2000, 16000)).astype(np.float32) * 0.3
        >>> roundtrip_opus(x, 8).decoded.shape == x.shape
        True
    """
    x = _check_samples(samples)
    args = ["--quiet", "--speech", "--bitrate", f"{bitrate_kbps:g}", "--raw", "--raw-bits", "16",
            "--raw-rate", str(SAMPLE_RATE_HZ), "--raw-chan", "1", "-", "-"]
    ogg = _run_coder(opusenc, args, quantize_pcm16(x).tobytes(), package="opus-tools")
    pcm = _run_coder(opusdec, ["--quiet", "--rate", str(SAMPLE_RATE_HZ), "--float", "-", "-"], ogg,
                     package="opus-tools")
    payload = _measure_opus_payload_bytes(ogg)
    return _finish(f"opus_{bitrate_kbps:g}k", x, np.frombuffer(pcm, dtype="<f4"), 1000.0 * bitrate_kbps,
                   _bitrate_bps(payload, x.size), _bitrate_bps(len(ogg), x.size), len(ogg), payload)


def align_to_reference(reference: np.ndarray, decoded: np.ndarray, *,
                       max_lag_samples: int = int(_MAX_LAG_S * SAMPLE_RATE_HZ)) -> tuple[np.ndarray, int, float]:
    """Shift ``decoded`` onto ``reference``'s time axis and trim or zero-pad it to the same length.

    Two stages, because a vocoder (Codec2) synthesizes its own phase and its
    waveform correlation peaks at arbitrary pitch periods: first the lag of
    the best-correlated amplitude envelopes (of the 100-3800 Hz band, which
    every baseline keeps) within +-``max_lag_samples``, then the waveform
    correlation peak within +-1.5 ms of it for sample accuracy on waveform
    coders (Opus). Positive lag: ``decoded`` lags behind.

    Returns:
        (aligned float32 array of ``len(reference)``, lag in samples, normalized correlation at that lag).
    """
    ref = np.asarray(reference, dtype=np.float64)
    dec = np.asarray(decoded, dtype=np.float64)
    if ref.size == 0 or dec.size == 0:
        return np.zeros(ref.size, dtype=np.float32), 0, float("nan")
    coarse = _peak_lag(_envelope(dec), _envelope(ref), 0, max_lag_samples)
    lag = _peak_lag(dec, ref, coarse, _REFINE_LAG_SAMPLES)
    shifted = dec[lag:] if lag >= 0 else np.concatenate([np.zeros(-lag), dec])
    aligned = np.zeros(ref.size)
    aligned[: min(ref.size, shifted.size)] = shifted[: ref.size]
    norm = np.linalg.norm(ref) * np.linalg.norm(aligned)
    correlation = float(np.dot(ref, aligned) / norm) if norm > 0 else float("nan")
    return aligned.astype(np.float32), lag, correlation


BASELINES: Mapping[str, Callable[[np.ndarray], CodecRoundTrip]] = MappingProxyType({
    "codec2_700c": partial(roundtrip_codec2, mode="700C"),
    "codec2_1200": partial(roundtrip_codec2, mode="1200"),
    "codec2_1600": partial(roundtrip_codec2, mode="1600"),
    "codec2_3200": partial(roundtrip_codec2, mode="3200"),
    "opus_6k": partial(roundtrip_opus, bitrate_kbps=6),
    "opus_8k": partial(roundtrip_opus, bitrate_kbps=8),
})
"""Baseline name -> round trip on 16 kHz mono samples (read-only; the names the eval tables use)."""


def run_baseline(name: str, samples: np.ndarray) -> CodecRoundTrip:
    """Round-trip ``samples`` through the baseline registered as ``name`` in :data:`BASELINES`."""
    try:
        roundtrip = BASELINES[name]
    except KeyError:
        raise ValueError(f"unknown baseline {name!r}; expected one of {sorted(BASELINES)}") from None
    return roundtrip(samples)


def _check_samples(samples: np.ndarray) -> np.ndarray:
    """1-D, non-empty, finite float samples -> float32."""
    x = np.asarray(samples)
    if x.ndim != 1 or x.size == 0:
        raise ValueError(f"expected non-empty mono samples of shape (n,), got shape {x.shape}")
    if not np.issubdtype(x.dtype, np.floating) or not np.all(np.isfinite(x)):
        raise ValueError("expected finite float samples in [-1, 1]")
    return x.astype(np.float32, copy=False)


def _run_coder(executable: str, args: list[str], stdin: bytes, *, package: str) -> bytes:
    """Run one coder over pipes; a missing binary names the Debian package that ships it."""
    path = shutil.which(executable)
    if path is None:
        raise CodecNotInstalledError(f"{executable!r} not found; install the Debian package {package!r} "
                                     f"(apt-get install {package})")
    done = subprocess.run([path, *args], input=stdin, capture_output=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{executable} {' '.join(args)} failed with exit code {done.returncode}: "
                           f"{done.stderr.decode(errors='replace').strip()[-500:]}")
    return done.stdout


def _finish(codec_name: str, reference: np.ndarray, decoded: np.ndarray, nominal_bps: float, bitrate_bps: float,
            container_bitrate_bps: float, encoded_bytes: int, payload_bytes: int) -> CodecRoundTrip:
    """Align the decoded audio and pack the result."""
    aligned, lag, correlation = align_to_reference(reference, decoded)
    return CodecRoundTrip(codec_name=codec_name, decoded=aligned, sample_rate_hz=SAMPLE_RATE_HZ,
                          nominal_bitrate_bps=float(nominal_bps), bitrate_bps=bitrate_bps,
                          container_bitrate_bps=container_bitrate_bps, encoded_bytes=encoded_bytes,
                          payload_bytes=payload_bytes, delay_samples=lag, alignment_correlation=correlation)


def _bitrate_bps(n_bytes: int, n_samples: int) -> float:
    """Bytes spent on ``n_samples`` of 16 kHz input -> bit/s."""
    return 8.0 * n_bytes * SAMPLE_RATE_HZ / n_samples


def _measure_opus_payload_bytes(ogg: bytes) -> int:
    """Bytes of the Opus audio packets in an Ogg stream: all packets but OpusHead and OpusTags (RFC 7845)."""
    offset, packets_done, current, payload = 0, 0, 0, 0
    while offset + 27 <= len(ogg):
        if ogg[offset:offset + 4] != b"OggS":
            raise ValueError(f"not an Ogg page at byte {offset}")
        n_segments = ogg[offset + 26]
        lacing = ogg[offset + 27: offset + 27 + n_segments]
        for size in lacing:
            current += size
            if size < 255:  # a lacing value below 255 ends a packet
                if packets_done >= 2:
                    payload += current
                packets_done += 1
                current = 0
        offset += 27 + n_segments + sum(lacing)
    return payload


def _peak_lag(a: np.ndarray, b: np.ndarray, center: int, radius: int) -> int:
    """Lag of ``a`` behind ``b`` with the largest cross-correlation within ``center`` +- ``radius``."""
    xcorr = signal.correlate(a, b, mode="full", method="fft")
    zero_lag = b.size - 1
    lo = min(max(0, zero_lag + center - radius), xcorr.size - 1)
    hi = max(min(xcorr.size, zero_lag + center + radius + 1), lo + 1)
    return int(np.argmax(xcorr[lo:hi])) + lo - zero_lag


def _envelope(x: np.ndarray) -> np.ndarray:
    """Zero-phase amplitude envelope (~5 ms smoothing) of the 100-3800 Hz band."""
    padded = np.pad(x, (0, max(0, _ENVELOPE_MIN_SAMPLES - x.size)))  # filtfilt needs more samples than its padding
    band = signal.sosfiltfilt(_ENVELOPE_BAND, padded)
    return signal.sosfiltfilt(_ENVELOPE_SMOOTH, np.abs(band))[: x.size]
