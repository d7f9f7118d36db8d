"""Frame-level voice activity detectors behind one small interface.

Each detector labels fixed-length frames speech / non-speech and keeps its own
state between calls, so ``Segmenter`` can feed it one decoded block at a time.
Three backends (real-time factors measured here are in ``segment.py``):

- ``webrtc``: Google's WebRTC GMM VAD (``webrtcvad-wheels``): 10/20/30 ms
  int16 frames at 8/16/32/48 kHz. Thousands of times real time: the default.
- ``silero``: the Silero VAD v6 network from the ``silero-vad`` package. The
  ONNX "sequence" export inside the wheel is run directly with onnxruntime
  (one call per 512 frames, LSTM state carried between calls), so neither
  torch nor a download is needed. Native frame: 512 samples (32 ms) at 16 kHz.
- ``energy``: a dependency-free adaptive threshold on frame energy (a
  minimum-tracking noise floor plus a margin): the fallback when neither of
  the others is installed, and a baseline.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Literal, Protocol

import numpy as np

__all__ = ["EnergyVad", "FrameVad", "SileroVad", "VadName", "WebrtcVad", "build_vad", "measure_frame_energies_db"]

VadName = Literal["webrtc", "silero", "energy"]

class FrameVad(Protocol):
    """Labels consecutive frames of ``frame_samples`` samples; stateful across calls."""

    frame_samples: int

    def classify(self, frames: np.ndarray, energies_db: np.ndarray) -> np.ndarray:
        """(n, frame_samples) float32 frames + their energies -> (n,) bool speech."""
        ...


def measure_frame_energies_db(frames: np.ndarray) -> np.ndarray:
    """Mean-square energy per frame in dB re full scale (digital silence -> -120 dB)."""
    power = np.einsum("ij,ij->i", frames, frames, dtype=np.float64) / max(frames.shape[1], 1)
    return (10.0 * np.log10(power + 1e-12)).astype(np.float32)


def build_vad(name: VadName, *, sample_rate_hz: int, frame_ms: int, aggressiveness: int) -> FrameVad:
    """Construct the named detector (silero ignores ``frame_ms``: its frame is fixed at 32 ms)."""
    if name == "webrtc":
        return WebrtcVad(sample_rate_hz=sample_rate_hz, frame_ms=frame_ms, aggressiveness=aggressiveness)
    if name == "silero":
        return SileroVad(sample_rate_hz=sample_rate_hz)
    if name == "energy":
        return EnergyVad(sample_rate_hz=sample_rate_hz, frame_ms=frame_ms)
    raise ValueError(f"unknown vad {name!r}; expected one of webrtc, silero, energy")


class WebrtcVad:
    """WebRTC VAD; ``aggressiveness`` 0 (keeps most) .. 3 (drops most non-speech)."""

    def __init__(self, *, sample_rate_hz: int = 16000, frame_ms: int = 30, aggressiveness: int = 2) -> None:
        import webrtcvad

        if sample_rate_hz not in (8000, 16000, 32000, 48000):
            raise ValueError(f"webrtc VAD needs 8/16/32/48 kHz, got {sample_rate_hz} Hz")
        if frame_ms not in (10, 20, 30):
            raise ValueError(f"webrtc VAD needs 10, 20 or 30 ms frames, got {frame_ms} ms")
        if aggressiveness not in (0, 1, 2, 3):
            raise ValueError(f"webrtc aggressiveness must be 0..3, got {aggressiveness}")
        self._vad = webrtcvad.Vad(aggressiveness)
        self._rate = sample_rate_hz
        self.frame_samples = sample_rate_hz * frame_ms // 1000

    def classify(self, frames: np.ndarray, energies_db: np.ndarray) -> np.ndarray:
        pcm = np.clip(np.rint(frames * 32768.0), -32768, 32767).astype("<i2").tobytes()
        step = 2 * self.frame_samples
        is_speech = self._vad.is_speech
        return np.fromiter((is_speech(pcm[i: i + step], self._rate) for i in range(0, len(pcm), step)),
                           dtype=bool, count=frames.shape[0])


class SileroVad:
    """Silero VAD v6 (sequence ONNX export shipped in the ``silero-vad`` wheel).

    Speech starts when the probability reaches ``threshold`` and continues while it
    stays above ``threshold - 0.15`` (the hysteresis Silero's own helpers use).
    """

    _MODEL_FILE = "silero_vad_16k_sequence.onnx"
    _CONTEXT = 64  # samples of the previous frame the model sees, at 16 kHz
    _MAX_FRAMES_PER_CALL = 512

    def __init__(self, *, sample_rate_hz: int = 16000, threshold: float = 0.5) -> None:
        import onnxruntime

        if sample_rate_hz != 16000:
            raise ValueError(f"silero VAD (sequence model) runs at 16 kHz, got {sample_rate_hz} Hz")
        options = onnxruntime.SessionOptions()
        options.inter_op_num_threads = 1
        options.intra_op_num_threads = 1
        self._session = onnxruntime.InferenceSession(
            str(_silero_model_path(self._MODEL_FILE)), sess_options=options, providers=["CPUExecutionProvider"])
        self.frame_samples = 512
        self._threshold = threshold
        self._release = threshold - 0.15
        self._hidden = np.zeros((1, 1, 128), dtype=np.float32)
        self._cell = np.zeros((1, 1, 128), dtype=np.float32)
        self._context = np.zeros(self._CONTEXT, dtype=np.float32)
        self._in_speech = False

    def classify(self, frames: np.ndarray, energies_db: np.ndarray) -> np.ndarray:
        probs = self.measure_speech_probs(frames)
        out = np.empty(probs.size, dtype=bool)
        in_speech = self._in_speech
        for i, p in enumerate(probs.tolist()):
            in_speech = p >= (self._release if in_speech else self._threshold)
            out[i] = in_speech
        self._in_speech = in_speech
        return out

    def measure_speech_probs(self, frames: np.ndarray) -> np.ndarray:
        """Per-frame speech probability; advances the LSTM state."""
        if frames.shape[0] == 0:
            return np.zeros(0, dtype=np.float32)
        frames = np.ascontiguousarray(frames, dtype=np.float32)
        contexts = np.empty((frames.shape[0], self._CONTEXT), dtype=np.float32)
        contexts[0] = self._context
        contexts[1:] = frames[:-1, -self._CONTEXT:]
        inputs = np.concatenate([contexts, frames], axis=1)
        self._context = frames[-1, -self._CONTEXT:].copy()
        probs = []
        for first in range(0, inputs.shape[0], self._MAX_FRAMES_PER_CALL):
            values, self._hidden, self._cell = self._session.run(
                ["speech_probs", "hn", "cn"],
                {"input": inputs[first: first + self._MAX_FRAMES_PER_CALL], "h": self._hidden, "c": self._cell})
            probs.append(values.reshape(-1))
        return np.concatenate(probs)


class EnergyVad:
    """Adaptive energy threshold: speech when a frame is ``margin_db`` above the noise floor.

    The floor follows the quietest recent frames: it drops at once to any
    quieter frame and rises ``rise_db_per_s`` otherwise, so it tracks slowly
    changing noise without climbing onto speech. Below ``min_floor_db`` the
    floor is clamped, so near-digital silence does not turn faint hiss into speech.
    """

    def __init__(self, *, sample_rate_hz: int = 16000, frame_ms: int = 30, margin_db: float = 12.0,
                 rise_db_per_s: float = 1.0, min_floor_db: float = -75.0) -> None:
        self.frame_samples = sample_rate_hz * frame_ms // 1000
        if self.frame_samples <= 0:
            raise ValueError(f"frame_ms={frame_ms} gives no samples at {sample_rate_hz} Hz")
        self._margin_db = margin_db
        self._rise_db = rise_db_per_s * frame_ms / 1000.0
        self._min_floor_db = min_floor_db
        self._floor_db: float | None = None

    def classify(self, frames: np.ndarray, energies_db: np.ndarray) -> np.ndarray:
        out = np.empty(energies_db.size, dtype=bool)
        floor = self._floor_db
        for i, energy in enumerate(energies_db.tolist()):
            floor = energy if floor is None or energy < floor else floor + self._rise_db
            out[i] = energy > max(floor, self._min_floor_db) + self._margin_db
        self._floor_db = floor
        return out


def _silero_model_path(name: str) -> Path:
    """The model file inside the installed wheel, found without importing silero_vad (which imports torch)."""
    spec = importlib.util.find_spec("silero_vad")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("silero VAD needs the silero-vad package (pip install silero-vad)")
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / name
    if not path.is_file():
        raise RuntimeError(f"silero-vad is installed but {path} is missing")
    return path
