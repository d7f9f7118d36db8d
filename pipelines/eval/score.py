"""Run codecs over clips and score each decode: the work unit of the codec evaluation.

No ray here: ``pipelines.eval_codec`` hands chunks of clips to Ray tasks that
call :func:`score_clips`. A trained codec crosses process boundaries as a
:class:`CheckpointCodec` (its config and weights, picklable) and is rebuilt
once per call; a baseline is its name in ``BASELINES``; ``INPUT_CODEC`` is
the unprocessed clip (its DNSMOS is the ceiling any codec can reach).

Why no alignment for trained codecs: their decoder works on the encoder's
time axis by construction, so a delay would be a bug to see, not to hide.
Baselines are aligned by ``run_baseline``.
"""

from __future__ import annotations

import math
import os
import time
import warnings
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from pipelines.eval.baselines import run_baseline
from pipelines.eval.metrics import QualityScores, score_pair
from pipelines.eval.report import ClipScore

__all__ = ["CheckpointCodec", "Clip", "ClipResult", "INPUT_CODEC", "PCM_BITRATE_BPS", "score_clips"]

SAMPLE_RATE_HZ = 16000
INPUT_CODEC = "input"
#: What the input costs as stored: 16-bit PCM at 16 kHz.
PCM_BITRATE_BPS = 16.0 * SAMPLE_RATE_HZ
_NAN_SCORES = QualityScores(*([math.nan] * 7))


@dataclass(frozen=True)
class Clip:
    """One held-out segment: float32 mono samples at 16 kHz."""

    clip_id: str
    samples: np.ndarray

    @property
    def duration_s(self) -> float:
        return self.samples.size / SAMPLE_RATE_HZ


@dataclass(frozen=True)
class CheckpointCodec:
    """A trained codec as plain data (config JSON + weights): what a Ray task receives and rebuilds.

    Build it from ``models.codec.load_checkpoint``'s result with :meth:`from_loaded`.
    """

    name: str
    codec_id: str
    step: int
    path: str
    config: dict[str, Any]
    state_dict: dict[str, Any]
    bitrate_bps: float

    @classmethod
    def from_loaded(cls, name: str, path: str, model: Any, config: Any, meta: Any) -> "CheckpointCodec":
        """From ``(model, config, meta) = load_checkpoint(path)``."""
        return cls(name=name, codec_id=meta.codec_id, step=meta.step, path=str(path),
                   config=config.model_dump(mode="json"), state_dict=model.state_dict(),
                   bitrate_bps=float(config.bitrate_bps))

    def build(self) -> Any:
        """The ``SpeechCodec`` in eval mode, weights loaded."""
        from models.codec import build_codec
        from schemas.codec import CodecModelConfig

        model = build_codec(CodecModelConfig.model_validate(self.config))
        model.load_state_dict(self.state_dict)
        return model.eval()


@dataclass(frozen=True)
class ClipResult:
    """One clip through one codec: cost, scores, and the seconds spent (to size runs).

    ``*_s`` are wall seconds, ``*_cpu_s`` CPU seconds of this process and its coder subprocesses (steadier than
    wall on a shared machine).
    """

    set_name: str
    clip_id: str
    duration_s: float
    codec_name: str
    bitrate_bps: float
    scores: QualityScores
    codec_s: float
    score_s: float
    codec_cpu_s: float
    score_cpu_s: float
    delay_samples: int | None = None
    alignment_correlation: float | None = None

    def clip_score(self) -> ClipScore:
        """What ``pipelines.eval.report`` aggregates."""
        return ClipScore(codec_name=self.codec_name, clip_id=self.clip_id, bitrate_bps=self.bitrate_bps,
                         scores=self.scores)


