"""Real speech for the audio tests, synthesized once per session (espeak-ng)."""

from __future__ import annotations

import numpy as np
import pytest

from tests.factories import espeak_16k

SENTENCES = (
    "The quick brown fox jumps over the lazy dog near the river bank.",
    "Please call Stella and ask her to bring these things from the store.",
    "A journey of a thousand miles begins with a single step forward.",
)


@pytest.fixture(scope="session")
def utterances() -> list[np.ndarray]:
    """Three espeak-ng sentences at 16 kHz, three voices (each ~3-4 s)."""
    return [espeak_16k(text, voice=voice) for text, voice in zip(SENTENCES, ("en", "en-us", "en+f3"))]


@pytest.fixture(scope="session")
def speech_60s(utterances: list[np.ndarray]) -> np.ndarray:
    """About 60 s of running speech: the sentences repeated with 0.3 s pauses."""
    gap = np.zeros(int(0.3 * 16000), dtype=np.float32)
    parts: list[np.ndarray] = []
    while sum(p.size for p in parts) < 60 * 16000:
        for u in utterances:
            parts += [u, gap]
    return np.concatenate(parts)[: 60 * 16000]
