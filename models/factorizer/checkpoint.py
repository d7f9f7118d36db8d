"""Factorizer checkpoints: weights + config + label vocabularies + the factorizer and codec ids.

A factorizer reads one codec's latents, so its id hashes the codec id with its
config, then adds a digest of its weights:
``<name>-<12 hex of sha256(canonical config JSON + codec_id)>-w<10 hex of sha256(weights)>``.
The first two parts (``factorizer_id_for``, the *architecture id*) say what a
training run may resume into; the weights digest makes retrained weights a
new factorizer, so ``factors`` rows (keyed by the id) never mix two models. On load it is checked against the stored config and
codec id (a hand-edited or mixed-up file fails), and, when given, against the
factorizer and codec ids the caller expects: factors of latents from another
codec would be meaningless, so that mismatch is an error, not a warning.
``label_vocab`` maps each head's class index back to its label (``speaker`` ->
``["espeak-ng:en", ...]``). Writes are atomic (``models.checkpoint_io``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from pydantic import ValidationError

from models.checkpoint_io import (architecture_id, atomic_torch_save, canonical_json, exported_extra, first_line,
                                  read_checkpoint, sha256_hex, state_dict_mismatch, with_weights)
from models.factorizer.model import Factorizer
from schemas.factorizer import CLASS_COUNT_FIELDS, FACTOR_NAMES, FactorizerModelConfig

__all__ = ["FactorizerCheckpointError", "FactorizerCheckpointMeta", "factorizer_id_for",
           "save_factorizer_checkpoint", "load_factorizer_checkpoint", "export_factorizer_checkpoint",
           "CHECKPOINT_FORMAT", "CHECKPOINT_VERSION"]

CHECKPOINT_FORMAT = "lsm-factorizer"
CHECKPOINT_VERSION = 1
_REQUIRED = ("format", "version", "factorizer_id", "codec_id", "config", "label_vocab", "state_dict", "step")


class FactorizerCheckpointError(Exception):
    """A factorizer checkpoint that cannot be used; the message is one line naming the file and the reason."""


@dataclass
class FactorizerCheckpointMeta:
    """Everything in a checkpoint besides the model and its config."""

    factorizer_id: str
    codec_id: str
    step: int
    label_vocab: dict[str, list[str]] = field(default_factory=dict)
    optimizer_state: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    torch_version: str = ""

    @property
    def architecture_id(self) -> str:
        """The factorizer id without its weights digest: what a training run may resume into."""
        return architecture_id(self.factorizer_id)


def _id_for(config_json: dict[str, Any], codec_id: str) -> str:
    return f"{config_json.get('name')}-{sha256_hex(canonical_json(config_json) + codec_id)}"


def factorizer_id_for(config: FactorizerModelConfig, codec_id: str) -> str:
    """Stable id of a factorizer config trained on codec ``codec_id``: equal inputs give equal ids on any machine.

    Example:
        >>> from models.factorizer import factorizer_tiny_test
        >>> factorizer_id_for(factorizer_tiny_test(), "codec_a-000000000000").startswith("factorizer_tiny_test-")
        True
    """
    return _id_for(config.model_dump(mode="json"), codec_id)


def _vocab_problem(label_vocab: Mapping[str, Any], config_json: Mapping[str, Any]) -> str | None:
    """Why ``label_vocab`` does not fit the config's heads, or None."""
    for name, labels in label_vocab.items():
        if name not in FACTOR_NAMES:
            return f"label vocab for unknown factor {name!r} (factors: {', '.join(FACTOR_NAMES)})"
        if not isinstance(labels, (list, tuple)) or not all(isinstance(label, str) for label in labels):
            return f"label vocab of {name} is not a list of strings"
        classes = config_json.get(CLASS_COUNT_FIELDS[name])
        if len(labels) != classes:
            return f"label vocab of {name} has {len(labels)} labels, the model has {classes} classes"
    return None


def save_factorizer_checkpoint(path: str | Path, model: Factorizer, config: FactorizerModelConfig, *, codec_id: str,
                               label_vocab: Mapping[str, Sequence[str]] | None = None,
                               factorizer_id: str | None = None, step: int = 0,
                               optimizer_state: dict[str, Any] | None = None,
                               extra: dict[str, Any] | None = None) -> Path:
    """Write ``model``'s weights with ``config``, the codec id and the label vocabularies to ``path`` atomically.

    Args:
        codec_id: the codec whose latents the factorizer was trained on.
        label_vocab: per factor, class index -> label; each given list must have the head's class count
            (factors without a vocabulary are allowed: labels by index only).
        factorizer_id: if given, must equal ``factorizer_id_for(config, codec_id)`` (the architecture id);
            the stored id adds the digest of the weights saved.
        optimizer_state: ``optimizer.state_dict()`` to resume training.
        extra: small plain values (ints, floats, strings, lists, dicts, tensors) such as data state.

    Returns:
        The path written.

    Example:
        >>> import tempfile
        >>> from models.factorizer import build_factorizer, factorizer_tiny_test
        >>> cfg = factorizer_tiny_test()
        >>> p = save_factorizer_checkpoint(tempfile.mkdtemp() + "/f.pt", build_factorizer(cfg), cfg, codec_id="c-1")
        >>> load_factorizer_checkpoint(p, expected_codec_id="c-1")[2].factorizer_id == factorizer_id_for(cfg, "c-1")
        True
    """
    expected = factorizer_id_for(config, codec_id)
    if factorizer_id is not None and architecture_id(factorizer_id) != expected:
        raise ValueError(f"factorizer_id {factorizer_id!r} does not match the config and codec id's {expected!r}")
    vocab = {name: list(labels) for name, labels in (label_vocab or {}).items()}
    problem = _vocab_problem(vocab, config.model_dump())
    if problem:
        raise ValueError(problem)
    payload = {
        "format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION,
        "factorizer_id": with_weights(expected, model.state_dict()),
        "codec_id": str(codec_id), "config": config.model_dump(mode="json"), "label_vocab": vocab,
        "state_dict": model.state_dict(), "step": int(step), "optimizer_state": optimizer_state,
        "extra": extra or {}, "torch_version": str(torch.__version__),
    }
    return atomic_torch_save(payload, path)


