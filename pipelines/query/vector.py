"""Vector search by voice, style, environment or channel: "segments like this one" or "like this audio file".

:func:`search_similar` wraps :func:`pipelines.factor_search.similar_segments`
(cosine distance over one factorizer's vectors, Lance SQL prefilter) with the
three ways a user names the query: a segment id already in ``factors``, a
vector, or an audio file that is encoded on the fly. An audio file goes the
same way a segment went at curation and encode time, with the same functions:
decode + downmix + resample to the codec's rate (``pipelines.audio.decode``),
codec encoder (``pipelines.encode_stage.encode_samples``), factorizer
(``pipelines.factors_stage.factorize_row``). So a file cut from a segment
finds that segment first, and the vectors live in the space of the
factorizer the checkpoint names: its id picks the rows to search.

Whatever the user got wrong (factor, vector size, segment, factorizer, audio,
checkpoint) is a :class:`~pipelines.query.errors.QueryError` of one line.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from pipelines.factor_search import FactorsLookupError, similar_segments
from pipelines.lance_io import open_table, table_uri
from pipelines.query.errors import QueryError
from schemas.encode import DEFAULT_CODEC_CHECKPOINT
from schemas.encode_factors import DEFAULT_FACTORIZER_CHECKPOINT
from schemas.factors import FACTOR_DIMS, VECTOR_COLUMNS
from schemas.sql import sql_quote
from schemas.storage import StorageConfig, resolve_uri

__all__ = ["search_similar", "encode_audio_factors", "read_factorizer_ids", "add_command", "MAX_AUDIO_S"]

_REPO_ROOT = Path(__file__).resolve().parents[2]

#: Longest query file encoded on the fly (a speaker vector needs seconds, not hours; bounds memory and CPU).
MAX_AUDIO_S = 120.0


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def read_factorizer_ids(lake_root: str, storage: StorageConfig, segment_id: str | None = None) -> list[str]:
    """Factorizer ids in ``factors`` (only those with a row of ``segment_id`` if given), sorted.

    Raises:
        QueryError: no factors table under the lake root.
    """
    import pyarrow.compute as pc

    lake = resolve_uri(lake_root)
    ds = open_table(table_uri(lake, "factors"), storage)
    if ds is None:
        raise QueryError(f"no factors table under {lake} (run jobs/encode_factors.py first)")
    where = None if segment_id is None else f"segment_id = {sql_quote(segment_id)}"
    ids = ds.to_table(columns=["factorizer_id"], filter=where).column(0)
    return sorted(pc.unique(ids).to_pylist())


def _has_factors(lake: str, storage: StorageConfig, factorizer_id: str, segment_id: str | None) -> bool:
    """True if ``factors`` has a row of exactly this factorizer (and segment): no scan of every id."""
    ds = open_table(table_uri(lake, "factors"), storage)
    where = f"factorizer_id = {sql_quote(factorizer_id)}"
    if segment_id is not None:
        where += f" AND segment_id = {sql_quote(segment_id)}"
    return ds is not None and ds.to_table(columns=["factorizer_id"], filter=where, limit=1).num_rows > 0


def _pick_factorizer(have: list[str], wanted: str | None, lake: str, segment_id: str | None) -> str:
    """The factorizer to search with: the one asked for (a unique prefix is enough), else the only one there is."""
    where = f"segment {segment_id!r}" if segment_id else lake
    if wanted is not None:
        if wanted in have:
            return wanted
        matches = [f for f in have if f.startswith(wanted)]
        if len(matches) == 1:
            return matches[0]
        if matches:
            raise QueryError(f"factorizer_id {wanted!r} is the start of {len(matches)} ids ({', '.join(matches)}): "
                             "give more of it")
        if segment_id and not have:
            raise QueryError(f"segment {segment_id!r} has no factors in {lake} (unknown segment id, or not "
                             "factorized yet)")
        raise QueryError(f"no factors of factorizer {wanted!r} for {where} (it has: {', '.join(have) or 'none'})")
    if not have:
        if segment_id:
            raise QueryError(f"segment {segment_id!r} has no factors in {lake} (unknown segment id, or not "
                             "factorized yet)")
        raise QueryError(f"the factors table under {lake} is empty (run jobs/encode_factors.py first)")
    if len(have) > 1:
        raise QueryError(f"{where} has factors of {len(have)} factorizers ({', '.join(have)}): pick one with "
                         "factorizer_id / --factorizer-id")
    return have[0]


def _checkpoint_path(given: str | Path | None, default: str) -> Path:
    """A given checkpoint path (relative: against $LSM_HOME or the cwd), else the shipped one under the repo root."""
    return Path(resolve_uri(str(given))) if given is not None else _REPO_ROOT / default


def _load_models(codec_checkpoint: str | Path | None, factorizer_checkpoint: str | Path | None):
    """Codec and factorizer, checked to belong together and to make vectors of the table's sizes."""
    from models.codec import CheckpointError, load_checkpoint
    from models.factorizer import FactorizerCheckpointError, load_factorizer_checkpoint

    codec_path = _checkpoint_path(codec_checkpoint, DEFAULT_CODEC_CHECKPOINT)
    factorizer_path = _checkpoint_path(factorizer_checkpoint, DEFAULT_FACTORIZER_CHECKPOINT)
    try:
        codec, codec_config, codec_meta = load_checkpoint(codec_path)
        factorizer, f_config, f_meta = load_factorizer_checkpoint(factorizer_path)
    except (CheckpointError, FactorizerCheckpointError) as exc:
        raise QueryError(_first_line(exc)) from None
    if f_meta.codec_id != codec_meta.codec_id:
        raise QueryError(f"{factorizer_path}: factorizer {f_meta.factorizer_id!r} reads latents of codec "
                         f"{f_meta.codec_id!r}, {codec_path} is codec {codec_meta.codec_id!r}: give the codec it "
                         "was trained on")
    if f_config.factor_dims != FACTOR_DIMS:
        raise QueryError(f"factorizer {f_meta.factorizer_id!r} makes vectors of sizes {f_config.factor_dims}; the "
                         f"factors table holds {FACTOR_DIMS}")
    return codec, codec_config.sample_rate_hz, factorizer, f_meta.factorizer_id


