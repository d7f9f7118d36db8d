"""Each table's pydantic row model and pyarrow schema agree; configs reject bad keys by name."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest
import yaml

from schemas._arrow import check_model_matches_schema
from schemas.curate import ConfigError, CurateConfig, load_config
from schemas.rejects import REJECTS_SCHEMA, RejectRow
from schemas.runs import RUNS_SCHEMA, RunRow
from schemas.segments import LABEL_COLUMNS, SEGMENTS_SCHEMA, SegmentRow
from schemas.sources import SOURCES_SCHEMA, SourceRow

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("model,schema", [(SegmentRow, SEGMENTS_SCHEMA), (SourceRow, SOURCES_SCHEMA),
                                          (RejectRow, REJECTS_SCHEMA), (RunRow, RUNS_SCHEMA)])
def test_row_model_matches_table_schema(model, schema):
    assert check_model_matches_schema(model, schema) == []


def test_check_detects_a_disagreement():
    broken = SOURCES_SCHEMA.remove(SOURCES_SCHEMA.get_field_index("status")).append(pa.field("extra", pa.int8()))
    problems = check_model_matches_schema(SourceRow, broken)
    assert any("status" in p for p in problems) and any("extra" in p for p in problems)


def test_segments_audio_is_a_lance_blob_and_labels_are_typed():
    audio = SEGMENTS_SCHEMA.field("audio")
    assert pa.types.is_large_binary(audio.type) and audio.metadata == {b"lance-encoding:blob": b"true"}
    assert SEGMENTS_SCHEMA.field("rt60_s").type == pa.float32()
    assert SEGMENTS_SCHEMA.field("bit_depth").type == pa.int32()
    assert set(LABEL_COLUMNS) <= set(SEGMENTS_SCHEMA.names)


def _write(tmp_path, obj) -> Path:
    p = tmp_path / "c.yaml"
    p.write_text(yaml.safe_dump(obj))
    return p


def test_every_config_in_configs_loads():
    from schemas import config_model_for

    files = sorted((ROOT / "configs").glob("*.yaml"))
    assert files, "no configs"
    for f in files:
        first = f.read_text().splitlines()[0]
        assert first.startswith("# ") and "python" in first, f"{f.name}: first line must be the command that runs it"
        load_config(f, config_model_for(f))


def test_unknown_key_is_named(tmp_path):
    p = _write(tmp_path, {"sources": [{"kind": "folder", "uri": "x"}], "filterz": {}})
    with pytest.raises(ConfigError, match=r"filterz: unknown key"):
        load_config(p, CurateConfig)


def test_nested_unknown_key_is_named(tmp_path):
    p = _write(tmp_path, {"sources": [{"kind": "folder", "uri": "x"}], "filters": {"min_snr": 3}})
    with pytest.raises(ConfigError, match=r"filters\.min_snr: unknown key"):
        load_config(p, CurateConfig)


def test_wrong_type_is_named(tmp_path):
    p = _write(tmp_path, {"sources": [{"kind": "folder", "uri": "x"}], "segmentation": {"max_segment_s": "long"}})
    with pytest.raises(ConfigError, match=r"segmentation\.max_segment_s"):
        load_config(p, CurateConfig)


def test_bad_source_kind_and_missing_sources(tmp_path):
    with pytest.raises(ConfigError, match=r"sources\.0\.kind"):
        load_config(_write(tmp_path, {"sources": [{"kind": "ftp", "uri": "x"}]}), CurateConfig)
    with pytest.raises(ConfigError, match=r"sources"):
        load_config(_write(tmp_path, {"lake_root": "x"}), CurateConfig)


def test_blob_column_is_last():
    """lance-ray 0.5 / pylance 14 cannot commit a blob column followed by other columns (measured here)."""
    assert SEGMENTS_SCHEMA.names[-1] == "audio"
