"""Build the seed corpus: real Debian speech + parallel synthetic voices + labeled room/noise/channel variants.

Usage::

    python jobs/make_seed_corpus.py --config configs/make_seed_corpus.yaml [--force]

Writes ``<output_dir>/audio/``, ``manifest.jsonl``, ``shards/``, ``bad/`` and
``PROVENANCE.md``; a re-run reuses what is already built.
Exit codes: 0 success, 2 bad config, unknown voice or missing Debian packages
(nothing was done), 1 some items failed (a re-run resumes).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipelines.seed import MissingPackagesError, VoiceError, build_seed_corpus  # noqa: E402
from jobs._cli import fail, load_job_config  # noqa: E402
from schemas.seed import SeedConfig  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, help="YAML config (see configs/make_seed_corpus.yaml)")
    parser.add_argument("--force", action="store_true", help="rebuild every file, even those already current")
    parser.add_argument("--output-dir", help="override output_dir")
    args = parser.parse_args(argv)
    config = load_job_config(args.config, SeedConfig)
    if config is None:
        return 2
    if args.output_dir:
        config = config.model_copy(update={"output_dir": args.output_dir})
    try:
        summary = build_seed_corpus(config, force=args.force)
    except (MissingPackagesError, VoiceError, FileNotFoundError, ValueError) as exc:  # raised while planning
        fail(str(exc))
        return 2
    except RuntimeError as exc:
        fail(str(exc))
        return 1
    print(summary.format())
    return 0


if __name__ == "__main__":
    sys.exit(main())
