"""Codec checkpoints: weights + the config that built them + the codec id, loadable with ``weights_only=True``.

The codec id (``<name>-<12 hex of sha256(config JSON)>``) keys the ``latents``
table, so a row's codes can always be traced to the exact model that made
them. It is checked on load against the stored config (a hand-edited or
mixed-up file fails) and, when given, against the id the caller expects.
Writes are atomic (temp file + rename) so a run killed mid-save leaves the
previous checkpoint intact.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from pydantic import ValidationError
from torch import nn

from schemas.codec import CodecModelConfig

__all__ = ["CheckpointError", "CheckpointMeta", "codec_id_for", "save_checkpoint", "load_checkpoint",
           "export_checkpoint", "CHECKPOINT_FORMAT", "CHECKPOINT_VERSION"]

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


def _config_hash(config_json: dict[str, Any]) -> str:
    text = json.dumps(config_json, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def codec_id_for(config: CodecModelConfig) -> str:
    """Stable id of a model config: ``<name>-<hash>``; equal configs give equal ids on any machine."""
    return f"{config.name}-{_config_hash(config.model_dump(mode='json'))}"


def save_checkpoint(path: str | Path, model: nn.Module, config: CodecModelConfig, *, codec_id: str | None = None,
                    step: int = 0, optimizer_state: dict[str, Any] | None = None,
                    extra: dict[str, Any] | None = None) -> Path:
    """Write ``model``'s weights with ``config`` and its codec id to ``path`` atomically.

    Args:
        codec_id: if given, must equal ``codec_id_for(config)`` (guards against saving under the wrong id).
        optimizer_state: ``optimizer.state_dict()`` to resume training.
        extra: small plain values (ints, floats, strings, lists, dicts, tensors) such as scheduler or data state.

    Returns:
        The path written.

    Example:
        >>> from models.codec import build_codec, codec_tiny_test
        >>> cfg = codec_tiny_test()
        >>> p = save_checkpoint(tempfile.mkdtemp() + "/c.pt", build_codec(cfg), cfg, step=1)
        >>> load_checkpoint(p)[2].codec_id == codec_id_for(cfg)
        True
    """
    expected = codec_id_for(config)
    if codec_id is not None and codec_id != expected:
        raise ValueError(f"codec_id {codec_id!r} does not match the config's id {expected!r}")
    payload = {
        "format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, "codec_id": expected,
        "config": config.model_dump(mode="json"), "state_dict": model.state_dict(), "step": int(step),
        "optimizer_state": optimizer_state, "extra": extra or {}, "torch_version": str(torch.__version__),
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(payload, f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; a shipped checkpoint must be readable by other users
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _first_line(exc: BaseException) -> str:
    if isinstance(exc, ValidationError):
        err = exc.errors()[0]
        return f"{'.'.join(str(p) for p in err['loc']) or '(top level)'}: {err['msg']}"
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


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
        raise CheckpointError(f"{path}: not a readable checkpoint (corrupt or truncated?): {_first_line(exc)}") from None
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
    if not isinstance(payload["config"], dict) or stored_id != f"{name}-{_config_hash(payload['config'])}":
        raise CheckpointError(f"{path}: codec id {stored_id!r} does not match the config stored with it")
    if expected_codec_id is not None and stored_id != expected_codec_id:
        raise CheckpointError(f"{path}: checkpoint is codec {stored_id!r}, expected {expected_codec_id!r}")
    try:
        config = CodecModelConfig.model_validate(payload["config"])
    except ValidationError as exc:
        raise CheckpointError(f"{path}: stored config does not validate: {_first_line(exc)}") from None
    model = build_codec(config)
    try:
        model.load_state_dict(payload["state_dict"])
    except (RuntimeError, TypeError, AttributeError) as exc:
        raise CheckpointError(f"{path}: weights do not fit codec {stored_id!r}: {_first_line(exc)}") from None
    meta = CheckpointMeta(codec_id=stored_id, step=int(payload["step"]), optimizer_state=payload.get("optimizer_state"),
                          extra=dict(payload.get("extra") or {}), torch_version=str(payload.get("torch_version", "")))
    return model.eval().to(map_location), config, meta


def export_checkpoint(src: str | Path, dst: str | Path, *, half: bool = True, note: str | None = None) -> Path:
    """Write an inference-only copy of a training checkpoint: no optimizer state, weights in fp16 if ``half``.

    Why: the optimizer state is twice the weights and fp32 weights are twice
    fp16; the shipped checkpoint must stay a few MB. Loading converts back to
    fp32 (``load_state_dict`` copies into the fp32 parameters), so the codec
    id is unchanged; the codes the exported weights give are what every
    consumer of the shipped file sees (the eval job scores exactly this file).
    """
    model, config, meta = load_checkpoint(src)
    if half:
        model = model.half()
    extra = {k: v for k, v in meta.extra.items() if isinstance(v, (int, float, str))}
    extra.update(exported_from_step=meta.step, exported_dtype="float16" if half else "float32")
    if note:
        extra["note"] = note
    return save_checkpoint(dst, model, config, step=meta.step, extra=extra)
