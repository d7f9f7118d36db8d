"""Segmenting real (espeak-ng) speech streams: utterance mode, long sources, limits, streaming."""

from __future__ import annotations

import tracemalloc
from typing import Iterator

import numpy as np
import pytest

from pipelines.audio.decode import AudioChunk
from pipelines.audio.segment import Segmenter, SpeechSegment
from tests.factories import silence, speechlike

RATE_HZ = 16000
FRAME_S = 0.03


def _chunks(x: np.ndarray, block: int = 160000, clipped: np.ndarray | None = None) -> Iterator[AudioChunk]:
    clipped = np.zeros(x.size, bool) if clipped is None else clipped
    for start in range(0, x.size, block):
        yield AudioChunk(x[start: start + block], start, clipped[start: start + block])


def _segment(x: np.ndarray, *, block: int = 160000, clipped: np.ndarray | None = None, **kwargs) -> list[SpeechSegment]:
    return list(Segmenter(**kwargs).segment_stream(_chunks(x, block, clipped)))


def _speech_span_s(x: np.ndarray, offset_s: float = 0.0) -> tuple[float, float]:
    """First and last non-negligible sample of a clean utterance, in seconds."""
    loud = np.flatnonzero(np.abs(x) > 0.01)
    return offset_s + loud[0] / RATE_HZ, offset_s + (loud[-1] + 1) / RATE_HZ


def _with_gaps(parts: list[np.ndarray], gap_s: float, edge_s: float) -> tuple[np.ndarray, list[tuple[float, float]]]:
    """Concatenate utterances with silences; returns the stream and each utterance's speech span."""
    pieces, spans, t = [silence(edge_s)], [], edge_s
    for i, part in enumerate(parts):
        spans.append(_speech_span_s(part, t))
        pieces.append(part)
        t += part.size / RATE_HZ
        if i < len(parts) - 1:
            pieces.append(silence(gap_s))
            t += gap_s
    pieces.append(silence(edge_s))
    return np.concatenate(pieces), spans


# -- utterance mode -------------------------------------------------------------------------------


def test_utterance_mode_gives_one_padded_segment_across_long_pauses(utterances: list[np.ndarray]) -> None:
    first, second = utterances[0], utterances[1][: RATE_HZ]  # a 1.5 s pause inside the "utterance"
    x, spans = _with_gaps([first, second], gap_s=1.5, edge_s=0.6)
    segments = _segment(x, source_duration_s=x.size / RATE_HZ)

    assert len(segments) == 1
    seg = segments[0]
    speech_start, speech_end = spans[0][0], spans[1][1]
    assert seg.start_s == pytest.approx(speech_start - 0.15, abs=2 * FRAME_S)
    # webrtc keeps saying "speech" for 2-3 frames after speech ends (its own hangover): up to ~0.1 s more.
    assert speech_end + 0.15 - 2 * FRAME_S <= seg.end_s <= speech_end + 0.15 + 0.1 + FRAME_S
    assert seg.start_s < speech_start and seg.end_s > speech_end  # the pads are really there
    np.testing.assert_array_equal(seg.samples, x[seg.start_sample: seg.end_sample])


@pytest.mark.parametrize("vad", ["webrtc", "energy", "silero"])
def test_utterance_mode_with_each_vad(utterances: list[np.ndarray], vad: str) -> None:
    x, spans = _with_gaps([utterances[2]], gap_s=0.0, edge_s=0.5)
    segments = _segment(x, vad=vad, source_duration_s=x.size / RATE_HZ)
    assert len(segments) == 1
    assert segments[0].start_s <= spans[0][0] and segments[0].end_s >= spans[0][1] - 0.1


def test_utterance_mode_without_speech_gives_nothing() -> None:
    quiet = np.random.default_rng(0).standard_normal(3 * RATE_HZ).astype(np.float32) * 1e-4  # faint hiss
    assert _segment(silence(3.0), source_duration_s=3.0) == []
    assert _segment(quiet, source_duration_s=3.0) == []


# -- long sources ---------------------------------------------------------------------------------


@pytest.mark.parametrize("vad", ["webrtc", "energy", "silero"])
def test_three_utterances_with_2s_silences_give_three_segments(utterances: list[np.ndarray], vad: str) -> None:
    x, spans = _with_gaps(utterances, gap_s=2.0, edge_s=1.0)
    segments = _segment(x, vad=vad)  # no source duration: long-source rules

    assert len(segments) == 3
    for seg, (speech_start, speech_end) in zip(segments, spans):
        assert seg.start_s < speech_start < speech_end - 0.1 <= seg.end_s
        assert seg.start_s > speech_start - 0.15 - 2 * FRAME_S  # padded, but not by much more
        assert seg.duration_s <= 20.0
        assert seg.speech_frames > 0.6 * seg.total_frames
        assert not seg.below_min_duration


