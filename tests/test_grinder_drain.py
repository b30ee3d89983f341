"""``await grinder.drain(timeout)``: nothing new is accepted, pending items leave in a
last batch, batches finish until the deadline; then the items not started are
cancelled. The deadline runs on the engine's clock (the manager's checker clock)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable

import pytest

from leasepool import LeasedExecutorManager, LeasePoolDrainingError, WorkGrinder


def held(started: threading.Event, gate: threading.Event, value: int) -> int:
    started.set()
    if not gate.wait(60):
        raise TimeoutError("gate never opened")
    return value


async def test_an_idle_grinder_drains_to_an_empty_report() -> None:
    manager = LeasedExecutorManager(max_pools=1)
    grinder = WorkGrinder(executor_manager=manager)
    report = await grinder.drain(1)
    assert (report.finished, report.cancelled, report.killed, report.timed_out) == (0, 0, 0, False)


async def test_pending_items_run_and_the_drain_ends_when_they_are_done() -> None:
    manager = LeasedExecutorManager(max_pools=1, workers_per_pool=2)
    await manager.start()
    grinder = WorkGrinder(executor_manager=manager, batch_size_threshold=10, max_wait_seconds=60)
    await grinder.start()
    started, gate = threading.Event(), threading.Event()
    try:
        first = grinder.submit(held, started, gate, 1)
        rest = [grinder.submit(len, "x" * n) for n in range(3)]
        assert grinder.stats()["pending"] == 4, "below the threshold: still pending"
        drained = grinder.drain(60)
        assert await asyncio.to_thread(started.wait, 60), "drain() sent the last batch off"
        with pytest.raises(RuntimeError, match="stopping"):
            await grinder.submit(len, "late")
        gate.set()
        assert await first == 1
        assert await asyncio.gather(*rest) == [0, 1, 2]
        report = await drained
        assert (report.finished, report.cancelled, report.killed) == (4, 0, 0)
        assert (report.waiters_failed, report.leases_revoked, report.timed_out) == (0, 0, False)
        assert grinder.stats()["started"] is False
    finally:
        gate.set()
        await manager.stop()


async def test_the_deadline_cancels_items_not_started(
    advance_clock: Callable[[float], None],
) -> None:
    manager = LeasedExecutorManager(max_pools=1, workers_per_pool=1)
    await manager.start()
    grinder = WorkGrinder(executor_manager=manager, batch_size_threshold=3, max_wait_seconds=60)
    await grinder.start()
    started, gate = threading.Event(), threading.Event()
    try:
        running = grinder.submit(held, started, gate, 1)
        queued = [grinder.submit(len, "ab"), grinder.submit(len, "abc")]
        assert await asyncio.to_thread(started.wait, 60)
        drained = grinder.drain(10)
        advance_clock(11)
        manager.notify_scale_changed()  # the checker clock keeps the grinder's deadline
        report = await asyncio.wait_for(drained, 30)
        assert (report.finished, report.cancelled, report.killed) == (0, 2, 1)
        assert report.timed_out
        for item in queued:
            with pytest.raises(asyncio.CancelledError):
                await item
        # The running item was left to finish; the grinder stops once it has.
        gate.set()
        assert await running == 1
        await grinder.stop()
        assert grinder.stats()["started"] is False
    finally:
        gate.set()
        await manager.stop()


async def test_a_manager_drain_fails_a_batch_waiting_for_a_lease() -> None:
    manager = LeasedExecutorManager(max_pools=1, workers_per_pool=1)
    await manager.start()
    grinder = WorkGrinder(executor_manager=manager, batch_size_threshold=1, max_wait_seconds=60)
    await grinder.start()
    try:
        lease = await manager.acquire()  # the only pool: the batch waits for it
        item = grinder.submit(len, "abc")
        drained = manager.drain(60)
        with pytest.raises(LeasePoolDrainingError):
            await item
        await lease.release()
        report = await drained
        assert report.waiters_failed == 1
        await grinder.stop()
    finally:
        await manager.stop()
