"""A cancelled pending WorkGrinder item leaves the pending queue at once (0.1.3 removes
it and logs it at DEBUG), without disturbing the items around it."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from concurrent.futures import Future
from contextlib import asynccontextmanager

import pytest

from leasepool import LeasedExecutorManager, WorkGrinder

GRINDER_LOGGER = "leasepool.grinder"


@asynccontextmanager
async def never_flushing_grinder(**kwargs: object) -> AsyncIterator[WorkGrinder]:
    """A grinder whose batches only leave at stop() (threshold and wait out of reach)."""
    manager = LeasedExecutorManager(max_pools=1)
    await manager.start()
    grinder = WorkGrinder(
        executor_manager=manager,
        batch_size_threshold=1000,
        max_wait_seconds=3600,
        **kwargs,  # type: ignore[arg-type]
    )
    await grinder.start()
    try:
        yield grinder
    finally:
        await grinder.stop()
        await manager.stop()


async def test_cancelled_submit_leaves_the_queue_at_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger=GRINDER_LOGGER)
    ran: list[str] = []

    def record(name: str) -> str:
        ran.append(name)
        return name

    async with never_flushing_grinder() as grinder:
        first = grinder.submit(record, "a", owner="a")
        middle = grinder.submit(record, "b", owner="b")
        last = grinder.submit(record, "c", owner="c")
        assert grinder.stats()["pending"] == 3
        assert middle.cancel()
        assert grinder.stats()["pending"] == 2, "gone at once, not at the next batch"
        removed = [
            r.getMessage()
            for r in caplog.records
            if r.name == GRINDER_LOGGER and r.getMessage().startswith("Removed cancelled")
        ]
        assert len(removed) == 1
        assert removed[0].endswith(" owner=b pending=2")
        queued = [
            r.getMessage() for r in caplog.records if r.getMessage().startswith("Queued work")
        ]
        # The removal names the same work_id as the item's "Queued work" record.
        assert queued[1].split()[2] == removed[0].split()[4]
    assert (await first, await last) == ("a", "c")
    with pytest.raises(asyncio.CancelledError):
        await middle
    assert ran == ["a", "c"]


async def test_cancelled_enqueue_future_leaves_the_queue() -> None:
    async with never_flushing_grinder() as grinder:
        keep = await grinder.enqueue(pow, 2, 5)
        drop = await grinder.enqueue(pow, 2, 6)
        assert grinder.stats()["pending"] == 2
        drop.cancel()
        await asyncio.sleep(0)  # asyncio runs done-callbacks on the next loop turn
        assert grinder.stats()["pending"] == 1
    assert await keep == 32
    assert drop.cancelled()


async def test_cancelled_thread_submission_leaves_the_queue() -> None:
    async with never_flushing_grinder() as grinder:

        def from_thread() -> tuple[int, bool, Future[int]]:
            keep = grinder.submit_from_thread(pow, 3, 2)
            drop = grinder.submit_from_thread(pow, 3, 3)
            cancelled = drop.cancel()
            return grinder.stats()["pending"], cancelled, keep

        pending, cancelled, keep = await asyncio.to_thread(from_thread)
        assert cancelled
        assert pending == 1
    assert keep.result(timeout=30) == 9


async def test_space_freed_by_a_cancelled_item_admits_a_parked_submitter() -> None:
    async with never_flushing_grinder(max_pending=2) as grinder:
        first = grinder.submit(pow, 2, 1)
        second = grinder.submit(pow, 2, 2)
        parked = asyncio.ensure_future(grinder.enqueue(pow, 2, 3))
        await asyncio.sleep(0)
        assert not parked.done(), "max_pending reached: the third submitter parks"
        assert second.cancel()
        accepted = await asyncio.wait_for(parked, 30)
        assert grinder.stats()["pending"] == 2
    assert await first == 2
    assert await accepted == 8
