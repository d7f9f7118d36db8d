"""Reading the ``latents`` table back: one row's codes, codes -> waveform, and storage per hour of speech.

``decode_latents`` is the decode path (``jobs/decode_latents.py`` wraps it);
``measure_latent_storage`` is what the encode job prints and what ``make demo``
and the README can print (``LatentStorage.format()``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pipelines.lance_io import open_table, read_column_values, table_uri
from schemas.sql import sql_quote
from schemas.storage import StorageConfig, resolve_uri

__all__ = ["LatentsLookupError", "LatentStorage", "read_latent_codes", "decode_codes", "decode_latents",
           "measure_latent_storage"]


class LatentsLookupError(LookupError):
    """No such segment / codec in ``latents`` (or no checkpoint to decode it); the message is one line."""


def read_latent_codes(lake_root: str, segment_id: str, codec_id: str,
                      storage: StorageConfig | None = None) -> tuple[np.ndarray, dict[str, Any]]:
    """Codes ``[num_frames, num_stages]`` (uint16) of one row and its other columns.

    Raises:
        LatentsLookupError: no ``latents`` table, the segment has no latents, or none for this codec
            (the message lists the codecs it has).
    """
    storage = storage or StorageConfig()
    ds = open_table(table_uri(lake_root, "latents"), storage)
    if ds is None:
        raise LatentsLookupError(f"no latents table under {lake_root} (run jobs/encode.py first)")
    rows = ds.to_table(filter=f"segment_id = {sql_quote(segment_id)}").to_pylist()
    if not rows:
        raise LatentsLookupError(f"segment {segment_id!r} has no latents in {lake_root} (unknown segment id, or not "
                                 "encoded yet)")
    row = next((r for r in rows if r["codec_id"] == codec_id), None)
    if row is None:
        have = ", ".join(sorted({r["codec_id"] for r in rows}))
        raise LatentsLookupError(f"segment {segment_id!r} has no latents of codec {codec_id!r} (it has: {have})")
    codes = np.asarray(row.pop("codes"), dtype=np.uint16).reshape(row["num_frames"], row["num_stages"])
    return codes, row


def decode_codes(codec: Any, codes: np.ndarray, num_samples: int | None = None) -> np.ndarray:
    """Codes ``[frames, stages]`` -> float32 waveform (trimmed to ``num_samples`` when given)."""
    import torch

    wav = codec.decode(torch.from_numpy(codes.astype(np.int64))[None], num_samples)
    return wav[0].numpy().astype(np.float32, copy=False)


def _checkpoint_of_run(lake_root: str, run_id: str, storage: StorageConfig) -> str:
    runs = read_column_values(table_uri(lake_root, "runs"), ["config_json"], storage, f"run_id = {sql_quote(run_id)}")
    if runs.num_rows == 0:
        raise LatentsLookupError(f"run {run_id!r} that wrote the row is not in the runs table; pass a checkpoint")
    return json.loads(runs.column("config_json")[0].as_py())["checkpoint"]


def decode_latents(lake_root: str, segment_id: str, *, codec_id: str | None = None,
                   checkpoint: str | Path | None = None, storage: StorageConfig | None = None) -> tuple[np.ndarray, int]:
    """Decode one ``latents`` row back to audio: (float32 mono samples, sample rate).

    Args:
        codec_id: which codec's row; default the checkpoint's. Given with a checkpoint, the two must agree.
        checkpoint: the codec's weights; default the checkpoint the encode run that wrote the row recorded
            (its ``runs.config_json``), so a codec id alone is enough while that file is in place.

    Raises:
        LatentsLookupError: unknown segment or codec, or neither codec id nor checkpoint given.
        models.codec.CheckpointError: unreadable checkpoint, or one of another codec.

    Example::

        wav, sr = decode_latents("data/lake", "3f2a...", checkpoint="checkpoints/codec_50hz_2x8555.pt")
    """
    from models.codec import load_checkpoint

    storage = storage or StorageConfig()
    lake = resolve_uri(lake_root)
    model = None
    if checkpoint is not None:
        model, _, meta = load_checkpoint(resolve_uri(str(checkpoint)), expected_codec_id=codec_id)
        codec_id = meta.codec_id
    if codec_id is None:
        raise LatentsLookupError("give a codec id or a checkpoint to decode with")
    codes, row = read_latent_codes(lake, segment_id, codec_id, storage)
    if model is None:
        model, _, _ = load_checkpoint(_checkpoint_of_run(lake, row["run_id"], storage), expected_codec_id=codec_id)
    return decode_codes(model, codes, row["num_samples"]), int(row["sample_rate_hz"])


@dataclass
class LatentStorage:
    """Bytes per hour of speech of one codec's ``latents`` rows vs the FLAC of the same segments.

    Attributes:
        codes_bytes_on_disk: the ``codes`` column as Lance stores it (bit-packed), from the table's per-column
            on-disk statistics; prorated by code count when several codecs share the table.
        codes_payload_bytes: 2 bytes x frames x stages (the uint16 arrays, before Lance's packing).
        row_bytes_on_disk: every column of these rows on disk (keys, labels, lineage; prorated by rows, codes by
            count): what the table really costs.
        flac_bytes: the ``segments.audio`` blobs (FLAC, stored out of line) of the same segments, their exact
            sizes from the blob descriptors.
    """

    codec_id: str
    segments: int
    audio_s: float
    codes_bytes_on_disk: float
    codes_payload_bytes: int
    row_bytes_on_disk: float
    flac_bytes: int

    def per_hour(self, num_bytes: float) -> float:
        """Bytes per hour of speech."""
        return num_bytes / (self.audio_s / 3600) if self.audio_s else 0.0

    @property
    def ratio(self) -> float:
        """FLAC bytes / latent code bytes on disk (how many times smaller the latents are)."""
        return self.flac_bytes / self.codes_bytes_on_disk if self.codes_bytes_on_disk else 0.0

    def format(self) -> str:
        """One line per figure."""
        mb = 1e6
        return "\n".join([
            f"storage per hour of speech, codec {self.codec_id} ({self.segments} segments, "
            f"{self.audio_s / 3600:.3f} h):",
            f"  latents codes  {self.per_hour(self.codes_bytes_on_disk) / mb:8.3f} MB/h on disk "
            f"({self.per_hour(self.codes_payload_bytes) / mb:.3f} MB/h as uint16; "
            f"{self.per_hour(self.codes_bytes_on_disk) * 8 / 3600:.0f} bps)",
            f"  latents rows   {self.per_hour(self.row_bytes_on_disk) / mb:8.3f} MB/h on disk (all columns)",
            f"  segments FLAC  {self.per_hour(self.flac_bytes) / mb:8.3f} MB/h "
            f"-> latents codes are {self.ratio:.0f}x smaller",
        ])


def _field_ids(field: Any) -> list[int]:
    return [field.id()] + [i for child in field.children() for i in _field_ids(child)]


def measure_latent_storage(lake_root: str, codec_id: str, storage: StorageConfig | None = None) -> LatentStorage:
    """Storage of ``codec_id``'s latents vs FLAC in ``segments``, for the segments it encoded.

    Example::

        print(measure_latent_storage("data/lake", "codec_50hz_2x8555-1a2b3c4d5e6f").format())
    """
    storage = storage or StorageConfig()
    lake = resolve_uri(lake_root)
    lat = open_table(table_uri(lake, "latents"), storage)
    if lat is None:
        raise LatentsLookupError(f"no latents table under {lake}")
    meta = lat.to_table(columns=["segment_id", "codec_id", "num_frames", "num_stages", "duration_s"])
    meta = meta.append_column("code_values", pc.multiply(pc.cast(meta.column("num_frames"), pa.int64()),
                                                         pc.cast(meta.column("num_stages"), pa.int64())))
    mine = meta.filter(pc.equal(meta.column("codec_id"), codec_id))
    if not mine.num_rows:
        raise LatentsLookupError(f"no latents of codec {codec_id!r} under {lake}")
    seg = open_table(table_uri(lake, "segments"), storage)
    if seg is None:
        raise LatentsLookupError(f"no segments table under {lake}")
    blobs = seg.to_table(columns=["segment_id", "audio"])
    sizes = pa.table({"segment_id": blobs.column("segment_id"),
                      "flac_bytes": pc.struct_field(blobs.column("audio"), "size")})
    sizes = sizes.group_by("segment_id").aggregate([("flac_bytes", "max")])  # a segment id twice: same audio
    joined = mine.select(["segment_id", "duration_s", "code_values"]).join(sizes, "segment_id", join_type="inner")

    def total(t: pa.Table, col: str) -> float:
        return pc.sum(t.column(col)).as_py() or 0

    all_values, my_values = total(meta, "code_values"), total(joined, "code_values")
    stats = {f.id: f.bytes_on_disk for f in lat.stats.data_stats().fields}
    codes_ids = set(_field_ids(lat.lance_schema.field("codes")))
    codes_disk = sum(b for i, b in stats.items() if i in codes_ids)
    other_disk = sum(b for i, b in stats.items() if i not in codes_ids)
    codes_share = codes_disk * my_values / all_values if all_values else 0.0
    return LatentStorage(
        codec_id=codec_id, segments=joined.num_rows, audio_s=float(total(joined, "duration_s")),
        codes_bytes_on_disk=codes_share, codes_payload_bytes=int(2 * my_values),
        row_bytes_on_disk=codes_share + other_disk * joined.num_rows / meta.num_rows,
        flac_bytes=int(total(joined, "flac_bytes_max")),
    )
