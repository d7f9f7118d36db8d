"""The amplification experiment: one recognizer trained on the seed alone vs. seed + recombined / generated rows.

Usage::

    python jobs/experiment_amplification.py --config configs/experiment_amplification.yaml
    ray job submit --working-dir . -- python jobs/experiment_amplification.py --config configs/experiment_amplification.yaml
    python jobs/experiment_amplification.py --config configs/experiment_amplification.yaml --report-only

It recombines the experiment's seed (idempotent), trains one CTC recognizer
per condition and seed with Ray Train (each resumable in its own folder
under ``output_dir``), scores them, and writes ``results.json``, the chart
and the ``amplification`` section of ``bench/RESULTS.md``. A re-run after a
kill resumes where it stopped; ``--report-only`` re-renders the table and
chart from ``results.json``.

Exit codes: 0 success, 2 bad config (nothing was done), 1 the run failed (a re-run resumes).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from jobs._cli import fail, load_job_config  # noqa: E402
from schemas.amplification import AmplificationConfig  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, help="YAML config (see configs/experiment_amplification.yaml)")
    parser.add_argument("--report-only", action="store_true", help="re-render table and chart from results.json")
    args = parser.parse_args(argv)
    config = load_job_config(args.config, AmplificationConfig)
    if config is None:
        return 2

    from models.ctc.checkpoint import CtcCheckpointError
    from pipelines.amplification import run_amplification
    from pipelines.amplification_report import write_report
    from pipelines.phonemes import PhonemizeError
    from pipelines.train_loop import TrainingError
    from pipelines.eval.markdown import git_revision
    from schemas.storage import resolve_uri

    results_path = Path(resolve_uri(config.output_dir)) / "results.json"
    try:
        if args.report_only:
            if not results_path.exists():
                fail(f"no results at {results_path}: run the experiment first")
                return 1
            report = json.loads(results_path.read_text())
        else:
            report = run_amplification(config)
            report.update(command=" ".join(["python", *sys.argv]), git=git_revision(Path(__file__).parents[1]),
                          finished_at=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()))
            results_path.write_text(json.dumps(report, indent=2))
    except (FileNotFoundError, ValueError, CtcCheckpointError, PhonemizeError, TrainingError) as exc:
        fail(f"{type(exc).__name__}: {exc}")
        return 1
    for line in write_report(report, config, command=" ".join(["python", *sys.argv])):
        print(line)
    print(f"  results: {results_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
