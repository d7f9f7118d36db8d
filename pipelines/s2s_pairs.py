"""Speech-to-speech pairs: every training-input item whose words the target voice also spoke, and its target.

Built on :func:`pipelines.train_input.index_training_rows` (driver, metadata only):

1. the source index: the ``input`` block's real and synthetic items, at pinned versions;
2. the target voice's index: the REAL rows matching ``target_filter`` (same codec, same versions, same
   label vocabulary), sorted by segment_id;
3. each source item is paired with the first target row of its ``(language, text_id)``; items without one
   are dropped (counted in ``TrainIndex.dropped``), and so is each target row as a source of itself.

The result is still a :class:`~pipelines.train_input.TrainIndex` (so ``plan_epoch`` / ``stream_by_steps``
stream it unchanged), with :data:`PAIR_COLUMNS` added to ``real`` and ``synthetic``. The trainer gets the
targets per plan item from :func:`pair_targets` and reads a batch's target codes with one Lance ``take``
(:func:`read_target_codes`) on the worker.

Example::

    index = index_s2s_pairs(config.input, "speaker = 'flite:slt' AND environment = 'clean'")
    targets = pair_targets(index)
    codes, lengths = read_target_codes(targets, batch["item"])     # uint16 [n, max(lengths), stages]
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pipelines.lance_io import open_pinned
from pipelines.train_input import TrainIndex, index_training_rows, plan_epoch, read_training_batch
from schemas.factorizer import UNKNOWN_LABEL
from schemas.factors import FACTOR_DIMS, VECTOR_COLUMNS
from schemas.storage import StorageConfig
from schemas.train_input import FACTOR_ROW_COLUMNS, TrainInputConfig, TrainInputError

__all__ = ["PAIR_COLUMNS", "NoPairsError", "PairTargets", "index_s2s_pairs", "pair_targets", "read_target_codes",
           "read_target_speakers", "read_valid_pairs"]

#: Columns added to both tables of the index: the target row's segment_id, latents row offset, frames, and its
#: ``factors`` row (-1 without a factorizer).
PAIR_COLUMNS = ("target_key", "target_row_offset", "target_num_frames", "target_speaker_row")


class NoPairsError(TrainInputError):
    """No source item shares a ``(language, text_id)`` with a target row (one line)."""


@dataclass(frozen=True)
class PairTargets:
    """Per plan item (``real`` rows, then ``synthetic`` rows): where its target is, and what to read it from."""

    row_offset: np.ndarray       # int64, in latents
    num_frames: np.ndarray       # int64
    speaker_row: np.ndarray      # int64, in factors (-1: none)
    latents: tuple[str, int]     # uri, pinned version
    factors: tuple[str, int] | None
    num_stages: int
    storage: StorageConfig


def _first_target(voice: pa.Table) -> dict[tuple[int, int], int]:
    """(language, text_id) class -> the first target row (by segment_id) speaking it; unknown labels never pair."""
    first: dict[tuple[int, int], int] = {}
    for r, pair in enumerate(zip(voice.column("language").to_pylist(), voice.column("text_id").to_pylist())):
        if UNKNOWN_LABEL not in pair:
            first.setdefault(pair, r)
    return first


def _attach(table: pa.Table, voice: pa.Table, first: dict[tuple[int, int], int], *,
            real: bool) -> tuple[pa.Table, int, int]:
    """``table``'s paired rows with :data:`PAIR_COLUMNS`; also (rows without a target, target rows themselves)."""
    where = np.array([first.get(p, -1) for p in zip(table.column("language").to_pylist(),
                                                    table.column("text_id").to_pylist())], dtype=np.int64)
    has = where >= 0
    target = voice.take(pa.array(np.where(has, where, 0), pa.int64()))  # the voice has rows (or indexing raised)
    itself = np.zeros(len(where), dtype=bool)
    if real and table.num_rows:
        itself = has & pc.equal(table.column("key"), target.column("key")).to_numpy(zero_copy_only=False)
    keep = np.flatnonzero(has & ~itself)
    columns = {"target_key": target.column("key"), "target_row_offset": target.column("row_offset"),
               "target_num_frames": target.column("num_frames"),
               "target_speaker_row": target.column(FACTOR_ROW_COLUMNS["speaker"])}
    paired = table
    for name in PAIR_COLUMNS:
        paired = paired.append_column(name, columns[name])
    return paired.take(pa.array(keep, pa.int64())), int((~has).sum()), int(itself.sum())


def index_s2s_pairs(config: TrainInputConfig, target_filter: str, *,
                    versions: dict[str, int] | None = None) -> TrainIndex:
    """The input's items that have a target-voice row of their text, with the target's row (:data:`PAIR_COLUMNS`).

    ``versions`` pins the tables (a resumed run's); the target rows are read at the same versions. If the target
    voice has several rows of one ``(language, text_id)``, the first by segment_id is the target.

    Raises:
        TrainInputError (one line): the input cannot be indexed, or ``target_filter`` does not parse or matches
            no row with latents of the codec.
        NoPairsError: no real item (or, with a synthetic share, no synthetic item) has a target.
    """
    index = index_training_rows(config, versions=versions)
    voice_config = config.model_copy(update={"real_filter": target_filter, "synthetic_per_real": 0.0})
    try:
        voice = index_training_rows(voice_config, vocab=index.vocab, versions=index.versions).real
    except TrainInputError as exc:
        raise TrainInputError(f"target voice: {str(exc).replace('real_filter', 'target_filter')}") from None
    first = _first_target(voice)
    real, real_missing, itself = _attach(index.real, voice, first, real=True)
    synthetic, synthetic_missing, _ = _attach(index.synthetic, voice, first, real=False)
    if real.num_rows == 0 or (config.synthetic_per_real > 0 and synthetic.num_rows == 0):
        which = "real" if real.num_rows == 0 else "synthetic"
        raise NoPairsError(f"no {which} item of the input shares language and text_id with a row of target_filter "
                           f"{target_filter!r} ({voice.num_rows} target rows, {len(first)} texts)")
    dropped = {**index.dropped, "real items whose text the target voice lacks": real_missing,
               "synthetic items whose text the target voice lacks": synthetic_missing,
               "target rows (not paired with themselves)": itself}
    return replace(index, real=real, synthetic=synthetic, dropped=dropped)


