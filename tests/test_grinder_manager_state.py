"""WorkGrinder over a manager that is not (or no longer) started: items fail cleanly."""

from __future__ import annotations

import asyncio
import concurrent.futures

import pytest
from _grinder_funcs import unique_prefix

from leasepool import LeasedExecutorManager, LeasePoolNotStartedError, WorkGrinder


async def test_unstarted_manager_fails_every_item() -> None:
    ran: list[int] = []
    manager = LeasedExecutorManager(max_pools=1, name_prefix=unique_prefix())
    grinder = WorkGrinder(executor_manager=manager, max_wait_seconds=0.02, batch_size_threshold=3)
    await grinder.start()
    try:
        enqueued = await grinder.enqueue(ran.append, 1)
        from_thread = await asyncio.to_thread(grinder.submit_from_thread, ran.append, 2)
        with pytest.raises(LeasePoolNotStartedError):
            await grinder.submit(ran.append, 3)
        with pytest.raises(LeasePoolNotStartedError):
            await enqueued
        with pytest.raises(LeasePoolNotStartedError):
            await asyncio.wait_for(asyncio.wrap_future(from_thread), 3)
        assert isinstance(from_thread, concurrent.futures.Future)
    finally:
        await grinder.stop()
    assert ran == []


async def test_grinder_recovers_once_the_manager_starts() -> None:
    manager = LeasedExecutorManager(max_pools=1, name_prefix=unique_prefix())
    grinder = WorkGrinder(executor_manager=manager, max_wait_seconds=0.02, batch_size_threshold=1)
    await grinder.start()
    try:
        with pytest.raises(LeasePoolNotStartedError):
            await grinder.submit(abs, -1)
        await manager.start()
        try:
            assert await grinder.submit(abs, -2) == 2
        finally:
            await manager.stop()
        with pytest.raises(LeasePoolNotStartedError):
            await grinder.submit(abs, -3)
    finally:
        await grinder.stop()


@pytest.mark.beyond_reference
async def test_manager_stopped_while_batch_waits_for_a_lease() -> None:
    """A batch queued behind a held lease fails when the manager stops (manager.stop()
    fails every waiter; 0.1.1 let the waiting batch run on a stopped manager)."""
    ran: list[int] = []
    manager = LeasedExecutorManager(max_pools=1, name_prefix=unique_prefix())
    await manager.start()
    grinder = WorkGrinder(executor_manager=manager, max_wait_seconds=0.02, batch_size_threshold=2)
    await grinder.start()
    try:
        held = await manager.acquire(owner="holder")
        blocked = [await grinder.enqueue(ran.append, i) for i in range(2)]
        done, _ = await asyncio.wait(blocked, timeout=0.1)
        assert not done
        await manager.stop()
        outcomes = await asyncio.wait_for(asyncio.gather(*blocked, return_exceptions=True), 3)
        assert all(isinstance(o, LeasePoolNotStartedError) for o in outcomes), outcomes
        del held
    finally:
        await asyncio.wait_for(grinder.stop(), 3)
    assert ran == []
