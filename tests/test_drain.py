"""Graceful drain of a manager (thread backend): ``await manager.drain(timeout)``.

Deadlines are driven by the engine's clock seam (``advance_clock``) and a poke of the
checker clock (``notify_scale_changed``); calls are held on events. No sleeps, no
wall-clock assertions.
"""

from __future__ import annotations

import asyncio
import math
import threading
from collections.abc import Callable

import pytest
from _support import ThreadSignal, started_manager

from leasepool import (
    LeasedExecutorManager,
    LeaseExpiredError,
    LeasePoolDrainingError,
    LeasePoolError,
    LeasePoolNotStartedError,
)
from leasepool.manager import DrainReport

MESSAGE = "LeasedExecutorManager is draining; no new leases are granted"


def blocking(started: ThreadSignal, release: threading.Event, value: object) -> object:
    started.fire()
    if not release.wait(60):
        raise TimeoutError("never released")
    return value


def report_tuple(report: DrainReport) -> tuple[int, int, int, int, int, bool]:
    return (
        report.finished,
        report.cancelled,
        report.killed,
        report.waiters_failed,
        report.leases_revoked,
        report.timed_out,
    )


def test_the_error_is_a_not_started_error() -> None:
    assert issubclass(LeasePoolDrainingError, LeasePoolNotStartedError)
    assert issubclass(LeasePoolDrainingError, LeasePoolError)


async def test_a_stopped_manager_drains_to_an_empty_report() -> None:
    manager = LeasedExecutorManager(max_pools=1)
    report = await manager.drain(5)
    assert report_tuple(report) == (0, 0, 0, 0, 0, False)
    with pytest.raises(AttributeError):
        report.finished = 3  # type: ignore[misc]


@pytest.mark.parametrize("bad", [-1, math.nan, math.inf, "soon", True])
async def test_timeout_must_be_a_finite_non_negative_number(bad: object) -> None:
    async with started_manager() as manager:
        with pytest.raises(ValueError, match=r"timeout must be (a finite number )?>= 0"):
            manager.drain(bad)  # type: ignore[arg-type]


async def test_running_work_finishes_and_waiters_fail() -> None:
    async with started_manager(max_pools=1, workers_per_pool=2) as manager:
        lease = await manager.acquire(owner="holder")
        started, release = ThreadSignal(), threading.Event()
        call = lease.run(blocking, started, release, "done")
        await started.wait()
        waiter = manager.acquire(owner="waiter")
        one_call = manager.run(len, "abc")

        drained = manager.drain(30)
        for queued in (waiter, one_call):
            with pytest.raises(LeasePoolDrainingError) as info:
                await queued
            assert str(info.value) == MESSAGE
        with pytest.raises(LeasePoolNotStartedError, match="draining"):
            await manager.acquire(wait=False)
        assert not drained.done(), "a lease is still held"
        # The holder keeps working until it is done.
        second = lease.run(len, "xy")
        release.set()
        assert await call == "done"
        assert await second == 2
        await lease.release()
        report = await drained
        assert report_tuple(report) == (2, 0, 0, 2, 0, False)
        assert manager.total_count == 0, "stopped as stop() does"
        assert repr(report) == (
            "DrainReport(finished=2, cancelled=0, killed=0, waiters_failed=2, "
            "leases_revoked=0, timed_out=False)"
        )


async def test_the_deadline_cancels_queued_calls_and_abandons_running_ones(
    advance_clock: Callable[[float], None],
) -> None:
    manager = LeasedExecutorManager(max_pools=1, workers_per_pool=1, idle_pool_seconds=0)
    await manager.start()
    lease = await manager.acquire()
    started, release = ThreadSignal(), threading.Event()
    running = lease.run(blocking, started, release, "late")
    await started.wait()
    queued = [lease.run(len, "q"), lease.run(len, "qq")]
    drained = manager.drain(5)
    advance_clock(5.1)
    manager.notify_scale_changed()
    report = await asyncio.wait_for(drained, 30)
    assert report_tuple(report) == (0, 2, 1, 0, 1, True)
    for call in queued:
        with pytest.raises(asyncio.CancelledError):
            await call
    assert manager.total_count == 0
    # The abandoned thread call was not interrupted: it ends when it is released, and
    # its awaiter still gets its outcome.
    assert not running.done()
    release.set()
    assert await running == "late"


async def test_nothing_leased_drains_at_once() -> None:
    manager = LeasedExecutorManager(max_pools=2, min_pools=2)
    await manager.start()
    assert await manager.run(len, "abc") == 3
    report = await manager.drain(0)
    assert report_tuple(report) == (0, 0, 0, 0, 0, False)
    assert manager.total_count == 0


async def test_a_one_call_run_in_flight_counts_as_finished() -> None:
    manager = LeasedExecutorManager(max_pools=1, workers_per_pool=1)
    await manager.start()
    started, release = ThreadSignal(), threading.Event()
    call = manager.run(blocking, started, release, 7)
    await started.wait()
    drained = manager.drain(30)
    release.set()
    assert await call == 7
    report = await drained
    assert report_tuple(report) == (1, 0, 0, 0, 0, False)


async def test_concurrent_drains_share_one_report_and_the_earlier_deadline(
    advance_clock: Callable[[float], None],
) -> None:
    manager = LeasedExecutorManager(max_pools=1, workers_per_pool=1)
    await manager.start()
    lease = await manager.acquire()
    first = manager.drain(60)
    second = manager.drain(5)
    advance_clock(6)
    manager.notify_scale_changed()
    a, b = await asyncio.wait_for(asyncio.gather(first, second), 30)
    assert a == b
    assert report_tuple(a) == (0, 0, 0, 0, 1, True)
    with pytest.raises(LeaseExpiredError):
        await lease.run(len, "x")
    # A drain after the drain: nothing left to drain.
    assert report_tuple(await manager.drain(1)) == (0, 0, 0, 0, 0, False)


async def test_cancelling_the_await_does_not_stop_the_drain() -> None:
    manager = LeasedExecutorManager(max_pools=1)
    await manager.start()
    lease = await manager.acquire()
    waiting = asyncio.ensure_future(manager.drain(60))
    later = manager.drain(60)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    await lease.release()
    report = await later
    assert report_tuple(report) == (0, 0, 0, 0, 0, False)
    assert manager.total_count == 0


async def test_stop_during_a_drain_ends_it_with_what_stop_revoked() -> None:
    manager = LeasedExecutorManager(max_pools=2, min_pools=2)
    await manager.start()
    held = [await manager.acquire(), await manager.acquire()]
    drained = manager.drain(60)
    await manager.stop()
    report = await drained
    assert report_tuple(report) == (0, 0, 0, 0, 2, False)
    for lease in held:
        with pytest.raises(LeaseExpiredError):
            await lease.run(len, "x")
    # stop() kept its meaning: the manager can start again and lease as before.
    await manager.start()
    async with await manager.acquire() as lease:
        assert await lease.run(len, "ok") == 2
    await manager.stop()
