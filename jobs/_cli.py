"""What every job's ``main`` shares: the repo on ``sys.path`` and config loading that fails in one clear message."""

from __future__ import annotations

import sys
from typing import TypeVar

from pydantic import BaseModel

__all__ = ["load_job_config", "fail"]

T = TypeVar("T", bound=BaseModel)


def load_job_config(path: str, model: type[T]) -> T | None:
    """The validated config, or None after printing every bad key to stderr (the job then exits 2)."""
    from schemas.curate import ConfigError, load_config

    try:
        return load_config(path, model)  # type: ignore[return-value]
    except ConfigError as exc:
        fail(str(exc))
        return None


def fail(message: str) -> None:
    """Print ``error: ...`` to stderr, no traceback (for errors the user can fix)."""
    print(f"error: {message}", file=sys.stderr)
