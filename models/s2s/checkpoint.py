"""S2S checkpoints: weights + config + the codec id + an S2S id (+ the target voice's name and the factorizer id).

The model reads and writes one codec's codes, so its architecture id hashes the config with the codec id:
``<name>-<12 hex of sha256(canonical config JSON + codec_id)>``; the full id adds the weights digest
(``-w<10 hex>``), as the recognizer's and factorizer's do, so converted rows keyed by an id name exactly one
set of weights. ``extra`` carries what the id does not have to: the name of the fixed target voice
(``target_voice``, what "normalized" means for this model) and the factorizer whose speaker vectors steer it
(``factorizer_id``). On load the id is checked against what is stored, and, when given, against the caller's
codec and factorizer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from pydantic import ValidationError

from models.checkpoint_io import (architecture_id, atomic_torch_save, canonical_json, first_line, read_checkpoint,
                                  sha256_hex, state_dict_mismatch, with_weights)
from models.s2s.model import SpeechToSpeech
from schemas.s2s import S2SModelConfig

__all__ = ["S2SCheckpointError", "S2SCheckpointMeta", "s2s_id_for", "save_s2s_checkpoint", "load_s2s_checkpoint",
           "CHECKPOINT_FORMAT", "CHECKPOINT_VERSION"]

CHECKPOINT_FORMAT = "lsm-s2s"
CHECKPOINT_VERSION = 1
_REQUIRED = ("format", "version", "s2s_id", "codec_id", "config", "state_dict", "step")


class S2SCheckpointError(Exception):
    """An S2S checkpoint that cannot be used; the message is one line naming the file and the reason."""


@dataclass
class S2SCheckpointMeta:
    """Everything in a checkpoint besides the model and its config (``target_voice`` and ``factorizer_id``
    live in ``extra``; None when not recorded)."""

    s2s_id: str
    codec_id: str
    step: int
    optimizer_state: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def architecture_id(self) -> str:
        return architecture_id(self.s2s_id)

    @property
    def target_voice(self) -> str | None:
        return self.extra.get("target_voice")

    @property
    def factorizer_id(self) -> str | None:
        return self.extra.get("factorizer_id")


def _id_for(config_json: dict[str, Any], codec_id: str) -> str:
    return f"{config_json.get('name')}-{sha256_hex(canonical_json(config_json) + codec_id)}"


def s2s_id_for(config: S2SModelConfig, codec_id: str) -> str:
    """Architecture id of an S2S config on codec ``codec_id``.

    Example:
        >>> from models.s2s.presets import s2s_tiny_test
        >>> s2s_id_for(s2s_tiny_test(), "codec_a-000000000000").startswith("s2s_tiny_test-")
        True
    """
    return _id_for(config.model_dump(mode="json"), codec_id)


def save_s2s_checkpoint(path: str | Path, model: SpeechToSpeech, config: S2SModelConfig, *, codec_id: str,
                        target_voice: str | None = None, factorizer_id: str | None = None, step: int = 0,
                        optimizer_state: dict[str, Any] | None = None,
                        extra: dict[str, Any] | None = None) -> Path:
    """Write ``model``'s weights with ``config`` and the codec id atomically.

    Args:
        target_voice: name of the fixed target voice it was trained to produce (e.g. ``"flite_slt"``).
        factorizer_id: the factorizer whose speaker vectors it was trained with (None: none).

    Raises:
        ValueError: an empty codec id.

    Example::

        save_s2s_checkpoint(p, model, cfg, codec_id=index.codec_id, target_voice="flite_slt")
        model, cfg, meta = load_s2s_checkpoint(p, expected_codec_id=index.codec_id)
    """
    if not isinstance(codec_id, str) or not codec_id:
        raise ValueError("codec_id must be a non-empty string")
    extra = {**(extra or {}), "target_voice": target_voice, "factorizer_id": factorizer_id}
    state = model.state_dict()
    payload = {
        "format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION,
        "s2s_id": with_weights(s2s_id_for(config, codec_id), state), "codec_id": codec_id,
        "config": config.model_dump(mode="json"), "state_dict": state, "step": int(step),
        "optimizer_state": optimizer_state, "extra": extra, "torch_version": str(torch.__version__),
    }
    return atomic_torch_save(payload, path)


def load_s2s_checkpoint(path: str | Path, expected_codec_id: str | None = None,
                        expected_factorizer_id: str | None = None, *, map_location: str | torch.device = "cpu",
                        ) -> tuple[SpeechToSpeech, S2SModelConfig, S2SCheckpointMeta]:
    """Rebuild the S2S model saved at ``path`` (in eval mode) with its config and metadata.

    Args:
        expected_codec_id: the codec of the codes about to be converted.
        expected_factorizer_id: the factorizer of the speaker vectors about to steer it.

    Raises:
        S2SCheckpointError: missing, corrupt or truncated file; not an S2S checkpoint; an id that does not match
            the stored config, codec id or weights; trained on another codec or factorizer than expected;
            weights that do not fit the config.
    """
    from models.s2s.builders import build_s2s

    path = Path(path)
    payload = read_checkpoint(path, kind="s2s", format_marker=CHECKPOINT_FORMAT, version=CHECKPOINT_VERSION,
                              required=_REQUIRED, error=S2SCheckpointError, map_location=map_location)
    stored_id, codec_id, config_json = str(payload["s2s_id"]), str(payload["codec_id"]), payload["config"]
    if not isinstance(config_json, dict) or architecture_id(stored_id) != _id_for(config_json, codec_id):
        raise S2SCheckpointError(f"{path}: s2s id {stored_id!r} does not match the config and codec id stored "
                                 "with it")
    if expected_codec_id is not None and codec_id != expected_codec_id:
        raise S2SCheckpointError(f"{path}: s2s model {stored_id!r} was trained on codec {codec_id!r}, the codes "
                                 f"are codec {expected_codec_id!r}")
    extra = payload.get("extra") or {}
    if not isinstance(extra, dict):
        raise S2SCheckpointError(f"{path}: extra is not a mapping")
    if expected_factorizer_id is not None and extra.get("factorizer_id") != expected_factorizer_id:
        raise S2SCheckpointError(f"{path}: s2s model {stored_id!r} was trained with speaker vectors of factorizer "
                                 f"{extra.get('factorizer_id')!r}, not {expected_factorizer_id!r}")
    try:
        config = S2SModelConfig.model_validate(config_json)
    except ValidationError as exc:
        raise S2SCheckpointError(f"{path}: stored config does not validate: {first_line(exc)}") from None
    model = build_s2s(config)
    problem = state_dict_mismatch(model, payload["state_dict"])
    if problem:
        raise S2SCheckpointError(f"{path}: weights do not fit s2s model {stored_id!r}: {problem}")
    if stored_id != with_weights(architecture_id(stored_id), payload["state_dict"]):
        raise S2SCheckpointError(f"{path}: weights do not match s2s id {stored_id!r} (modified or damaged file)")
    model.load_state_dict(payload["state_dict"])
    meta = S2SCheckpointMeta(s2s_id=stored_id, codec_id=codec_id, step=int(payload["step"]),
                             optimizer_state=payload.get("optimizer_state"), extra=dict(extra))
    return model.eval().to(map_location), config, meta
