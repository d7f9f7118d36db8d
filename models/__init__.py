"""Torch models: the speech codec (``models.codec``) and the factorizer (``models.factorizer``); generator and
S2S to come. No ray imports here."""

from __future__ import annotations

__all__ = ["codec", "factorizer"]
