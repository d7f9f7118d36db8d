"""Smoke test of the curation benchmark (bench/curate.py) on the tiny raw corpus: it runs and measures the same work."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.curate import BenchReport, diagnose_stage, format_report, run_bench, select_corpus, write_results
from schemas.curate import load_config
from tests.raw_corpus import make_raw_corpus

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def report(tmp_path_factory, ray_session) -> BenchReport:
    """One round of floor, loop and pipeline (one pipeline run keeps the test well under a minute)."""
    out = tmp_path_factory.mktemp("bench")
    corpus = select_corpus(make_raw_corpus(tmp_path_factory.mktemp("raw")), out)
    return run_bench(corpus, load_config(ROOT / "configs/curate.yaml"), cpus=2, repeats=1, out_dir=out,
                     command="bench", progress=lambda _: None)


def test_three_measurements_see_the_same_audio(report):
    (floor,), (loop,), (pipeline,) = report.runs["floor"], report.runs["loop"], report.runs["pipeline"]
    for m in (floor, loop, pipeline):
        assert m.audio_s > 0 and m.wall_s > 0 and m.cpu_s > 0, m.name
        assert m.per_wall_s > 0 and m.per_cpu_s > 0 and m.per_budget_s > 0, m.name
    assert pipeline.audio_s == pytest.approx(loop.audio_s, rel=1e-6)
    assert pipeline.segments == loop.segments > 0  # the same segments survive filters and dedup
    assert floor.audio_s == pytest.approx(loop.audio_s, abs=1.5)  # only nan.wav (1 s) differs: the floor decodes it
    assert {"stage: CurateSources as Ray Data tasks", "meta projection (a Ray task per block)"} <= set(pipeline.stages)
    assert {"decode+resample", "vad+segment", "quality", "flac encode"} <= set(loop.stages)


def test_report_section_is_rewritten_in_place_keeping_notes_and_other_sections(report, tmp_path):
    section = format_report(report)
    assert "| pipeline per CPU-s given / floor per CPU-s |" in section
    results = tmp_path / "RESULTS.md"
    results.write_text("# Benchmark results\n\n## Other bench\n\nkeep me\n")
    write_results(section, results)
    text = results.read_text()
    results.write_text(text + "my notes\n\n## Later bench\n\nkeep me too\n")
    write_results(section.replace("Command: `bench`", "Command: `bench again`"), results)
    text = results.read_text()
    assert text.count("## Curation throughput (issue #2)") == 1 and "bench again" in text
    assert "keep me\n" in text and "my notes" in text and "keep me too" in text
    assert text.index("## Other bench") < text.index("## Curation") < text.index("my notes") < text.index("## Later")


@pytest.mark.slow  # ~20 s more: five more Ray Data runs and a second run_curation
def test_diagnosis_runs_the_stage_every_way(report, tmp_path):
    probes = diagnose_stage(report.corpus, load_config(ROOT / "configs/curate.yaml"), cpus=2, out_dir=tmp_path)
    assert probes[0].label == "CurateSources in-process, no Ray" and probes[-1].label.startswith("run_curation")
    assert all(p.wall_s > 0 and p.cpu_s > 0 for p in probes)
