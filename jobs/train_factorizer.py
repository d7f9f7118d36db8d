"""Train the factorizer on one codec's ``latents`` with Ray Train; a re-run resumes from the last checkpoint.

Usage::

    python jobs/train_factorizer.py --config configs/train_factorizer.yaml
    ray job submit --working-dir . -- python jobs/train_factorizer.py --config configs/train_factorizer.yaml
    python jobs/train_factorizer.py --config configs/train_factorizer.yaml --export checkpoints/factorizer_default.pt

The latents must exist first (``jobs/encode.py`` with the same codec
checkpoint). ``--export`` writes an inference-only fp16 copy of the latest
checkpoint after training (or right away when training is already complete).

Exit codes: 0 success, 2 bad config (nothing was done), 1 the run failed (a re-run resumes).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from jobs._cli import fail, load_job_config  # noqa: E402
from schemas.train_factorizer import TrainFactorizerConfig  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, help="YAML config (see configs/train_factorizer.yaml)")
    parser.add_argument("--lake-root", help="override lake_root (a path or s3:// URI)")
    parser.add_argument("--output-dir", help="override output_dir (a path or s3:// URI)")
    parser.add_argument("--codec-checkpoint", help="override codec_checkpoint")
    parser.add_argument("--export", metavar="PATH", help="after training, write an fp16 inference checkpoint here")
    args = parser.parse_args(argv)
    config = load_job_config(args.config, TrainFactorizerConfig)
    if config is None:
        return 2
    overrides = {k: v for k, v in (("lake_root", args.lake_root), ("output_dir", args.output_dir),
                                   ("codec_checkpoint", args.codec_checkpoint)) if v}
    config = config.model_copy(update=overrides)

    from models.codec.checkpoint import CheckpointError
    from models.factorizer.checkpoint import FactorizerCheckpointError, export_factorizer_checkpoint
    from pipelines.run_outputs import RunOutputs
    from pipelines.train_loop import TrainingError
    from pipelines.train_factorizer import run_train_factorizer
    from schemas.storage import resolve_uri

    try:
        summary = run_train_factorizer(config)
    except (FileNotFoundError, ValueError, KeyError, CheckpointError, FactorizerCheckpointError,
            TrainingError) as exc:
        fail(f"{type(exc).__name__}: {exc}")
        return 1
    print(summary.format())
    if args.export:
        outputs = RunOutputs(summary.output_dir, config.storage)
        latest = outputs.fetch(outputs.paths["latest"])
        out = export_factorizer_checkpoint(latest, resolve_uri(args.export))
        print(f"  exported:   {out} ({Path(out).stat().st_size / 1e6:.1f} MB, fp16, no optimizer state)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
