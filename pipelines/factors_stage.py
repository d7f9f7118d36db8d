"""The factors stage: planned ``latents`` rows (row offsets + labels) in, ``factors`` rows out.

A callable class for ``map_batches`` (STYLE.md): the codec and the factorizer
are built once per actor in ``__init__`` from the configs and state dicts the
driver ships (the driver has loaded and checked both checkpoints; on a
cluster the workers cannot see its files), and the ``latents`` table is
opened there at the version the driver planned against, so the row offsets it
listed stay valid while an encode run appends. It never writes; the driver
commits.

Why each row is factorized on its own rather than in padded batches: a row's
factors must not depend on the batch it landed in. The factorizer masks
padding (``models.factorizer.layers``) and padded batches of 16 matched
single rows to 3e-7 with identical content codes (64 rows of 80-250 frames,
factorizer_default), but batched kernels may still round a content value on
an FSQ boundary the other way, and batching bought only ~7% (1.57 s vs
1.69 s for those 64 rows on one busy core).

Vectors leave as ``pa.FixedSizeListArray`` cast to :data:`FACTORS_SCHEMA`
(batch_format="pyarrow"): Ray's tensor extension type would land in Lance as
something a vector index cannot be built on (DESIGN.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import pyarrow as pa

from pipelines.encode_stage import codes_array
from pipelines.lance_io import open_table
from schemas.codec import CodecModelConfig
from schemas.factorizer import FactorizerModelConfig
from schemas.factors import FACTOR_DIMS, FACTORS_SCHEMA, VECTOR_COLUMNS
from schemas.storage import StorageConfig

__all__ = ["FactorizeLatents", "INPUT_COLUMNS", "LABEL_COLUMNS", "RowFactors", "factorize_row", "vectors_array"]

#: Label columns copied from ``segments`` into every ``factors`` row.
LABEL_COLUMNS: tuple[str, ...] = ("split", "speaker", "language", "style", "environment", "channel", "corpus")

#: Columns of the plan the driver hands the stage (``_offset``: the row's position in ``latents`` at the version).
INPUT_COLUMNS: tuple[str, ...] = ("segment_id", "_offset", "num_frames", "duration_s", *LABEL_COLUMNS)


@dataclass
class RowFactors:
    """One row's factors: unit-norm vectors per factor (float32) and one content code per frame (uint16)."""

    vectors: dict[str, np.ndarray]
    content_codes: np.ndarray


def factorize_row(codec: Any, factorizer: Any, codes: np.ndarray) -> RowFactors:
    """Codec codes ``[frames, stages]`` of one row -> its factors (the row alone: no batch padding)."""
    import torch

    with torch.inference_mode():
        latent = codec.codes_to_latent(torch.from_numpy(codes.astype(np.int64))[None])
        enc = factorizer.encode(latent, torch.tensor([codes.shape[0]], dtype=torch.long))
        content = factorizer.content_to_codes(enc.content)[0]
    vectors = {name: getattr(enc, name)[0].numpy().astype(np.float32, copy=False) for name in FACTOR_DIMS}
    return RowFactors(vectors=vectors, content_codes=content.numpy().astype(np.uint16))


def vectors_array(vectors: list[np.ndarray], dim: int) -> pa.FixedSizeListArray:
    """Per-row float32 vectors of size ``dim`` -> a ``fixed_size_list<float32, dim>`` column."""
    flat = np.concatenate(vectors).astype(np.float32, copy=False) if vectors else np.zeros(0, np.float32)
    return pa.FixedSizeListArray.from_arrays(pa.array(flat, pa.float32()), dim)


class FactorizeLatents:
    """``map_batches`` stage: a batch of :data:`INPUT_COLUMNS` rows -> a :data:`FACTORS_SCHEMA` table."""

    def __init__(self, *, latents_uri: str, latents_version: int, storage: StorageConfig,
                 codec_config: CodecModelConfig, codec_state_dict: dict, codec_id: str,
                 factorizer_config: FactorizerModelConfig, factorizer_state_dict: dict, factorizer_id: str,
                 run_id: str, encoded_at: datetime, torch_threads: int | None = 1) -> None:
        import torch

        from models.codec import build_codec
        from models.factorizer import build_factorizer

        if torch_threads:
            torch.set_num_threads(torch_threads)
        codec = build_codec(codec_config)
        codec.load_state_dict(codec_state_dict)
        self.codec = codec.eval()
        factorizer = build_factorizer(factorizer_config)
        factorizer.load_state_dict(factorizer_state_dict)
        self.factorizer = factorizer.eval()
        self.codec_id = codec_id
        self.factorizer_id = factorizer_id
        self.run_id = run_id
        self.at = encoded_at
        self.latents_version = latents_version
        self.latents = open_table(latents_uri, storage, version=latents_version)
        if self.latents is None:
            raise FileNotFoundError(f"latents table not found: {latents_uri} (version {latents_version})")

    def __call__(self, batch: pa.Table) -> pa.Table:
        offsets = batch.column("_offset").to_numpy()
        taken = self.latents.take(offsets, columns=["segment_id", "codec_id", "num_frames", "num_stages", "codes"])
        ids = batch.column("segment_id").to_pylist()
        rows: list[RowFactors] = []
        for i, sid in enumerate(ids):
            got, codec_id = taken.column("segment_id")[i].as_py(), taken.column("codec_id")[i].as_py()
            if (got, codec_id) != (sid, self.codec_id):
                raise ValueError(f"segment {sid}: latents row {offsets[i]} of version {self.latents_version} is "
                                 f"({got}, {codec_id}), not this segment's {self.codec_id} row")
            frames, stages = taken.column("num_frames")[i].as_py(), taken.column("num_stages")[i].as_py()
            codes = taken.column("codes")[i].values.to_numpy(zero_copy_only=False).reshape(frames, stages)
            rows.append(factorize_row(self.codec, self.factorizer, codes))
        n = len(ids)
        columns: dict[str, Any] = {
            "segment_id": batch.column("segment_id"),
            "factorizer_id": pa.array([self.factorizer_id] * n),
            "codec_id": pa.array([self.codec_id] * n),
            "num_frames": batch.column("num_frames"),
            "duration_s": batch.column("duration_s"),
            **{name: batch.column(name) for name in LABEL_COLUMNS},
            "run_id": pa.array([self.run_id] * n),
            "encoded_at": pa.array([self.at] * n, pa.timestamp("us", tz="UTC")),
            **{VECTOR_COLUMNS[name]: vectors_array([r.vectors[name] for r in rows], dim)
               for name, dim in FACTOR_DIMS.items()},
            "content_codes": codes_array([r.content_codes for r in rows]),
        }
        return pa.table(columns).select(FACTORS_SCHEMA.names).cast(FACTORS_SCHEMA)
