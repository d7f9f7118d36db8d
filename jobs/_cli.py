"""What every job's ``main`` shares: the repo on ``sys.path`` and config loading that fails in one clear message."""

from __future__ import annotations

import sys
from typing import TypeVar

from pydantic import BaseModel, ValidationError

__all__ = ["load_job_config", "with_overrides", "fail"]

T = TypeVar("T", bound=BaseModel)


def load_job_config(path: str, model: type[T]) -> T | None:
    """The validated config, or None after printing every bad key to stderr (the job then exits 2)."""
    from schemas.curate import ConfigError, load_config

    try:
        return load_config(path, model)  # type: ignore[return-value]
    except ConfigError as exc:
        fail(str(exc))
        return None


def with_overrides(config: T, overrides: dict[str, object]) -> T | None:
    """``config`` with dotted keys replaced (``{"input.lake_root": ..., "output_dir": ...}``; None values are
    skipped), validated again; None after printing the problem (the job then exits 2).

    Example::

        config = with_overrides(config, {"training.max_steps": args.max_steps, "output_dir": args.output_dir})
    """
    data = config.model_dump()
    for dotted, value in overrides.items():
        if value is None:
            continue
        *parents, key = dotted.split(".")
        node = data
        for part in parents:
            node = node[part]
        node[key] = value
    try:
        return type(config).model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        fail(f"bad override: {'.'.join(str(p) for p in err['loc']) or '(top level)'}: {err['msg']}")
        return None


def fail(message: str) -> None:
    """Print ``error: ...`` to stderr, no traceback (for errors the user can fix)."""
    print(f"error: {message}", file=sys.stderr)
