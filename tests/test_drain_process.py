"""Graceful drain on the process backend: running calls finish before the deadline;
at the deadline queued calls are cancelled and the worker processes still running
calls are terminated (then killed). Both event loops (the suite's ``async`` tests)."""

from __future__ import annotations

import asyncio
import multiprocessing
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import _proc_funcs as f
import pytest

from leasepool import LeasedExecutorManager, LeasePoolDrainingError


async def until(predicate: Callable[[], bool], within: float = 30.0) -> None:
    """Poll an outside observable (the process table, a file); the limit only turns a
    condition that never comes into a failure."""
    deadline = time.monotonic() + within
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


async def test_a_running_call_released_before_the_deadline_finishes() -> None:
    with multiprocessing.get_context("spawn").Manager() as sync:
        started, release = sync.Event(), sync.Event()
        manager = LeasedExecutorManager(backend="process", max_pools=1, workers_per_pool=1)
        await manager.start()
        try:
            lease = await manager.acquire()
            call = lease.run(f.started_then_wait, started, release, "value")
            loop = asyncio.get_running_loop()
            assert await loop.run_in_executor(None, started.wait, 60)
            waiter = manager.acquire()
            drained = manager.drain(60)
            with pytest.raises(LeasePoolDrainingError):
                await waiter
            release.set()
            assert await call == "value"
            await lease.release()
            report = await drained
        finally:
            await manager.stop()
    assert (report.finished, report.cancelled, report.killed) == (1, 0, 0)
    assert (report.waiters_failed, report.leases_revoked, report.timed_out) == (1, 0, False)


async def test_the_deadline_terminates_a_runaway_call_and_cancels_the_queue(
    advance_clock: Callable[[float], None], tmp_path: Path
) -> None:
    manager = LeasedExecutorManager(backend="process", max_pools=1, workers_per_pool=1)
    await manager.start()
    try:
        lease = await manager.acquire()
        pid = await lease.run(f.getpid)
        marker = tmp_path / "started"
        runaway = lease.run(f.mark_then_sleep, str(marker), 600.0)
        await until(marker.exists)
        # One worker takes CHUNKS_PER_WORKER (2) chunks: the first queued call is
        # already in the executor's hands, the others wait in the pool's own queue.
        queued: list[Any] = [lease.run(f.add, i, 1) for i in range(3)]
        drained = manager.drain(30)
        advance_clock(31)
        manager.notify_scale_changed()
        report = await asyncio.wait_for(drained, 60)
        with pytest.raises(LeasePoolDrainingError, match="terminated"):
            await runaway
        outcomes = await asyncio.gather(*queued, return_exceptions=True)
    finally:
        await manager.stop()
    killed_queued = [o for o in outcomes if isinstance(o, LeasePoolDrainingError)]
    cancelled = [o for o in outcomes if isinstance(o, asyncio.CancelledError)]
    assert (len(killed_queued), len(cancelled)) == (1, 2), outcomes
    assert (report.finished, report.cancelled, report.killed) == (0, 2, 2)
    assert (report.waiters_failed, report.leases_revoked, report.timed_out) == (0, 1, True)
    # The worker that ran the call is gone (terminated, then reaped by the drain's stop).
    await until(lambda: f.process_gone(pid))
