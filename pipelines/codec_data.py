"""Training data for the codec: a deterministic crop plan over ``segments`` and the Ray Data stage that reads it.

Why a plan: codec training wants uniformly random 1-second crops of all the
training audio, many passes over a small corpus, and an exact resume after a
kill. The driver reads only segment metadata (row address, duration) at one
pinned table version and draws every crop of the whole run up front from the
seed: ``(step, row address, offset)`` rows, a few MB for 10k steps. Ray Data
then streams that plan through :func:`read_crops`, which fetches each FLAC
blob by row address and decodes just the crop (libsndfile seeks in FLAC), so
audio is never materialized beyond the blocks in flight. A resumed run
streams the plan from its checkpoint's step: the same crops, in the same
order, as if it had never stopped. Crops are drawn in chunks of 1000 steps,
each from its own generator, so raising ``max_steps`` to train on keeps
every crop drawn so far.

Crops are drawn uniformly over audio time (a segment's chance is
proportional to its duration); a segment shorter than a crop is zero-padded.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import soundfile as sf

from pipelines.lance_io import open_pinned, open_table, table_uri
from schemas.storage import StorageConfig

__all__ = ["CropPlan", "SegmentIndex", "index_segments", "make_crop_plan", "read_crops", "read_valid_clips"]

SAMPLE_RATE_HZ = 16000
_STEPS_PER_DRAW = 1000


@dataclass(frozen=True)
class SegmentIndex:
    """Row addresses and sample counts of the segments a run trains on, at one table version."""

    uri: str
    version: int
    row_addresses: np.ndarray  # uint64
    num_samples: np.ndarray    # int64
    filter: str

    @property
    def hours(self) -> float:
        return float(self.num_samples.sum()) / SAMPLE_RATE_HZ / 3600


@dataclass(frozen=True)
class CropPlan:
    """Every crop of a run in step order; ``table`` has columns step, row_address, offset."""

    table: pa.Table
    crop_samples: int
    batch_size: int

    def from_step(self, step: int) -> pa.Table:
        """The crops of steps ``step, step+1, ...`` (what a run resumed at ``step`` still has to read)."""
        return self.table.slice(step * self.batch_size)


def index_segments(lake_root: str, storage: StorageConfig, filter: str, *, version: int | None = None) -> SegmentIndex:
    """Metadata of the segments matching ``filter`` (Lance SQL), pinned to the table's current version.

    Raises:
        FileNotFoundError: no ``segments`` table under ``lake_root``.
        ValueError: no segment matches the filter (the message names it).
    """
    uri = table_uri(lake_root, "segments")
    ds = open_table(uri, storage, version=version)
    if ds is None:
        raise FileNotFoundError(f"no segments table at {uri}: run jobs/curate.py first")
    meta = ds.to_table(columns=["duration_s", "sample_rate_hz"], filter=filter, with_row_address=True)
    if meta.num_rows == 0:
        raise ValueError(f"no segments in {uri} (version {ds.version}) match {filter!r}")
    rates = np.asarray(meta.column("sample_rate_hz"), dtype=np.int64)
    if np.any(rates != SAMPLE_RATE_HZ):
        raise ValueError(f"segments in {uri} must be {SAMPLE_RATE_HZ} Hz; found {sorted(set(rates.tolist()))}")
    samples = np.round(np.asarray(meta.column("duration_s"), dtype=np.float64) * SAMPLE_RATE_HZ).astype(np.int64)
    return SegmentIndex(uri=uri, version=ds.version, row_addresses=np.asarray(meta.column("_rowaddr"), dtype=np.uint64),
                        num_samples=samples, filter=filter)


def make_crop_plan(index: SegmentIndex, *, steps: int, batch_size: int, crop_s: float, seed: int) -> CropPlan:
    """Draw ``steps x batch_size`` crops uniformly over the indexed audio, reproducibly from ``seed``.

    Example:
        >>> idx = SegmentIndex("u", 1, np.array([0, 1], dtype=np.uint64), np.array([16000, 48000]), "true")
        >>> plan = make_crop_plan(idx, steps=3, batch_size=2, crop_s=0.5, seed=0)
        >>> plan.table.num_rows, plan.table.column_names
        (6, ['step', 'row_address', 'offset'])
    """
    crop = int(round(crop_s * SAMPLE_RATE_HZ))
    p = np.maximum(index.num_samples, 1).astype(np.float64)
    p /= p.sum()
    picks, offsets = [], []
    for chunk_start in range(0, steps, _STEPS_PER_DRAW):
        # one generator per chunk of steps: a longer run's plan starts with a shorter run's plan, so raising
        # max_steps and re-running continues with the same crops up to the old end
        rng = np.random.default_rng([seed, chunk_start // _STEPS_PER_DRAW])
        n = (min(chunk_start + _STEPS_PER_DRAW, steps) - chunk_start) * batch_size
        full = _STEPS_PER_DRAW * batch_size  # always draw a whole chunk, then cut: the draws never depend on steps
        chunk_picks = rng.choice(len(p), size=full, p=p)
        room = np.maximum(index.num_samples[chunk_picks] - crop, 0)
        picks.append(chunk_picks[:n])
        offsets.append((rng.random(full) * (room + 1)).astype(np.int64)[:n])
    all_picks = np.concatenate(picks) if picks else np.zeros(0, dtype=np.int64)
    table = pa.table({
        "step": pa.array(np.repeat(np.arange(steps, dtype=np.int64), batch_size)),
        "row_address": pa.array(index.row_addresses[all_picks]),
        "offset": pa.array(np.concatenate(offsets) if offsets else np.zeros(0, dtype=np.int64)),
    })
    return CropPlan(table=table, crop_samples=crop, batch_size=batch_size)


def _decode_crop(blob: bytes, offset: int, crop_samples: int) -> np.ndarray:
    with sf.SoundFile(io.BytesIO(blob)) as f:
        f.seek(min(offset, max(f.frames - 1, 0)))
        samples = f.read(crop_samples, dtype="float32", always_2d=False)
    if samples.ndim == 2:
        samples = samples.mean(axis=1)
    if len(samples) < crop_samples:
        samples = np.pad(samples, (0, crop_samples - len(samples)))
    return samples


def read_crops(batch: dict[str, np.ndarray], *, uri: str, version: int, crop_samples: int,
               storage: StorageConfig | None = None) -> dict[str, np.ndarray]:
    """Ray Data map_batches function: plan rows -> ``{"step": int64[n], "audio": float32[n, crop_samples]}``."""
    ds = open_pinned(uri, version, storage or StorageConfig())
    addresses = batch["row_address"].astype(np.uint64)
    unique = sorted(set(addresses.tolist()))
    blobs = dict(ds.read_blobs("audio", addresses=unique, preserve_order=True))
    audio = np.stack([_decode_crop(blobs[int(a)], int(o), crop_samples) for a, o in zip(addresses, batch["offset"])])
    return {"step": batch["step"].astype(np.int64), "audio": audio.astype(np.float32)}


def read_valid_clips(lake_root: str, storage: StorageConfig, filter: str, *, clips: int, crop_s: float) -> np.ndarray:
    """The first ``clips`` segments matching ``filter`` (scan order), each cut or zero-padded to ``crop_s``.

    Returns ``float32 [n, crop_samples]``; a fixed set, so validation losses are comparable across steps.
    """
    from pipelines.lance_io import read_segment_audio

    crop = int(round(crop_s * SAMPLE_RATE_HZ))
    rows = read_segment_audio(lake_root, storage, filter=filter, limit=clips)
    if not rows:
        raise ValueError(f"no validation segments under {lake_root} match {filter!r}")
    out = np.zeros((len(rows), crop), dtype=np.float32)
    for i, (_, samples, _rate) in enumerate(rows):
        mono = samples.mean(axis=1) if samples.ndim == 2 else samples
        out[i, :min(crop, len(mono))] = mono[:crop]
    return out

