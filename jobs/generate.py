"""Generate new utterances with the trained generator into ``synthetic``: plan -> sample codes -> gates.

Usage::

    python jobs/generate.py --config configs/generate.yaml
    ray job submit --working-dir . -- python jobs/generate.py --config configs/generate.yaml

The plan is a recombination plan (content segment + a donor per factor); the
generator (``jobs/train_generator.py``) speaks the content's phonemes with
the donors' factor vectors. Rows land in ``synthetic`` with full lineage and
``strategy = 'generated'``, gated like recombined rows. A re-run makes only
the rows not yet there.

Exit codes: 0 success; 2 unusable input found before anything was written (bad config, checkpoints that do
not pair, a generator of another codec or factorizer, a bad filter, no rows); 1 the run failed (a re-run
resumes).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from jobs._cli import fail, load_job_config, with_overrides  # noqa: E402
from schemas.generate import GenerateConfig  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, help="YAML config (see configs/generate.yaml)")
    parser.add_argument("--lake-root", help="override lake_root (a path or s3:// URI)")
    parser.add_argument("--generator-checkpoint", help="override generator_checkpoint")
    args = parser.parse_args(argv)
    config = load_job_config(args.config, GenerateConfig)
    if config is None:
        return 2
    config = with_overrides(config, {"lake_root": args.lake_root, "generator_checkpoint": args.generator_checkpoint})
    if config is None:
        return 2

    from models.codec import CheckpointError
    from models.factorizer import FactorizerCheckpointError
    from models.generator import GeneratorCheckpointError
    from pipelines.generate import GenerationError
    from pipelines.recombine import RecombineAccountingError, RecombineInputError, run_recombine
    from schemas.recombine import PlanError

    try:
        summary = run_recombine(config)
    except (CheckpointError, FactorizerCheckpointError, GeneratorCheckpointError, GenerationError,
            RecombineInputError, PlanError) as exc:
        fail(str(exc))  # found before anything was written
        return 2
    except RecombineAccountingError as exc:  # recorded as a failed run in `runs`
        fail(f"{type(exc).__name__}: {exc}")
        return 1
    print(summary.format())
    return 0


if __name__ == "__main__":
    sys.exit(main())
