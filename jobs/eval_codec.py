"""Evaluate codec checkpoints against Codec2 and Opus on held-out speech; write the report, chart and scores.

Usage::

    python jobs/eval_codec.py --config configs/eval_codec.yaml
    python jobs/eval_codec.py --config configs/eval_codec.yaml --checkpoint data/checkpoints/codec/step_2000.pt \\
        --max-clips 20 --output-dir /tmp/codec_eval      # a quick look: nothing in bench/ is touched

Exit codes: 0 success, 2 bad config (nothing was done), 1 the run failed (a
missing or corrupt checkpoint, a coder not installed, an empty held-out set:
all found before the expensive work).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from jobs._cli import fail, load_job_config  # noqa: E402
from schemas.eval_codec import EvalCodecConfig  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, help="YAML config (see configs/eval_codec.yaml)")
    parser.add_argument("--lake-root", help="override lake_root (a path or s3:// URI)")
    parser.add_argument("--checkpoint", action="append", help="evaluate this checkpoint instead (repeatable)")
    parser.add_argument("--max-clips", type=int, help="at most this many clips per set")
    parser.add_argument("--output-dir", help="write report.md, chart.png, scores.jsonl here; leave RESULTS.md alone")
    args = parser.parse_args(argv)
    config = load_job_config(args.config, EvalCodecConfig)
    if config is None:
        return 2
    config = _override(config, args)
    if config is None:
        return 2

    from models.codec import CheckpointError
    from pipelines.eval import CodecNotInstalledError
    from pipelines.eval_codec import EvalConfigError, EvalDataError, run_codec_eval

    command = " ".join(["python", "jobs/eval_codec.py", *(sys.argv[1:] if argv is None else argv)])
    try:
        report = run_codec_eval(config, command=command, progress=lambda line: print(line, file=sys.stderr))
    except EvalConfigError as exc:
        fail(str(exc))
        return 2
    except (CheckpointError, CodecNotInstalledError, EvalDataError, FileNotFoundError) as exc:
        fail(f"{type(exc).__name__}: {exc}")
        return 1
    print(report.markdown)
    print("\n".join(f"wrote {name}: {path}" for name, path in report.paths.items()))
    return 0


def _override(config: EvalCodecConfig, args: argparse.Namespace) -> EvalCodecConfig | None:
    """Apply the command-line overrides, re-validating the result."""
    from pydantic import ValidationError

    data = config.model_dump()
    if args.lake_root:
        data["lake_root"] = args.lake_root
    if args.checkpoint:
        data["checkpoints"] = [{"path": p} for p in args.checkpoint]
    if args.max_clips is not None:
        data["sets"] = [{**s, "max_clips": args.max_clips} for s in data["sets"]]
    if args.output_dir:
        out = Path(args.output_dir)
        data["output"] = {"report_md": str(out / "report.md"), "chart_png": str(out / "chart.png"),
                          "scores_jsonl": str(out / "scores.jsonl"), "results_md": None}
    try:
        return EvalCodecConfig.model_validate(data)
    except ValidationError as exc:
        fail(f"invalid override: {exc.errors()[0]['msg']}")
        return None


if __name__ == "__main__":
    sys.exit(main())
