"""Waiter hand-off: strict FIFO, no barging, and no pool lost to cancellation or timeouts.

These are guarantees of the new engine (ARCHITECTURE invariants 2 and 3); 0.1.1 wakes
all waiters with one Event and lets them race, so the whole module is beyond_reference.
Every test ends by proving the pool is still there: the counts add up and a
``wait=False`` acquire succeeds.
"""

from __future__ import annotations

import asyncio
import gc
import time

import pytest
from _support import started_manager

from leasepool import (
    ExecutorLease,
    LeasedExecutorManager,
    LeasePoolNotStartedError,
    LeaseUnavailableError,
)

pytestmark = pytest.mark.beyond_reference


async def queue_waiters(
    manager: LeasedExecutorManager, count: int, start: int = 0, wait_limit: float = 5.0
) -> list[asyncio.Task[ExecutorLease]]:
    """Create waiting acquires in a known order.

    Each task gets one loop turn (``sleep(0)``) to run its first step, which is where
    its acquire call registers; that is what fixes the order, not elapsed time.
    """
    tasks: list[asyncio.Task[ExecutorLease]] = []
    for i in range(start, start + count):
        tasks.append(asyncio.create_task(manager.acquire(owner=f"w{i}", timeout=wait_limit)))
        await asyncio.sleep(0)
    assert not any(t.done() for t in tasks)
    return tasks


async def assert_single_pool_intact(manager: LeasedExecutorManager) -> None:
    """With max_pools=1 and nothing held, the one pool is available and leasable."""
    assert (manager.total_count, manager.available_count, manager.leased_count) == (1, 1, 0)
    lease = await manager.acquire(wait=False)
    assert manager.leased_count == 1
    await lease.release()
    assert (manager.total_count, manager.available_count, manager.leased_count) == (1, 1, 0)


async def settle(task: asyncio.Task[ExecutorLease]) -> ExecutorLease | BaseException:
    """Outcome of a waiter task: its lease or the exception it ended with."""
    (outcome,) = await asyncio.wait_for(asyncio.gather(task, return_exceptions=True), 5)
    assert isinstance(outcome, ExecutorLease | BaseException)
    return outcome


async def test_waiters_are_served_in_fifo_order() -> None:
    """N queued waiters get the single pool strictly in the order they queued."""
    async with started_manager(max_pools=1) as manager:
        holder = await manager.acquire(owner="holder")
        order: list[str] = []

        async def use(task: asyncio.Task[ExecutorLease]) -> None:
            lease = await task
            order.append(str(lease.owner))
            await asyncio.sleep(0)
            await lease.release()

        waiters = await queue_waiters(manager, 8)
        users = [asyncio.create_task(use(t)) for t in reversed(waiters)]
        await holder.release()
        await asyncio.wait_for(asyncio.gather(*users), 5)
        assert order == [f"w{i}" for i in range(8)]
        await assert_single_pool_intact(manager)


async def test_released_pool_goes_to_oldest_waiter_directly() -> None:
    """A release with waiters queued hands the pool over: nobody can barge in."""
    async with started_manager(max_pools=1) as manager:
        holder = await manager.acquire(owner="holder")
        (waiter,) = await queue_waiters(manager, 1)
        await holder.release()
        with pytest.raises(LeaseUnavailableError):
            await manager.acquire(wait=False, owner="barger")
        lease = await asyncio.wait_for(waiter, 5)
        assert lease.owner == "w0"
        await lease.release()
        await assert_single_pool_intact(manager)


async def test_late_waiters_queue_behind_earlier_ones() -> None:
    """Waiters that arrive while others are served still go after them."""
    async with started_manager(max_pools=1) as manager:
        holder = await manager.acquire(owner="holder")
        first = await queue_waiters(manager, 3)
        await holder.release()
        lease0 = await asyncio.wait_for(first[0], 5)
        later = await queue_waiters(manager, 2, start=3)
        await lease0.release()
        served = []
        for task in [*first[1:], *later]:
            lease = await asyncio.wait_for(task, 5)
            served.append(lease.owner)
            await lease.release()
        assert served == ["w1", "w2", "w3", "w4"]
        await assert_single_pool_intact(manager)


