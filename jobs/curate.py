"""Curate raw speech into the Lance ``segments`` table (plus ``sources``, ``rejects``, ``runs``).

Usage::

    python jobs/curate.py --config configs/curate.yaml
    ray job submit --working-dir . -- python jobs/curate.py --config configs/curate.yaml
    python jobs/curate.py --config configs/curate_nightly.yaml --summary-json /var/log/lsm/curate-last.json

Runs are incremental (unchanged sources are skipped) and take the lake's
writer lock ``<lake_root>/_locks/curate.lock`` first (``--no-lock`` skips it);
a lock left by a killed run is taken over. One stdout line, starting
``{"job": "curate"``, is the run's JSON summary (also written to
``--summary-json``, a path or ``s3://`` URI).

Exit codes: 0 success (also when nothing was new), 1 the run failed (its
``runs`` row says why; a re-run resumes), 2 bad config (nothing was done),
75 (EX_TEMPFAIL) another run holds the lock (nothing was done; try later).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from jobs._cli import load_job_config  # noqa: E402
from pipelines.lake_summary import summarize_lake  # noqa: E402
from pipelines.scheduled import EXIT_BAD_CONFIG, run_scheduled_curation  # noqa: E402
from schemas.curate import CurateConfig  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, help="YAML config (see configs/curate.yaml)")
    parser.add_argument("--lake-root", help="override lake_root (a path or s3:// URI)")
    parser.add_argument("--summary", action="store_true", help="print a summary of the lake's tables at the end")
    parser.add_argument("--lock", action=argparse.BooleanOptionalAction, default=True,
                        help="take the lake's curate lock first (default: on)")
    parser.add_argument("--lock-lease-s", type=float, default=600.0,
                        help="lease of the lock, renewed every third of it (default 600)")
    parser.add_argument("--summary-json", metavar="PATH", help="also write the run's JSON summary here (path or s3://)")
    args = parser.parse_args(argv)
    if args.lock_lease_s <= 0:
        parser.error("--lock-lease-s must be > 0")
    config = load_job_config(args.config, CurateConfig)
    if config is None:
        return EXIT_BAD_CONFIG
    if args.lake_root:
        config = config.model_copy(update={"lake_root": args.lake_root})
    result = run_scheduled_curation(config, lock=args.lock, summary_path=args.summary_json,
                                    lease_s=args.lock_lease_s)
    if args.summary and result.curate is not None:
        print(summarize_lake(result.curate.lake_root, config.storage))
    if result.interrupted:  # after a signal Ray's teardown can abort (SIGABRT); its local processes die with us
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(result.exit_code)
    return result.exit_code


if __name__ == "__main__":
    sys.exit(main())
