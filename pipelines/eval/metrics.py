"""Codec quality metrics for one (reference, decoded) pair of 16 kHz mono clips.

Full-reference scores come from maintained packages: PESQ-WB (ITU-T P.862.2,
``pesq``), STOI (``pystoi``). SI-SDR is a definition (Le Roux et al. 2019),
computed here in numpy. Mel distance is the mean absolute difference of
natural-log mel spectrograms (80 Slaney mel bands, 0-8 kHz, 1024-point Hann
frames, 256 hop), the quantity neural codecs train on; 0 for identical
audio. DNSMOS (P.835 SIG/BAK/OVRL, no reference) runs Microsoft's ONNX model
shipped inside the ``speechmos`` wheel through onnxruntime, following the
reference procedure (9.01 s windows, 1 s hop, short clips tiled, polynomial
calibration). ``speechmos.dnsmos`` itself is not imported: it imports
librosa at module level (not declared by the wheel, and it would bring
numba and scikit-learn) only for the P.808 score, which is not used here.

A metric that cannot be computed on a clip (PESQ finds no utterance, STOI has
fewer than 30 frames of speech, a silent reference) gives NaN with a warning,
so one bad clip never stops an evaluation.
"""

from __future__ import annotations

import importlib.resources
import math
import warnings
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy import signal

__all__ = [
    "DnsmosScorer",
    "DnsmosScores",
    "QualityScores",
    "log_mel_spectrogram",
    "measure_mel_distance",
    "measure_pesq_wb",
    "measure_si_sdr_db",
    "measure_stoi",
    "score_pair",
]

SAMPLE_RATE_HZ = 16000
_EPS = 1e-12
_SILENCE_PEAK = 1e-4  # below -80 dBFS everywhere: nothing to be intelligible
_MEL_BANDS = 80
_MEL_FFT = 1024
_MEL_HOP = 256
_MEL_FLOOR = 1e-5
_DNSMOS_WINDOW_S = 9.01
_DNSMOS_HOP_S = 1.0
# P.835 calibration polynomials of the reference DNSMOS script (non-personalized model).
_DNSMOS_SIG = np.poly1d([-0.08397278, 1.22083953, 0.0052439])
_DNSMOS_BAK = np.poly1d([-0.13166888, 1.60915514, -0.39604546])
_DNSMOS_OVRL = np.poly1d([-0.06766283, 1.11546468, 0.04602535])


@dataclass(frozen=True)
class DnsmosScores:
    """DNSMOS P.835 predictions, 1-5: speech signal (SIG), background (BAK), overall (OVRL)."""

    sig: float
    bak: float
    ovrl: float


@dataclass(frozen=True)
class QualityScores:
    """All scores of one decoded clip against its reference (NaN where not computable or not asked)."""

    pesq_wb: float
    stoi: float
    si_sdr_db: float
    mel_distance: float
    dnsmos_sig: float = math.nan
    dnsmos_bak: float = math.nan
    dnsmos_ovrl: float = math.nan


def score_pair(reference: np.ndarray, decoded: np.ndarray, sample_rate_hz: int = SAMPLE_RATE_HZ, *,
               with_dnsmos: bool = True) -> QualityScores:
    """Score ``decoded`` against ``reference`` (same rate, aligned, equal length; see ``baselines``).

    Args:
        reference: clean float mono audio.
        decoded: the codec's output on the same time axis.
        sample_rate_hz: must be 16000 (PESQ-WB and DNSMOS are defined there).
        with_dnsmos: also run DNSMOS on ``decoded``: the slow part, about 0.4 s per 9 s window on one
            core here; a clip under 9 s is doubled until one window fits, so it costs 1-9 windows.

    Returns:
        QualityScores; a metric that fails on this clip is NaN (with a warning).

    Example:
        >>> x = np.sin(np.linspace(0, 3000, 32000)).astype(np.float32) * 0.3
        >>> score_pair(x, x, with_dnsmos=False).mel_distance
        0.0
    """
    if sample_rate_hz != SAMPLE_RATE_HZ:
        raise ValueError(f"metrics are computed at {SAMPLE_RATE_HZ} Hz, got {sample_rate_hz}; resample first")
    ref, dec = _check_pair(reference, decoded)
    dnsmos = _default_dnsmos()(dec) if with_dnsmos else DnsmosScores(math.nan, math.nan, math.nan)
    return QualityScores(pesq_wb=measure_pesq_wb(ref, dec), stoi=measure_stoi(ref, dec),
                         si_sdr_db=measure_si_sdr_db(ref, dec), mel_distance=measure_mel_distance(ref, dec),
                         dnsmos_sig=dnsmos.sig, dnsmos_bak=dnsmos.bak, dnsmos_ovrl=dnsmos.ovrl)


