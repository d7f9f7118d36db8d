"""Train the speech-to-speech model (any voice -> one clean target voice) on codec-code pairs with Ray Train.

Usage::

    python jobs/train_s2s.py --config configs/train_s2s.yaml
    ray job submit --working-dir . -- python jobs/train_s2s.py --config configs/train_s2s.yaml
    python jobs/train_s2s.py --config configs/train_s2s.yaml --max-steps 200 --output-dir /tmp/s2s_try

The latents must exist (``jobs/encode.py``), and for a synthetic share the ``synthetic`` rows
(``jobs/recombine.py``). A pair is a source item and the target voice's row (``target_filter``) of the same
language and text_id. A re-run of the same command resumes from the last checkpoint.

After training, the final weights are judged on held-out real and synthetic inputs (the ``eval`` block:
phoneme error rate by a recognizer of ``jobs/train_ctc.py``, which must exist first, target-voice
similarity, environment removed) into ``output_dir/eval.json``; ``eval: null`` skips it.

Exit codes: 0 success, 2 bad config (nothing was done), 1 the run failed (a re-run resumes).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from jobs._cli import fail, load_job_config, with_overrides  # noqa: E402
from schemas.train_s2s import TrainS2SConfig  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, help="YAML config (see configs/train_s2s.yaml)")
    parser.add_argument("--lake-root", help="override input.lake_root (a path or s3:// URI)")
    parser.add_argument("--output-dir", help="override output_dir (a path or s3:// URI)")
    parser.add_argument("--synthetic-per-real", type=float, help="override input.synthetic_per_real")
    parser.add_argument("--max-steps", type=int, help="override training.max_steps")
    args = parser.parse_args(argv)
    config = load_job_config(args.config, TrainS2SConfig)
    if config is None:
        return 2
    config = with_overrides(config, {"input.lake_root": args.lake_root, "output_dir": args.output_dir,
                                     "input.synthetic_per_real": args.synthetic_per_real,
                                     "training.max_steps": args.max_steps})
    if config is None:
        return 2

    from models.ctc.checkpoint import CtcCheckpointError
    from models.s2s.checkpoint import S2SCheckpointError
    from pipelines.train_loop import TrainingError
    from pipelines.train_s2s import run_train_s2s

    try:
        summary = run_train_s2s(config)
    except (FileNotFoundError, ValueError, S2SCheckpointError, CtcCheckpointError, TrainingError) as exc:
        fail(f"{type(exc).__name__}: {exc}")
        return 1
    print(summary.format())
    return 0


if __name__ == "__main__":
    sys.exit(main())
