"""Config of ``jobs/generate.py``: the recombine job's plan, gates and outputs, with the generator as the maker.

A generated row is planned exactly like a recombined one (content segment +
one donor per factor, the same strategies and budget), but its codes are
sampled by the generator (``jobs/train_generator.py``) from the content
segment's phonemes and the donors' factor vectors, instead of decoding the
content stream. It lands in ``synthetic`` with the same lineage columns,
``strategy = 'generated'``, and a ``synth_id`` that hashes the generator id
with the plan row, so a re-run makes nothing twice and recombined rows are
never overwritten. The gates are the recombine gates.
"""

from __future__ import annotations

from pydantic import Field, model_validator

from schemas.recombine import RecombineConfig, RecombineOutputConfig

__all__ = ["GenerateConfig", "GENERATED_STRATEGY"]

#: ``synthetic.strategy`` of every generated row (the plan's own strategy is in the run's config).
GENERATED_STRATEGY = "generated"


class GenerateConfig(RecombineConfig):
    """The recombine config plus the generator checkpoint and how to sample from it."""

    generator_checkpoint: str = Field(default="data/checkpoints/generator/checkpoints/latest.pt", description=(
        "a jobs/train_generator.py checkpoint trained on this codec and factorizer"))
    temperature: float = Field(default=0.0, ge=0, description=(
        "0: greedy codes; > 0: sampled (seeded by the batch's synth ids)"))
    phoneme_cache: str | None = "data/cache/phonemes"
    output: RecombineOutputConfig = Field(default_factory=lambda: RecombineOutputConfig(report_path=None))

    @model_validator(mode="after")
    def _check(self) -> "GenerateConfig":
        return _no_report(self)


def _no_report(config: GenerateConfig) -> GenerateConfig:
    if config.output.report_path:
        raise ValueError("output.report_path: the listening report is made by recombine runs; set it to null")
    return config
