"""Vector search by segment id, vector or audio file on real factors (real codec + factorizer rows), and its errors."""

from __future__ import annotations

import json
from pathlib import Path

import lance
import numpy as np
import pytest
import soundfile as sf
import soxr

from models.factorizer import load_factorizer_checkpoint
from pipelines.audio.flac import decode_flac
from pipelines.lance_io import table_uri
from pipelines.query.cli import main
from pipelines.query.errors import QueryError
from pipelines.query.vector import MAX_AUDIO_S, encode_audio_factors, search_similar
from schemas.factors import FACTOR_DIMS
from tests.pipelines.query.factors_lake import factors_lake, tiny_models

SHIPPED = Path(__file__).resolve().parents[3] / "checkpoints"


@pytest.fixture(scope="module")
def shipped(tmp_path_factory):
    """Eight segments encoded and factorized by the shipped codec + factorizer (what the defaults load)."""
    root = tmp_path_factory.mktemp("vector")
    lake, _, _, rows = factors_lake(root, codec=SHIPPED / "codec_50hz_2x8555.pt",
                                    factorizer=SHIPPED / "factorizer_default.pt")
    return root, lake, rows


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """The same segments, factorized by a tiny codec + tiny factorizer."""
    root = tmp_path_factory.mktemp("vector_tiny")
    lake, codec, factorizer, rows = factors_lake(root)
    return root, lake, codec, factorizer, rows


def _write_22k_stereo(path: Path, flac: bytes) -> Path:
    """A segment's audio as the user would have it: 22.05 kHz, two channels (their mean is the segment)."""
    samples, rate = decode_flac(flac)
    up = soxr.resample(samples, rate, 22050)
    sf.write(path, np.stack([0.9 * up, 1.1 * up], axis=1), 22050, subtype="PCM_16")
    return path


def test_a_segment_finds_itself_first_at_distance_zero(shipped):
    _, lake, rows = shipped
    sid = rows[3]["segment_id"]
    for factor in FACTOR_DIMS:
        got = search_similar(lake, factor=factor, segment_id=sid, k=5)
        assert got.num_rows == 5 and got.column("segment_id")[0].as_py() == sid
        assert abs(got.column("distance")[0].as_py()) < 1e-5
        assert got.column("distance").to_pylist() == sorted(got.column("distance").to_pylist())
    valid = search_similar(lake, segment_id=sid, k=8, filter="split = 'valid'")
    assert set(valid.column("split").to_pylist()) == {"valid"} and valid.num_rows == 2


def test_an_audio_file_at_another_rate_and_in_stereo_finds_its_segment_first(shipped):
    root, lake, rows = shipped
    wav = _write_22k_stereo(root / "query.wav", rows[2]["audio"])
    got = search_similar(lake, audio_path=wav, k=8)  # the shipped checkpoints, by default
    ids = got.column("segment_id").to_pylist()
    assert ids[0] == rows[2]["segment_id"] and got.column("distance")[0].as_py() < 1e-3
    assert got.column("distance")[1].as_py() > 10 * max(got.column("distance")[0].as_py(), 1e-5)
    by_vector = search_similar(lake, vector=encode_audio_factors(wav)[0]["speaker"], k=8)
    assert by_vector.column("segment_id").to_pylist() == ids


def test_explicit_checkpoints_search_their_own_factorizer(tiny, shipped):
    root, lake, codec, factorizer, rows = tiny
    wav = _write_22k_stereo(root / "query.wav", rows[5]["audio"])
    got = search_similar(lake, audio_path=wav, codec_checkpoint=codec, factorizer_checkpoint=factorizer,
                         factor="environment", k=3)
    assert got.column("segment_id")[0].as_py() == rows[5]["segment_id"]
    assert set(got.column("factorizer_id").to_pylist()) == {encode_audio_factors(
        wav, codec_checkpoint=codec, factorizer_checkpoint=factorizer)[1]}
    with pytest.raises(QueryError, match="no factors of factorizer 'factorizer_default"):
        search_similar(lake, audio_path=wav)  # the shipped factorizer never wrote to this lake


def test_with_two_factorizers_in_the_table_one_is_picked_by_id_or_prefix(tmp_path):
    lake, codec, first, rows = factors_lake(tmp_path)
    _, second = tiny_models(tmp_path, seed=2, codec=codec)
    factors_lake(tmp_path, lake=lake, codec=codec, factorizer=second)
    ids = [load_factorizer_checkpoint(f)[2].factorizer_id for f in (first, second)]
    assert len(ids) == 2 and ids[0] != ids[1]
    sid = rows[0]["segment_id"]
    with pytest.raises(QueryError, match="has factors of 2 factorizers"):
        search_similar(lake, segment_id=sid)
    with pytest.raises(QueryError, match="is the start of 2 ids"):
        search_similar(lake, segment_id=sid, factorizer_id="factorizer_tiny_test")
    for fid in ids:
        got = search_similar(lake, segment_id=sid, factorizer_id=fid[:-4], k=2)  # a unique prefix
        assert set(got.column("factorizer_id").to_pylist()) == {fid} and got.column("segment_id")[0].as_py() == sid


