"""Put a speech-to-speech run's held-out evaluation (``output_dir/eval.json``) into ``bench/RESULTS.md``.

The evaluation itself runs at the end of ``jobs/train_s2s.py`` (``pipelines.eval_s2s``); this script only
formats what that run measured, with the run's model id, steps and training time, the machine and the git
revision, between the ``s2s-eval`` markers (notes after the end marker are kept):

    .venv/bin/python jobs/train_ctc.py --config configs/train_ctc_en.yaml  # the recognizer the eval uses
    .venv/bin/python jobs/recombine.py --config configs/recombine_s2s_targets.yaml
    .venv/bin/python jobs/train_s2s.py --config configs/train_s2s.yaml     # trains, then writes eval.json
    .venv/bin/python bench/s2s_eval.py --output-dir data/checkpoints/s2s --results-md bench/RESULTS.md
    .venv/bin/python bench/s2s_eval.py --output-dir data/checkpoints/s2s data/checkpoints/s2s_real_targets \\
        --configs configs/train_s2s.yaml configs/train_s2s_real_targets.yaml

Exit 0, or 1 with one ``error: ...`` line (no eval.json in ``--output-dir``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # run as a script: make `pipelines` importable
    sys.path.insert(0, str(REPO_ROOT))

from pipelines.eval.markdown import cpu_model, git_revision, replace_marked_section  # noqa: E402

__all__ = ["RESULTS_MARKER", "format_results", "main"]

RESULTS_MARKER = "s2s-eval"


def _run_section(output_dir: Path) -> tuple[str, str]:
    """(first line naming the run, its Markdown table) for the S2S run in ``output_dir``."""
    from pipelines.eval_s2s import format_markdown

    path = output_dir / "eval.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file; run jobs/train_s2s.py with an eval block first")
    result = json.loads(path.read_text())
    minutes = None
    metrics = output_dir / "metrics.jsonl"
    if metrics.is_file():
        rows = [json.loads(line) for line in metrics.read_text().splitlines() if line.strip()]
        seconds = [r["train_seconds"] for r in rows if "train_seconds" in r]
        minutes = seconds[-1] / 60 if seconds else None
    ev = result.get("eval", {})
    trained = f"{result['step']} steps" + (f", {minutes:.1f} min of training" if minutes is not None else "")
    head = (f"`{output_dir}`: model `{result['s2s_id']}` ({trained}), judged by recognizer `{result['recognizer']}`; "
            f"output duration = {ev.get('rate', 1.0):g} x source.")
    return head, format_markdown(result)


def format_results(output_dirs: list[Path], configs: list[str] | None = None) -> str:
    """The RESULTS.md section of the S2S runs in ``output_dirs`` (each one's eval.json and metrics.jsonl).

    Raises:
        FileNotFoundError: a run without eval.json (not finished, or run with ``eval: null``).
    """
    configs = configs or ["configs/train_s2s.yaml"]
    lines = ["## Speech-to-speech evaluation (issue #5, item 3)", "", "```bash",
             ".venv/bin/python jobs/train_ctc.py --config configs/train_ctc_en.yaml",
             ".venv/bin/python jobs/recombine.py --config configs/recombine_s2s_targets.yaml",
             *(f".venv/bin/python jobs/train_s2s.py --config {c}" for c in configs),
             ".venv/bin/python bench/s2s_eval.py --output-dir " + " ".join(str(d) for d in output_dirs)
             + (" --configs " + " ".join(configs) if configs != ["configs/train_s2s.yaml"] else "")
             + " --results-md bench/RESULTS.md", "```", "",
             f"CPU: {cpu_model()}; git {git_revision(REPO_ROOT)}. Judges the S2S model never trained with: the "
             "recognizer (trained separately, `jobs/train_ctc.py`), Resemblyzer and DNSMOS. Each cell is source → "
             "output: PER against the source's transcript (lower is better; beside it the output's PER against "
             "another row's transcript: the judge's chance level), for rows whose sentence the target voice "
             "recorded the share closer by DTW mel distance to its reading of that sentence than of another "
             "(0.5 is chance), cosine to the target voice's centroid "
             "(higher; in brackets the share of rows whose output is closer than its source), the share of "
             "not-clean sources the environment probe calls clean (higher), DNSMOS BAK on not-clean sources and "
             "OVRL on all (1-5, higher)."]
    for output_dir in output_dirs:
        head, table = _run_section(output_dir)
        lines += ["", head, "", table]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output-dir", type=Path, nargs="+", default=[Path("data/checkpoints/s2s")],
                        help="the S2S runs' output_dir (each holds eval.json), one table each")
    parser.add_argument("--configs", nargs="+", default=None, help="the configs that made them (for the command)")
    parser.add_argument("--results-md", type=Path, default=REPO_ROOT / "bench" / "RESULTS.md")
    args = parser.parse_args(argv)
    try:
        body = format_results(args.output_dir, args.configs)
    except FileNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    replace_marked_section(args.results_md, RESULTS_MARKER, body)
    print(body)
    print(f"\nwritten to {args.results_md} (section {RESULTS_MARKER})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
