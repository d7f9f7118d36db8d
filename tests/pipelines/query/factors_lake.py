"""A lake with real ``latents`` and ``factors`` of a tiny codec + tiny factorizer, made without Ray.

The encode and factors stages (``EncodeSegments``, ``FactorizeLatents``) are
called directly on their planned batches, so the rows are exactly what the
jobs would write (audio -> codes -> vectors), in about a second: what the
query tests need to search by an audio file and find its segment.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import torch

from models.codec import build_codec, codec_tiny_test, load_checkpoint, save_checkpoint
from models.factorizer import build_factorizer, factorizer_tiny_test, save_factorizer_checkpoint
from pipelines.encode import plan_encode
from pipelines.encode_factors import plan_encode_factors
from pipelines.encode_stage import EncodeSegments
from pipelines.factor_search import update_factor_index
from pipelines.factors_stage import FactorizeLatents
from pipelines.lance_io import table_uri, upsert_rows
from schemas.encode_factors import FactorsIndexConfig
from schemas.factors import FACTOR_DIMS, FACTORS_KEY, FACTORS_SCHEMA
from schemas.latents import LATENTS_SCHEMA
from schemas.storage import StorageConfig
from tests.tiny_lake import segment_row, write_segments

__all__ = ["factors_lake", "tiny_models"]

_AT = datetime(2026, 1, 1, tzinfo=timezone.utc)


def tiny_models(root: Path, *, seed: int = 0, codec: Path | None = None) -> tuple[Path, Path]:
    """A tiny codec (or the given one) and a tiny factorizer of it whose vectors have the factors table's sizes."""
    torch.manual_seed(seed)
    if codec is None:
        codec = save_checkpoint(root / "codec.pt", build_codec(codec_tiny_test()), codec_tiny_test())
    codec_id = load_checkpoint(codec)[2].codec_id
    dims = {f"{name}_dim": dim for name, dim in FACTOR_DIMS.items()}
    config = factorizer_tiny_test().model_copy(update=dims)
    factorizer = save_factorizer_checkpoint(root / f"factorizer_{seed}.pt", build_factorizer(config), config,
                                            codec_id=codec_id)
    return codec, factorizer


def factors_lake(root: Path, *, lake: str | None = None, storage: StorageConfig | None = None, segments: int = 8,
                 codec: Path | None = None, factorizer: Path | None = None) -> tuple[str, Path, Path, list[dict]]:
    """Segments of ``segments`` voices (f0 and length differ), encoded and factorized for real, indexed.

    Returns (lake, codec checkpoint, factorizer checkpoint, segment rows).
    """
    from models.factorizer import load_factorizer_checkpoint

    storage = storage or StorageConfig()
    lake = lake or str(root / "lake")
    rows = [segment_row(0.8 + 0.1 * i, seed=i, speaker=f"t:{i % 4}", split="train" if i % 4 else "valid",
                        language="en", environment=["clean", "room"][i % 2]) for i in range(segments)]
    write_segments(lake, rows, storage)
    if codec is None or factorizer is None:
        codec, factorizer = tiny_models(root)
    model, model_config, meta = load_checkpoint(codec)
    f_model, f_config, f_meta = load_factorizer_checkpoint(factorizer)
    plan = plan_encode(lake, meta.codec_id, storage)
    if plan.todo.num_rows:  # a second factorizer of the same codec reuses the latents
        latents = EncodeSegments(segments_uri=table_uri(lake, "segments"), segments_version=plan.segments_version,
                                 storage=storage, model_config=model_config, state_dict=model.state_dict(),
                                 codec_id=meta.codec_id, run_id="test-encode", encoded_at=_AT)(plan.todo)
        upsert_rows(table_uri(lake, "latents"), latents, LATENTS_SCHEMA, ["segment_id", "codec_id"], storage)
    fplan = plan_encode_factors(lake, f_meta.factorizer_id, meta.codec_id, storage)
    stage = FactorizeLatents(latents_uri=table_uri(lake, "latents"), latents_version=fplan.latents_version,
                             storage=storage, codec_config=model_config, codec_state_dict=model.state_dict(),
                             codec_id=meta.codec_id, factorizer_config=f_config,
                             factorizer_state_dict=f_model.state_dict(), factorizer_id=f_meta.factorizer_id,
                             run_id="test-factors", encoded_at=_AT)
    upsert_rows(table_uri(lake, "factors"), stage(fplan.todo), FACTORS_SCHEMA, list(FACTORS_KEY), storage)
    update_factor_index(lake, FactorsIndexConfig(), storage)
    return lake, codec, factorizer, rows
