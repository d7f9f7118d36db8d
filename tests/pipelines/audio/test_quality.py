"""Quality metrics on real espeak-ng speech with known degradations."""

from __future__ import annotations

import time

import numpy as np
import pytest
import scipy.signal
import soxr

from pipelines.audio.decode import AudioChunk
from pipelines.audio.quality import measure_loudness_lufs, measure_quality
from pipelines.audio.segment import Segmenter, SpeechSegment
from tests.factories import add_white_noise, silence

RATE_HZ = 16000


def _segment_utterance(x: np.ndarray, clipped: np.ndarray | None = None) -> SpeechSegment:
    """The one segment utterance mode makes of ``x`` (as the curation pipeline would)."""
    clipped = np.zeros(x.size, bool) if clipped is None else clipped
    segments = list(Segmenter(source_duration_s=x.size / RATE_HZ).segment_stream([AudioChunk(x, 0, clipped)]))
    assert len(segments) == 1
    return segments[0]


def _padded(x: np.ndarray, edge_s: float = 0.3) -> np.ndarray:
    return np.concatenate([silence(edge_s), x, silence(edge_s)])


@pytest.fixture(scope="module")
def sentence(utterances: list[np.ndarray]) -> np.ndarray:
    return _padded(utterances[0])


def test_snr_ranks_clean_above_20db_above_5db(sentence: np.ndarray) -> None:
    clean = measure_quality(_segment_utterance(sentence)).snr_db
    at_20 = measure_quality(_segment_utterance(add_white_noise(sentence, 20.0)[0])).snr_db
    at_5 = measure_quality(_segment_utterance(add_white_noise(sentence, 5.0)[0])).snr_db
    assert clean > at_20 + 10 > at_5 + 10


@pytest.mark.parametrize("snr_db", [5.0, 10.0, 20.0])
def test_snr_estimate_is_within_2db_of_truth_for_white_noise(utterances: list[np.ndarray], snr_db: float) -> None:
    """Truth: clean power / noise power over the segment's own span (measured here: within ~1 dB)."""
    errors = []
    for i, utterance in enumerate(utterances):
        clean = _padded(utterance)
        noisy, noise = add_white_noise(clean, snr_db, seed=i)
        seg = _segment_utterance(noisy)
        span = slice(seg.start_sample, seg.end_sample)
        truth = 10 * np.log10(np.mean(np.square(clean[span], dtype=np.float64))
                              / np.mean(np.square(noise[span], dtype=np.float64)))
        errors.append(measure_quality(seg).snr_db - truth)
    assert max(abs(e) for e in errors) < 2.0, errors


def test_snr_with_digital_silence_pauses_is_finite_against_the_16_bit_floor(sentence: np.ndarray) -> None:
    x = np.concatenate([sentence, silence(1.0), sentence])
    metrics = measure_quality(_segment_utterance(x))
    # The noise floor cannot go below 16-bit quantization noise (-101 dBFS): SNR = level above it.
    assert metrics.snr_db == pytest.approx(metrics.rms_dbfs + 101.1, abs=0.5)


def test_clipping_ratio_counts_original_rate_clipping(sentence: np.ndarray) -> None:
    clipped = np.zeros(sentence.size, bool)
    clipped[8000:8000 + 1600] = True  # inside the segment
    seg = _segment_utterance(sentence, clipped)
    metrics = measure_quality(seg)
    assert metrics.clipping_ratio == pytest.approx(1600 / seg.samples.size)
    assert measure_quality(_segment_utterance(sentence)).clipping_ratio == 0.0


def test_silence_ratio_follows_pauses(utterances: list[np.ndarray]) -> None:
    tight = measure_quality(_segment_utterance(_padded(utterances[1]))).silence_ratio
    with_pause = np.concatenate([utterances[1], silence(3.0), utterances[1]])
    gappy = measure_quality(_segment_utterance(with_pause)).silence_ratio
    assert 0.0 <= tight < 0.3
    assert gappy > tight + 0.2