def pair_targets(index: TrainIndex) -> PairTargets:
    """The targets of an :func:`index_s2s_pairs` index per plan item (a batch's ``item`` indexes them)."""
    def both(name: str) -> np.ndarray:
        return np.concatenate([np.asarray(index.real.column(name), dtype=np.int64),
                               np.asarray(index.synthetic.column(name), dtype=np.int64)])

    factors = (index.uris["factors"], index.versions["factors"]) if "factors" in index.versions else None
    return PairTargets(row_offset=both("target_row_offset"), num_frames=both("target_num_frames"),
                       speaker_row=both("target_speaker_row"),
                       latents=(index.uris["latents"], index.versions["latents"]), factors=factors,
                       num_stages=index.num_stages, storage=index.config.storage)


def read_target_codes(targets: PairTargets, items: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Target codes of plan items ``items``: uint16 ``[n, max frames, stages]`` (zero past each length), lengths.

    One Lance ``take`` of the distinct target rows (the table opened once per process at its pinned version).
    """
    items = np.asarray(items, dtype=np.int64)
    offsets, lengths = targets.row_offset[items], targets.num_frames[items]
    codes = np.zeros((len(items), int(lengths.max(initial=1)), targets.num_stages), dtype=np.uint16)
    if not len(items):
        return codes, lengths
    unique = np.unique(offsets)
    flat = open_pinned(*targets.latents, targets.storage).take(unique.tolist(), columns=["codes"])
    flat = flat.column("codes").combine_chunks()
    for i, at in enumerate(np.searchsorted(unique, offsets)):
        values = flat[int(at)].values.to_numpy(zero_copy_only=False).reshape(-1, targets.num_stages)
        codes[i, :lengths[i]] = values[:lengths[i]]
    return codes, lengths


def read_target_speakers(targets: PairTargets, items: np.ndarray) -> np.ndarray:
    """Speaker vectors of the target rows of ``items``: float32 ``[n, dim]`` (one ``take`` on ``factors``).

    Raises:
        ValueError: the index was built without a factorizer (no ``factors`` rows to read).
    """
    rows = targets.speaker_row[np.asarray(items, dtype=np.int64)]
    if targets.factors is None or (rows < 0).any():
        raise ValueError("target speaker vectors need input.factorizer_id (the pairs were indexed without factors)")
    unique = np.unique(rows)
    table = open_pinned(*targets.factors, targets.storage).take(unique.tolist(), columns=[VECTOR_COLUMNS["speaker"]])
    vectors = table.column(VECTOR_COLUMNS["speaker"]).combine_chunks().values.to_numpy()
    return vectors.reshape(-1, FACTOR_DIMS["speaker"])[np.searchsorted(unique, rows)].astype(np.float32)


def read_valid_pairs(config: TrainInputConfig, valid_filter: str, target_filter: str, *,
                     versions: dict[str, int] | None, rows: int, batch_size: int,
                     with_speaker: bool) -> list[dict[str, np.ndarray]]:
    """Whole-row pairs of the real ``valid_filter`` rows (at most ``rows``, first by segment_id), read once.

    Each batch holds ``codes``/``lengths`` (source) and ``target_codes``/``target_lengths`` (and ``speaker``
    float32 ``[n, dim]`` when ``with_speaker``). No row matching, or none with a target: an empty list.
    """
    cfg = config.model_copy(update={"real_filter": valid_filter, "synthetic_per_real": 0.0, "crop": "start"})
    try:
        index = index_s2s_pairs(cfg, target_filter, versions=versions)
    except NoPairsError:
        return []
    except TrainInputError as exc:
        if "for segments matching real_filter" in str(exc):  # no valid row (a target voice error says target_filter)
            return []
        raise
    index = replace(index, real=index.real.slice(0, rows))
    longest = int(np.max(np.asarray(index.real.column("num_frames")), initial=1))
    index = replace(index, config=index.config.model_copy(update={"max_frames": longest}))
    targets = pair_targets(index)
    plan = plan_epoch(index, 0).sort_by("item")
    out = []
    for start in range(0, plan.num_rows, batch_size):
        part = plan.slice(start, batch_size)
        batch = read_training_batch({c: part.column(c).to_numpy() for c in part.column_names},
                                    sources={"latents": targets.latents}, max_frames=longest,
                                    num_stages=index.num_stages, storage=index.config.storage)
        target_codes, target_lengths = read_target_codes(targets, batch["item"])
        pairs = {"codes": batch["codes"], "lengths": batch["lengths"], "target_codes": target_codes,
                 "target_lengths": target_lengths}
        if with_speaker:
            pairs["speaker"] = read_target_speakers(targets, batch["item"])
        out.append(pairs)
    return out