def _decode_file(path: Path, rate_hz: int) -> np.ndarray:
    """Any soundfile-readable file -> mono float32 at ``rate_hz`` (one-line QueryError if it is not audio)."""
    from pipelines.audio.decode import AudioDecodeError, decode_stream

    if not path.is_file():
        raise QueryError(f"{path}: no such audio file")
    try:
        with path.open("rb") as f:
            chunks = [c.samples for c in decode_stream(f, target_rate_hz=rate_hz, max_duration_s=MAX_AUDIO_S)]
    except AudioDecodeError as exc:
        raise QueryError(f"{path}: cannot use as audio ({exc})") from None
    except OSError as exc:
        raise QueryError(f"{path}: cannot read ({_first_line(exc)})") from None
    return np.concatenate(chunks) if chunks else np.zeros(0, np.float32)


def encode_audio_factors(audio_path: str | Path, *, codec_checkpoint: str | Path | None = None,
                         factorizer_checkpoint: str | Path | None = None) -> tuple[dict[str, np.ndarray], str]:
    """An audio file's factor vectors (unit norm, float32) and the id of the factorizer that made them.

    Same path as a curated segment: decode, downmix, resample to the codec's rate, codec encoder, factorizer.

    Raises:
        QueryError: unreadable or too long audio, fewer samples than one codec frame, a missing or corrupt
            checkpoint, a factorizer of another codec or of other vector sizes.
    """
    from pipelines.encode_stage import encode_samples
    from pipelines.factors_stage import factorize_row

    codec, rate_hz, factorizer, factorizer_id = _load_models(codec_checkpoint, factorizer_checkpoint)
    path = Path(resolve_uri(str(audio_path)))
    samples = _decode_file(path, rate_hz)
    if samples.size < codec.hop_length:
        raise QueryError(f"{path}: {samples.size / rate_hz:.3f} s of audio is shorter than one codec frame "
                         f"({codec.hop_length / rate_hz * 1000:.0f} ms)")
    codes = encode_samples(codec, samples)
    return factorize_row(codec, factorizer, codes).vectors, factorizer_id


def _check_vector(vector: Sequence[float] | np.ndarray, factor: str) -> np.ndarray:
    q = np.asarray(vector, dtype=np.float32)
    if q.ndim != 1 or q.shape[0] != FACTOR_DIMS[factor]:
        raise QueryError(f"a {factor} vector has {FACTOR_DIMS[factor]} values; got {q.size} "
                         f"(shape {tuple(q.shape)})")
    return q


