"""Train the CTC phoneme recognizer on codec codes (seed and/or synthetic rows) with Ray Train, then score it.

Usage::

    python jobs/train_ctc.py --config configs/train_ctc.yaml
    ray job submit --working-dir . -- python jobs/train_ctc.py --config configs/train_ctc.yaml
    python jobs/train_ctc.py --config configs/train_ctc.yaml --synthetic-per-real 4 --output-dir data/checkpoints/ctc_4x

The latents must exist (``jobs/encode.py``), and for a synthetic share the
``synthetic`` rows (``jobs/recombine.py``). A re-run of the same command
resumes from the last checkpoint; once training is complete it only
(re-)scores the eval sets. Scores go to ``<output_dir>/eval.json``.

Exit codes: 0 success, 2 bad config (nothing was done), 1 the run failed (a re-run resumes).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from jobs._cli import fail, load_job_config, with_overrides  # noqa: E402
from schemas.train_ctc import TrainCtcConfig  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, help="YAML config (see configs/train_ctc.yaml)")
    parser.add_argument("--lake-root", help="override input.lake_root (a path or s3:// URI)")
    parser.add_argument("--output-dir", help="override output_dir (a path or s3:// URI)")
    parser.add_argument("--synthetic-per-real", type=float, help="override input.synthetic_per_real")
    parser.add_argument("--max-steps", type=int, help="override training.max_steps")
    args = parser.parse_args(argv)
    config = load_job_config(args.config, TrainCtcConfig)
    if config is None:
        return 2
    config = with_overrides(config, {"input.lake_root": args.lake_root, "output_dir": args.output_dir,
                                     "input.synthetic_per_real": args.synthetic_per_real,
                                     "training.max_steps": args.max_steps})
    if config is None:
        return 2

    from models.ctc.checkpoint import CtcCheckpointError
    from pipelines.phonemes import PhonemizeError
    from pipelines.train_ctc import run_train_ctc
    from pipelines.train_loop import TrainingError

    try:
        summary = run_train_ctc(config)
    except (FileNotFoundError, ValueError, CtcCheckpointError, PhonemizeError, TrainingError) as exc:
        fail(f"{type(exc).__name__}: {exc}")
        return 1
    print(summary.format())
    return 0


if __name__ == "__main__":
    sys.exit(main())
