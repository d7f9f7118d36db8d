"""Synthesizer voices: each voice id must be its own voice (espeak-ng variants really applied)."""

from __future__ import annotations

import numpy as np
import pytest

from pipelines.seed.items import SynthSource
from pipelines.seed.voices import VoiceError, check_distinct_voices, espeak_voice_argument, synthesize


def _median_f0_hz(samples: np.ndarray, rate: int) -> float:
    import librosa

    f0, voiced, _ = librosa.pyin(samples, fmin=60, fmax=400, sr=rate)
    return float(np.nanmedian(f0[voiced]))


@pytest.mark.parametrize("name", ["en-gb+f3", "fr-fr+f3"])
def test_a_variant_of_a_language_voice_is_applied(name):
    """espeak-ng drops ``+f3`` after ``en-gb`` or ``fr-fr``; the voice file with the variant keeps it."""
    base, _, _ = name.partition("+")
    text = "The quick brown fox jumps over the lazy dog."
    plain, rate, _ = synthesize(SynthSource(voice_id=f"espeak-ng:{base}", text=text))
    female, rate_f, origin = synthesize(SynthSource(voice_id=f"espeak-ng:{name}", text=text))
    assert "+f3" in origin and rate == rate_f
    assert plain.shape != female.shape or not np.array_equal(plain, female)
    assert _median_f0_hz(female, rate) > 1.4 * _median_f0_hz(plain, rate)  # a female variant: higher voice


def test_a_name_without_a_variant_is_passed_as_it_is():
    assert espeak_voice_argument("en-gb") == "en-gb" and espeak_voice_argument("en-us+f2").endswith("+f2")


def test_two_labels_for_one_voice_are_refused():
    check_distinct_voices(["espeak-ng:en-gb", "espeak-ng:en-gb+f3", "espeak-ng:en-gb+m4"])
    # espeak-ng 1.51: `fr-fr` and `fr-be` are one voice (they differ only in how they read numbers, "70")
    with pytest.raises(VoiceError, match="'espeak-ng:fr-fr' and 'espeak-ng:fr-be' speak with identical samples"):
        check_distinct_voices(["espeak-ng:fr-fr", "espeak-ng:fr-be"])