def score_clips(clips: Sequence[Clip], *, set_name: str, checkpoints: Sequence[CheckpointCodec] = (),
                baselines: Sequence[str] = (), include_input: bool = False, with_dnsmos: bool = True,
                torch_threads: int = 1) -> list[ClipResult]:
    """Every codec on every clip, scored against the clip (PESQ-WB, STOI, SI-SDR, mel distance, DNSMOS).

    Args:
        clips: 16 kHz mono clips.
        set_name: the held-out set the clips belong to (carried into the results).
        checkpoints: trained codecs; each is rebuilt once and runs on one clip at a time (batch of 1).
        baselines: names in ``pipelines.eval.BASELINES``.
        include_input: also score each clip against itself as codec ``"input"``.
        with_dnsmos: run DNSMOS on each decode (the slow part of scoring).
        torch_threads: ``torch.set_num_threads`` for the trained codecs (1 per CPU of the task).

    Returns:
        One :class:`ClipResult` per clip x codec, clip-major, codecs in the order checkpoints, baselines, input.

    Example:
        >>> x = np.sin(np.linspace(0, 3000, 16000)).astype(np.float32) * 0.3
        >>> [r.codec_name for r in score_clips([Clip("a", x)], set_name="t", baselines=["opus_8k"],
        ...                                    include_input=True, with_dnsmos=False)]
        ['opus_8k', 'input']
    """
    models = []
    if checkpoints:
        import torch

        torch.set_num_threads(torch_threads)
        models = [(spec, spec.build()) for spec in checkpoints]
    results = []
    for clip in clips:
        for spec, model in models:
            started = _clock()
            decoded, bitrate = _roundtrip_model(model, clip.samples)
            results.append(_score(set_name, clip, spec.name, bitrate, decoded, started, with_dnsmos))
        for name in baselines:
            started = _clock()
            roundtrip = run_baseline(name, clip.samples)
            results.append(_score(set_name, clip, name, roundtrip.bitrate_bps, roundtrip.decoded, started,
                                  with_dnsmos, roundtrip.delay_samples, roundtrip.alignment_correlation))
        if include_input:
            results.append(_score(set_name, clip, INPUT_CODEC, PCM_BITRATE_BPS, clip.samples, _clock(),
                                  with_dnsmos))
    return results


def _roundtrip_model(model: Any, samples: np.ndarray) -> tuple[np.ndarray, float]:
    """Encode + decode one clip; bit rate as spent: whole frames x bits per frame over the clip's duration."""
    import torch

    encoding = model.encode(torch.from_numpy(np.ascontiguousarray(samples, dtype=np.float32))[None])
    decoded = model.decode(encoding.codes, encoding.num_samples)[0].numpy()
    frames, stages = encoding.codes.shape[1:]
    bits = frames * model.quantizer.bits_per_frame * stages / model.num_stages
    return decoded, bits * SAMPLE_RATE_HZ / samples.size


def _clock() -> tuple[float, float]:
    """(wall s, CPU s of this process and its waited-for children)."""
    t = os.times()
    return time.perf_counter(), t.user + t.system + t.children_user + t.children_system


def _score(set_name: str, clip: Clip, codec_name: str, bitrate_bps: float, decoded: np.ndarray,
           started: tuple[float, float], with_dnsmos: bool, delay_samples: int | None = None,
           alignment_correlation: float | None = None) -> ClipResult:
    """Score one decode; a non-finite decode scores NaN (with a warning) so one clip cannot stop a run."""
    scored = _clock()
    if np.all(np.isfinite(decoded)):
        scores = score_pair(clip.samples, decoded, with_dnsmos=with_dnsmos)
    else:
        warnings.warn(f"{codec_name} decoded {clip.clip_id} to non-finite samples; scoring NaN", RuntimeWarning,
                      stacklevel=2)
        scores = _NAN_SCORES
    finished = _clock()
    return ClipResult(set_name=set_name, clip_id=clip.clip_id, duration_s=clip.duration_s, codec_name=codec_name,
                      bitrate_bps=float(bitrate_bps), scores=scores, codec_s=scored[0] - started[0],
                      score_s=finished[0] - scored[0], codec_cpu_s=scored[1] - started[1],
                      score_cpu_s=finished[1] - scored[1], delay_samples=delay_samples,
                      alignment_correlation=alignment_correlation)
