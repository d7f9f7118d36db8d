"""Torch models: the speech codec (``models.codec``), the factorizer (``models.factorizer``), the CTC phoneme
recognizer on codec codes (``models.ctc``), the steerable latent generator (``models.generator``) and the
speech-to-speech model (``models.s2s``). No ray imports here."""

from __future__ import annotations

__all__ = ["codec", "factorizer", "ctc", "generator", "s2s"]
