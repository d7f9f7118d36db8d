"""Train the speech codec on the Lance ``segments`` table with Ray Train; a re-run resumes from the last checkpoint.

Usage::

    python jobs/train_codec.py --config configs/train_codec.yaml
    ray job submit --working-dir . -- python jobs/train_codec.py --config configs/train_codec.yaml
    python jobs/train_codec.py --config configs/train_codec.yaml --export checkpoints/codec_50hz_2x8555.pt

``--export`` writes an inference-only fp16 copy of the latest checkpoint after
training (or right away when training is already complete).

Exit codes: 0 success, 2 bad config (nothing was done), 1 the run failed (a re-run resumes).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from jobs._cli import fail, load_job_config  # noqa: E402
from schemas.codec import TrainCodecConfig  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, help="YAML config (see configs/train_codec.yaml)")
    parser.add_argument("--lake-root", help="override lake_root (a path or s3:// URI)")
    parser.add_argument("--output-dir", help="override output_dir (a path or s3:// URI)")
    parser.add_argument("--export", metavar="PATH", help="after training, write an fp16 inference checkpoint here")
    args = parser.parse_args(argv)
    config = load_job_config(args.config, TrainCodecConfig)
    if config is None:
        return 2
    overrides = {k: v for k, v in (("lake_root", args.lake_root), ("output_dir", args.output_dir)) if v}
    config = config.model_copy(update=overrides)

    from models.codec.checkpoint import CheckpointError, export_checkpoint
    from pipelines.train_codec import TrainingError, checkpoint_paths, run_train_codec
    from schemas.storage import resolve_uri

    try:
        summary = run_train_codec(config)
    except (FileNotFoundError, ValueError, CheckpointError, TrainingError) as exc:
        fail(f"{type(exc).__name__}: {exc}")
        return 1
    print(summary.format())
    if args.export:
        latest = checkpoint_paths(summary.output_dir)["latest"]
        out = export_checkpoint(latest, resolve_uri(args.export), note=f"exported by: {' '.join(sys.argv)}")
        print(f"  exported:   {out} ({out.stat().st_size / 1e6:.1f} MB, fp16, no optimizer state)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
