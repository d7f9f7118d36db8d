"""A tiny lake and checkpoint for the codec-evaluation tests (``tests.tiny_lake`` rows: no curation, no Ray).

Segments of 2.5 s (DNSMOS then scores one window per clip): two in the test split, one in a held-out corpus
(``codec2``, train split: the default ``real_holdout`` set), and three that no default set may select (train
split; a test-split clip shorter than ``min_clip_s``; a test-split clip of a held-out corpus goes to
``real_holdout`` only).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.tiny_lake import segment_row, write_segments

__all__ = ["TEST_CLIPS", "HOLDOUT_CLIPS", "tiny_eval_lake", "tiny_checkpoint"]

TEST_CLIPS = 2
HOLDOUT_CLIPS = 2
_BUILT: dict[str, Path] = {}


def tiny_eval_lake(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The lake root, written once per test session."""
    if "lake" not in _BUILT:
        lake = tmp_path_factory.mktemp("eval-lake")
        write_segments(lake, [
            segment_row(2.5, seed=1, split="test", speaker="test:a"),
            segment_row(2.5, seed=2, split="test", speaker="test:b"),
            segment_row(2.5, seed=3, split="train", speaker="codec2:talker", corpus="codec2"),
            segment_row(2.5, seed=4, split="test", speaker="codec2:other", corpus="codec2"),
            segment_row(2.5, seed=5, split="train", speaker="test:a"),
            segment_row(0.3, seed=6, split="test", speaker="test:c"),
        ])
        _BUILT["lake"] = lake
    return _BUILT["lake"]


def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A ``codec_tiny_test`` checkpoint with its initial weights (step 7)."""
    if "checkpoint" not in _BUILT:
        import torch

        from models.codec import build_codec, codec_tiny_test, save_checkpoint

        torch.manual_seed(0)
        _BUILT["checkpoint"] = save_checkpoint(tmp_path_factory.mktemp("eval-ckpt") / "tiny.pt",
                                               build_codec(codec_tiny_test()), codec_tiny_test(), step=7)
    return _BUILT["checkpoint"]
