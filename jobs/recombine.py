"""Recombine factors of the lake's utterances into new ones: plan -> swap in latent space -> gates -> ``synthetic``.

Usage::

    python jobs/recombine.py --config configs/recombine.yaml
    ray job submit --working-dir . -- python jobs/recombine.py --config configs/recombine.yaml
    python jobs/recombine.py --config configs/recombine.yaml --plan-only     # print the plan's counts, make nothing

The plan is printed as counts before any work. A re-run makes only the plan
rows not yet in ``synthetic`` (a killed run resumes; a finished one is a
no-op).

Exit codes: 0 success; 2 unusable input, found before anything was written
(bad config, unknown factor, a filter that does not parse, no matching rows,
checkpoints that do not pair, no latents of the codec); 1 the run failed (its
``runs`` row says why; a re-run resumes).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from jobs._cli import fail, load_job_config  # noqa: E402
from schemas.recombine import RecombineConfig  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, help="YAML config (see configs/recombine.yaml)")
    parser.add_argument("--lake-root", help="override lake_root (a path or s3:// URI)")
    parser.add_argument("--report", help="override output.report_path")
    parser.add_argument("--plan-only", action="store_true", help="print the plan's counts and stop")
    args = parser.parse_args(argv)
    config = load_job_config(args.config, RecombineConfig)
    if config is None:
        return 2
    if args.lake_root:
        config = config.model_copy(update={"lake_root": args.lake_root})
    if args.report:
        config = config.model_copy(update={"output": config.output.model_copy(update={"report_path": args.report})})

    from models.codec import CheckpointError
    from models.factorizer import FactorizerCheckpointError
    from pipelines.recombine import RecombineAccountingError, RecombineInputError, plan_only, run_recombine
    from schemas.recombine import PlanError

    try:
        if args.plan_only:
            print(plan_only(config))
            return 0
        summary = run_recombine(config)
    except (CheckpointError, FactorizerCheckpointError, RecombineInputError, PlanError) as exc:
        fail(str(exc))  # found before anything was written
        return 2
    except RecombineAccountingError as exc:  # recorded as a failed run in `runs`
        fail(f"{type(exc).__name__}: {exc}")
        return 1
    print(summary.format())
    return 0


if __name__ == "__main__":
    sys.exit(main())
