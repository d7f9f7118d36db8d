"""Torch models: the speech codec (``models.codec``), the factorizer (``models.factorizer``) and the CTC phoneme
recognizer on codec codes (``models.ctc``); generator and S2S to come. No ray imports here."""

from __future__ import annotations

__all__ = ["codec", "factorizer", "ctc"]
