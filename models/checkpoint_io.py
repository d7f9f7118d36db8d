"""Helpers every model's checkpoint module shares: atomic writes, config hashing, one-line error text."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from pydantic import ValidationError
from torch import nn

__all__ = ["atomic_torch_save", "read_checkpoint", "canonical_json", "sha256_hex", "first_line", "state_dict_mismatch",
           "exported_extra", "weights_digest", "architecture_id", "with_weights"]


def atomic_torch_save(payload: Any, path: str | Path) -> Path:
    """``torch.save(payload)`` to ``path`` so that readers see the old file or the whole new one, never a part.

    Why: a run killed mid-save must leave the previous checkpoint intact. The
    bytes go to a temp file in the same folder, are fsynced, made readable by
    other users (``mkstemp`` makes 0600; shipped checkpoints are shared) and
    renamed over ``path``. Missing parent folders are created.

    Returns:
        The path written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(payload, f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def read_checkpoint(path: Path, *, kind: str, format_marker: str, version: int, required: Sequence[str],
                    error: type[Exception], map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint's payload with ``torch.load(weights_only=True)`` and check its marker, keys and version.

    Args:
        kind: what the caller reads, for messages ("codec", "factorizer").
        format_marker: the payload's ``format`` value for this kind (e.g. ``"lsm-codec"``).
        version: the one format version this code reads.
        required: payload keys that must be present.
        error: the exception raised, with one line naming ``path`` and the reason.

    Raises:
        error: missing file; unreadable (corrupt, truncated) file; another kind of file (named when it carries
            a marker); missing keys; another version.
    """
    if not path.is_file():
        raise error(f"{path}: no such checkpoint file")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises RuntimeError, UnpicklingError, EOFError, ... for bad files
        raise error(f"{path}: not a readable checkpoint (corrupt or truncated?): {first_line(exc)}") from None
    found = payload.get("format") if isinstance(payload, dict) else None
    if found != format_marker:
        what = f" (it is a {found!r} checkpoint)" if isinstance(found, str) else ""
        raise error(f"{path}: not a {kind} checkpoint{what}: no format={format_marker!r} marker")
    missing = [k for k in required if k not in payload]
    if missing:
        raise error(f"{path}: {kind} checkpoint lacks {', '.join(missing)}")
    if payload.get("version") != version:
        raise error(f"{path}: checkpoint format version {payload.get('version')}, this code reads {version}")
    return payload


def canonical_json(obj: Any) -> str:
    """JSON with sorted keys and no spaces: equal values give equal text on any machine (what ids hash)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"))


def sha256_hex(text: str, length: int = 12) -> str:
    """The first ``length`` hex digits of sha256(text)."""
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def first_line(exc: BaseException) -> str:
    """One line describing ``exc`` (a pydantic error: its first field and message), for one-line error messages."""
    if isinstance(exc, ValidationError):
        err = exc.errors()[0]
        return f"{'.'.join(str(p) for p in err['loc']) or '(top level)'}: {err['msg']}"
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def state_dict_mismatch(model: nn.Module, state_dict: Any) -> str | None:
    """Why ``state_dict`` cannot load into ``model``, in one line (first missing, unexpected or misshapen key), or None.

    Why not ``load_state_dict``'s own error: its first line says only "Error(s) in loading state_dict".
    """
    if not isinstance(state_dict, dict) or not all(isinstance(v, torch.Tensor) for v in state_dict.values()):
        return "state_dict is not a mapping of names to tensors"
    expected = model.state_dict()
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    misshapen = [k for k in expected if k in state_dict and state_dict[k].shape != expected[k].shape]
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing key(s) (first: {missing[0]})")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected key(s) (first: {unexpected[0]})")
    if misshapen:
        k = misshapen[0]
        problems.append(f"{len(misshapen)} tensor(s) of another shape (first: {k} is {list(state_dict[k].shape)}, "
                        f"the model's is {list(expected[k].shape)})")
    return "; ".join(problems) if problems else None


def exported_extra(extra: Mapping[str, Any], *, step: int, half: bool, note: str | None = None) -> dict[str, Any]:
    """The ``extra`` of an exported (inference-only) checkpoint: the plain scalars of the training one, plus
    where it came from (``exported_from_step``, ``exported_dtype``, an optional ``note``)."""
    out = {k: v for k, v in extra.items() if isinstance(v, (int, float, str))}
    out.update(exported_from_step=int(step), exported_dtype="float16" if half else "float32")
    if note:
        out["note"] = note
    return out


def weights_digest(state_dict: Mapping[str, torch.Tensor]) -> str:
    """10 hex of sha256 over every tensor's name, dtype, shape and bytes (fp16 and fp32 copies differ).

    Why: a model id that hashes only the config stays the same when the weights
    change (longer training, a re-run, an fp16 export); rows keyed by that id
    would then silently mix outputs of different weights.
    """
    h = hashlib.sha256()
    for name in sorted(state_dict):
        t = state_dict[name].detach().to("cpu").contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:10]


def with_weights(architecture: str, state_dict: Mapping[str, torch.Tensor]) -> str:
    """The full model id: ``<architecture id>-w<weights digest>``."""
    return f"{architecture}-w{weights_digest(state_dict)}"


def architecture_id(model_id: str) -> str:
    """A full model id without its weights digest (ids without one are returned as they are)."""
    head, sep, tail = model_id.rpartition("-w")
    return head if sep and len(tail) == 10 and all(c in "0123456789abcdef" for c in tail) else model_id
