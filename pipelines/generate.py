"""What ``jobs/generate.py`` adds to a recombine run: the generator, phonemes of the content, generated ids.

``pipelines.recombine.run_recombine`` runs a :class:`schemas.generate.GenerateConfig`
like any recombine config (plan, chunks, commits, gates, ``runs`` row,
idempotence by ``synth_id``); :func:`prepare_generation` is called on its
plan first. It checks the generator was trained on the run's codec and
factorizer, phonemizes every content segment's transcript with the
generator's own inventory (rows whose content has no phonemes are dropped
from the plan and counted), gives every row its generated ``synth_id`` and
``strategy``, and returns what the stage needs to build the generator.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from pipelines.lance_io import open_table, table_uri
from schemas._arrow import stable_id
from schemas.generate import GENERATED_STRATEGY, GenerateConfig
from schemas.storage import resolve_uri

__all__ = ["GenerationError", "prepare_generation"]


class GenerationError(ValueError):
    """The generator cannot make this plan's rows (wrong codec or factorizer, no phonemes); one line."""


def prepare_generation(config: GenerateConfig, lake: str, plan: pa.Table, *, codec_id: str, factorizer_id: str,
                       ) -> tuple[pa.Table, dict[str, Any], int]:
    """(the plan with generated ids, stage kwargs for the generator, rows dropped for lack of phonemes)."""
    from models.generator.checkpoint import load_generator_checkpoint
    from pipelines.phonemes import PhonemeInventory, Phonemizer, PhonemizeError

    path = resolve_uri(config.generator_checkpoint)
    generator, g_config, meta = load_generator_checkpoint(path)
    if meta.codec_id != codec_id or meta.factorizer_id != factorizer_id:
        raise GenerationError(f"{path}: generator {meta.generator_id} was trained on codec {meta.codec_id!r} and "
                              f"factorizer {meta.factorizer_id!r}; this run has codec {codec_id!r} and factorizer "
                              f"{factorizer_id!r}")
    inventory = PhonemeInventory(tuple(meta.phonemes))
    content = set(plan.column("content_segment_id").to_pylist())
    segs = open_table(table_uri(lake, "segments"), config.storage).to_table(
        columns=["segment_id", "language", "transcript"])
    by_language: dict[str, list[tuple[str, str]]] = {}
    for sid, lang, text in zip(*(segs.column(c).to_pylist() for c in ("segment_id", "language", "transcript"))):
        if sid in content and lang and text:
            by_language.setdefault(lang, []).append((sid, text))
    phonemizer = Phonemizer(cache_dir=resolve_uri(config.phoneme_cache) if config.phoneme_cache else None)
    phonemes: dict[str, list[int]] = {}
    for lang, items in by_language.items():
        try:
            seqs = phonemizer([t for _, t in items], lang)
        except PhonemizeError as exc:
            if not str(exc).startswith("no espeak-ng voice"):
                raise
            continue
        phonemes.update({sid: inventory.encode(p) for (sid, _), p in zip(items, seqs) if p})
    phonemizer.save()
    keep = pc.is_in(plan.column("content_segment_id"), pa.array(sorted(phonemes), pa.string()))
    dropped = plan.num_rows - int(pc.sum(keep).as_py() or 0)
    plan = plan.filter(keep)
    if plan.num_rows == 0:
        raise GenerationError("no planned content segment has a transcript espeak-ng can phonemize: nothing to "
                              "generate")
    ids = [stable_id("generate", meta.generator_id, sid) for sid in plan.column("synth_id").to_pylist()]
    plan = plan.set_column(plan.schema.get_field_index("synth_id"), "synth_id", pa.array(ids, pa.string()))
    plan = plan.set_column(plan.schema.get_field_index("strategy"), "strategy",
                           pa.array([GENERATED_STRATEGY] * plan.num_rows, pa.string()))
    stage = {"generator_config": g_config, "generator_state": {k: v.detach().cpu() for k, v in
                                                               generator.state_dict().items()},
             "phonemes": {sid: phonemes[sid] for sid in set(plan.column("content_segment_id").to_pylist())},
             "temperature": config.temperature}
    return plan, stage, dropped
