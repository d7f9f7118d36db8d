"""The local Ray that jobs start: workers get the repo on their path and the no-dashboard noise muted."""

from __future__ import annotations

import logging
import subprocess
import sys

from tests.conftest import ROOT

_PROBE = f"""
import logging, sys
sys.path.insert(0, {str(ROOT)!r})
from pipelines.ray_env import init_ray, _NO_STATE_API_LOGGERS
init_ray(num_cpus=1)
import ray

@ray.remote(num_cpus=0.1)
def levels():
    import pipelines  # the repo is importable in the worker
    return [logging.getLogger(name).level for name in _NO_STATE_API_LOGGERS]

print("LEVELS", ray.get(levels.remote()))
ray.shutdown()
"""


def test_local_workers_mute_the_state_api_warnings_and_import_the_repo(tmp_path):
    """Ray Train's placement-group cleaner polls the State API, which a dashboard-less local Ray lacks; under
    load every poll logged a warning (414 lines in 11 min of factorizer training). The setup hook mutes it."""
    r = subprocess.run([sys.executable, "-c", _PROBE], cwd=tmp_path, capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stderr[-3000:]
    (line,) = [x for x in r.stdout.splitlines() if x.startswith("LEVELS")]
    assert line == f"LEVELS {[logging.ERROR]}"


_TRAIN = f"""
import sys
sys.path.insert(0, {str(ROOT)!r})
from pipelines.ray_env import init_ray
init_ray(num_cpus=1)
import ray.train
from ray.train.torch import TorchTrainer

def loop(config):
    print("progress-line-of-the-loop", flush=True)

TorchTrainer(loop, scaling_config=ray.train.ScalingConfig(num_workers=1, resources_per_worker={{"CPU": 0.5}})).fit()
"""


def test_a_training_loops_print_reaches_the_driver_once(tmp_path):
    """Ray Train's print patch tees a worker's print to stdout and to a logger: every progress line twice."""
    r = subprocess.run([sys.executable, "-c", _TRAIN], cwd=tmp_path, capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stderr[-3000:]
    assert (r.stdout + r.stderr).count("progress-line-of-the-loop") == 1, r.stdout[-2000:] + r.stderr[-2000:]
