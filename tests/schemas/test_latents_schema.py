"""The ``latents`` row model and table schema agree; the encode config has usable defaults and rejects bad keys."""

from __future__ import annotations

import typing
from pathlib import Path

import pyarrow as pa
import pytest
import yaml
from pydantic import create_model

from schemas import config_model_for
from schemas._arrow import check_model_matches_schema
from schemas.curate import ConfigError, load_config
from schemas.encode import DEFAULT_CODEC_CHECKPOINT, EncodeConfig
from schemas.latents import LATENTS_KEY, LATENTS_SCHEMA, LatentRow

ROOT = Path(__file__).resolve().parents[2]


def test_row_model_matches_table_schema():
    # check_model_matches_schema knows scalar types only: check the scalars with it and `codes` by hand.
    scalars = create_model("LatentScalars", **{n: (f.annotation, f) for n, f in LatentRow.model_fields.items()
                                               if n != "codes"})
    without_codes = LATENTS_SCHEMA.remove(LATENTS_SCHEMA.get_field_index("codes"))
    assert check_model_matches_schema(scalars, without_codes) == []
    assert set(LatentRow.model_fields) == set(LATENTS_SCHEMA.names)
    assert typing.get_origin(LatentRow.model_fields["codes"].annotation) is list
    codes = LATENTS_SCHEMA.field("codes")
    assert codes.type == pa.list_(pa.uint16()) and not codes.nullable
    assert set(LATENTS_KEY) <= set(LATENTS_SCHEMA.names)


def test_codes_must_fit_uint16():
    row = {"segment_id": "s", "codec_id": "c", "num_frames": 1, "num_stages": 2, "frame_rate_hz": 50.0,
           "bitrate_bps": 997.0, "num_samples": 320, "sample_rate_hz": 16000, "duration_s": 0.02, "split": "train",
           "segments_version": 1, "run_id": "r", "encoded_at": "2026-01-01T00:00:00Z"}
    assert LatentRow.model_validate({**row, "codes": [0, 65535]}).codes == [0, 65535]
    with pytest.raises(ValueError, match="codes.1"):
        LatentRow.model_validate({**row, "codes": [0, 65536]})


def test_shipped_config_loads_with_the_default_checkpoint():
    path = ROOT / "configs" / "encode.yaml"
    assert config_model_for(path) is EncodeConfig
    cfg = load_config(path, EncodeConfig)
    assert cfg.checkpoint == DEFAULT_CODEC_CHECKPOINT == "checkpoints/codec_50hz_2x8555.pt"
    assert (cfg.execution.torch_threads, cfg.execution.cpus_per_actor) == (1, 1.0)
    assert path.read_text().splitlines()[0].startswith("# python jobs/encode.py --config configs/encode.yaml")


def test_unknown_and_bad_keys_are_named(tmp_path):
    p = tmp_path / "encode.yaml"
    p.write_text(yaml.safe_dump({"checkpoint": "x.pt", "execution": {"actors": 2, "commit_every_segments": 0}}))
    with pytest.raises(ConfigError) as err:
        load_config(p, EncodeConfig)
    assert "execution.actors: unknown key" in str(err.value) and "execution.commit_every_segments" in str(err.value)