def measure_pesq_wb(reference: np.ndarray, decoded: np.ndarray) -> float:
    """Wideband PESQ (MOS-LQO, about 1.0-4.64) at 16 kHz; NaN with a warning when PESQ refuses the clip."""
    from pesq import PesqError, pesq

    try:
        return float(pesq(SAMPLE_RATE_HZ, np.asarray(reference, np.float32), np.asarray(decoded, np.float32), "wb"))
    except PesqError as err:  # no utterance detected, buffer too short
        warnings.warn(f"PESQ not computable on this clip ({type(err).__name__}: {err}); scoring NaN",
                      RuntimeWarning, stacklevel=2)
        return math.nan


def measure_stoi(reference: np.ndarray, decoded: np.ndarray) -> float:
    """STOI (0-1); NaN with a warning for a silent reference or under 30 speech frames (~0.4 s) after silence removal."""
    from pystoi import stoi

    if not np.any(np.abs(reference) > _SILENCE_PEAK):
        warnings.warn("STOI undefined for a silent reference; scoring NaN", RuntimeWarning, stacklevel=2)
        return math.nan
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        value = float(stoi(np.asarray(reference, np.float64), np.asarray(decoded, np.float64), SAMPLE_RATE_HZ))
    if any("Not enough STFT frames" in str(w.message) for w in caught):
        warnings.warn("STOI not computable: fewer than 30 speech frames after silence removal; scoring NaN",
                      RuntimeWarning, stacklevel=2)
        return math.nan
    return value


def measure_si_sdr_db(reference: np.ndarray, decoded: np.ndarray) -> float:
    """Scale-invariant SDR in dB (Le Roux et al. 2019, zero-mean); NaN for a silent reference."""
    ref = np.asarray(reference, np.float64) - np.mean(reference)
    dec = np.asarray(decoded, np.float64) - np.mean(decoded)
    ref_energy = float(np.dot(ref, ref))
    if ref_energy <= _EPS:
        warnings.warn("SI-SDR undefined for a silent reference; scoring NaN", RuntimeWarning, stacklevel=2)
        return math.nan
    target = np.dot(dec, ref) / ref_energy * ref
    residual = dec - target
    return float(10.0 * np.log10((np.dot(target, target) + _EPS) / (np.dot(residual, residual) + _EPS)))


def measure_mel_distance(reference: np.ndarray, decoded: np.ndarray) -> float:
    """Mean |log mel(reference) - log mel(decoded)| over frames and 80 bands (nats; 0 when identical)."""
    return float(np.mean(np.abs(log_mel_spectrogram(reference) - log_mel_spectrogram(decoded))))


