"""Seed configs: the shipped ones load, bad keys and types fail naming the key, missing packages fail clearly."""

from __future__ import annotations

from pathlib import Path

import pytest

from jobs.make_seed_corpus import main
from pipelines.seed.debian import MissingPackagesError, ensure_packages
from schemas.curate import ConfigError, load_config
from schemas.seed import SeedConfig

CONFIGS = Path(__file__).resolve().parents[3] / "configs"


@pytest.mark.parametrize("name", ["make_seed_corpus.yaml", "make_seed_corpus_tiny.yaml"])
def test_shipped_configs_load_and_say_how_to_run_them(name):
    path = CONFIGS / name
    config = load_config(path, SeedConfig)
    assert isinstance(config, SeedConfig)
    assert path.read_text().splitlines()[0] == f"# .venv/bin/python jobs/make_seed_corpus.py --config configs/{name}"


def _write(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "seed.yaml"
    path.write_text(body)
    return path


def test_unknown_key_is_named(tmp_path):
    path = _write(tmp_path, "synthetic:\n  voices: [flite:slt, flite:awb, flite:rms]\n  voices_per_sentense: 3\n")
    with pytest.raises(ConfigError, match=r"synthetic\.voices_per_sentense: unknown key"):
        load_config(path, SeedConfig)


def test_wrong_type_is_named(tmp_path):
    path = _write(tmp_path, "synthetic:\n  voices: [flite:slt, flite:awb, flite:rms]\n"
                            "environment:\n  snr_db_range: loud\n")
    with pytest.raises(ConfigError, match=r"environment\.snr_db_range"):
        load_config(path, SeedConfig)


def test_bad_voice_id_and_unknown_room_are_named(tmp_path):
    path = _write(tmp_path, "synthetic:\n  voices: [flite:slt, mbrola:us1, flite:rms]\n"
                            "environment:\n  rooms: [cathedral]\n")
    with pytest.raises(ConfigError) as err:
        load_config(path, SeedConfig)
    assert "synthetic.voices" in str(err.value) and "mbrola:us1" in str(err.value)
    assert "environment.rooms.0" in str(err.value)


def test_job_exits_2_and_names_the_key(tmp_path, capsys):
    path = _write(tmp_path, "seed: 1\nsynthetic:\n  voices: [flite:slt, flite:awb, flite:rms]\nbad:\n  long_file: 3\n")
    assert main(["--config", str(path)]) == 2
    assert "bad.long_file: unknown key" in capsys.readouterr().err


def test_missing_package_without_permission_is_a_clear_error():
    with pytest.raises(MissingPackagesError, match=r"lsm-no-such-package.*apt-get install"):
        ensure_packages(["lsm-no-such-package"], install=False)


def test_job_exits_2_on_a_voice_that_is_not_installed(tmp_path, capsys):
    path = _write(tmp_path, f"output_dir: {tmp_path / 'out'}\nreal:\n  sources: [alsa]\n"
                            "synthetic:\n  voices: [flite:slt, flite:awb, flite:no_such_voice]\n")
    assert main(["--config", str(path)]) == 2
    assert "flite:no_such_voice" in capsys.readouterr().err
    assert not (tmp_path / "out" / "manifest.jsonl").exists()
