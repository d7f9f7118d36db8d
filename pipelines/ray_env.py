"""Connect to Ray the same way on a laptop, under ``ray job submit``, and on a cluster.

- Inside ``ray job submit`` (``RAY_ADDRESS`` set by the job, working dir
  already shipped): plain ``ray.init()``.
- ``RAY_ADDRESS`` or an explicit address: connect, shipping this repo as the
  working dir so workers can import ``pipelines``/``schemas``.
- Otherwise: start a fresh local Ray on loopback whose workers get the repo
  on ``PYTHONPATH``. ``address="local"`` on purpose: a bare ``ray.init()``
  also reads ``/tmp/ray/ray_current_cluster``, which a crashed cluster leaves
  behind, and then fails to join a dead cluster. To use a running local
  cluster, set ``RAY_ADDRESS=auto`` (or ``execution.ray_address: auto``).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

__all__ = ["init_ray", "REPO_ROOT"]

REPO_ROOT = Path(__file__).resolve().parents[1]
_EXCLUDES = [".venv", "data", ".git", "**/__pycache__", "bench/out"]


def init_ray(address: str | None = None, *, num_cpus: int | None = None) -> None:
    """Initialise Ray once per process (no-op if already initialised)."""
    address = address or os.environ.get("RAY_ADDRESS")
    in_job = bool(os.environ.get("RAY_JOB_ID") or os.environ.get("RAY_JOB_CONFIG_JSON_ENV_VAR"))
    if not address and not in_job:
        # A single-node local Ray otherwise binds its services to the host's network address;
        # this (read when ray is first imported) keeps them on 127.0.0.1.
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    import ray

    if ray.is_initialized():
        return
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    # Ray starts its services with fork+exec, which is safe with lance loaded; lance's at-fork hook cannot
    # tell that from a bare fork and warns on every start, so silence just that message here.
    warnings.filterwarnings("ignore", message="lance is not fork-safe")
    if in_job:
        ray.init(address=address, log_to_driver=True)
    elif address:
        ray.init(address=address, runtime_env={"working_dir": str(REPO_ROOT), "excludes": _EXCLUDES})
    else:
        pythonpath = os.pathsep.join(p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH")) if p)
        ray.init(address="local", num_cpus=num_cpus, include_dashboard=False,
                 runtime_env={"env_vars": {"PYTHONPATH": pythonpath}})
