"""Torch models: the speech codec (``models.codec``); factorizer, generator and S2S to come. No ray imports here."""

from __future__ import annotations

__all__ = ["codec"]