class DnsmosScorer:
    """DNSMOS P.835 on 16 kHz audio; loads the ONNX model from the ``speechmos`` wheel once, then scores clips.

    Example:
        >>> scorer = DnsmosScorer()
        >>> scores = scorer(np.zeros(16000, dtype=np.float32))
        >>> 1.0 <= scores.ovrl <= 5.0
        True
    """

    def __init__(self, *, num_threads: int = 1) -> None:
        import onnxruntime as ort

        model = importlib.resources.files("speechmos") / "dnsmos_models" / "sig_bak_ovr.onnx"
        if not model.is_file():
            raise FileNotFoundError(f"DNSMOS model missing at {model}; reinstall the speechmos package")
        options = ort.SessionOptions()
        options.intra_op_num_threads = num_threads
        options.inter_op_num_threads = 1
        self._session = ort.InferenceSession(str(model), sess_options=options, providers=["CPUExecutionProvider"])
        self._input_name = self._session.get_inputs()[0].name

    def __call__(self, samples: np.ndarray) -> DnsmosScores:
        audio = np.clip(np.asarray(samples, dtype=np.float32), -1.0, 1.0)
        if audio.ndim != 1 or audio.size == 0:
            raise ValueError(f"expected non-empty mono samples of shape (n,), got shape {audio.shape}")
        window = int(_DNSMOS_WINDOW_S * SAMPLE_RATE_HZ)
        while audio.size < window:  # the reference script doubles short clips until one window fits
            audio = np.concatenate([audio, audio])
        hop = int(_DNSMOS_HOP_S * SAMPLE_RATE_HZ)
        n_windows = int(audio.size // SAMPLE_RATE_HZ - _DNSMOS_WINDOW_S) + 1
        starts = [i * hop for i in range(n_windows) if i * hop + window <= audio.size]
        raw = np.array([self._session.run(None, {self._input_name: audio[None, s:s + window]})[0][0]
                        for s in starts])
        sig, bak, ovrl = (_DNSMOS_SIG(raw[:, 0]), _DNSMOS_BAK(raw[:, 1]), _DNSMOS_OVRL(raw[:, 2]))
        return DnsmosScores(sig=float(np.mean(sig)), bak=float(np.mean(bak)), ovrl=float(np.mean(ovrl)))


@lru_cache(maxsize=1)
def _default_dnsmos() -> DnsmosScorer:
    """One scorer per process (the ONNX session takes ~0.2 s to build)."""
    return DnsmosScorer()


def _check_pair(reference: np.ndarray, decoded: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Same-length, non-empty, finite mono arrays as float32."""
    ref, dec = np.asarray(reference), np.asarray(decoded)
    if ref.ndim != 1 or dec.ndim != 1 or ref.size == 0:
        raise ValueError(f"expected two non-empty mono arrays, got shapes {ref.shape} and {dec.shape}")
    if ref.size != dec.size:
        raise ValueError(f"reference and decoded differ in length ({ref.size} vs {dec.size}); align them first "
                         "(pipelines.eval.baselines.align_to_reference)")
    if not (np.all(np.isfinite(ref)) and np.all(np.isfinite(dec))):
        raise ValueError("reference and decoded must be finite")
    return ref.astype(np.float32, copy=False), dec.astype(np.float32, copy=False)


def log_mel_spectrogram(samples: np.ndarray) -> np.ndarray:
    """Natural-log mel power spectrogram, shape (bands, frames)."""
    x = np.asarray(samples, np.float64)
    if x.size < _MEL_FFT:
        x = np.pad(x, (0, _MEL_FFT - x.size))
    _, _, spec = signal.stft(x, nperseg=_MEL_FFT, noverlap=_MEL_FFT - _MEL_HOP, window="hann", boundary="even",
                             padded=True, scaling="psd")
    return np.log(_mel_filterbank() @ np.abs(spec) ** 2 + _MEL_FLOOR)


@lru_cache(maxsize=1)
def _mel_filterbank() -> np.ndarray:
    """Slaney-style mel filterbank (area-normalized triangles), shape (bands, fft bins)."""
    fft_hz = np.linspace(0, SAMPLE_RATE_HZ / 2, _MEL_FFT // 2 + 1)
    edges_hz = _mel_to_hz(np.linspace(_hz_to_mel(0.0), _hz_to_mel(SAMPLE_RATE_HZ / 2), _MEL_BANDS + 2))
    lower, center, upper = edges_hz[:-2, None], edges_hz[1:-1, None], edges_hz[2:, None]
    rising = (fft_hz - lower) / (center - lower)
    falling = (upper - fft_hz) / (upper - center)
    weights = np.maximum(0.0, np.minimum(rising, falling))
    return weights * (2.0 / (upper - lower))


def _hz_to_mel(hz: np.ndarray | float) -> np.ndarray:
    """Slaney mel scale: linear below 1 kHz, logarithmic above."""
    hz = np.asarray(hz, np.float64)
    linear = hz / (200.0 / 3)
    return np.where(hz < 1000.0, linear, 15.0 + np.log(np.maximum(hz, 1e-9) / 1000.0) / (np.log(6.4) / 27.0))


def _mel_to_hz(mel: np.ndarray) -> np.ndarray:
    """Inverse of :func:`_hz_to_mel`."""
    mel = np.asarray(mel, np.float64)
    return np.where(mel < 15.0, mel * (200.0 / 3), 1000.0 * np.exp((mel - 15.0) * (np.log(6.4) / 27.0)))
