"""Encode the lake's segments with a codec checkpoint into the Lance ``latents`` table.

Usage::

    python jobs/encode.py --config configs/encode.yaml
    python jobs/encode.py --config configs/encode.yaml --checkpoint data/checkpoints/codec/last.pt
    ray job submit --working-dir . -- python jobs/encode.py --config configs/encode.yaml

Exit codes: 0 success (a re-run with nothing new writes nothing), 2 unusable
input: bad config, unreadable checkpoint or one of another codec, no segments
table, bad filter (nothing was written); 1 the run failed (its ``runs`` row
says why; a re-run resumes).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from jobs._cli import fail, load_job_config  # noqa: E402
from models.codec import CheckpointError  # noqa: E402
from pipelines.encode import EncodeAccountingError, EncodeInputError, run_encode  # noqa: E402
from schemas.encode import EncodeConfig  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, help="YAML config (see configs/encode.yaml)")
    parser.add_argument("--lake-root", help="override lake_root (a path or s3:// URI)")
    parser.add_argument("--checkpoint", help="override checkpoint (a codec checkpoint file)")
    parser.add_argument("--codec-id", help="override codec_id: the checkpoint must be this codec")
    args = parser.parse_args(argv)
    config = load_job_config(args.config, EncodeConfig)
    if config is None:
        return 2
    overrides = {k: v for k, v in (("lake_root", args.lake_root), ("checkpoint", args.checkpoint),
                                   ("codec_id", args.codec_id)) if v}
    config = config.model_copy(update=overrides)
    try:
        summary = run_encode(config)
    except (CheckpointError, EncodeInputError) as exc:  # found before anything was written
        fail(str(exc))
        return 2
    except EncodeAccountingError as exc:  # recorded as a failed run in `runs`
        fail(f"{type(exc).__name__}: {exc}")
        return 1
    print(summary.format())
    return 0


if __name__ == "__main__":
    sys.exit(main())
