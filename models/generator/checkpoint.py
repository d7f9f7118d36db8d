"""Generator checkpoints: weights + config + phoneme inventory + the codec and factorizer ids + a generator id.

A generator reads one inventory's phonemes and one factorizer's vectors and emits one codec's codes, so its
architecture id hashes the config with all three:
``<name>-<12 hex of sha256(canonical config JSON + codec_id + factorizer_id + inventory JSON)>``, and the full
id adds the weights digest (``-w<10 hex>``), as the recognizer's does: synthetic rows keyed by an id name
exactly one set of weights. On load the id is checked against what is stored (a hand-edited or damaged file
fails), and, when given, against the codec and factorizer the caller works with: vectors of another
factorizer, or codes meant for another codec, mean nothing to it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from pydantic import ValidationError

from models.checkpoint_io import (architecture_id, atomic_torch_save, canonical_json, first_line, read_checkpoint,
                                  sha256_hex, state_dict_mismatch, with_weights)
from models.generator.model import LatentGenerator
from schemas.generator import GeneratorModelConfig

__all__ = ["GeneratorCheckpointError", "GeneratorCheckpointMeta", "generator_id_for", "save_generator_checkpoint",
           "load_generator_checkpoint", "CHECKPOINT_FORMAT", "CHECKPOINT_VERSION"]

CHECKPOINT_FORMAT = "lsm-generator"
CHECKPOINT_VERSION = 1
_REQUIRED = ("format", "version", "generator_id", "codec_id", "factorizer_id", "config", "phonemes", "state_dict",
             "step")


class GeneratorCheckpointError(Exception):
    """A generator checkpoint that cannot be used; the message is one line naming the file and the reason."""


@dataclass
class GeneratorCheckpointMeta:
    """Everything in a checkpoint besides the model and its config.

    Attributes:
        phonemes: the inventory's symbols (``pipelines.phonemes.PhonemeInventory(tuple(phonemes))``).
    """

    generator_id: str
    codec_id: str
    factorizer_id: str
    phonemes: list[str]
    step: int
    optimizer_state: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def architecture_id(self) -> str:
        """The generator id without its weights digest: what a training run may resume into."""
        return architecture_id(self.generator_id)


def _id_for(config_json: dict[str, Any], codec_id: str, factorizer_id: str, phonemes: Sequence[str]) -> str:
    digest = sha256_hex(canonical_json(config_json) + codec_id + factorizer_id + canonical_json(list(phonemes)))
    return f"{config_json.get('name')}-{digest}"


def generator_id_for(config: GeneratorModelConfig, codec_id: str, factorizer_id: str,
                     phonemes: Sequence[str]) -> str:
    """Architecture id of a generator config for codec ``codec_id``, the vectors of ``factorizer_id`` and the
    inventory symbols ``phonemes``."""
    return _id_for(config.model_dump(mode="json"), codec_id, factorizer_id, phonemes)


def _classes_problem(phoneme_classes: Any, phonemes: Any) -> str | None:
    if not isinstance(phonemes, (list, tuple)) or not all(isinstance(p, str) for p in phonemes):
        return "phoneme inventory is not a list of strings"
    if phoneme_classes != len(phonemes) + 2:
        return (f"inventory of {len(phonemes)} phonemes needs {len(phonemes) + 2} phoneme classes (with blank and "
                f"unknown), the model has {phoneme_classes}")
    return None


def save_generator_checkpoint(path: str | Path, model: LatentGenerator, config: GeneratorModelConfig, *,
                              codec_id: str, factorizer_id: str, phonemes: Sequence[str], step: int = 0,
                              optimizer_state: dict[str, Any] | None = None,
                              extra: dict[str, Any] | None = None) -> Path:
    """Write ``model``'s weights with ``config``, the codec and factorizer ids and the inventory atomically.

    Raises:
        ValueError: the inventory does not fit the config's phoneme classes.

    Example::

        save_generator_checkpoint(p, model, cfg, codec_id=codec_id, factorizer_id=factorizer_id,
                                  phonemes=inventory.symbols, step=step)
        model, cfg, meta = load_generator_checkpoint(p, expected_factorizer_id=factorizer_id)
    """
    phonemes = list(phonemes)
    problem = _classes_problem(config.phoneme_classes, phonemes)
    if problem:
        raise ValueError(problem)
    state = model.state_dict()
    payload = {
        "format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION,
        "generator_id": with_weights(generator_id_for(config, codec_id, factorizer_id, phonemes), state),
        "codec_id": str(codec_id), "factorizer_id": str(factorizer_id), "config": config.model_dump(mode="json"),
        "phonemes": phonemes, "state_dict": state, "step": int(step), "optimizer_state": optimizer_state,
        "extra": extra or {}, "torch_version": str(torch.__version__),
    }
    return atomic_torch_save(payload, path)


def load_generator_checkpoint(path: str | Path, expected_codec_id: str | None = None,
                              expected_factorizer_id: str | None = None, *,
                              map_location: str | torch.device = "cpu",
                              ) -> tuple[LatentGenerator, GeneratorModelConfig, GeneratorCheckpointMeta]:
    """Rebuild the generator saved at ``path`` (in eval mode) with its config and metadata.

    Raises:
        GeneratorCheckpointError: missing, corrupt or truncated file; not a generator checkpoint; an id that
            does not match the stored config, codec and factorizer ids, inventory or weights; made for another
            codec than ``expected_codec_id`` or another factorizer than ``expected_factorizer_id``; weights that
            do not fit the config.
    """
    from models.generator.builders import build_generator

    path = Path(path)
    payload = read_checkpoint(path, kind="generator", format_marker=CHECKPOINT_FORMAT, version=CHECKPOINT_VERSION,
                              required=_REQUIRED, error=GeneratorCheckpointError, map_location=map_location)
    stored_id, codec_id, factorizer_id = (str(payload["generator_id"]), str(payload["codec_id"]),
                                          str(payload["factorizer_id"]))
    config_json, phonemes = payload["config"], payload["phonemes"]
    if not isinstance(config_json, dict) or not isinstance(phonemes, list) or \
            architecture_id(stored_id) != _id_for(config_json, codec_id, factorizer_id, phonemes):
        raise GeneratorCheckpointError(f"{path}: generator id {stored_id!r} does not match the config, codec id, "
                                       "factorizer id and phonemes stored with it")
    if expected_codec_id is not None and codec_id != expected_codec_id:
        raise GeneratorCheckpointError(f"{path}: generator {stored_id!r} makes codes of codec {codec_id!r}, "
                                       f"expected codec {expected_codec_id!r}")
    if expected_factorizer_id is not None and factorizer_id != expected_factorizer_id:
        raise GeneratorCheckpointError(f"{path}: generator {stored_id!r} reads the vectors of factorizer "
                                       f"{factorizer_id!r}, expected factorizer {expected_factorizer_id!r}")
    try:
        config = GeneratorModelConfig.model_validate(config_json)
    except ValidationError as exc:
        raise GeneratorCheckpointError(f"{path}: stored config does not validate: {first_line(exc)}") from None
    problem = _classes_problem(config.phoneme_classes, phonemes)
    if problem:
        raise GeneratorCheckpointError(f"{path}: {problem}")
    model = build_generator(config)
    problem = state_dict_mismatch(model, payload["state_dict"])
    if problem:
        raise GeneratorCheckpointError(f"{path}: weights do not fit generator {stored_id!r}: {problem}")
    if stored_id != with_weights(architecture_id(stored_id), payload["state_dict"]):
        raise GeneratorCheckpointError(f"{path}: weights do not match generator id {stored_id!r} (modified or "
                                       "damaged file)")
    model.load_state_dict(payload["state_dict"])
    meta = GeneratorCheckpointMeta(generator_id=stored_id, codec_id=codec_id, factorizer_id=factorizer_id,
                                   phonemes=list(phonemes), step=int(payload["step"]),
                                   optimizer_state=payload.get("optimizer_state"),
                                   extra=dict(payload.get("extra") or {}))
    return model.eval().to(map_location), config, meta
