"""The encode stage: rows of ``segments`` (keys + row addresses) in, ``latents`` rows out.

A callable class for ``map_batches`` (STYLE.md): the codec is built once per
actor in ``__init__`` and the ``segments`` table is opened there at the
pinned version, so the row addresses the driver listed stay valid even while
a curation run appends. It never writes; the driver commits.

Why the weights come in as a state dict, not a checkpoint path: the driver
has already loaded and checked the checkpoint (codec id, shapes), and on a
cluster the workers cannot see the driver's file system; Ray ships the
tensors through its object store.

Why each segment is encoded on its own rather than in padded batches of
similar length: the non-causal convs see the zero padding, so a padded batch
changes the last 1-3 frames of a segment's codes depending on its neighbours
(measured on codec_50hz_2x8555), and a segment's codes must not depend on the
batch it landed in. Batching bought only ~7% at the seed corpus' lengths
(2.5-4 s: 223x vs 241x real time per core); it pays ~40% only on sub-second
clips.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import numpy as np
import pyarrow as pa

from pipelines.audio.flac import decode_flac
from pipelines.lance_io import open_table
from schemas.codec import CodecModelConfig
from schemas.latents import LATENTS_SCHEMA
from schemas.storage import StorageConfig

__all__ = ["EncodeSegments", "INPUT_COLUMNS", "encode_samples", "codes_array"]

#: Columns of ``segments`` the driver hands the stage (``_rowaddr`` from a scan ``with_row_address=True``).
INPUT_COLUMNS: tuple[str, ...] = ("segment_id", "_rowaddr", "duration_s", "split", "speaker", "corpus")


def encode_samples(codec: Any, samples: np.ndarray) -> np.ndarray:
    """Mono float samples -> uint16 codes ``[frames, stages]`` (one segment, no batch padding)."""
    import torch

    wav = torch.from_numpy(np.ascontiguousarray(samples, dtype=np.float32))[None]
    return codec.encode(wav).codes[0].numpy()


def codes_array(codes: list[np.ndarray]) -> pa.ListArray:
    """Per-segment ``[frames, stages]`` uint16 arrays -> the ``codes`` column (flat, frame-major)."""
    sizes = np.fromiter((c.size for c in codes), dtype=np.int64, count=len(codes))
    offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int32)
    values = np.concatenate([c.reshape(-1) for c in codes]) if codes else np.zeros(0, np.uint16)
    return pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), pa.array(values.astype(np.uint16, copy=False)))


class EncodeSegments:
    """``map_batches`` stage: a batch of :data:`INPUT_COLUMNS` rows -> a :data:`LATENTS_SCHEMA` table."""

    def __init__(self, *, segments_uri: str, segments_version: int, storage: StorageConfig,
                 model_config: CodecModelConfig, state_dict: dict, codec_id: str, run_id: str, encoded_at: datetime,
                 torch_threads: int | None = 1) -> None:
        import torch

        from models.codec import build_codec

        if torch_threads:
            torch.set_num_threads(torch_threads)
        codec = build_codec(model_config)
        codec.load_state_dict(state_dict)
        self.codec = codec.eval()
        self.sample_rate_hz = model_config.sample_rate_hz
        self.codec_id = codec_id
        self.run_id = run_id
        self.at = encoded_at
        self.segments_version = segments_version
        self.segments = open_table(segments_uri, storage, version=segments_version)
        if self.segments is None:
            raise FileNotFoundError(f"segments table not found: {segments_uri} (version {segments_version})")

    def __call__(self, batch: pa.Table) -> pa.Table:
        addresses = batch.column("_rowaddr").to_pylist()
        blobs = dict(self.segments.read_blobs("audio", addresses=addresses, preserve_order=True)) if addresses else {}
        ids = batch.column("segment_id").to_pylist()
        codes, num_samples = [], []
        for sid, addr in zip(ids, addresses):
            data = blobs.get(addr)
            if data is None:
                raise ValueError(f"segment {sid}: no audio at row address {addr} of segments "
                                 f"version {self.segments_version}")
            samples, rate = decode_flac(data)
            if rate != self.sample_rate_hz or samples.ndim != 1:
                raise ValueError(f"segment {sid}: audio is {rate} Hz x {samples.shape[1:] or 1} channels, codec "
                                 f"{self.codec_id} takes {self.sample_rate_hz} Hz mono")
            codes.append(encode_samples(self.codec, samples))
            num_samples.append(samples.shape[0])
        n = len(ids)
        return pa.table({
            "segment_id": batch.column("segment_id"),
            "codec_id": pa.array([self.codec_id] * n),
            "num_frames": pa.array([c.shape[0] for c in codes], pa.int32()),
            "num_stages": pa.array([c.shape[1] for c in codes], pa.int16()),
            "frame_rate_hz": pa.array([float(self.codec.frame_rate_hz)] * n),
            "bitrate_bps": pa.array([float(self.codec.bitrate_bps)] * n),
            "num_samples": pa.array(num_samples, pa.int64()),
            "sample_rate_hz": pa.array([self.sample_rate_hz] * n, pa.int32()),
            "duration_s": pa.array([s / self.sample_rate_hz for s in num_samples], pa.float64()),
            "split": batch.column("split"),
            "speaker": batch.column("speaker"),
            "corpus": batch.column("corpus"),
            "segments_version": pa.array([self.segments_version] * n, pa.int64()),
            "run_id": pa.array([self.run_id] * n),
            "encoded_at": pa.array([self.at] * n, pa.timestamp("us", tz="UTC")),
            "codes": codes_array(codes),
        }).cast(LATENTS_SCHEMA)
