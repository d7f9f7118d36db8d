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
  That local Ray runs without the dashboard, hence without Ray's State API;
  Ray Train's placement-group cleaner polls that API every second or so and
  would log "Failed to query Ray Train Controller actor state" for the whole
  run, burying the job's own progress lines. Each worker of the local Ray
  runs :func:`quiet_local_workers` first, which mutes that one logger.
- Everywhere: ``RAY_TRAIN_ENABLE_PRINT_PATCH=0`` (unless set), which Ray
  Train passes on to its workers. Its print patch sends each ``print`` of a
  training loop both to the worker's stdout and to a logger that also ends
  on the driver, so every progress line of a training job came out twice.
"""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path

__all__ = ["init_ray", "quiet_local_workers", "REPO_ROOT"]

REPO_ROOT = Path(__file__).resolve().parents[1]
_EXCLUDES = [".venv", "data", ".git", "**/__pycache__", "bench/out"]
#: Loggers muted in the workers of a dashboard-less local Ray (see the module docstring).
_NO_STATE_API_LOGGERS = ("ray.train.v2._internal.execution.controller.placement_group_cleaner",)


def quiet_local_workers() -> None:
    """``worker_process_setup_hook`` of the local Ray: mute warnings that only mean "no dashboard here"."""
    for name in _NO_STATE_API_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)


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
    os.environ.setdefault("RAY_TRAIN_ENABLE_PRINT_PATCH", "0")
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
                 runtime_env={"env_vars": {"PYTHONPATH": pythonpath},
                              "worker_process_setup_hook": "pipelines.ray_env.quiet_local_workers"})
