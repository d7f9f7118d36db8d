"""Codec checkpoints: weights + the config that built them + the codec id, loadable with ``weights_only=True``.

The codec id keys the ``latents`` table, so a row's codes can always be
traced to the exact model that made them. It has two parts,
``<name>-<12 hex of sha256(config JSON)>-w<10 hex of sha256(weights)>``:

- the *architecture id* (``codec_id_for(config)``, the first two parts) names
  the model shape; a training run resumes only into the same architecture;
- the weights digest makes the id change whenever the weights do. Without it
  a retrained or longer-trained checkpoint of the same preset would carry the
  old id, ``jobs/encode.py`` would skip every segment as "already encoded",
  and the old codes would be decoded with the new decoder: silent garbage.

Both parts are checked on load (a hand-edited, mixed-up or bit-rotted file
fails) and, when given, against the id the caller expects. Checkpoints from
before the digest (``<name>-<hash>`` only) still load. Writes are atomic
(temp file + rename) so a run killed mid-save leaves the previous checkpoint
intact.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from pydantic import ValidationError
from torch import nn

from models.checkpoint_io import (architecture_id, atomic_torch_save, canonical_json, first_line, sha256_hex,
                                  weights_digest, with_weights)
from schemas.codec import CodecModelConfig

__all__ = ["CheckpointError", "CheckpointMeta", "codec_id_for", "architecture_id", "weights_digest",
           "save_checkpoint", "load_checkpoint", "export_checkpoint", "CHECKPOINT_FORMAT", "CHECKPOINT_VERSION"]

CHECKPOINT_FORMAT = "lsm-codec"
CHECKPOINT_VERSION = 1
_REQUIRED = ("format", "version", "codec_id", "config", "state_dict", "step")


class CheckpointError(Exception):
    """A checkpoint that cannot be used; the message is one line naming the file and the reason."""


@dataclass
class CheckpointMeta:
    """Everything in a checkpoint besides the model and its config."""

    codec_id: str
    step: int
    optimizer_state: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    torch_version: str = ""

    @property
    def architecture_id(self) -> str:
        """The codec id without its weights digest: what a training run may resume into."""
        return architecture_id(self.codec_id)


def _config_hash(config_json: dict[str, Any]) -> str:
    return sha256_hex(canonical_json(config_json))


def codec_id_for(config: CodecModelConfig) -> str:
    """Architecture id of a model config: ``<name>-<hash>``; equal configs give equal ids on any machine."""
    return f"{config.name}-{_config_hash(config.model_dump(mode='json'))}"


def save_checkpoint(path: str | Path, model: nn.Module, config: CodecModelConfig, *, codec_id: str | None = None,
                    step: int = 0, optimizer_state: dict[str, Any] | None = None,
                    extra: dict[str, Any] | None = None) -> Path:
    """Write ``model``'s weights with ``config`` and its codec id to ``path`` atomically.

    Args:
        codec_id: if given, must equal ``codec_id_for(config)`` (guards against saving under the wrong
            architecture); the stored id adds the digest of the weights saved.
        optimizer_state: ``optimizer.state_dict()`` to resume training.
        extra: small plain values (ints, floats, strings, lists, dicts, tensors) such as scheduler or data state.

    Returns:
        The path written.

    Example:
        >>> from models.codec import build_codec, codec_tiny_test
        >>> cfg = codec_tiny_test()
        >>> p = save_checkpoint(tempfile.mkdtemp() + "/c.pt", build_codec(cfg), cfg, step=1)
        >>> load_checkpoint(p)[2].architecture_id == codec_id_for(cfg)
        True
    """
    expected = codec_id_for(config)
    if codec_id is not None and architecture_id(codec_id) != expected:
        raise ValueError(f"codec_id {codec_id!r} does not match the config's id {expected!r}")
    state_dict = model.state_dict()
    payload = {
        "format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION,
        "codec_id": with_weights(expected, state_dict),
        "config": config.model_dump(mode="json"), "state_dict": state_dict, "step": int(step),
        "optimizer_state": optimizer_state, "extra": extra or {}, "torch_version": str(torch.__version__),
    }
    return atomic_torch_save(payload, path)


def load_checkpoint(path: str | Path, expected_codec_id: str | None = None, *,
                    map_location: str | torch.device = "cpu") -> tuple[nn.Module, CodecModelConfig, CheckpointMeta]:
    """Rebuild the codec saved at ``path`` (in eval mode) with its config and metadata.

    Raises:
        CheckpointError: missing, corrupt or truncated file; not a codec checkpoint; config or weights that
            do not fit this code; a codec id that does not match its config or ``expected_codec_id``.
    """
    from models.codec.builders import build_codec

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises RuntimeError, UnpicklingError, EOFError, ... for bad files
        raise CheckpointError(f"{path}: not a readable checkpoint (corrupt or truncated?): {first_line(exc)}") from None
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path}: not a codec checkpoint (no format={CHECKPOINT_FORMAT!r} marker)")
    missing = [k for k in _REQUIRED if k not in payload]
    if missing:
        raise CheckpointError(f"{path}: codec checkpoint lacks {', '.join(missing)}")
    if payload["version"] != CHECKPOINT_VERSION:
        raise CheckpointError(f"{path}: checkpoint format version {payload['version']}, this code reads "
                              f"{CHECKPOINT_VERSION}")
    stored_id = str(payload["codec_id"])
    name = payload["config"].get("name") if isinstance(payload["config"], dict) else None
    # The id is checked against the config as stored (not as re-validated), so a later schema field with a
    # default does not change the id of an existing checkpoint.
    if not isinstance(payload["config"], dict) or architecture_id(stored_id) != f"{name}-{_config_hash(payload['config'])}":
        raise CheckpointError(f"{path}: codec id {stored_id!r} does not match the config stored with it")
    if architecture_id(stored_id) != stored_id:
        try:
            digest = weights_digest(payload["state_dict"])
        except (AttributeError, TypeError, RuntimeError) as exc:
            raise CheckpointError(f"{path}: unreadable weights: {first_line(exc)}") from None
        if stored_id != f"{architecture_id(stored_id)}-w{digest}":
            raise CheckpointError(f"{path}: weights do not match codec id {stored_id!r} (modified or damaged file)")
    if expected_codec_id is not None and stored_id != expected_codec_id:
        raise CheckpointError(f"{path}: checkpoint is codec {stored_id!r}, expected {expected_codec_id!r}")
    try:
        config = CodecModelConfig.model_validate(payload["config"])
    except ValidationError as exc:
        raise CheckpointError(f"{path}: stored config does not validate: {first_line(exc)}") from None
    model = build_codec(config)
    try:
        model.load_state_dict(payload["state_dict"])
    except (RuntimeError, TypeError, AttributeError) as exc:
        raise CheckpointError(f"{path}: weights do not fit codec {stored_id!r}: {first_line(exc)}") from None
    meta = CheckpointMeta(codec_id=stored_id, step=int(payload["step"]), optimizer_state=payload.get("optimizer_state"),
                          extra=dict(payload.get("extra") or {}), torch_version=str(payload.get("torch_version", "")))
    return model.eval().to(map_location), config, meta


def export_checkpoint(src: str | Path, dst: str | Path, *, half: bool = True, note: str | None = None) -> Path:
    """Write an inference-only copy of a training checkpoint: no optimizer state, weights in fp16 if ``half``.

    Why: the optimizer state is twice the weights and fp32 weights are twice
    fp16; the shipped checkpoint must stay a few MB. The fp16 weights get
    their own codec id (the weights digest differs), because their codes can
    differ from the fp32 model's; loading converts back to fp32
    (``load_state_dict`` copies into the fp32 parameters). The codes the
    exported weights give are what every consumer of the shipped file sees
    (the eval job scores exactly this file).
    """
    model, config, meta = load_checkpoint(src)
    if half:
        model = model.half()
    extra = {k: v for k, v in meta.extra.items() if isinstance(v, (int, float, str))}
    extra.update(exported_from_step=meta.step, exported_dtype="float16" if half else "float32")
    if note:
        extra["note"] = note
    return save_checkpoint(dst, model, config, step=meta.step, extra=extra)