async def test_cancelled_waiter_is_skipped() -> None:
    """A waiter cancelled while queued never receives a pool; the next one does."""
    async with started_manager(max_pools=1) as manager:
        holder = await manager.acquire(owner="holder")
        w0, w1, w2 = await queue_waiters(manager, 3)
        w1.cancel()
        with pytest.raises(asyncio.CancelledError):
            await w1
        await holder.release()
        served = []
        for task in (w0, w2):
            lease = await asyncio.wait_for(task, 5)
            served.append(lease.owner)
            await lease.release()
        assert served == ["w0", "w2"]
        assert w1.cancelled()
        await assert_single_pool_intact(manager)


async def test_cancel_in_same_turn_as_grant_passes_pool_on() -> None:
    """Release grants w0, w0 is cancelled before it runs: w1 still gets the pool."""
    async with started_manager(max_pools=1) as manager:
        holder = await manager.acquire(owner="holder")
        w0, w1 = await queue_waiters(manager, 2)
        await holder.release()
        w0.cancel()
        outcome = await settle(w0)
        if isinstance(outcome, ExecutorLease):
            await outcome.release()
        else:
            assert isinstance(outcome, asyncio.CancelledError)
        lease = await asyncio.wait_for(w1, 5)
        assert lease.owner == "w1"
        assert (manager.total_count, manager.leased_count) == (1, 1)
        await lease.release()
        await assert_single_pool_intact(manager)


async def test_cancel_in_same_turn_as_grant_without_other_waiters() -> None:
    """The only waiter is cancelled right after the grant: the pool becomes available."""
    async with started_manager(max_pools=1) as manager:
        holder = await manager.acquire(owner="holder")
        (w0,) = await queue_waiters(manager, 1)
        await holder.release()
        w0.cancel()
        outcome = await settle(w0)
        if isinstance(outcome, ExecutorLease):
            await outcome.release()
        await assert_single_pool_intact(manager)


async def test_timeout_firing_in_same_turn_as_grant() -> None:
    """The waiter's deadline and the release land in one loop turn: the pool survives."""
    async with started_manager(max_pools=1) as manager:
        for _ in range(3):
            holder = await manager.acquire(owner="holder")
            waiter = asyncio.create_task(manager.acquire(owner="w", timeout=0.02))
            await asyncio.sleep(0)
            # Hold the loop past the waiter's deadline so its timer and the grant
            # below become ready in the same turn; the race itself is under test.
            time.sleep(0.05)  # noqa: ASYNC251
            await holder.release()
            outcome = await settle(waiter)
            if isinstance(outcome, ExecutorLease):
                await outcome.release()
            else:
                assert isinstance(outcome, TimeoutError)
            await assert_single_pool_intact(manager)


@pytest.mark.parametrize("delay", [0.0, 0.002, 0.008, 0.015, 0.03])
async def test_wait_for_racing_release_never_leaks(delay: float) -> None:
    """``asyncio.wait_for(acquire(), t)`` racing a release either leases or times out."""
    async with started_manager(max_pools=1) as manager:
        for blocked in (False, True):
            holder = await manager.acquire(owner="holder")
            task = asyncio.create_task(asyncio.wait_for(manager.acquire(owner="racer"), 0.01))
            await asyncio.sleep(0)
            if blocked:
                time.sleep(delay)  # noqa: ASYNC251  (loop busy while the timeout comes due)
            else:
                await asyncio.sleep(delay)
            await holder.release()
            (outcome,) = await asyncio.wait_for(asyncio.gather(task, return_exceptions=True), 5)
            if isinstance(outcome, ExecutorLease):
                assert outcome.owner == "racer"
                await outcome.release()
            else:
                assert isinstance(outcome, TimeoutError)
            await assert_single_pool_intact(manager)


async def test_dropped_unawaited_acquire_returns_pool() -> None:
    """An acquire awaitable dropped without being awaited gives its pool back."""
    async with started_manager(max_pools=1) as manager:
        dropped = manager.acquire(owner="dropped")
        del dropped
        gc.collect()
        await asyncio.sleep(0)
        await assert_single_pool_intact(manager)


async def test_stop_fails_pending_waiters() -> None:
    """Waiters pending at stop() fail with LeasePoolNotStartedError."""
    async with started_manager(max_pools=1) as manager:
        await manager.acquire(owner="holder")
        waiters = await queue_waiters(manager, 3, wait_limit=10)
        await manager.stop()
        for task in waiters:
            with pytest.raises(LeasePoolNotStartedError) as info:
                await asyncio.wait_for(task, 5)
            assert str(info.value) == "LeasedExecutorManager is not started"
        assert manager.total_count == 0
