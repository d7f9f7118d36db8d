"""Speech-to-speech pairs: every training-input item whose words the target voice also spoke, and its target.

Built on :func:`pipelines.train_input.index_training_rows` (driver, metadata only):

1. the source index: the ``input`` block's real and synthetic items, at pinned versions;
2. the target voice's index: the REAL rows matching ``target_filter`` (same codec, same versions, same
   label vocabulary), sorted by segment_id; then, with ``synthetic_target_filter``, the ``synthetic`` rows it
   selects (e.g. recombined rows put into the target voice and a clean room), sorted by synth_id. A
   synthetic row's language and text_id are its content segment's, so it is the target voice speaking
   that sentence: the pairs recombination makes for free, for sentences the voice never recorded;
3. each source item is paired with the first target row of its ``(language, text_id)`` (real rows first:
   a recording beats a swap; failing one, the swap of the item's own content segment, which keeps its
   timing); items without one are dropped (counted in ``TrainIndex.dropped``), and so is each target row as
   a source of itself.

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

__all__ = ["PAIR_COLUMNS", "TARGET_ORIGINS", "NoPairsError", "PairTargets", "index_s2s_pairs", "pair_targets",
           "read_target_codes", "read_target_speakers", "read_valid_pairs"]

#: Columns added to both tables of the index: the target row's key (segment_id or synth_id), its table
#: (:data:`TARGET_ORIGINS` index), row offset there, frames, and its speaker's ``factors`` row (-1: none).
PAIR_COLUMNS = ("target_key", "target_origin", "target_row_offset", "target_num_frames", "target_speaker_row")
#: Where a target's codes are: ``latents`` (a real recording) or ``synthetic`` (a recombined row).
TARGET_ORIGINS = ("latents", "synthetic")


class NoPairsError(TrainInputError):
    """No source item shares a ``(language, text_id)`` with a target row (one line)."""


@dataclass(frozen=True)
class PairTargets:
    """Per plan item (``real`` rows, then ``synthetic`` rows): where its target is, and what to read it from."""

    row_offset: np.ndarray       # int64, in the table of ``origin``
    num_frames: np.ndarray       # int64
    speaker_row: np.ndarray      # int64, in factors (-1: none)
    latents: tuple[str, int]     # uri, pinned version
    factors: tuple[str, int] | None
    num_stages: int
    storage: StorageConfig
    origin: np.ndarray                   # int8 per item: TARGET_ORIGINS index
    synthetic: tuple[str, int] | None    # uri, pinned version (None: no synthetic targets)


def _first_target(voice: pa.Table) -> dict[tuple[int, int], int]:
    """(language, text_id) class -> the first target row (in ``voice`` order) speaking it; unknown labels never
    pair."""
    first: dict[tuple[int, int], int] = {}
    for r, pair in enumerate(zip(voice.column("language").to_pylist(), voice.column("text_id").to_pylist())):
        if UNKNOWN_LABEL not in pair:
            first.setdefault(pair, r)
    return first


def _attach(table: pa.Table, voice: pa.Table, first: dict[tuple[int, int], int], *, real: bool,
            own: dict[str, int] | None = None, contents: list[str | None] | None = None,
            ) -> tuple[pa.Table, int, int]:
    """``table``'s paired rows with :data:`PAIR_COLUMNS`; also (rows without a target, target rows themselves).

    Without a real target of its text, an item whose content segment (``contents[i]``) has a synthetic target
    of its own (``own``: content segment -> voice row) gets that one: the same utterance, frame for frame, in
    the target voice, so the uniform stretch of the model is exact.
    """
    where = np.array([first.get(p, -1) for p in zip(table.column("language").to_pylist(),
                                                    table.column("text_id").to_pylist())], dtype=np.int64)
    if own and contents is not None:
        origin = voice.column("target_origin").to_numpy()
        for i, content in enumerate(contents):
            if (where[i] < 0 or origin[where[i]] == 1) and content in own:
                where[i] = own[content]
    has = where >= 0
    target = voice.take(pa.array(np.where(has, where, 0), pa.int64()))  # the voice has rows (or indexing raised)
    itself = np.zeros(len(where), dtype=bool)
    if table.num_rows:  # a real item can be a real target, a synthetic item a synthetic one
        same_table = target.column("target_origin").to_numpy() == (0 if real else 1)
        itself = has & same_table & pc.equal(table.column("key"), target.column("key")).to_numpy(
            zero_copy_only=False)
    keep = np.flatnonzero(has & ~itself)
    columns = {"target_key": target.column("key"), "target_origin": target.column("target_origin"),
               "target_row_offset": target.column("row_offset"), "target_num_frames": target.column("num_frames"),
               "target_speaker_row": target.column(FACTOR_ROW_COLUMNS["speaker"])}
    paired = table
    for name in PAIR_COLUMNS:
        paired = paired.append_column(name, columns[name])
    return paired.take(pa.array(keep, pa.int64())), int((~has).sum()), int(itself.sum())


def _voice_rows(config: TrainInputConfig, index: TrainIndex, target_filter: str,
                synthetic_target_filter: str | None) -> tuple[pa.Table, dict[str, int], dict[str, str]]:
    """The target voice's rows (real by segment_id, then synthetic by synth_id) with ``target_origin``, and the
    versions and uris of the tables they were read from (``synthetic`` too when it gives targets)."""
    update: dict = {"real_filter": target_filter, "synthetic_per_real": 0.0}
    if synthetic_target_filter is not None:
        update.update({"synthetic_filter": synthetic_target_filter, "synthetic_per_real": 1.0})
    try:
        voice = index_training_rows(config.model_copy(update=update), vocab=index.vocab, versions=index.versions)
    except TrainInputError as exc:
        message = str(exc).replace("real_filter", "target_filter").replace("synthetic_filter",
                                                                           "synthetic_target_filter")
        raise TrainInputError(f"target voice: {message}") from None
    parts = [voice.real]
    if synthetic_target_filter is not None:
        parts.append(voice.synthetic.sort_by("key"))
    tables = [t.append_column("target_origin", pa.array(np.full(t.num_rows, k, np.int8)))
              for k, t in enumerate(parts)]
    return pa.concat_tables(tables), voice.versions, voice.uris


def _content_segments(uri: str, version: int, storage: StorageConfig) -> dict[str, str]:
    """synth_id -> content_segment_id of every ``synthetic`` row at ``version`` (two columns scanned)."""
    table = open_pinned(uri, version, storage).to_table(columns=["synth_id", "content_segment_id"])
    return dict(zip(table.column("synth_id").to_pylist(), table.column("content_segment_id").to_pylist()))


def index_s2s_pairs(config: TrainInputConfig, target_filter: str, *, versions: dict[str, int] | None = None,
                    synthetic_target_filter: str | None = None) -> TrainIndex:
    """The input's items that have a target-voice row of their text, with the target's row (:data:`PAIR_COLUMNS`).

    ``versions`` pins the tables (a resumed run's); the target rows are read at the same versions. If the target
    voice has several rows of one ``(language, text_id)``, the first real one by segment_id is the target; with
    none, the synthetic row of ``synthetic_target_filter`` made from the item's own content segment, else the
    first such row of the sentence by synth_id.

    Raises:
        TrainInputError (one line): the input cannot be indexed, or ``target_filter`` does not parse or matches
            no row with latents of the codec (or ``synthetic_target_filter`` does not parse or passes no row).
        NoPairsError: no real item (or, with a synthetic share, no synthetic item) has a target.
    """
    index = index_training_rows(config, versions=versions)
    voice, voice_versions, voice_uris = _voice_rows(config, index, target_filter, synthetic_target_filter)
    first = _first_target(voice)
    own, content_of = {}, {}
    if synthetic_target_filter is not None:
        content_of = _content_segments(voice_uris["synthetic"], voice_versions["synthetic"], config.storage)
        for r, (key, origin) in enumerate(zip(voice.column("key").to_pylist(),
                                              voice.column("target_origin").to_pylist())):
            if origin == 1:
                own.setdefault(content_of[key], r)
    real, real_missing, itself = _attach(index.real, voice, first, real=True, own=own,
                                         contents=index.real.column("key").to_pylist())
    synthetic, synthetic_missing, synthetic_itself = _attach(
        index.synthetic, voice, first, real=False, own=own,
        contents=[content_of.get(k) for k in index.synthetic.column("key").to_pylist()])
    if real.num_rows == 0 or (config.synthetic_per_real > 0 and synthetic.num_rows == 0):
        which = "real" if real.num_rows == 0 else "synthetic"
        raise NoPairsError(f"no {which} item of the input shares language and text_id with a row of target_filter "
                           f"{target_filter!r} ({voice.num_rows} target rows, {len(first)} texts)")
    dropped = {**index.dropped, "real items whose text the target voice lacks": real_missing,
               "synthetic items whose text the target voice lacks": synthetic_missing,
               "target rows (not paired with themselves)": itself + synthetic_itself}
    return replace(index, real=real, synthetic=synthetic, dropped=dropped, uris={**voice_uris, **index.uris},
                   versions={**voice_versions, **index.versions})


def pair_targets(index: TrainIndex) -> PairTargets:
    """The targets of an :func:`index_s2s_pairs` index per plan item (a batch's ``item`` indexes them)."""
    def both(name: str) -> np.ndarray:
        return np.concatenate([np.asarray(index.real.column(name), dtype=np.int64),
                               np.asarray(index.synthetic.column(name), dtype=np.int64)])

    factors = (index.uris["factors"], index.versions["factors"]) if "factors" in index.versions else None
    synthetic = (index.uris["synthetic"], index.versions["synthetic"]) if "synthetic" in index.versions else None
    return PairTargets(row_offset=both("target_row_offset"), num_frames=both("target_num_frames"),
                       speaker_row=both("target_speaker_row"),
                       latents=(index.uris["latents"], index.versions["latents"]), factors=factors,
                       num_stages=index.num_stages, storage=index.config.storage,
                       origin=both("target_origin").astype(np.int8), synthetic=synthetic)


def read_target_codes(targets: PairTargets, items: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Target codes of plan items ``items``: uint16 ``[n, max frames, stages]`` (zero past each length), lengths.

    One Lance ``take`` of the distinct target rows per table (``latents``, ``synthetic``; each opened once per
    process at its pinned version).
    """
    items = np.asarray(items, dtype=np.int64)
    offsets, lengths = targets.row_offset[items], targets.num_frames[items]
    origin = targets.origin[items]
    codes = np.zeros((len(items), int(lengths.max(initial=1)), targets.num_stages), dtype=np.uint16)
    for k, source in enumerate((targets.latents, targets.synthetic)):
        rows = np.flatnonzero(origin == k)
        if not len(rows):
            continue
        unique = np.unique(offsets[rows])
        flat = open_pinned(*source, targets.storage).take(unique.tolist(), columns=["codes"])
        flat = flat.column("codes").combine_chunks()
        for i, at in zip(rows, np.searchsorted(unique, offsets[rows])):
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
                     versions: dict[str, int] | None, rows: int, batch_size: int, with_speaker: bool,
                     synthetic_target_filter: str | None = None) -> list[dict[str, np.ndarray]]:
    """Whole-row pairs of the real ``valid_filter`` rows (at most ``rows``, first by segment_id), read once.

    Each batch holds ``codes``/``lengths`` (source) and ``target_codes``/``target_lengths`` (and ``speaker``
    float32 ``[n, dim]`` when ``with_speaker``). No row matching, or none with a target: an empty list.
    """
    cfg = config.model_copy(update={"real_filter": valid_filter, "synthetic_per_real": 0.0, "crop": "start"})
    try:
        index = index_s2s_pairs(cfg, target_filter, versions=versions, synthetic_target_filter=synthetic_target_filter)
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
