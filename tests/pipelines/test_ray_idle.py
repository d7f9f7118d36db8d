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
