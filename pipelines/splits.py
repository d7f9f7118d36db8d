"""Train/valid/test assignment that is stable per speaker across runs and machines.

The bucket is a hash of (salt, speaker), so every segment of a speaker lands
in the same split and adding data never moves a speaker. Inputs without a
speaker label are grouped by their source URI instead (all segments of one
file stay together).
"""

from __future__ import annotations

import hashlib

from schemas.curate import SplitConfig

__all__ = ["assign_split"]


def assign_split(speaker: str | None, source_uri: str, config: SplitConfig) -> str:
    """``train``, ``valid`` or ``test`` for a segment."""
    if speaker is not None:
        if speaker in config.test_speakers:
            return "test"
        if speaker in config.valid_speakers:
            return "valid"
    group = f"speaker:{speaker}" if speaker is not None else f"source:{source_uri}"
    digest = hashlib.blake2b(f"{config.salt}\x1f{group}".encode(), digest_size=8).digest()
    bucket = int.from_bytes(digest, "big") / 2**64 * 100.0
    if bucket < config.test_percent:
        return "test"
    if bucket < config.test_percent + config.valid_percent:
        return "valid"
    return "train"