def load_factorizer_checkpoint(path: str | Path, expected_codec_id: str | None = None,
                               expected_factorizer_id: str | None = None, *,
                               map_location: str | torch.device = "cpu",
                               ) -> tuple[Factorizer, FactorizerModelConfig, FactorizerCheckpointMeta]:
    """Rebuild the factorizer saved at ``path`` (in eval mode) with its config and metadata.

    Args:
        expected_codec_id: the codec of the latents about to be factorized; a factorizer trained on another
            codec is refused.
        expected_factorizer_id: refuse any other factorizer (e.g. the id a ``factors`` table is keyed by).

    Raises:
        FactorizerCheckpointError: missing, corrupt or truncated file; not a factorizer checkpoint; an id that
            does not match the stored config and codec id, or the expected ids; config, weights or label
            vocabularies that do not fit this code.
    """
    from models.factorizer.builders import build_factorizer

    path = Path(path)
    payload = read_checkpoint(path, kind="factorizer", format_marker=CHECKPOINT_FORMAT, version=CHECKPOINT_VERSION,
                              required=_REQUIRED, error=FactorizerCheckpointError, map_location=map_location)
    stored_id, codec_id, config_json = str(payload["factorizer_id"]), str(payload["codec_id"]), payload["config"]
    # Checked against the config as stored (not as re-validated), so a later schema field with a default does
    # not change the id of an existing checkpoint.
    if not isinstance(config_json, dict) or architecture_id(stored_id) != _id_for(config_json, codec_id):
        raise FactorizerCheckpointError(f"{path}: factorizer id {stored_id!r} does not match the config and codec "
                                        "id stored with it")
    if expected_factorizer_id is not None and stored_id != expected_factorizer_id:
        raise FactorizerCheckpointError(f"{path}: checkpoint is factorizer {stored_id!r}, expected "
                                        f"{expected_factorizer_id!r}")
    if expected_codec_id is not None and codec_id != expected_codec_id:
        raise FactorizerCheckpointError(f"{path}: factorizer {stored_id!r} was trained on codec {codec_id!r}, "
                                        f"the latents are codec {expected_codec_id!r}")
    try:
        config = FactorizerModelConfig.model_validate(config_json)
    except ValidationError as exc:
        raise FactorizerCheckpointError(f"{path}: stored config does not validate: {first_line(exc)}") from None
    vocab = payload["label_vocab"]
    problem = "label vocab is not a mapping" if not isinstance(vocab, dict) else _vocab_problem(vocab, config_json)
    if problem:
        raise FactorizerCheckpointError(f"{path}: {problem}")
    model = build_factorizer(config)
    problem = state_dict_mismatch(model, payload["state_dict"])
    if problem:
        raise FactorizerCheckpointError(f"{path}: weights do not fit factorizer {stored_id!r}: {problem}")
    if architecture_id(stored_id) != stored_id and stored_id != with_weights(architecture_id(stored_id),
                                                                           payload["state_dict"]):
        raise FactorizerCheckpointError(f"{path}: weights do not match factorizer id {stored_id!r} (modified or "
                                        "damaged file)")
    model.load_state_dict(payload["state_dict"])
    meta = FactorizerCheckpointMeta(
        factorizer_id=stored_id, codec_id=codec_id, step=int(payload["step"]),
        label_vocab={name: list(labels) for name, labels in vocab.items()},
        optimizer_state=payload.get("optimizer_state"), extra=dict(payload.get("extra") or {}),
        torch_version=str(payload.get("torch_version", "")))
    return model.eval().to(map_location), config, meta


def export_factorizer_checkpoint(src: str | Path, dst: str | Path, *, half: bool = True,
                                 note: str | None = None) -> Path:
    """Write an inference-only copy of a training checkpoint: no optimizer state, weights in fp16 if ``half``.

    Why: the optimizer state is twice the weights and fp32 twice fp16; a shipped
    file should stay small. Loading copies the weights back into fp32
    parameters. The fp16 weights get their own id (the weights digest differs): their outputs can differ.
    """
    model, config, meta = load_factorizer_checkpoint(src)
    return save_factorizer_checkpoint(dst, model.half() if half else model, config, codec_id=meta.codec_id,
                                      label_vocab=meta.label_vocab, step=meta.step,
                                      extra=exported_extra(meta.extra, step=meta.step, half=half, note=note))
