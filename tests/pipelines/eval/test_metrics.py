"""Quality metrics: perfect scores on identical audio, lower on noisy audio, NaN (not a crash) on silence."""

from __future__ import annotations

import math
import sys
import types

import numpy as np
import pytest

from pipelines.eval import (
    DnsmosScorer,
    QualityScores,
    measure_mel_distance,
    measure_pesq_wb,
    measure_si_sdr_db,
    measure_stoi,
    score_pair,
)
from tests.factories import add_white_noise, espeak_16k, silence

SENTENCES = ("The quick brown fox jumps over the lazy dog near the river bank.",
             "A journey of a thousand miles begins with a single step forward.")


@pytest.fixture(scope="module")
def speech() -> np.ndarray:
    """9.5 s of espeak-ng speech: just over one DNSMOS window, so DNSMOS runs once per call."""
    x = np.concatenate([espeak_16k(SENTENCES[0], voice="en"), silence(0.4), espeak_16k(SENTENCES[1], voice="en+f3")])
    return np.pad(x, (0, max(0, 152000 - x.size)))[:152000]


@pytest.fixture(scope="module")
def noisy(speech: np.ndarray) -> np.ndarray:
    """The same speech with white noise at 10 dB SNR, clipped to [-1, 1]."""
    return np.clip(add_white_noise(speech, 10.0, seed=1)[0], -1.0, 1.0)


@pytest.fixture(scope="module")
def clean_scores(speech: np.ndarray) -> QualityScores:
    return score_pair(speech, speech)


@pytest.fixture(scope="module")
def noisy_scores(speech: np.ndarray, noisy: np.ndarray) -> QualityScores:
    return score_pair(speech, noisy)


def test_identical_audio_scores_perfectly(clean_scores: QualityScores) -> None:
    assert clean_scores.pesq_wb == pytest.approx(4.64, abs=0.1)
    assert clean_scores.stoi == pytest.approx(1.0, abs=1e-6)
    assert clean_scores.si_sdr_db > 100.0
    assert clean_scores.mel_distance == 0.0
    assert 1.0 <= clean_scores.dnsmos_ovrl <= 5.0


# DNSMOS SIG rates the speech itself, not the background: white noise need not lower it (it rose here).
@pytest.mark.parametrize("higher_is_better", ["pesq_wb", "stoi", "si_sdr_db", "dnsmos_bak", "dnsmos_ovrl"])
def test_noise_lowers_every_score(higher_is_better: str, clean_scores: QualityScores,
                                  noisy_scores: QualityScores) -> None:
    assert getattr(noisy_scores, higher_is_better) < getattr(clean_scores, higher_is_better)


def test_noise_raises_mel_distance_and_si_sdr_reads_the_snr(clean_scores: QualityScores,
                                                           noisy_scores: QualityScores) -> None:
    assert noisy_scores.mel_distance > clean_scores.mel_distance + 0.5
    assert noisy_scores.si_sdr_db == pytest.approx(10.0, abs=0.5)


def test_si_sdr_ignores_scale_and_mel_distance_grows_with_noise(speech: np.ndarray) -> None:
    assert measure_si_sdr_db(speech, 0.3 * speech) > 100.0
    distances = [measure_mel_distance(speech, add_white_noise(speech, snr, seed=2)[0]) for snr in (30, 20, 10)]
    assert distances == sorted(distances) and distances[0] > 0


def test_silence_and_short_clips_give_nan_with_warnings_not_errors() -> None:
    with pytest.warns(RuntimeWarning):
        scores = score_pair(silence(1.0), silence(1.0), with_dnsmos=False)
    assert math.isnan(scores.pesq_wb) and math.isnan(scores.stoi) and math.isnan(scores.si_sdr_db)
    assert scores.mel_distance == 0.0 and math.isnan(scores.dnsmos_ovrl)
    short = espeak_16k("Hi.")[:3200]
    with pytest.warns(RuntimeWarning, match="STOI"):
        assert math.isnan(measure_stoi(short, short))
    with pytest.warns(RuntimeWarning, match="PESQ"):
        assert math.isnan(measure_pesq_wb(short[:1000], short[:1000]))


def test_bad_pairs_are_refused(speech: np.ndarray) -> None:
    with pytest.raises(ValueError, match="align them first"):
        score_pair(speech, speech[:-10])
    with pytest.raises(ValueError, match="16000"):
        score_pair(speech, speech, 8000)
    with pytest.raises(ValueError, match="finite"):
        score_pair(speech, np.full_like(speech, np.nan))


def test_dnsmos_matches_the_speechmos_reference_script(speech: np.ndarray, noisy: np.ndarray,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """Our driver of speechmos' ONNX model gives speechmos' own SIG/BAK/OVRL.

    ``speechmos.dnsmos`` imports librosa only for its P.808 score; a stand-in
    librosa (returning a correctly shaped spectrogram) lets the reference code
    run here. Its P.808 output is meaningless and not compared.
    """
    librosa = types.ModuleType("librosa")
    librosa.feature = types.SimpleNamespace(
        melspectrogram=lambda y, sr, n_fft, hop_length, n_mels: np.ones((n_mels, y.size // hop_length)))
    librosa.power_to_db = lambda spec, ref: spec
    monkeypatch.setitem(sys.modules, "librosa", librosa)
    monkeypatch.delitem(sys.modules, "speechmos.dnsmos", raising=False)
    from speechmos import dnsmos

    scorer = DnsmosScorer()
    for clip in (speech, noisy, speech[:40000]):  # 40000 samples: tiled by doubling, several windows
        ours, theirs = scorer(clip), dnsmos.run(clip, 16000)
        assert (ours.sig, ours.bak, ours.ovrl) == pytest.approx(
            (theirs["sig_mos"], theirs["bak_mos"], theirs["ovrl_mos"]), abs=1e-4)
    monkeypatch.delitem(sys.modules, "speechmos.dnsmos")
