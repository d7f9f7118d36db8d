"""The corpus report job as users run it: the shipped config, exit codes, one-line errors, an S3 lake."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from jobs.corpus_report import main
from schemas import config_model_for
from schemas.corpus_report import CorpusReportConfig
from schemas.curate import load_config
from schemas.storage import StorageConfig
from tests.conftest import ROOT
from tests.corpus_lake import NEW_CELLS, build_corpus_lake

CONFIG = ROOT / "configs" / "corpus_report.yaml"


@pytest.fixture(scope="module")
def lake(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("corpus_job") / "lake"
    build_corpus_lake(root)
    return root


def test_the_shipped_config_loads_and_names_its_command():
    assert config_model_for(CONFIG) is CorpusReportConfig
    config = load_config(CONFIG, CorpusReportConfig)
    assert (config.lake_root, config.output_path, config.json_path) == ("data/lake", "data/reports/corpus.html", None)
    assert CONFIG.read_text().splitlines()[0].startswith(
        "# python jobs/corpus_report.py --config configs/corpus_report.yaml")


def test_the_job_writes_the_report_and_prints_a_summary(lake, tmp_path):
    out, figures = tmp_path / "r" / "corpus.html", tmp_path / "r" / "corpus.json"
    proc = subprocess.run([sys.executable, str(ROOT / "jobs" / "corpus_report.py"), "--config", str(CONFIG),
                           "--lake-root", str(lake), "--out", str(out), "--json", str(figures)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    page = out.read_text()
    assert page.startswith("<!DOCTYPE html>") and "http://" not in page and "https://" not in page
    assert "data:image/png;base64," in page
    assert f"report: {out} (" in proc.stdout and "rejects by reason: no_speech 3" in proc.stdout
    assert "speaker x environment: 4 x 3 = 12 cells; seed covers 5, synthetic (passed) 3, 2 new" in proc.stdout
    data = json.loads(figures.read_text())
    assert {(c["speaker"], c["environment"]) for c in data["grid"]["cells"] if c["new"]} == NEW_CELLS


def _bad(tmp_path: Path, argv: list[str], capsys) -> str:
    assert main(["--config", str(CONFIG), "--out", str(tmp_path / "x.html"), *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "Traceback" not in err
    assert not (tmp_path / "x.html").exists()
    return err


def test_bad_inputs_exit_2_with_one_line(lake, tmp_path, capsys):
    err = _bad(tmp_path, ["--lake-root", str(tmp_path / "nope")], capsys)
    assert "no lake at" in err and len(err.splitlines()) == 1
    (tmp_path / "empty").mkdir()
    err = _bad(tmp_path, ["--lake-root", str(tmp_path / "empty")], capsys)
    assert "no segments table under" in err and len(err.splitlines()) == 1
    bad_filter = tmp_path / "f.yaml"
    bad_filter.write_text(yaml.safe_dump({"segments_filter": "speaker = = 'x'"}))
    err = _bad(tmp_path, ["--config", str(bad_filter), "--lake-root", str(lake)], capsys)
    assert "segments_filter" in err and "cannot run" in err and len(err.splitlines()) == 1
    assert main(["--config", str(CONFIG), "--lake-root", str(lake), "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert "is a directory" in err and len(err.splitlines()) == 1


def test_an_unknown_config_key_is_named(tmp_path, capsys):
    bad = tmp_path / "c.yaml"
    bad.write_text(yaml.safe_dump({"lake_root": "x", "top_speakerz": 3}))
    assert main(["--config", str(bad)]) == 2
    assert "top_speakerz: unknown key" in capsys.readouterr().err


def test_a_report_of_an_s3_lake_written_to_s3(s3_bucket, tmp_path, capsys):
    import boto3

    endpoint, bucket = s3_bucket
    storage = StorageConfig(s3_endpoint_url=endpoint, s3_allow_http=True)
    build_corpus_lake(f"s3://{bucket}/lake", storage)
    config = tmp_path / "s3.yaml"
    config.write_text(yaml.safe_dump({"lake_root": f"s3://{bucket}/lake", "output_path": f"s3://{bucket}/r/c.html",
                                      "storage": {"s3_endpoint_url": endpoint, "s3_allow_http": True}}))
    assert main(["--config", str(config), "--json", str(tmp_path / "c.json")]) == 0
    out = capsys.readouterr().out
    assert f"lake: s3://{bucket}/lake" in out and "2 new from synthetic" in out
    page = boto3.client("s3", endpoint_url=endpoint).get_object(Bucket=bucket, Key="r/c.html")["Body"].read().decode()
    assert "Speaker x environment coverage" in page and "https://" not in page
    assert json.loads((tmp_path / "c.json").read_text())["segments"]["segments"] == 15
    assert main(["--config", str(config), "--lake-root", f"s3://{bucket}/nolake"]) == 2
    assert "no segments table under s3://" in capsys.readouterr().err
