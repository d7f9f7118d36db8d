"""Independent judges for the quality gates on recombined audio.

A gate must not grade our models with a model they trained against, so the
judges come from outside the project:

- :class:`SpeakerJudge`: Resemblyzer's GE2E ``VoiceEncoder`` (Wan et al. 2018,
  a 3-layer LSTM on 40-band mel frames, 256-d embeddings), whose weights ship
  inside the ``resemblyzer`` wheel. It answers "does this clip sound like that
  speaker" as the cosine similarity of two utterance embeddings.
- :class:`NaturalnessJudge`: DNSMOS P.835 (OVRL/SIG/BAK, 1-5, no reference)
  through :class:`pipelines.eval.metrics.DnsmosScorer`.

Both load their model once in ``__init__`` and work in ``__call__`` (a stage
class, STYLE.md); neither touches torch's thread count, which stays the
caller's. Heavy imports (torch, librosa, onnxruntime) happen in ``__init__``,
so importing this module is cheap.

NaN means "no judgement possible": the clip is empty, silent, has non-finite
samples, or holds less than ``min_speech_s`` of speech after Resemblyzer's
VAD trimming. A gate treats NaN as a fail (every comparison with NaN is False).
"""

from __future__ import annotations

import math
import sys
import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from pipelines.eval.metrics import DnsmosScores

__all__ = ["SpeakerJudge", "NaturalnessJudge", "EMBEDDING_DIM", "JUDGE_SAMPLE_RATE_HZ"]

#: Both judges work at 16 kHz (Resemblyzer's ``sampling_rate``, DNSMOS's input rate).
JUDGE_SAMPLE_RATE_HZ = 16000
#: Size of a Resemblyzer utterance embedding.
EMBEDDING_DIM = 256
_SILENCE_PEAK = 1e-4  # below -80 dBFS everywhere: no voice to judge (and Resemblyzer's gain would be infinite)


class SpeakerJudge:
    """Speaker similarity by Resemblyzer's GE2E voice encoder (CPU), an encoder our models never trained with.

    Args:
        min_speech_s: clips with less speech than this after Resemblyzer's VAD trimming get a NaN embedding.
            One GE2E partial is 1.6 s; below ~0.5 s the embedding is mostly padding.

    Example:
        >>> judge = SpeakerJudge()
        >>> a = judge.embed(wav_a, 16000)              # (256,) float32, unit norm; NaN if not judgeable
        >>> judge.similarity(a, judge.embed(wav_b, 22050))
        0.87
        >>> judge(wav_out, 16000, target_embedding=a)  # the same cosine, one call per output clip
    """

    def __init__(self, *, min_speech_s: float = 0.5) -> None:
        if not min_speech_s > 0:
            raise ValueError(f"min_speech_s must be > 0, got {min_speech_s}")
        voice_encoder_cls, self._preprocess_wav = _import_resemblyzer()
        self.min_speech_s = float(min_speech_s)
        self._encoder = voice_encoder_cls("cpu", verbose=False)  # torch.load(weights_only=True) of pretrained.pt
        self._encoder.eval()
        # librosa imports scipy.signal and numba lazily on its first mel spectrogram (~5 s here): pay it now.
        self._encoder.embed_utterance(np.full(JUDGE_SAMPLE_RATE_HZ, 1e-3, dtype=np.float32))

    def __call__(self, wav: np.ndarray, sample_rate_hz: int, target_embedding: np.ndarray) -> float:
        """Cosine similarity of ``wav``'s voice to a target speaker's embedding; NaN when not judgeable."""
        return self.similarity(self.embed(wav, sample_rate_hz), target_embedding)

    def embed(self, wav: np.ndarray, sample_rate_hz: int) -> np.ndarray:
        """The 256-d unit-norm float32 utterance embedding of a mono clip; all NaN when not judgeable.

        The clip is resampled to 16 kHz (soxr) if needed, then goes through Resemblyzer's own
        ``preprocess_wav`` (gain up to -30 dBFS, webrtcvad trimming of long pauses) and
        ``embed_utterance`` (1.6 s partials at 1.3 per second, averaged).
        """
        speech = self._prepare(wav, sample_rate_hz)
        if speech is None:
            return np.full(EMBEDDING_DIM, np.nan, dtype=np.float32)
        return np.asarray(self._encoder.embed_utterance(speech), dtype=np.float32)

    def embed_many(self, wavs: Sequence[np.ndarray], sample_rate_hz: int) -> np.ndarray:
        """Embeddings of several clips at one rate, shape (len(wavs), 256); a NaN row for each unjudgeable clip."""
        out = np.full((len(wavs), EMBEDDING_DIM), np.nan, dtype=np.float32)
        for i, wav in enumerate(wavs):
            out[i] = self.embed(wav, sample_rate_hz)
        return out

    @staticmethod
    def similarity(a: np.ndarray, b: np.ndarray) -> float:
        """Cosine similarity of two embeddings (-1..1; GE2E embeddings are non-negative, so in practice 0..1).

        NaN when either is NaN (an unjudgeable clip) or all zeros.
        """
        a64, b64 = np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()
        if a64.shape != b64.shape:
            raise ValueError(f"embeddings differ in size: {a64.shape} vs {b64.shape}")
        norm = float(np.linalg.norm(a64) * np.linalg.norm(b64))
        if not math.isfinite(norm) or norm == 0.0:
            return math.nan
        return float(np.dot(a64, b64) / norm)

    def _prepare(self, wav: np.ndarray, sample_rate_hz: int) -> np.ndarray | None:
        """16 kHz speech as Resemblyzer's preprocessing leaves it, or None when there is too little to judge."""
        x = _as_mono_16k(wav, sample_rate_hz)
        min_samples = int(self.min_speech_s * JUDGE_SAMPLE_RATE_HZ)
        if x is None or x.size < min_samples or float(np.max(np.abs(x))) < _SILENCE_PEAK:
            return None
        speech = self._preprocess_wav(x)
        return speech if speech.size >= min_samples else None


