"""Factorize one codec's latents with a factorizer checkpoint into the Lance ``factors`` table (+ vector index).

Usage::

    python jobs/encode_factors.py --config configs/encode_factors.yaml
    python jobs/encode_factors.py --config configs/encode_factors.yaml \
        --factorizer-checkpoint data/checkpoints/factorizer/checkpoints/latest.pt
    ray job submit --working-dir . -- python jobs/encode_factors.py --config configs/encode_factors.yaml

Exit codes: 0 success (a re-run with nothing new writes nothing), 2 unusable
input: bad config, an unreadable checkpoint, a factorizer of another codec
than the codec checkpoint or with vector sizes the table does not hold, no
latents of its codec, bad filter (nothing was written); 1 the run failed (its
``runs`` row says why; a re-run resumes).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from jobs._cli import fail, load_job_config  # noqa: E402
from models.codec import CheckpointError  # noqa: E402
from models.factorizer import FactorizerCheckpointError  # noqa: E402
from pipelines.encode_factors import FactorsAccountingError, FactorsInputError, run_encode_factors  # noqa: E402
from schemas.encode_factors import EncodeFactorsConfig  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, help="YAML config (see configs/encode_factors.yaml)")
    parser.add_argument("--lake-root", help="override lake_root (a path or s3:// URI)")
    parser.add_argument("--factorizer-checkpoint", help="override factorizer_checkpoint")
    parser.add_argument("--codec-checkpoint", help="override codec_checkpoint (the factorizer's codec)")
    parser.add_argument("--factorizer-id", help="override factorizer_id: the checkpoint must be this factorizer")
    args = parser.parse_args(argv)
    config = load_job_config(args.config, EncodeFactorsConfig)
    if config is None:
        return 2
    overrides = {k: v for k, v in (("lake_root", args.lake_root), ("factorizer_checkpoint", args.factorizer_checkpoint),
                                   ("codec_checkpoint", args.codec_checkpoint),
                                   ("factorizer_id", args.factorizer_id)) if v}
    config = config.model_copy(update=overrides)
    try:
        summary = run_encode_factors(config)
    except (CheckpointError, FactorizerCheckpointError, FactorsInputError) as exc:  # before anything was written
        fail(str(exc))
        return 2
    except FactorsAccountingError as exc:  # recorded as a failed run in `runs`
        fail(f"{type(exc).__name__}: {exc}")
        return 1
    print(summary.format())
    return 0


if __name__ == "__main__":
    sys.exit(main())
