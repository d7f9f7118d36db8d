"""Smoke test of the training-input throughput bench (bench/train_input.py) on a tiny generated lake."""

from __future__ import annotations

from bench.train_input import RESULTS_MARKER, main

METHODS = "lance+ray-data,lance-direct,webdataset-w0,parquet"


def test_every_input_delivers_the_planned_rows_and_the_section_is_recorded(tmp_path, ray_session, capsys):
    results = tmp_path / "RESULTS.md"
    results.write_text("# Benchmark results\n")
    argv = ["--generate-rows", "150", "--synthetic-per-real", "1", "--max-frames", "50", "--batch-size", "16",
            "--rows-per-block", "64", "--warmup", "0", "--epochs", "1", "--methods", METHODS,
            "--work-dir", str(tmp_path / "work"), "--write-results", "--results-md", str(results)]
    assert main(argv) == 0  # main raises when an input's (rows, frames) differ from the plan's
    text = results.read_text()
    assert text.startswith(f"# Benchmark results\n\n<!-- {RESULTS_MARKER}:begin -->\n## Training input throughput")
    assert text.rstrip().endswith(f"<!-- {RESULTS_MARKER}:end -->") and "load average" in text
    rows = {line.split(" | ")[0][2:]: line.split(" | ") for line in text.splitlines() if line.startswith("| ")
            and not line.startswith(("| input", "| ---"))}
    assert sorted(rows) == sorted(METHODS.split(","))
    assert all(float(r[2].replace(",", "")) > 0 for r in rows.values())  # frames/s
    assert rows["lance+ray-data"][5] == "1.00"  # no Ray Train run here: the first input is the reference
    assert "WebDataset shards" in text and "lance-direct:" in capsys.readouterr().out


def test_a_lake_without_latents_is_one_error_line(tmp_path, capsys):
    assert main(["--lake-root", str(tmp_path / "none"), "--work-dir", str(tmp_path / "w")]) == 1
    assert capsys.readouterr().err.count("\n") == 1