class NaturalnessJudge:
    """DNSMOS P.835 naturalness of a clip (OVRL, SIG, BAK on 1-5), via :class:`pipelines.eval.metrics.DnsmosScorer`.

    Example:
        >>> judge = NaturalnessJudge()
        >>> scores = judge(wav, 16000)
        >>> scores.ovrl, scores.sig, scores.bak
        (3.1, 3.5, 3.9)
    """

    def __init__(self, *, num_threads: int = 1) -> None:
        from pipelines.eval.metrics import DnsmosScorer

        self._scorer = DnsmosScorer(num_threads=num_threads)

    def __call__(self, wav: np.ndarray, sample_rate_hz: int = JUDGE_SAMPLE_RATE_HZ) -> DnsmosScores:
        """Scores of one mono clip (resampled to 16 kHz if needed); all NaN for an empty or non-finite clip.

        A silent clip is scored, not NaN: DNSMOS has a (low) answer for it.
        """
        from pipelines.eval.metrics import DnsmosScores

        x = _as_mono_16k(wav, sample_rate_hz)
        if x is None or x.size == 0:
            return DnsmosScores(sig=math.nan, bak=math.nan, ovrl=math.nan)
        return self._scorer(x)


def _as_mono_16k(wav: np.ndarray, sample_rate_hz: int) -> np.ndarray | None:
    """Float32 mono in [-1, 1] at 16 kHz; None (with a warning) for non-finite samples; ValueError for bad shapes."""
    x = np.asarray(wav)
    if x.ndim != 1:
        raise ValueError(f"expected mono samples of shape (n,), got shape {x.shape}")
    if int(sample_rate_hz) <= 0:
        raise ValueError(f"sample_rate_hz must be positive, got {sample_rate_hz}")
    if x.size and not np.all(np.isfinite(x)):
        warnings.warn("clip has non-finite samples; judging it NaN", RuntimeWarning, stacklevel=3)
        return None
    x = np.clip(x.astype(np.float32, copy=False), -1.0, 1.0)
    if x.size and int(sample_rate_hz) != JUDGE_SAMPLE_RATE_HZ:
        import soxr

        x = soxr.resample(x, int(sample_rate_hz), JUDGE_SAMPLE_RATE_HZ, quality="HQ").astype(np.float32)
    return x


def _import_resemblyzer():
    """(VoiceEncoder, preprocess_wav) from resemblyzer, importable with the SciPy this project pins.

    resemblyzer/audio.py does ``from scipy.ndimage.morphology import binary_dilation``. SciPy deprecated
    that namespace in 1.8 and removes it in 2.0 (1.17 still has it, with a DeprecationWarning). When it is
    gone, alias it to ``scipy.ndimage``, which holds the same function; site-packages is never patched.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            import scipy.ndimage.morphology  # noqa: F401
        except ImportError:
            import scipy.ndimage

            sys.modules["scipy.ndimage.morphology"] = scipy.ndimage
        from resemblyzer import VoiceEncoder, preprocess_wav
    return VoiceEncoder, preprocess_wav
