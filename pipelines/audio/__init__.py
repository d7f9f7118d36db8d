"""Audio stages: decode -> 16 kHz mono, VAD segmentation, quality metrics, FLAC storage.

Pure functions and callable classes, no ray: the curation pipeline wires them
into Ray Data (STYLE.md: stages do not import ray).
"""

from __future__ import annotations

from pipelines.audio.decode import (AudioChunk, AudioDecodeError, AudioInfo, OpenAudio, decode_all, decode_stream,
                                   open_audio, probe_audio)
from pipelines.audio.flac import decode_flac, encode_flac, pcm_hash, quantize_pcm16
from pipelines.audio.quality import (
    QualityMetrics,
    measure_bandwidth_hz,
    measure_loudness_lufs,
    measure_quality,
    measure_snr_db,
)
from pipelines.audio.segment import Segmenter, SpeechSegment

__all__ = [
    "AudioChunk",
    "AudioDecodeError",
    "AudioInfo",
    "OpenAudio",
    "QualityMetrics",
    "Segmenter",
    "SpeechSegment",
    "decode_all",
    "decode_flac",
    "decode_stream",
    "encode_flac",
    "measure_bandwidth_hz",
    "measure_loudness_lufs",
    "measure_quality",
    "measure_snr_db",
    "open_audio",
    "pcm_hash",
    "probe_audio",
    "quantize_pcm16",
]
