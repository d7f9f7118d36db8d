"""``pipelines.ray_idle``: the scheduling loop sleeps only while nothing moves, and the hook reaches a dataset."""

from __future__ import annotations

import time
from types import SimpleNamespace

import pytest

from pipelines.ray_idle import MAX_SLEEP_S, IdleBackoff, install


class _Queue:
    def __init__(self) -> None:
        self.num_blocks = 0


class _Op:  # hashable, like Ray Data's operators (the topology is keyed by them)
    def __init__(self, metrics: SimpleNamespace) -> None:
        self.metrics = metrics


def _executor() -> tuple[SimpleNamespace, SimpleNamespace, _Queue]:  # noqa: D103
    """The two fields of Ray Data's executor the callback reads: ``_topology`` of op -> state."""
    metrics = SimpleNamespace(num_tasks_submitted=0, num_tasks_finished=0, num_task_outputs_generated=0,
                              num_outputs_taken=0)
    queue = _Queue()
    op = _Op(metrics)
    executor = SimpleNamespace(_topology={op: SimpleNamespace(output_queue=queue)})
    return executor, metrics, queue


def test_backoff_grows_while_idle_and_resets_on_progress() -> None:
    executor, metrics, queue = _executor()
    cb = IdleBackoff()
    cb.before_execution_starts(executor)
    cb.on_execution_step(executor)  # first step: a new signature, no sleep
    assert cb.idle_steps == 0
    t0 = time.perf_counter()
    for _ in range(12):
        cb.on_execution_step(executor)
    idle_wall = time.perf_counter() - t0
    assert cb.idle_steps == 12
    assert cb._sleep == pytest.approx(MAX_SLEEP_S)  # doubled up to the cap
    assert idle_wall >= cb.slept_s * 0.9 and cb.slept_s > 5 * MAX_SLEEP_S

    metrics.num_outputs_taken += 1  # the consumer took a block: back to full speed
    cb.on_execution_step(executor)
    assert cb._sleep == 0.0 and cb.idle_steps == 12
    queue.num_blocks += 1
    cb.on_execution_step(executor)
    assert cb._sleep == 0.0


def test_unknown_executor_shape_is_left_alone() -> None:
    cb = IdleBackoff()
    for _ in range(3):
        cb.on_execution_step(SimpleNamespace())  # no _topology: a Ray Data version without these fields
    assert cb.idle_steps == 0 and cb.slept_s == 0.0


def test_install_is_idempotent_and_travels_with_the_dataset(ray_session) -> None:
    import ray.data

    ds = ray.data.range(8)
    install(ds.context)
    install(ds.context)
    assert ds.context.custom_execution_callback_classes.count(IdleBackoff) == 1
    assert sorted(r["id"] for r in ds.take_all()) == list(range(8))  # a run with the callback completes


# -- WakeOnCompletion ----------------------------------------------------------------------------------------

def _timed_sleep(batch: dict) -> dict:
    """A task of 0.2-0.46 s of wall (not CPU; lengths differ, so two tasks never end together) that reports
    when it ran and in which process."""
    import os

    import numpy as np

    start = time.time()
    time.sleep(0.2 + 0.13 * (int(batch["id"][0]) % 3))
    return {"start": np.array([start]), "end": np.array([time.time()]), "pid": np.array([os.getpid()])}


def _gaps_between_tasks(rows: list[dict]) -> list[float]:
    by_pid: dict[int, list[tuple[float, float]]] = {}
    for r in rows:
        by_pid.setdefault(int(r["pid"]), []).append((float(r["start"]), float(r["end"])))
    gaps = []
    for spans in by_pid.values():
        spans.sort()
        gaps += [b[0] - a[1] for a, b in zip(spans, spans[1:])]
    return gaps


def test_wake_on_completion_dispatches_the_next_task_at_once_and_restores_ray_data(ray_session) -> None:
    """Ray Data alone notices a finished task within its 0.1 s wait; with the callback the next task starts at once.

    Input blocks are materialized first (as the curation stage's are), so a gap is the scheduling loop's alone;
    each way runs twice and keeps its smaller total, since the machine may be busy with something else.
    """
    import ray.data
    from ray.data._internal.execution import streaming_executor_state as state

    from pipelines.ray_idle import install_wake_on_completion

    def run(wake: bool) -> list[float]:
        ds = ray.data.from_items([{"id": i} for i in range(8)], override_num_blocks=8).map_batches(
            _timed_sleep, batch_size=None, num_cpus=1, compute=ray.data.TaskPoolStrategy(size=2))
        if wake:
            install_wake_on_completion(ds.context)
        return _gaps_between_tasks(ds.take_all())

    plain = min((run(False) for _ in range(2)), key=sum)
    woken = min((run(True) for _ in range(2)), key=sum)
    assert len(plain) >= 4 and len(woken) >= 4
    assert sorted(woken)[len(woken) // 2] < 0.1  # median gap under Ray Data's own 0.1 s wait
    assert sum(woken) < sum(plain)
    assert state.WAIT_FOR_TASK_COMPLETION_TIMEOUT_S == 0.1  # Ray Data's own wait is back once the run is over


def test_executor_wait_is_counted_across_overlapping_runs() -> None:
    from ray.data._internal.execution import streaming_executor_state as state

    from pipelines.ray_idle import _ExecutorWait

    saved = state.WAIT_FOR_TASK_COMPLETION_TIMEOUT_S
    assert _ExecutorWait.acquire() and _ExecutorWait.acquire()
    assert state.WAIT_FOR_TASK_COMPLETION_TIMEOUT_S == 0.0
    _ExecutorWait.release()
    assert state.WAIT_FOR_TASK_COMPLETION_TIMEOUT_S == 0.0  # the other run still needs it
    _ExecutorWait.release()
    assert state.WAIT_FOR_TASK_COMPLETION_TIMEOUT_S == saved


def test_wake_backs_off_on_a_ready_output_that_is_not_taken(ray_session) -> None:
    """A task whose output is ready but held back (backpressure) must not make the loop spin."""
    import ray

    from pipelines.ray_idle import WakeOnCompletion

    ready = ray.put(1)
    task = SimpleNamespace(get_waitable=lambda: ready)
    executor, _, _ = _executor()
    op = next(iter(executor._topology))
    op.get_active_tasks = lambda: [task]
    cb = WakeOnCompletion()
    cb.before_execution_starts(executor)
    try:
        for _ in range(8):
            cb.on_execution_step(executor)
    finally:
        cb.after_execution_succeeds(executor)
    assert cb.backoffs >= 6 and cb._sleep == pytest.approx(MAX_SLEEP_S)
