"""Stop Ray Data's scheduling loop from spinning while a slow consumer holds it back.

A training input is a streaming dataset whose consumer (the trainer) is far
slower than its producers. Once the output buffer is full, Ray Data's
executor thread (in the ``SplitCoordinator`` actor under Ray Train) loops on
``ray.wait`` over tasks whose next block is *ready but not wanted*: the wait
returns at once, nothing is taken, and the loop goes round again. Measured on
a 2-core machine during codec training: the coordinator burned 46 CPU-min
against the trainer's 49, a whole core that the trainer or a second torch
thread could have used.

``IdleBackoff`` is an ``ExecutionCallback``: after each loop step it compares
a cheap progress signature (per operator: tasks submitted and finished,
blocks generated and taken, queued outputs) with the previous step's. While
nothing changes it sleeps, doubling from 1 ms up to ``MAX_SLEEP_S``; any
change resets it. The cost is at most ``MAX_SLEEP_S`` of extra latency on
the first block after a stall, small against a training step (~0.4 s).

Installed per dataset with ``install(ctx)`` on the ``DataContext`` that the
dataset carries, so it reaches the coordinator actor with the dataset.

The opposite case, a dataset whose tasks are the bottleneck (the curation
stage), loses CPU the other way: the loop's ``ray.wait`` waits for *every*
running task or 0.1 s, so a CPU whose task just finished sits idle until the
timeout. Measured on the 2 h curation bench (2 CPUs, 128 sources per task of
~1.3 s): 0.12-0.21 s between consecutive tasks on each worker, ~10 % of the
CPU time given. ``WakeOnCompletion`` (``install_wake_on_completion(ctx)``)
makes the loop event-driven: the executor's own wait stops blocking, and after
a step that changed nothing the callback blocks until the *first* running task
is ready (at most ``MAX_WAIT_S``), so the next task is dispatched at once.
Lowering the timeout instead (0.01 s) closed the gaps too but made the loop
poll, which cost a CPU worker ~15 % of its speed on 2 cores.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from ray.data._internal.execution import streaming_executor_state as _executor_state
from ray.data._internal.execution.execution_callback import ExecutionCallback

__all__ = ["IdleBackoff", "WakeOnCompletion", "install", "install_wake_on_completion", "MAX_SLEEP_S", "MAX_WAIT_S"]

MAX_SLEEP_S = 0.05
MAX_WAIT_S = 0.1  # Ray Data's own wait timeout: the loop still runs its housekeeping this often
_MIN_SLEEP_S = 0.001
_TIMEOUT_NAME = "WAIT_FOR_TASK_COMPLETION_TIMEOUT_S"


def _signature(executor: Any) -> tuple:
    """What moves when the executor does useful work (all counters Ray Data keeps anyway)."""
    sig = []
    for op, state in executor._topology.items():
        m = op.metrics
        sig.append((m.num_tasks_submitted, m.num_tasks_finished, m.num_task_outputs_generated,
                    m.num_outputs_taken, state.output_queue.num_blocks))
    return tuple(sig)


class IdleBackoff(ExecutionCallback):
    """Sleep between scheduling steps that changed nothing (exponential, capped)."""

    def __init__(self) -> None:
        self._last: tuple | None = None
        self._sleep = 0.0
        self.idle_steps = 0
        self.slept_s = 0.0

    def before_execution_starts(self, executor: Any) -> None:
        self._last, self._sleep = None, 0.0

    def on_execution_step(self, executor: Any) -> None:
        try:
            sig = _signature(executor)
        except (AttributeError, TypeError):  # a Ray Data version without these fields: do nothing
            return
        if sig != self._last:
            self._last, self._sleep = sig, 0.0
            return
        self._sleep = _next_sleep(self._sleep)
        self.idle_steps += 1
        self.slept_s += self._sleep
        time.sleep(self._sleep)


def _next_sleep(current: float) -> float:
    return min(max(current * 2, _MIN_SLEEP_S), MAX_SLEEP_S)


class _ExecutorWait:
    """Sets Ray Data's executor wait timeout to 0 while at least one ``WakeOnCompletion`` execution runs.

    The timeout is a module constant of Ray Data (process-wide), so it is
    counted: the first execution sets it, the last one restores it.
    """

    _lock = threading.Lock()
    _active = 0
    _saved: float | None = None

    @classmethod
    def acquire(cls) -> bool:
        with cls._lock:
            if not hasattr(_executor_state, _TIMEOUT_NAME):  # another Ray Data: leave it alone
                return False
            if cls._active == 0:
                cls._saved = getattr(_executor_state, _TIMEOUT_NAME)
                setattr(_executor_state, _TIMEOUT_NAME, 0.0)
            cls._active += 1
            return True

    @classmethod
    def release(cls) -> None:
        with cls._lock:
            cls._active -= 1
            if cls._active == 0:
                setattr(_executor_state, _TIMEOUT_NAME, cls._saved)


class WakeOnCompletion(ExecutionCallback):
    """Dispatch the next task as soon as a running one finishes (see the module docstring)."""

    def __init__(self) -> None:
        self._last: tuple | None = None
        self._sleep = 0.0
        self._holds_wait = False
        self.backoffs = 0

    def before_execution_starts(self, executor: Any) -> None:
        self._last, self._sleep = None, 0.0
        self._holds_wait = _ExecutorWait.acquire()

    def _release(self) -> None:
        if self._holds_wait:
            self._holds_wait = False
            _ExecutorWait.release()

    def after_execution_succeeds(self, executor: Any) -> None:
        self._release()

    def after_execution_fails(self, executor: Any, error: Exception) -> None:
        self._release()

    def on_execution_step(self, executor: Any) -> None:
        if not self._holds_wait:
            return
        try:
            sig = _signature(executor)
            waitables = [task.get_waitable() for op in executor._topology for task in op.get_active_tasks()]
        except (AttributeError, TypeError):  # a Ray Data version without these fields: poll as Ray Data would
            time.sleep(MAX_WAIT_S)
            return
        if sig != self._last:  # the step did something: step again at once, there may be more to do
            self._last, self._sleep = sig, 0.0
            return
        if waitables and self._sleep == 0.0:
            import ray

            started = time.perf_counter()
            ray.wait(waitables, num_returns=1, timeout=MAX_WAIT_S, fetch_local=False)
            if time.perf_counter() - started > _MIN_SLEEP_S:
                return  # blocked until a task was ready (or the timeout): the next step takes it
        # Nothing running, or a ready output the executor does not take yet (backpressure): back off.
        self._sleep = _next_sleep(self._sleep)
        self.backoffs += 1
        time.sleep(self._sleep)


def install_wake_on_completion(ctx: Any) -> Any:
    """Add ``WakeOnCompletion`` to a ``DataContext`` (idempotent); returns ``ctx``."""
    if WakeOnCompletion not in ctx.custom_execution_callback_classes:
        ctx.custom_execution_callback_classes = [*ctx.custom_execution_callback_classes, WakeOnCompletion]
    return ctx


def install(ctx: Any) -> Any:
    """Add ``IdleBackoff`` to a ``DataContext`` (idempotent); returns ``ctx``."""
    if IdleBackoff not in ctx.custom_execution_callback_classes:
        ctx.custom_execution_callback_classes = [*ctx.custom_execution_callback_classes, IdleBackoff]
    return ctx