def search_similar(lake_root: str, storage: StorageConfig | None = None, *, factor: str = "speaker",
                   segment_id: str | None = None, audio_path: str | Path | None = None,
                   vector: Sequence[float] | np.ndarray | None = None, factorizer_id: str | None = None,
                   codec_checkpoint: str | Path | None = None, factorizer_checkpoint: str | Path | None = None,
                   k: int = 10, filter: str | None = None) -> pa.Table:
    """The ``k`` segments whose ``factor`` vector is nearest (cosine) to a segment's, a vector or an audio file's.

    Args:
        factor: ``speaker``, ``style``, ``environment`` or ``channel``.
        segment_id / audio_path / vector: exactly one; what to search with.
        factorizer_id: whose vectors to compare (a unique prefix is enough); default: the factorizer of the
            checkpoint for an audio file, else the only factorizer in ``factors`` (for a segment: that has it).
        codec_checkpoint, factorizer_checkpoint: for an audio file; default: the shipped
            ``checkpoints/codec_50hz_2x8555.pt`` and ``checkpoints/factorizer_default.pt`` under the repo root.
        filter: Lance SQL over the factors columns (``split``, ``speaker``, ``language``, ...).

    Returns:
        ``pipelines.factor_search.RESULT_COLUMNS`` + ``distance`` (ascending; a segment finds itself at ~0).

    Raises:
        QueryError: see the module docstring; the message is one line.

    Example::

        search_similar("data/lake", audio_path="me.wav", k=5, filter="split = 'train'")
    """
    storage = storage or StorageConfig()
    if factor not in VECTOR_COLUMNS:
        raise QueryError(f"unknown factor {factor!r}; searchable factors are {', '.join(VECTOR_COLUMNS)}")
    given = [name for name, v in (("segment_id", segment_id), ("audio_path", audio_path), ("vector", vector))
             if v is not None]
    if len(given) != 1:
        raise QueryError("give exactly one of segment_id, audio_path or vector to search with"
                         + (f" (got {', '.join(given)})" if given else ""))
    if k < 1:
        raise QueryError(f"k must be >= 1, got {k}")
    lake = resolve_uri(lake_root)
    query = None if vector is None else _check_vector(vector, factor)
    if audio_path is not None:
        vectors, made_by = encode_audio_factors(audio_path, codec_checkpoint=codec_checkpoint,
                                                factorizer_checkpoint=factorizer_checkpoint)
        if factorizer_id is not None and not made_by.startswith(factorizer_id):
            raise QueryError(f"factorizer_id {factorizer_id!r} is not the checkpoint's factorizer {made_by!r}: "
                             "drop one of them")
        query, factorizer_id = vectors[factor], made_by
    chosen = factorizer_id if factorizer_id and _has_factors(lake, storage, factorizer_id, segment_id) else \
        _pick_factorizer(read_factorizer_ids(lake, storage, segment_id), factorizer_id, lake, segment_id)
    try:
        return similar_segments(lake, factorizer_id=chosen, segment_id=segment_id, vector=query, factor=factor,
                                k=k, filter=filter, storage=storage)
    except (ValueError, FactorsLookupError) as exc:
        raise QueryError(_first_line(exc)) from None


def _parse_vector(text: str) -> np.ndarray:
    """``--vector``: comma- or space-separated floats, a JSON list, or a ``.npy`` / ``.json`` file."""
    path = Path(text)
    try:
        if text.endswith(".npy") and path.is_file():
            return np.load(path, allow_pickle=False).astype(np.float32).reshape(-1)
        if text.endswith(".json") and path.is_file():
            text = path.read_text()
        if text.lstrip().startswith("["):
            return np.asarray(json.loads(text), dtype=np.float32)
        return np.asarray([float(v) for v in text.replace(",", " ").split()], dtype=np.float32)
    except (ValueError, TypeError, OSError) as exc:
        raise QueryError(f"--vector: not a list of numbers ({_first_line(exc)})") from None


def _run(args: argparse.Namespace) -> pa.Table:
    vector = None if args.vector is None else _parse_vector(args.vector)
    return search_similar(args.lake_root, args.storage, factor=args.factor, segment_id=args.segment_id,
                          audio_path=args.audio, vector=vector, factorizer_id=args.factorizer_id,
                          codec_checkpoint=args.codec_checkpoint, factorizer_checkpoint=args.factorizer_checkpoint,
                          k=args.k, filter=args.filter)


def add_command(subparsers: Any) -> None:
    """Register ``similar``: nearest segments by a factor vector (of a segment, a vector or an audio file)."""
    p = subparsers.add_parser("similar", help="segments whose speaker/style/environment/channel vector is nearest",
                              description="Nearest segments by cosine distance of one factor's vectors.")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--segment-id", help="search with this segment's vector (it comes back first)")
    what.add_argument("--audio", metavar="FILE", help="search with an audio file (any format soundfile reads), "
                      "encoded on the fly with the codec + factorizer checkpoints")
    what.add_argument("--vector", help="search with a vector: comma-separated floats (write --vector=-0.1,... when "
                      "it starts with a minus), a JSON list, or a .npy/.json file")
    p.add_argument("--factor", default="speaker", help=f"one of {', '.join(VECTOR_COLUMNS)} (default: speaker)")
    p.add_argument("-k", "--k", type=int, default=10, help="rows to return (default 10)")
    p.add_argument("--filter", help="Lance SQL over the factors columns, e.g. \"split = 'train'\"")
    p.add_argument("--factorizer-id", help="whose vectors (a unique prefix is enough); default: the checkpoint's "
                   "for --audio, else the only one in the table")
    p.add_argument("--codec-checkpoint", help=f"for --audio (default: {DEFAULT_CODEC_CHECKPOINT} in the repo)")
    p.add_argument("--factorizer-checkpoint", help=f"for --audio (default: {DEFAULT_FACTORIZER_CHECKPOINT} in the "
                   "repo)")
    p.set_defaults(run=_run)
