"""One tiny seed corpus per test session (built from configs/make_seed_corpus_tiny.yaml into a tmp dir)."""

from __future__ import annotations

from pathlib import Path

import pytest

from schemas.curate import load_config
from schemas.seed import SeedConfig

ROOT = Path(__file__).resolve().parents[3]
TINY_CONFIG = ROOT / "configs" / "make_seed_corpus_tiny.yaml"


@pytest.fixture(scope="session")
def tiny_config(tmp_path_factory) -> SeedConfig:
    """The tiny config, writing under a session tmp dir."""
    out = tmp_path_factory.mktemp("seed") / "seed_tiny"
    return load_config(TINY_CONFIG, SeedConfig).model_copy(update={"output_dir": str(out)})


@pytest.fixture(scope="session")
def tiny_corpus(tiny_config):
    """(root, summary) of a tiny build, made once."""
    from pipelines.seed import build_seed_corpus

    summary = build_seed_corpus(tiny_config, emit=lambda line: None)
    return Path(tiny_config.output_dir), summary
