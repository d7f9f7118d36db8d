"""Recognizer checkpoints: weights + config + phoneme inventory + the codec id + a recognizer id.

A recognizer reads one codec's codes and emits one inventory's phonemes, so its
architecture id hashes the config with both:
``<name>-<12 hex of sha256(canonical config JSON + codec_id + inventory JSON)>``, and the full id adds the
weights digest (``-w<10 hex>``), as the factorizer's does: PER reported for an id names exactly one set of
weights. On load the id is checked against what is stored (a hand-edited or damaged file fails), and, when
given, against the codec the caller's codes come from: codes of another codec mean nothing to it.
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
from models.ctc.model import CtcRecognizer
from schemas.ctc import CtcModelConfig

__all__ = ["CtcCheckpointError", "CtcCheckpointMeta", "ctc_id_for", "save_ctc_checkpoint", "load_ctc_checkpoint",
           "CHECKPOINT_FORMAT", "CHECKPOINT_VERSION"]

CHECKPOINT_FORMAT = "lsm-ctc"
CHECKPOINT_VERSION = 1
_REQUIRED = ("format", "version", "ctc_id", "codec_id", "config", "phonemes", "state_dict", "step")


class CtcCheckpointError(Exception):
    """A recognizer checkpoint that cannot be used; the message is one line naming the file and the reason."""


@dataclass
class CtcCheckpointMeta:
    """Everything in a checkpoint besides the model and its config.

    Attributes:
        phonemes: the inventory's symbols (``pipelines.phonemes.PhonemeInventory(tuple(phonemes))``).
    """

    ctc_id: str
    codec_id: str
    phonemes: list[str]
    step: int
    optimizer_state: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def architecture_id(self) -> str:
        return architecture_id(self.ctc_id)


def _id_for(config_json: dict[str, Any], codec_id: str, phonemes: Sequence[str]) -> str:
    return f"{config_json.get('name')}-{sha256_hex(canonical_json(config_json) + codec_id + canonical_json(list(phonemes)))}"


def ctc_id_for(config: CtcModelConfig, codec_id: str, phonemes: Sequence[str]) -> str:
    """Architecture id of a recognizer config on codec ``codec_id`` with inventory symbols ``phonemes``."""
    return _id_for(config.model_dump(mode="json"), codec_id, phonemes)


def _classes_problem(num_classes: Any, phonemes: Sequence[str]) -> str | None:
    if not isinstance(phonemes, (list, tuple)) or not all(isinstance(p, str) for p in phonemes):
        return "phoneme inventory is not a list of strings"
    if num_classes != len(phonemes) + 2:
        return (f"inventory of {len(phonemes)} phonemes needs {len(phonemes) + 2} classes (with blank and "
                f"unknown), the model has {num_classes}")
    return None


def save_ctc_checkpoint(path: str | Path, model: CtcRecognizer, config: CtcModelConfig, *, codec_id: str,
                        phonemes: Sequence[str], step: int = 0, optimizer_state: dict[str, Any] | None = None,
                        extra: dict[str, Any] | None = None) -> Path:
    """Write ``model``'s weights with ``config``, the codec id and the inventory's symbols atomically.

    Raises:
        ValueError: the inventory does not fit the config's class count.

    Example::

        save_ctc_checkpoint(p, model, cfg, codec_id=index.codec_id, phonemes=inventory.symbols)
        model, cfg, meta = load_ctc_checkpoint(p, expected_codec_id=index.codec_id)
    """
    phonemes = list(phonemes)
    problem = _classes_problem(config.num_classes, phonemes)
    if problem:
        raise ValueError(problem)
    state = model.state_dict()
    payload = {
        "format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION,
        "ctc_id": with_weights(ctc_id_for(config, codec_id, phonemes), state), "codec_id": str(codec_id),
        "config": config.model_dump(mode="json"), "phonemes": phonemes, "state_dict": state, "step": int(step),
        "optimizer_state": optimizer_state, "extra": extra or {}, "torch_version": str(torch.__version__),
    }
    return atomic_torch_save(payload, path)


def load_ctc_checkpoint(path: str | Path, expected_codec_id: str | None = None, *,
                        map_location: str | torch.device = "cpu",
                        ) -> tuple[CtcRecognizer, CtcModelConfig, CtcCheckpointMeta]:
    """Rebuild the recognizer saved at ``path`` (in eval mode) with its config and metadata.

    Raises:
        CtcCheckpointError: missing, corrupt or truncated file; not a recognizer checkpoint; an id that does not
            match the stored config, codec id, inventory or weights; trained on another codec than
            ``expected_codec_id``; weights that do not fit the config.
    """
    from models.ctc.builders import build_ctc

    path = Path(path)
    payload = read_checkpoint(path, kind="ctc recognizer", format_marker=CHECKPOINT_FORMAT,
                              version=CHECKPOINT_VERSION, required=_REQUIRED, error=CtcCheckpointError,
                              map_location=map_location)
    stored_id, codec_id, config_json, phonemes = (str(payload["ctc_id"]), str(payload["codec_id"]),
                                                  payload["config"], payload["phonemes"])
    if not isinstance(config_json, dict) or not isinstance(phonemes, list) or \
            architecture_id(stored_id) != _id_for(config_json, codec_id, phonemes):
        raise CtcCheckpointError(f"{path}: recognizer id {stored_id!r} does not match the config, codec id and "
                                 "phonemes stored with it")
    if expected_codec_id is not None and codec_id != expected_codec_id:
        raise CtcCheckpointError(f"{path}: recognizer {stored_id!r} was trained on codec {codec_id!r}, the codes "
                                 f"are codec {expected_codec_id!r}")
    try:
        config = CtcModelConfig.model_validate(config_json)
    except ValidationError as exc:
        raise CtcCheckpointError(f"{path}: stored config does not validate: {first_line(exc)}") from None
    problem = _classes_problem(config.num_classes, phonemes)
    if problem:
        raise CtcCheckpointError(f"{path}: {problem}")
    model = build_ctc(config)
    problem = state_dict_mismatch(model, payload["state_dict"])
    if problem:
        raise CtcCheckpointError(f"{path}: weights do not fit recognizer {stored_id!r}: {problem}")
    if stored_id != with_weights(architecture_id(stored_id), payload["state_dict"]):
        raise CtcCheckpointError(f"{path}: weights do not match recognizer id {stored_id!r} (modified or damaged "
                                 "file)")
    model.load_state_dict(payload["state_dict"])
    meta = CtcCheckpointMeta(ctc_id=stored_id, codec_id=codec_id, phonemes=list(phonemes), step=int(payload["step"]),
                             optimizer_state=payload.get("optimizer_state"), extra=dict(payload.get("extra") or {}))
    return model.eval().to(map_location), config, meta
