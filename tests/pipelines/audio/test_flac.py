"""FLAC storage is exact on the int16 grid; pcm_hash follows the PCM, not the container."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soxr

from pipelines.audio.decode import decode_all
from pipelines.audio.flac import decode_flac, encode_flac, pcm_hash, quantize_pcm16
from tests.factories import write_audio


def test_round_trip_is_exact_on_the_int16_grid(utterances: list[np.ndarray]) -> None:
    on_grid = quantize_pcm16(utterances[0]).astype(np.float32) / 32768
    samples, rate = decode_flac(encode_flac(on_grid, 16000))
    assert rate == 16000 and samples.dtype == np.float32
    np.testing.assert_array_equal(samples, on_grid)


def test_arbitrary_floats_quantize_once_then_stay_fixed(utterances: list[np.ndarray]) -> None:
    x = utterances[1]
    first = encode_flac(x, 16000)
    decoded, _ = decode_flac(first)
    np.testing.assert_array_equal(quantize_pcm16(decoded), quantize_pcm16(x))
    assert np.max(np.abs(decoded - x)) <= 0.5 / 32768 + 1e-9
    assert encode_flac(decoded, 16000) == first  # re-encoding is bit-identical


def test_float32_quantizes_exactly_as_float64(utterances: list[np.ndarray]) -> None:
    rng = np.random.default_rng(3)
    x = np.concatenate([utterances[0], rng.uniform(-1.2, 1.2, 5000).astype(np.float32),
                        (np.arange(-4, 5, dtype=np.float32) + 0.5) / 32768]).astype(np.float32)  # half-way ties too
    np.testing.assert_array_equal(quantize_pcm16(x), quantize_pcm16(x.astype(np.float64)))


def test_out_of_range_samples_clip_instead_of_wrapping() -> None:
    x = np.array([1.5, 1.0, -1.0, -1.5, 0.25], dtype=np.float32)
    decoded, _ = decode_flac(encode_flac(x, 16000))
    np.testing.assert_array_equal(quantize_pcm16(decoded), [32767, 32767, -32768, -32768, 8192])


def test_pcm_hash_is_equal_for_same_pcm_in_wav_and_flac(tmp_path: Path, utterances: list[np.ndarray]) -> None:
    x = quantize_pcm16(utterances[2])  # the same int16 PCM in both (libsndfile's float->int16 differs by container)
    wav = write_audio(tmp_path / "a.wav", x, 16000, subtype="PCM_16")
    flac = write_audio(tmp_path / "a.flac", x, 16000, subtype="PCM_16")
    with open(wav, "rb") as fw, open(flac, "rb") as ff:
        from_wav, _ = decode_all(fw)
        from_flac, _ = decode_all(ff)
    assert pcm_hash(from_wav) == pcm_hash(from_flac) == pcm_hash(decode_flac(encode_flac(from_wav, 16000))[0])
    assert len(pcm_hash(from_wav)) == 32 and int(pcm_hash(from_wav), 16) >= 0


def test_pcm_hash_is_equal_after_resampling_the_same_source(tmp_path: Path, utterances: list[np.ndarray]) -> None:
    """The same 48 kHz PCM in a WAV and in a FLAC resamples to the same 16 kHz PCM: same hash."""
    x48 = quantize_pcm16(soxr.resample(utterances[0], 16000, 48000))
    wav = write_audio(tmp_path / "b.wav", x48, 48000, subtype="PCM_16")
    flac = write_audio(tmp_path / "b.flac", x48, 48000, subtype="PCM_16")
    with open(wav, "rb") as fw, open(flac, "rb") as ff:
        assert pcm_hash(decode_all(fw)[0]) == pcm_hash(decode_all(ff)[0])


def test_pcm_hash_differs_for_different_audio(utterances: list[np.ndarray]) -> None:
    x = utterances[0]
    y = x.copy()
    y[1000] += 2 / 32768  # one sample, two LSBs
    assert pcm_hash(x) != pcm_hash(y)
    assert pcm_hash(x) != pcm_hash(utterances[1])
    assert pcm_hash(x) == pcm_hash(quantize_pcm16(x))  # int16 input hashes as itself
