"""The demo path on the tiny seed corpus: build it, curate it, and every bad input ends with its expected reason."""

from __future__ import annotations

import json
from pathlib import Path

import lance
import pytest

from pipelines.curate import run_curation
from pipelines.lance_io import table_uri
from schemas.curate import CurateConfig, load_config
from schemas.seed import SeedConfig
from tests.conftest import ROOT


@pytest.mark.integration
def test_tiny_seed_corpus_curates_with_every_bad_input_explained(tmp_path, ray_session):
    from pipelines.seed import build_seed_corpus

    seed_cfg = load_config(ROOT / "configs" / "make_seed_corpus_tiny.yaml", SeedConfig)
    seed_cfg = seed_cfg.model_copy(update={"output_dir": str(tmp_path / "seed")})
    build_seed_corpus(seed_cfg, emit=lambda _: None)
    seed = tmp_path / "seed"
    demo = load_config(ROOT / "configs" / "curate.yaml", CurateConfig)
    sources = [s.model_copy(update={"uri": str(seed / Path(s.uri).relative_to("data/seed"))}) for s in demo.sources]
    config = demo.model_copy(update={"lake_root": str(tmp_path / "lake"), "sources": sources})

    summary = run_curation(config, progress=lambda _: None)

    rows = lance.dataset(table_uri(str(tmp_path / "lake"), "sources")).to_table().to_pylist()
    assert summary.inputs_processed == len(rows) == summary.inputs_accepted + summary.inputs_rejected
    by_rel = {r["source_uri"].split("/seed/bad/", 1)[1].replace(".tar#", ".tar::"): r
              for r in rows if "/seed/bad/" in r["source_uri"]}
    expected = json.loads((seed / "bad" / "EXPECTED.json").read_text())
    for rel, reason in expected.items():
        assert rel in by_rel, f"{rel} never reached the sources table"
        got = by_rel[rel]
        if reason is None:
            assert got["status"] == "accepted", (rel, got["reason"])
        else:
            assert (got["status"], got["reason"]) == ("rejected", reason), rel
    manifest = [json.loads(line) for line in (seed / "manifest.jsonl").read_text().splitlines()]
    assert summary.inputs_processed >= len(manifest)
    seg = lance.dataset(table_uri(str(tmp_path / "lake"), "segments")).to_table(columns=["speaker", "corpus", "environment"])
    assert seg.num_rows > 0 and len(set(seg.column("speaker").to_pylist())) >= 4
