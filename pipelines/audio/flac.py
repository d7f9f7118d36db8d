"""Segment audio as stored: 16-bit FLAC bytes and a hash of the PCM they hold.

Why quantize here rather than let libsndfile do it: libsndfile writes floats
to 16-bit with a 32767 scale but reads them back with 1/32768, so a
write/read cycle is not the identity, and values beyond +-1 wrap unless
clipping is switched on. Quantizing once with ``round(x * 32768)`` clipped
to the int16 range makes ``decode_flac(encode_flac(x))`` land exactly on
``quantize_pcm16(x) / 32768``, and re-encoding that is bit-exact.

``pcm_hash`` hashes those int16 samples (not the container bytes), so the
same audio reached through WAV, FLAC or another resampling path hashes equal
exactly when its 16-bit PCM is equal: the dedup key of the ``segments`` table.
Both take int16 as it is, so a caller that needs both quantizes once.
"""

from __future__ import annotations

import hashlib
import io

import numpy as np
import soundfile as sf

__all__ = ["decode_flac", "encode_flac", "pcm_hash", "quantize_pcm16"]


def quantize_pcm16(samples: np.ndarray) -> np.ndarray:
    """Float samples in [-1, 1) -> int16 (round half to even, clipped); int16 passes through."""
    x = np.asarray(samples)
    if x.dtype == np.int16:
        return x
    if not np.issubdtype(x.dtype, np.floating):
        raise TypeError(f"expected float or int16 samples, got {x.dtype}")
    # float32 stays float32: scaling by 2**15 and rounding are exact there, so the result is the float64 one.
    scaled = x * np.float32(32768.0) if x.dtype == np.float32 else x.astype(np.float64) * 32768.0
    return np.clip(np.rint(scaled), -32768, 32767).astype(np.int16)


def encode_flac(samples: np.ndarray, sample_rate_hz: int) -> bytes:
    """Mono (n,) or multichannel (n, channels) samples -> 16-bit FLAC bytes, in memory.

    Example:
        >>> import numpy as np
        >>> x = np.linspace(-0.5, 0.5, 1600, dtype=np.float32)
        >>> y, rate = decode_flac(encode_flac(x, 16000))
        >>> bool(np.array_equal(quantize_pcm16(y), quantize_pcm16(x))), rate
        (True, 16000)
    """
    buffer = io.BytesIO()
    sf.write(buffer, quantize_pcm16(samples), sample_rate_hz, format="FLAC", subtype="PCM_16")
    return buffer.getvalue()


def decode_flac(data: bytes) -> tuple[np.ndarray, int]:
    """FLAC bytes -> (float32 samples scaled by 1/32768, sample rate in Hz)."""
    samples, rate = sf.read(io.BytesIO(data), dtype="float32")
    return samples, int(rate)


def pcm_hash(samples: np.ndarray) -> str:
    """Hex blake2b-128 of the little-endian int16 PCM (see module docstring)."""
    pcm = quantize_pcm16(samples).astype("<i2", copy=False)
    return hashlib.blake2b(np.ascontiguousarray(pcm).tobytes(), digest_size=16).hexdigest()
