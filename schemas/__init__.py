"""Pydantic row/config models and the pyarrow schema of every table, side by side."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel

from schemas.curate import ConfigError, CurateConfig, load_config
from schemas.latents import LATENTS_SCHEMA, LatentRow
from schemas.rejects import REJECTS_SCHEMA, RejectReason, RejectRow, RejectStage
from schemas.runs import RUNS_SCHEMA, RunRow
from schemas.segments import SEGMENTS_SCHEMA, SegmentRow
from schemas.sources import SOURCES_SCHEMA, SourceRow

__all__ = [
    "ConfigError", "CurateConfig", "load_config", "config_model_for",
    "SEGMENTS_SCHEMA", "SegmentRow", "SOURCES_SCHEMA", "SourceRow", "REJECTS_SCHEMA", "RejectRow", "RejectReason",
    "RejectStage", "RUNS_SCHEMA", "RunRow", "LATENTS_SCHEMA", "LatentRow",
]


def config_model_for(path: str | Path) -> type[BaseModel]:
    """The config model of a ``configs/<job>[_variant].yaml`` file, by the job name in its file name."""
    name = Path(path).stem
    if name.startswith("make_seed_corpus"):
        from schemas.seed import SeedConfig

        return SeedConfig
    if name.startswith("encode_factors"):  # before "encode", which it starts with
        from schemas.encode_factors import EncodeFactorsConfig

        return EncodeFactorsConfig
    if name.startswith("encode"):
        from schemas.encode import EncodeConfig

        return EncodeConfig
    if name.startswith("curate"):
        return CurateConfig
    if name.startswith("eval_codec"):
        from schemas.eval_codec import EvalCodecConfig

        return EvalCodecConfig
    if name.startswith("train_codec"):
        from schemas.codec import TrainCodecConfig

        return TrainCodecConfig
    if name.startswith("generate"):
        from schemas.generate import GenerateConfig

        return GenerateConfig
    if name.startswith("recombine"):
        from schemas.recombine import RecombineConfig

        return RecombineConfig
    if name.startswith("train_factorizer"):
        from schemas.train_factorizer import TrainFactorizerConfig

        return TrainFactorizerConfig
    if name.startswith("train_ctc"):
        from schemas.train_ctc import TrainCtcConfig

        return TrainCtcConfig
    if name.startswith("train_s2s"):
        from schemas.train_s2s import TrainS2SConfig

        return TrainS2SConfig
    if name.startswith("train_generator"):
        from schemas.train_generator import TrainGeneratorConfig

        return TrainGeneratorConfig
    if name.startswith("experiment_amplification"):
        from schemas.amplification import AmplificationConfig

        return AmplificationConfig
    if name.startswith("maintain"):
        from schemas.maintenance import MaintainConfig

        return MaintainConfig
    if name.startswith("corpus_report"):
        from schemas.corpus_report import CorpusReportConfig

        return CorpusReportConfig
    raise KeyError(f"no config model known for {path}")
