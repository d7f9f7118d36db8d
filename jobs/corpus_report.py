"""Write the corpus report: one self-contained HTML file of the lake's hours, quality, rejects, coverage, versions.

Usage::

    python jobs/corpus_report.py --config configs/corpus_report.yaml
    python jobs/corpus_report.py --config configs/corpus_report.yaml --lake-root s3://bucket/lake \\
        --out data/reports/corpus.html --json data/reports/corpus.json
    ray job submit --working-dir . -- python jobs/corpus_report.py --config configs/corpus_report.yaml

Reads metadata columns only (never audio) and writes nothing to the lake.
Prints a short text summary. Exit codes: 0 written; 2 unusable input (bad
config, no lake or no segments table, a bad segments filter, an output path
that is a directory; nothing written); 1 the report failed (e.g. the output
could not be written).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from jobs._cli import fail, load_job_config  # noqa: E402
from pipelines.corpus_report import CorpusReportInputError  # noqa: E402
from pipelines.corpus_report_html import write_corpus_report  # noqa: E402
from pipelines.lake_summary import format_report_summary  # noqa: E402
from schemas.corpus_report import CorpusReportConfig  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, help="YAML config (see configs/corpus_report.yaml)")
    parser.add_argument("--lake-root", help="override lake_root (a path or s3:// URI)")
    parser.add_argument("--out", help="override output_path (the HTML file; a path or s3:// URI)")
    parser.add_argument("--json", help="override json_path: also write the figures as JSON here")
    args = parser.parse_args(argv)
    config = load_job_config(args.config, CorpusReportConfig)
    if config is None:
        return 2
    overrides = {k: v for k, v in (("lake_root", args.lake_root), ("output_path", args.out),
                                   ("json_path", args.json)) if v}
    config = config.model_copy(update=overrides)
    try:
        outcome = write_corpus_report(config)
    except CorpusReportInputError as exc:
        fail(str(exc))
        return 2
    except OSError as exc:
        fail(f"could not write the report: {exc}")
        return 1
    print(format_report_summary(outcome.report, top_speakers=config.top_speakers))
    print(f"report: {outcome.html_uri} ({outcome.html_bytes / 1024:.0f} kB, {outcome.seconds:.1f} s)")
    if outcome.json_uri:
        print(f"figures: {outcome.json_uri}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
