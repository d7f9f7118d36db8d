"""Train the steerable latent generator (phonemes + factor vectors -> codec codes) with Ray Train.

Usage::

    python jobs/train_generator.py --config configs/train_generator.yaml
    ray job submit --working-dir . -- python jobs/train_generator.py --config configs/train_generator.yaml

Needs latents (``jobs/encode.py``) and the factorizer's ``factors`` rows
(``jobs/encode_factors.py``). A re-run of the same command resumes from the
last checkpoint.

Exit codes: 0 success, 2 bad config (nothing was done), 1 the run failed (a re-run resumes).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from jobs._cli import fail, load_job_config, with_overrides  # noqa: E402
from schemas.train_generator import TrainGeneratorConfig  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, help="YAML config (see configs/train_generator.yaml)")
    parser.add_argument("--lake-root", help="override input.lake_root (a path or s3:// URI)")
    parser.add_argument("--output-dir", help="override output_dir (a path or s3:// URI)")
    parser.add_argument("--max-steps", type=int, help="override training.max_steps")
    args = parser.parse_args(argv)
    config = load_job_config(args.config, TrainGeneratorConfig)
    if config is None:
        return 2
    config = with_overrides(config, {"input.lake_root": args.lake_root, "output_dir": args.output_dir,
                                     "training.max_steps": args.max_steps})
    if config is None:
        return 2

    from models.generator.checkpoint import GeneratorCheckpointError
    from pipelines.phonemes import PhonemizeError
    from pipelines.train_generator import run_train_generator
    from pipelines.train_loop import TrainingError

    try:
        summary = run_train_generator(config)
    except (FileNotFoundError, ValueError, GeneratorCheckpointError, PhonemizeError, TrainingError) as exc:
        fail(f"{type(exc).__name__}: {exc}")
        return 1
    print(summary.format())
    return 0


if __name__ == "__main__":
    sys.exit(main())