def test_bad_queries_are_one_line_query_errors(tiny, tmp_path):
    root, lake, codec, factorizer, rows = tiny
    sid = rows[0]["segment_id"]
    not_audio = tmp_path / "notes.wav"
    not_audio.write_text("not audio at all")
    too_long = tmp_path / "long.wav"
    sf.write(too_long, np.zeros(int(8000 * (MAX_AUDIO_S + 1)), np.int16), 8000)  # refused from its header
    too_short = tmp_path / "short.wav"
    sf.write(too_short, np.full(40, 0.1, np.float32), 16000)
    (tmp_path / "other").mkdir()
    other_codec, _ = tiny_models(tmp_path / "other", seed=1)  # same shapes, other weights: another codec id
    cases = [
        (dict(vector=np.ones(FACTOR_DIMS["speaker"] + 1)), "a speaker vector has 64 values; got 65"),
        (dict(factor="style", vector=[1.0] * 64), "a style vector has 16 values; got 64"),
        (dict(segment_id="0" * 32), "segment '0+' has no factors"),
        (dict(segment_id=sid, factor="pitch"), "unknown factor 'pitch'"),
        (dict(segment_id=sid, factor="content"), "unknown factor 'content'"),
        (dict(segment_id=sid, factorizer_id="factorizer_nope"), "no factors of factorizer 'factorizer_nope'"),
        (dict(segment_id=sid, vector=[1.0] * 64), "exactly one of"),
        (dict(), "exactly one of"),
        (dict(segment_id=sid, k=0), "k must be >= 1"),
        (dict(segment_id=sid, filter="split = = 1"), "filter 'split = = 1' cannot run"),
        (dict(vector=np.zeros(64)), "finite and nonzero"),
        (dict(audio_path=tmp_path / "missing.wav", codec_checkpoint=codec, factorizer_checkpoint=factorizer),
         "no such audio file"),
        (dict(audio_path=not_audio, codec_checkpoint=codec, factorizer_checkpoint=factorizer), "cannot use as audio"),
        (dict(audio_path=too_long, codec_checkpoint=codec, factorizer_checkpoint=factorizer), "too_long"),
        (dict(audio_path=too_short, codec_checkpoint=codec, factorizer_checkpoint=factorizer),
         "shorter than one codec frame"),
        (dict(audio_path=not_audio, codec_checkpoint=tmp_path / "none.pt"), "no such checkpoint file"),
        (dict(audio_path=not_audio, codec_checkpoint=other_codec, factorizer_checkpoint=factorizer),
         "give the codec it was trained on"),
    ]
    for kwargs, message in cases:
        with pytest.raises(QueryError, match=message) as exc:
            search_similar(lake, **kwargs)
        assert "\n" not in str(exc.value), kwargs
    with pytest.raises(QueryError, match="no factors table under"):
        search_similar(str(tmp_path / "empty_lake"), segment_id=sid)


def _cli_rows(argv: list[str], out: Path) -> list[dict]:
    assert main([*argv, "--out", str(out)]) == 0
    return [json.loads(line) for line in out.read_text().splitlines()]


def test_the_similar_command_takes_a_segment_a_vector_or_a_file_and_fails_in_one_line(tiny, tmp_path, capsys):
    _, lake, codec, factorizer, rows = tiny
    sid = rows[1]["segment_id"]
    out = tmp_path / "out.jsonl"
    got = _cli_rows(["similar", "--lake-root", lake, "--segment-id", sid, "-k", "3", "--factor", "channel"], out)
    assert len(got) == 3 and got[0]["segment_id"] == sid
    stored = lance.dataset(table_uri(lake, "factors")).to_table(
        columns=["speaker_vector"], filter=f"segment_id = '{sid}'").column(0)[0].values.to_pylist()
    np.save(tmp_path / "v.npy", np.asarray(stored, dtype=np.float32))
    for given in (str(tmp_path / "v.npy"), ",".join(map(str, stored)), json.dumps(stored)):
        assert [r["segment_id"] for r in _cli_rows(["similar", "--lake-root", lake, f"--vector={given}", "-k", "1"],
                                                   out)] == [sid]
    wav = _write_22k_stereo(tmp_path / "q.flac", rows[1]["audio"])  # any soundfile format: FLAC here
    assert _cli_rows(["similar", "--lake-root", lake, "--audio", str(wav), "--codec-checkpoint", str(codec),
                      "--factorizer-checkpoint", str(factorizer), "-k", "2"], out)[0]["segment_id"] == sid
    capsys.readouterr()
    for argv, message in [
        (["--vector=1,2,x"], "error: --vector: not a list of numbers"),
        (["--vector=1,2,3"], "error: a speaker vector has 64 values; got 3"),
        (["--segment-id", "nope"], "error: segment 'nope' has no factors"),
        (["--segment-id", sid, "--factor", "pitch"], "error: unknown factor 'pitch'"),
    ]:
        assert main(["similar", "--lake-root", lake, *argv]) == 2
        err = capsys.readouterr().err
        assert err.startswith(message) and err.count("\n") == 1, err
    assert main(["similar", "--lake-root", lake]) == 2  # argparse: one of --segment-id / --audio / --vector
