"""Seed corpus builder: real speech from Debian packages + parallel multi-voice synthetic speech + labeled variants.

Entry point: :func:`build_seed_corpus` (run by ``jobs/make_seed_corpus.py``).
"""

from __future__ import annotations

from pipelines.seed.bad_inputs import REJECT_REASONS
from pipelines.seed.build import SeedBuildSummary, build_seed_corpus, plan_seed_corpus, required_packages
from pipelines.seed.debian import MissingPackagesError
from pipelines.seed.voices import VoiceError

__all__ = ["build_seed_corpus", "plan_seed_corpus", "required_packages", "SeedBuildSummary", "MissingPackagesError",
           "VoiceError", "REJECT_REASONS"]