def test_max_segment_s_is_respected_on_running_speech(speech_60s: np.ndarray) -> None:
    segments = _segment(speech_60s, max_segment_s=8.0)

    assert len(segments) >= 8
    assert all(seg.duration_s <= 8.0 for seg in segments)
    ends = [seg.end_sample for seg in segments]
    starts = [seg.start_sample for seg in segments]
    assert all(e <= s for e, s in zip(ends, starts[1:]))  # ordered, never overlapping
    covered = sum(seg.samples.size for seg in segments)
    assert covered > 0.9 * speech_60s.size  # the pauses are short: almost everything is kept


def test_continuous_speech_is_cut_at_a_quiet_frame() -> None:
    x = speechlike(30.0, RATE_HZ)  # 4 Hz syllable envelope, no pause at all
    segments = _segment(x, max_segment_s=5.0)

    assert len(segments) >= 6
    assert all(seg.duration_s <= 5.0 for seg in segments)
    cuts = [left.end_sample for left, right in zip(segments, segments[1:]) if left.end_sample == right.start_sample]
    assert len(cuts) >= 5  # no pause to end on: the segments were cut
    for cut in cuts:  # each cut lands in a syllable valley, not mid-syllable
        boundary = x[cut - 240: cut + 240]
        assert np.sqrt(np.mean(boundary**2)) < 0.5 * np.sqrt(np.mean(x**2))


def test_all_silence_and_noise_only_give_no_segments() -> None:
    assert _segment(silence(30.0)) == []
    hiss = (np.random.default_rng(1).standard_normal(30 * RATE_HZ) * 3e-4).astype(np.float32)
    assert _segment(hiss) == []


def test_clicks_shorter_than_min_speech_are_dropped() -> None:
    x = silence(6.0)
    for at_s in (0.5, 1.0, 1.7, 2.2):  # 20 ms bursts: webrtc's hangover stretches each to ~0.12 s < min_speech_s
        x[int(at_s * RATE_HZ): int(at_s * RATE_HZ) + 320] = speechlike(0.02, RATE_HZ, seed=int(at_s * 10))
    assert _segment(x) == []
    x[3 * RATE_HZ: 3 * RATE_HZ + 6400] = speechlike(0.4, RATE_HZ)  # 0.4 s: speech, but short
    segments = _segment(x)
    assert len(segments) == 1
    assert segments[0].below_min_duration  # still emitted: the caller rejects it with a reason
    assert segments[0].start_s == pytest.approx(3.0 - 0.15, abs=2 * FRAME_S)


def test_segments_are_deterministic_and_independent_of_block_size(speech_60s: np.ndarray) -> None:
    x = speech_60s[: 30 * RATE_HZ]
    runs = [_segment(x, block=block, max_segment_s=6.0) for block in (160000, 160000, 12345, 480)]
    reference = [(s.start_sample, s.end_sample, s.speech_frames) for s in runs[0]]
    for run in runs[1:]:
        assert [(s.start_sample, s.end_sample, s.speech_frames) for s in run] == reference
        for a, b in zip(runs[0], run):
            np.testing.assert_array_equal(a.samples, b.samples)
            np.testing.assert_array_equal(a.frame_energies_db, b.frame_energies_db)


def test_segment_carries_clipping_and_frame_data(utterances: list[np.ndarray]) -> None:
    x, _ = _with_gaps([utterances[0]], gap_s=0.0, edge_s=0.5)
    clipped = np.zeros(x.size, bool)
    clipped[RATE_HZ: RATE_HZ + 100] = True
    (seg,) = _segment(x, clipped=clipped, source_duration_s=x.size / RATE_HZ)
    assert seg.clipped_samples == 100
    assert seg.total_frames == seg.frame_energies_db.size == seg.samples.size // 480
    assert seg.frame_ms == pytest.approx(30.0)
    assert seg.frame_energies_db.max() > -30 and seg.frame_energies_db.min() <= -100  # speech and padding


def test_chunks_must_be_contiguous_and_at_the_segmenter_rate() -> None:
    segmenter = Segmenter()
    list(segmenter.feed(AudioChunk(silence(1.0), 0, np.zeros(16000, bool))))
    with pytest.raises(ValueError, match="contiguous"):
        list(segmenter.feed(AudioChunk(silence(1.0), 20000, np.zeros(16000, bool))))
    with pytest.raises(ValueError, match="Hz"):
        list(Segmenter().feed(AudioChunk(silence(1.0), 0, np.zeros(16000, bool), sample_rate_hz=8000)))


def test_segmenter_memory_is_bounded_on_a_30_minute_stream() -> None:
    """A stream of alternating 12 s speech / 3 s silence: memory must not follow the stream length."""
    speech, gap = speechlike(12.0, RATE_HZ), silence(3.0)
    block = np.concatenate([speech, gap])
    flags = np.zeros(block.size, bool)

    def stream() -> Iterator[AudioChunk]:
        for i in range(30 * 60 // 15):
            yield AudioChunk(block, i * block.size, flags)

    tracemalloc.start()
    count = sum(1 for _ in Segmenter().segment_stream(stream()))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert count == 120
    assert peak < 20 * 2**20  # the whole stream as float32 would be 115 MB
