"""Curate raw speech into the Lance ``segments`` table (plus ``sources``, ``rejects``, ``runs``).

Usage::

    python jobs/curate.py --config configs/curate.yaml
    ray job submit --working-dir . -- python jobs/curate.py --config configs/curate.yaml

Exit codes: 0 success, 2 bad config (nothing was done), 1 the run failed
(its ``runs`` row says why; a re-run resumes).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from jobs._cli import fail, load_job_config  # noqa: E402
from pipelines.curate import AccountingError, run_curation  # noqa: E402
from pipelines.lake_summary import summarize_lake  # noqa: E402
from pipelines.sources import ManifestError  # noqa: E402
from schemas.curate import CurateConfig  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, help="YAML config (see configs/curate.yaml)")
    parser.add_argument("--lake-root", help="override lake_root (a path or s3:// URI)")
    parser.add_argument("--summary", action="store_true", help="print a summary of the lake's tables at the end")
    args = parser.parse_args(argv)
    config = load_job_config(args.config, CurateConfig)
    if config is None:
        return 2
    if args.lake_root:
        config = config.model_copy(update={"lake_root": args.lake_root})
    try:
        summary = run_curation(config)
    except (FileNotFoundError, ManifestError, AccountingError) as exc:  # recorded as a failed run in `runs`
        fail(f"{type(exc).__name__}: {exc}")
        return 1
    print(summary.format())
    if args.summary:
        print(summarize_lake(summary.lake_root, config.storage))
    return 0


if __name__ == "__main__":
    sys.exit(main())
