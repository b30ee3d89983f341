"""``WorkGrinder.stop(cancel_pending=True)`` cancels everything that has not started, as
leasepool 0.1.3 does: queued items, a batch still waiting for a lease, and items of a
leased batch that no worker has taken yet. Only running items are waited for."""

from __future__ import annotations

import asyncio
import logging
import threading

import pytest

from leasepool import LeasedExecutorManager, WorkGrinder


async def test_batch_waiting_for_a_lease_is_cancelled_and_stop_returns() -> None:
    """It used to block until a lease freed, then run the item."""
    manager = LeasedExecutorManager(max_pools=1, workers_per_pool=1)
    await manager.start()
    grinder = WorkGrinder(executor_manager=manager, batch_size_threshold=1, max_wait_seconds=0.01)
    await grinder.start()
    ran: list[str] = []
    try:
        held = await manager.acquire()  # the only pool: the batch must wait
        item = grinder.submit(ran.append, "never")
        # A batch of one leaves at once: it now waits in the manager's queue.
        assert grinder.stats()["pending"] == 0
        await grinder.stop(cancel_pending=True)  # returns with the lease still held
        with pytest.raises(asyncio.CancelledError):
            await item
        assert manager.stats()["leased"] == 1
        await held.release()
        # The withdrawn batch does not take the freed pool: it is available again.
        assert manager.available_count == 1
        assert ran == []
    finally:
        await manager.stop()


async def test_items_of_a_leased_batch_not_yet_started_are_cancelled() -> None:
    manager = LeasedExecutorManager(max_pools=1, workers_per_pool=1)
    await manager.start()
    grinder = WorkGrinder(executor_manager=manager, batch_size_threshold=3, max_wait_seconds=30)
    await grinder.start()
    started = threading.Event()
    gate = threading.Event()
    ran: list[str] = []

    def first() -> str:
        started.set()
        if not gate.wait(30):
            raise TimeoutError("gate never opened")
        ran.append("first")
        return "first"

    try:
        running = grinder.submit(first)
        queued = [grinder.submit(ran.append, name) for name in ("second", "third")]
        assert await asyncio.to_thread(started.wait, 30)
        stopping = asyncio.ensure_future(grinder.stop(cancel_pending=True))
        for item in queued:
            with pytest.raises(asyncio.CancelledError):
                await item
        assert not stopping.done()  # waits for the running item only
        gate.set()
        await stopping
        assert await running == "first"
        assert ran == ["first"]
    finally:
        gate.set()
        await manager.stop()


async def test_cancelled_batches_are_logged_as_in_0_1_3(caplog: pytest.LogCaptureFixture) -> None:
    """Each batch stop(cancel_pending=True) cancels gets "Cancelled batch" (INFO) and no
    "Finished batch", whether it waited for a lease or was already leased."""
    caplog.set_level(logging.INFO, logger="leasepool.grinder")
    manager = LeasedExecutorManager(max_pools=2, workers_per_pool=1)
    await manager.start()
    grinder = WorkGrinder(executor_manager=manager, batch_size_threshold=2, max_wait_seconds=30)
    await grinder.start()
    started, gate = threading.Event(), threading.Event()

    def first() -> None:
        started.set()
        if not gate.wait(30):
            raise TimeoutError("gate never opened")

    try:
        held = await manager.acquire()  # one pool left: batch 1 leases it, batch 2 waits
        leased = [grinder.submit(first), grinder.submit(len, "x")]
        assert await asyncio.to_thread(started.wait, 30)
        waiting = [grinder.submit(len, "y"), grinder.submit(len, "z")]
        stopping = asyncio.ensure_future(grinder.stop(cancel_pending=True))
        for item in waiting:
            with pytest.raises(asyncio.CancelledError):
                await item
        gate.set()
        await stopping
        assert await leased[0] is None
        with pytest.raises(asyncio.CancelledError):
            await leased[1]
        await held.release()
    finally:
        await manager.stop()
    infos = [r.getMessage() for r in caplog.records if r.name == "leasepool.grinder"]
    assert "Cancelled batch batch_id=1 size=2" in infos
    assert "Cancelled batch batch_id=2 size=2" in infos
    assert not [m for m in infos if m.startswith("Finished batch")]