def test_bandwidth_tells_narrowband_from_wideband(utterances: list[np.ndarray]) -> None:
    wide = utterances[0]  # espeak-ng at 22.05 kHz -> 16 kHz: full band
    via_8k = soxr.resample(soxr.resample(wide, RATE_HZ, 8000), 8000, RATE_HZ).astype(np.float32)
    telephone = scipy.signal.sosfilt(scipy.signal.butter(8, [300, 3400], "bandpass", fs=RATE_HZ, output="sos"),
                                     via_8k).astype(np.float32)
    measured = {name: measure_quality(_segment_utterance(_padded(x))).bandwidth_hz
                for name, x in (("wide", wide), ("via_8k", via_8k), ("telephone", telephone))}
    assert 7000 <= measured["wide"] <= 8000, measured
    assert 3400 <= measured["via_8k"] <= 4000, measured
    assert 3300 <= measured["telephone"] <= 4000, measured


def test_loudness_is_sane_and_scales_and_is_none_when_undefined(sentence: np.ndarray) -> None:
    normal = measure_quality(_segment_utterance(sentence)).loudness_lufs
    quieter = measure_quality(_segment_utterance(0.1 * sentence)).loudness_lufs
    assert normal is not None and -40.0 <= normal <= -14.0
    assert quieter == pytest.approx(normal - 20.0, abs=0.5)

    short = SpeechSegment(0.0, 0.3, sentence[6000:10800], 0, 10, 10, np.full(10, -20.0, np.float32), 0, 30.0)
    assert measure_quality(short).loudness_lufs is None  # < 0.4 s: BS.1770 has no block to gate
    mute = SpeechSegment(0.0, 2.0, silence(2.0), 0, 0, 66, np.full(66, -120.0, np.float32), 0, 30.0)
    quiet_metrics = measure_quality(mute)
    assert quiet_metrics.loudness_lufs is None
    assert quiet_metrics.peak_dbfs == quiet_metrics.rms_dbfs == -120.0
    assert quiet_metrics.bandwidth_hz == 0.0


def test_loudness_matches_pyloudnorm(sentence: np.ndarray) -> None:
    """The array-wise BS.1770 meter gives pyloudnorm's number (its reference) on speech, noise, odd lengths, rates."""
    import pyloudnorm

    rng = np.random.default_rng(7)
    cases = {
        "speech": (sentence, RATE_HZ),
        "quiet speech": (0.01 * sentence, RATE_HZ),
        "speech in noise": (add_white_noise(sentence, 10.0)[0], RATE_HZ),
        "speech, then long silence (relative gate)": (np.concatenate([sentence, silence(3.0)]), RATE_HZ),
        "0.41 s of noise (one block)": ((0.05 * rng.standard_normal(6560)).astype(np.float32), RATE_HZ),
        "noise at 44.1 kHz, odd length": ((0.2 * rng.standard_normal(44100 + 1234)).astype(np.float32), 44100),
    }
    for name, (x, rate) in cases.items():
        expected = pyloudnorm.Meter(rate).integrated_loudness(x.astype(np.float64))
        assert measure_loudness_lufs(x, rate) == pytest.approx(expected, abs=1e-3), name
    assert measure_loudness_lufs(np.full(8000, 1e-6, np.float32), RATE_HZ) is None  # every block under -70 LUFS


def test_levels_of_a_sine() -> None:
    x = (0.5 * np.sin(2 * np.pi * 1000 * np.arange(RATE_HZ) / RATE_HZ)).astype(np.float32)
    seg = SpeechSegment(0.0, 1.0, x, 0, 33, 33, np.full(33, -9.0, np.float32), 0, 30.0)
    metrics = measure_quality(seg)
    assert metrics.peak_dbfs == pytest.approx(-6.02, abs=0.01)
    assert metrics.rms_dbfs == pytest.approx(-9.03, abs=0.01)


def test_measure_quality_is_fast(speech_60s: np.ndarray) -> None:
    segments = list(Segmenter().segment_stream([AudioChunk(speech_60s, 0, np.zeros(speech_60s.size, bool))]))
    started = time.perf_counter()
    for seg in segments:
        measure_quality(seg)
    elapsed_ms_per_s = 1000 * (time.perf_counter() - started) / sum(s.duration_s for s in segments)
    assert elapsed_ms_per_s < 10.0  # measured ~0.7 ms per second of audio; 10 ms = 100x real time
