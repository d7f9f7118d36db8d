"""A private ``ray start --head`` on loopback for tests of ``ray job submit`` (stopped and removed afterwards)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from tests.conftest import ROOT, free_port

__all__ = ["local_ray_head", "submit_job"]


def _wait_for_dashboard(port: int, head: subprocess.Popen, timeout_s: float = 90) -> None:
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        assert head.poll() is None, "ray start --head exited"
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/api/version", timeout=2)
            return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError("Ray dashboard did not come up on loopback")


@contextmanager
def local_ray_head(num_cpus: int = 2) -> Iterator[tuple[str, dict, str]]:
    """Yields (dashboard address, env for subprocesses, ray executable) of a fresh head on 127.0.0.1."""
    bindir = Path(sys.executable).parent
    ray_exe = shutil.which("ray", path=str(bindir)) or "ray"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "RAY_AUTH_MODE": "disabled",
           "PATH": f"{bindir}{os.pathsep}{os.environ['PATH']}"}
    env.pop("RAY_ADDRESS", None)
    gcs, dash = free_port(), free_port()
    temp_dir = tempfile.mkdtemp(prefix="rayt", dir="/tmp")  # private: its ray_current_cluster dies with it
    # --block keeps the head in one process group we own: stopping it cannot touch the tests' own Ray.
    head = subprocess.Popen([ray_exe, "start", "--head", "--block", "--node-ip-address=127.0.0.1", f"--port={gcs}",
                             "--dashboard-host=127.0.0.1", f"--dashboard-port={dash}", f"--num-cpus={num_cpus}",
                             "--include-dashboard=true", "--disable-usage-stats", f"--temp-dir={temp_dir}",
                             # every service on a free port: another Ray on this machine must not collide
                             *(f"--{name}={free_port()}" for name in (
                                 "dashboard-agent-listen-port", "dashboard-agent-grpc-port", "metrics-export-port",
                                 "runtime-env-agent-port", "ray-client-server-port", "node-manager-port",
                                 "object-manager-port"))],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        _wait_for_dashboard(dash, head)
        yield f"http://127.0.0.1:{dash}", env, ray_exe
    finally:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(head.pid, sig)
                head.wait(timeout=30)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                pass
        shutil.rmtree(temp_dir, ignore_errors=True)


def submit_job(address: str, env: dict, ray_exe: str, job_args: list[str], timeout_s: float = 400
               ) -> subprocess.CompletedProcess:
    """``ray job submit --working-dir <repo> -- python <job_args>``, retried while the job agent starts."""
    cmd = [ray_exe, "job", "submit", f"--address={address}", "--working-dir", str(ROOT), "--", "python", *job_args]
    for _ in range(15):  # the head's job agent comes up a little after the dashboard
        sub = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout_s)
        if "No available agent" not in sub.stderr:
            break
        time.sleep(2)
    return sub
