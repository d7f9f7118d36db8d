"""Cut a decoded 16 kHz stream into speech segments, streaming (VAD + rules).

Two regimes:

- Utterance mode (``source_duration_s <= max_segment_s``): the source is one
  utterance whose transcript must stay intact, so exactly one segment spans
  first speech - ``pad_s`` .. last speech + ``pad_s``, whatever its pauses
  (none if the VAD finds no speech).
- Long sources: VAD frames are smoothed (gaps up to ``hangover_s`` bridged,
  speech runs shorter than ``min_speech_s`` dropped as clicks/noise), runs are
  merged while the pause is <= ``max_pause_s`` and the padded segment stays
  <= ``max_segment_s``; a continuous run that would exceed ``max_segment_s``
  is cut in the quietest stretch of the last quarter of the window (mid-pause
  if there is one, else a valley between syllables; cut edges get no padding).
  A segment is emitted as soon as it is closed, so memory is bounded by
  ``max_segment_s`` plus one decode block, not by the file.

Segments shorter than ``min_segment_s`` ARE emitted, flagged
``below_min_duration``: the caller rejects them with a reason, so nothing
vanishes silently. Output depends only on the samples (and settings), so the
same input gives the same segments; block boundaries do not matter.

VAD speed, measured here on one core (taskset) on 60 s of espeak-ng speech
at 16 kHz fed in 10 s chunks, the whole ``Segmenter`` (frame energies, VAD,
smoothing and merging rules) timed, best of 3:

=======  ================  ==============================================
vad      real-time factor  note
=======  ================  ==============================================
webrtc   ~6,000-7,000x     default; 30 ms frames, aggressiveness 2
energy   ~23,000x          no dependency; weakest in noise
silero   ~520x             ONNX sequence model (onnxruntime), 32 ms frames
=======  ================  ==============================================

The pipeline targets >= 100x real time per core end to end, so webrtc is the
default; silero is better in non-stationary noise and affordable when needed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterable, Iterator

import numpy as np

from pipelines.audio.decode import AudioChunk
from pipelines.audio.vad import FrameVad, VadName, build_vad, measure_frame_energies_db

__all__ = ["Segmenter", "SpeechSegment"]


@dataclass(frozen=True, eq=False)  # eq=False: field-wise == on arrays is ambiguous
class SpeechSegment:
    """One segment of the 16 kHz stream plus what quality measurement needs.

    ``frame_energies_db`` holds the mean-square energy (dB re full scale) of each
    VAD frame (``frame_ms`` long) inside the segment; ``speech_frames`` of its
    ``total_frames`` were labelled speech by the raw VAD (before smoothing), so
    ``1 - speech_frames / total_frames`` is the silence ratio. No stream-wide
    noise floor is attached on purpose: a segment's metrics depend on the
    segment alone, so they do not change when the rest of the file does.
    """

    start_s: float
    end_s: float
    samples: np.ndarray  # float32 mono at sample_rate_hz
    clipped_samples: int
    speech_frames: int
    total_frames: int
    frame_energies_db: np.ndarray  # float32, one per VAD frame
    start_sample: int
    frame_ms: float
    sample_rate_hz: int = 16000
    below_min_duration: bool = False  # shorter than the segmenter's min_segment_s: the caller rejects it

    @property
    def duration_s(self) -> float:
        return self.samples.size / self.sample_rate_hz

    @property
    def end_sample(self) -> int:
        return self.start_sample + self.samples.size


@dataclass
class _Region:
    """An open segment in frame units: padded start, end of its last speech frame."""

    seg_start: int
    speech_end: int


@dataclass
class _Pending:
    start: int  # frames
    end: int  # frames (exclusive); may lie beyond the frames seen so far (end padding)


@dataclass
class _Buffers:
    """Samples and per-frame data kept from ``frame0`` on (older data is dropped)."""

    frame0: int = 0
    samples: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    clipped: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))
    energies_db: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    speech: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))


class Segmenter:
    """Streaming VAD segmenter: ``feed`` decoded chunks in order, then ``flush``.

    One instance per stream (it keeps VAD state). Args, all keyword-only:
        vad: ``webrtc`` (default), ``silero`` or ``energy`` (see ``vad.py``).
        aggressiveness: webrtc mode 0..3 (higher drops more non-speech).
        frame_ms: VAD frame, 10/20/30 for webrtc; silero always uses 32 ms.
        min_speech_s: speech runs shorter than this are dropped as noise.
            webrtc itself keeps saying speech 2-3 frames after a sound ends,
            so a 20 ms click reads ~0.12 s and a 50 ms one ~0.15 s.
        max_pause_s: runs closer than this are merged into one segment.
        min_segment_s: shorter segments are emitted flagged ``below_min_duration``.
        max_segment_s: hard cap on a segment's length, padding included.
        pad_s: silence kept before and after speech (not at a cut).
        hangover_s: non-speech gaps up to this long do not end a speech run.
        sample_rate_hz: rate of the chunks fed (16 kHz in the pipeline).
        source_duration_s: the source's length if known; <= max_segment_s
            selects utterance mode (one segment, see module docstring).

    Example:
        >>> import numpy as np
        >>> from pipelines.audio.decode import AudioChunk
        >>> seg = Segmenter(vad="energy", source_duration_s=3.0)
        >>> t = np.arange(48000) / 16000
        >>> x = (0.3 * np.sin(2 * np.pi * 200 * t) * ((t > 1) & (t < 2))).astype(np.float32)
        >>> [(s.start_s, s.end_s) for s in seg.segment_stream([AudioChunk(x, 0, np.zeros(x.size, bool))])]
        [(0.84, 2.16)]
    """

    def __init__(
        self,
        *,
        vad: VadName = "webrtc",
        aggressiveness: int = 2,
        frame_ms: int = 30,
        min_speech_s: float = 0.15,
        max_pause_s: float = 0.8,
        min_segment_s: float = 1.0,
        max_segment_s: float = 20.0,
        pad_s: float = 0.15,
        hangover_s: float = 0.1,
        sample_rate_hz: int = 16000,
        source_duration_s: float | None = None,
    ) -> None:
        self._vad: FrameVad = build_vad(vad, sample_rate_hz=sample_rate_hz, frame_ms=frame_ms,
                                        aggressiveness=aggressiveness)
        self.sample_rate_hz = sample_rate_hz
        self.frame_samples = self._vad.frame_samples
        self.frame_s = self.frame_samples / sample_rate_hz
        self.min_segment_s = min_segment_s
        self.utterance_mode = source_duration_s is not None and source_duration_s <= max_segment_s
        self._min_speech_f = max(1, round(min_speech_s / self.frame_s))
        self._hangover_f = max(0, round(hangover_s / self.frame_s))
        self._max_pause_f = math.inf if self.utterance_mode else round(max_pause_s / self.frame_s)
        self._max_seg_f = math.floor(max_segment_s / self.frame_s + 1e-9)
        self._pad_f = max(0, round(pad_s / self.frame_s))
        self._search_f = max(1, self._max_seg_f // 4)  # where a too-long run may be cut
        if self._max_seg_f < 2 * self._pad_f + self._min_speech_f + 1:
            raise ValueError(f"max_segment_s={max_segment_s} leaves no room for "
                             f"pad_s={pad_s} and min_speech_s={min_speech_s}")
        self._buf = _Buffers()
        self._n_samples = 0  # samples received
        self._n_frames = 0  # frames through the VAD
        self._prev_end_f = 0  # a new segment never starts before the previous one ended
        self._region: _Region | None = None
        self._run_start: int | None = None
        self._run_committed = False
        self._last_speech = -1
        self._pending: list[_Pending] = []
        self._flushed = False

    def segment_stream(self, chunks: Iterable[AudioChunk]) -> Iterator[SpeechSegment]:
        """Feed every chunk, then flush: all segments of the stream, in order."""
        for chunk in chunks:
            yield from self.feed(chunk)
        yield from self.flush()

    def feed(self, chunk: AudioChunk) -> Iterator[SpeechSegment]:
        """Add the next chunk; yields the segments it closed."""
        if self._flushed:
            raise RuntimeError("Segmenter was flushed; make a new one per stream")
        if chunk.sample_rate_hz != self.sample_rate_hz:
            raise ValueError(f"chunk is {chunk.sample_rate_hz} Hz, segmenter expects {self.sample_rate_hz} Hz")
        if chunk.start_sample != self._n_samples:
            raise ValueError(f"chunk starts at sample {chunk.start_sample}, expected {self._n_samples} "
                             "(chunks must be contiguous)")
        buf = self._buf
        buf.samples = np.concatenate([buf.samples, np.asarray(chunk.samples, dtype=np.float32)])
        buf.clipped = np.concatenate([buf.clipped, np.asarray(chunk.clipped, dtype=bool)])
        self._n_samples += chunk.samples.size
        self._process_frames()
        yield from self._emit_ready(final=False)
        self._trim()

    def flush(self) -> Iterator[SpeechSegment]:
        """End of stream: close the open run and region, yield what is left."""
        if self._flushed:
            return
        self._flushed = True
        if self._region is not None:
            self._close_region(pad_end_f=self._pad_f)
        yield from self._emit_ready(final=True)

    # -- frame loop -------------------------------------------------------------------------------

    def _process_frames(self) -> None:
        L = self.frame_samples
        buf = self._buf
        count = self._n_samples // L - self._n_frames
        if count <= 0:
            return
        first = self._n_frames * L - buf.frame0 * L
        frames = buf.samples[first: first + count * L].reshape(count, L)
        energies = measure_frame_energies_db(frames)
        speech = self._vad.classify(frames, energies)
        buf.energies_db = np.concatenate([buf.energies_db, energies])
        buf.speech = np.concatenate([buf.speech, speech])
        for offset, is_speech in enumerate(speech.tolist()):
            self._step(self._n_frames + offset, is_speech)
        self._n_frames += count

    def _step(self, f: int, is_speech: bool) -> None:
        """Advance the smoothing + merging state machine by frame ``f``."""
        if is_speech:
            if self._run_start is None:
                self._run_start, self._run_committed = f, False
            self._last_speech = f
            if not self._run_committed and f + 1 - self._run_start >= self._min_speech_f:
                self._commit_run(f)
                self._run_committed = True
            if self._run_committed:
                self._extend_region(f + 1)
        elif self._run_start is not None and f - self._last_speech > self._hangover_f:
            self._run_start = None  # run over (if never committed, it was too short: dropped)
        region = self._region
        if region is not None:
            earliest_next = self._run_start if self._run_start is not None else f + 1
            if earliest_next - region.speech_end > self._max_pause_f:  # pad at most half the pause
                self._close_region(pad_end_f=min(self._pad_f, (earliest_next - region.speech_end) // 2))

    def _commit_run(self, f: int) -> None:
        """A run just reached min_speech: join the open region or start a new one."""
        run_start = self._run_start
        region = self._region
        if region is not None:
            fits = f + 1 + self._pad_f - region.seg_start <= self._max_seg_f
            if fits and run_start - region.speech_end <= self._max_pause_f:
                return
            self._close_region(pad_end_f=min(self._pad_f, (run_start - region.speech_end) // 2))
        self._region = _Region(seg_start=max(run_start - self._pad_f, self._prev_end_f, 0), speech_end=run_start)

    def _extend_region(self, speech_end: int) -> None:
        """Move the region's speech end; cut it first if it would outgrow max_segment_s."""
        region = self._region
        if speech_end + self._pad_f - region.seg_start > self._max_seg_f:
            hi = min(region.seg_start + self._max_seg_f, speech_end)
            lo = max(region.seg_start + 1, hi - self._search_f)
            cut = lo + self._find_quietest(lo, hi)
            self._pending.append(_Pending(region.seg_start, cut))
            self._prev_end_f = cut
            region.seg_start = cut
        region.speech_end = speech_end

    def _find_quietest(self, lo: int, hi: int) -> int:
        """Offset in [lo, hi) of the middle of the longest quietest stretch.

        Energies are smoothed over 3 frames (one noisy frame does not win), every
        frame within 1 dB of the minimum is a candidate, and the cut goes to the
        middle of the longest run of candidates: mid-pause when there is a
        pause, mid-valley between syllables when there is none.
        """
        window = self._buf.energies_db[lo - self._buf.frame0: hi - self._buf.frame0].astype(np.float64)
        if window.size >= 3:
            window = np.convolve(np.pad(window, 1, mode="edge"), np.full(3, 1.0 / 3.0), mode="valid")
        quiet = np.concatenate([[False], window <= window.min() + 1.0, [False]])
        edges = np.flatnonzero(np.diff(quiet.astype(np.int8)))
        starts, stops = edges[::2], edges[1::2]
        longest = int(np.argmax(stops - starts))
        return int((starts[longest] + stops[longest]) // 2)

    def _close_region(self, *, pad_end_f: int) -> None:
        region = self._region
        end = region.speech_end + pad_end_f
        self._pending.append(_Pending(region.seg_start, end))
        self._prev_end_f = end
        self._region = None

    # -- output -----------------------------------------------------------------------------------

    def _emit_ready(self, *, final: bool) -> Iterator[SpeechSegment]:
        while self._pending and (final or self._pending[0].end <= self._n_frames):
            pending = self._pending.pop(0)
            yield self._build_segment(pending.start, min(pending.end, self._n_frames), final=final)

    def _build_segment(self, start_f: int, end_f: int, *, final: bool) -> SpeechSegment:
        L = self.frame_samples
        buf = self._buf
        start = start_f * L
        # At the end of the stream a segment reaching the last frame also keeps the partial frame after it.
        end = self._n_samples if final and end_f >= self._n_frames else end_f * L
        s0, s1 = start - buf.frame0 * L, end - buf.frame0 * L
        f0, f1 = start_f - buf.frame0, end_f - buf.frame0
        samples = buf.samples[s0:s1].copy()
        return SpeechSegment(
            start_s=start / self.sample_rate_hz,
            end_s=end / self.sample_rate_hz,
            samples=samples,
            clipped_samples=int(np.count_nonzero(buf.clipped[s0:s1])),
            speech_frames=int(np.count_nonzero(buf.speech[f0:f1])),
            total_frames=f1 - f0,
            frame_energies_db=buf.energies_db[f0:f1].copy(),
            start_sample=start,
            frame_ms=1000.0 * self.frame_s,
            sample_rate_hz=self.sample_rate_hz,
            below_min_duration=samples.size < self.min_segment_s * self.sample_rate_hz,
        )

    def _trim(self) -> None:
        """Drop samples and frame data no future segment can reach."""
        keep = self._n_frames - self._pad_f
        if self._region is not None:
            keep = min(keep, self._region.seg_start)
        if self._pending:
            keep = min(keep, self._pending[0].start)
        if self._run_start is not None:
            keep = min(keep, self._run_start - self._pad_f)
        buf = self._buf
        drop = keep - buf.frame0
        if drop <= 0:
            return
        L = self.frame_samples
        buf.samples = buf.samples[drop * L:]
        buf.clipped = buf.clipped[drop * L:]
        buf.energies_db = buf.energies_db[drop:]
        buf.speech = buf.speech[drop:]
        buf.frame0 = keep
