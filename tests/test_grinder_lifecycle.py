"""WorkGrinder lifecycle: start, stop (drain or cancel), restart, and refusals."""

from __future__ import annotations

import asyncio
import logging
import threading

import pytest
from _grinder_funcs import (
    GRINDER_LOGGER,
    LoopSignal,
    blocker,
    grinder_env,
    unique_prefix,
    until,
)

from leasepool import LeasedExecutorManager, WorkGrinder


def started_messages(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == GRINDER_LOGGER and r.getMessage().startswith("WorkGrinder started")
    ]


async def test_start_is_idempotent(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=GRINDER_LOGGER)
    async with grinder_env(max_wait_seconds=0.05) as (_, grinder):
        await grinder.start()
        await grinder.start()
        assert grinder.stats()["started"] is True
        assert await grinder.submit(pow, 2, 10) == 1024
    assert len(started_messages(caplog)) == 1


async def test_stop_before_start_is_a_no_op(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=GRINDER_LOGGER)
    grinder = WorkGrinder(executor_manager=LeasedExecutorManager(max_pools=1))
    await grinder.stop()
    await grinder.stop(cancel_pending=True)
    assert grinder.stats()["started"] is False
    assert not [r for r in caplog.records if r.name == GRINDER_LOGGER]


async def test_stop_twice_is_safe() -> None:
    async with grinder_env(max_wait_seconds=0.05) as (_, grinder):
        await grinder.stop()
        await grinder.stop()
        assert grinder.stats()["started"] is False


async def test_stop_without_cancel_drains_every_pending_item() -> None:
    """Items still waiting for their batch are run by stop(), not dropped, and stop()
    does not wait for max_wait_seconds to do so."""
    ran: list[int] = []

    def work(i: int) -> int:
        ran.append(i)
        return i * 3

    async with grinder_env(max_wait_seconds=30.0, batch_size_threshold=100) as (_, grinder):
        futures = [await grinder.enqueue(work, i) for i in range(5)]
        assert grinder.stats()["pending"] == 5
        assert not any(f.done() for f in futures)
        await asyncio.wait_for(grinder.stop(), 3)
        assert all(f.done() for f in futures)
        assert [f.result() for f in futures] == [0, 3, 6, 9, 12]
        assert sorted(ran) == [0, 1, 2, 3, 4]
        assert grinder.stats()["pending"] == 0


async def test_stop_without_cancel_waits_for_running_batch() -> None:
    gate = threading.Event()
    started = LoopSignal()
    async with grinder_env(batch_size_threshold=1) as (_, grinder):
        running = asyncio.create_task(grinder.submit(blocker(gate, started, "late")))
        await started.wait()
        stopping = asyncio.create_task(grinder.stop())
        done, _ = await asyncio.wait({stopping}, timeout=0.1)
        assert not done, "stop() returned while a batch was still running"
        gate.set()
        await asyncio.wait_for(stopping, 3)
        assert running.done()
        assert running.result() == "late"


async def test_stop_with_cancel_cancels_pending_enqueued_futures() -> None:
    ran: list[int] = []
    async with grinder_env(max_wait_seconds=30.0, batch_size_threshold=100) as (_, grinder):
        futures = [await grinder.enqueue(ran.append, i) for i in range(4)]
        await asyncio.wait_for(grinder.stop(cancel_pending=True), 3)
        assert all(f.cancelled() for f in futures)
        for future in futures:
            with pytest.raises(asyncio.CancelledError):
                await future
        assert grinder.stats()["pending"] == 0
    assert ran == []


async def test_stop_with_cancel_cancels_waiting_submitters() -> None:
    ran: list[int] = []
    async with grinder_env(max_wait_seconds=30.0, batch_size_threshold=100) as (_, grinder):
        tasks = [asyncio.create_task(grinder.submit(ran.append, i)) for i in range(3)]
        await until(lambda: grinder.stats()["pending"] == 3, what="3 items queued")
        await asyncio.wait_for(grinder.stop(cancel_pending=True), 3)
        outcomes = await asyncio.gather(*tasks, return_exceptions=True)
        assert all(isinstance(o, asyncio.CancelledError) for o in outcomes), outcomes
    assert ran == []


async def test_restart_after_stop() -> None:
    manager = LeasedExecutorManager(max_pools=1, name_prefix=unique_prefix())
    await manager.start()
    try:
        grinder = WorkGrinder(
            executor_manager=manager, max_wait_seconds=0.05, batch_size_threshold=2
        )
        for round_no in range(3):
            await grinder.start()
            assert grinder.stats()["started"] is True
            results = await asyncio.gather(grinder.submit(abs, -round_no), grinder.submit(str, 1))
            assert list(results) == [round_no, "1"]
            await grinder.stop()
            assert grinder.stats()["started"] is False
    finally:
        await manager.stop()


@pytest.mark.beyond_reference
async def test_stopped_grinder_does_not_report_stopping() -> None:
    """0.1.1 left ``stopping`` True after stop() returned (until the next start())."""
    async with grinder_env(max_wait_seconds=0.05) as (_, grinder):
        await grinder.submit(abs, -1)
        await grinder.stop()
        stats = grinder.stats()
        assert (stats["started"], stats["stopping"]) == (False, False)


async def test_submit_and_enqueue_before_start_raise_at_await() -> None:
    grinder = WorkGrinder(executor_manager=LeasedExecutorManager(max_pools=1))
    submitting = grinder.submit(pow, 2, 2)
    with pytest.raises(RuntimeError, match="^WorkGrinder is not started$"):
        await submitting
    enqueueing = grinder.enqueue(pow, 2, 2)
    with pytest.raises(RuntimeError, match="^WorkGrinder is not started$"):
        await enqueueing


async def test_submit_after_stop_raises_not_started() -> None:
    async with grinder_env(max_wait_seconds=0.05) as (_, grinder):
        await grinder.stop()
        with pytest.raises(RuntimeError, match="^WorkGrinder is not started$"):
            await grinder.submit(pow, 2, 2)
        with pytest.raises(RuntimeError, match="^WorkGrinder is not started$"):
            await grinder.enqueue(pow, 2, 2)


def test_submit_from_thread_before_start_raises_at_call() -> None:
    grinder = WorkGrinder(executor_manager=LeasedExecutorManager(max_pools=1))
    with pytest.raises(RuntimeError, match="not started"):
        grinder.submit_from_thread(pow, 2, 2)


async def test_submissions_while_stopping_are_refused() -> None:
    gate = threading.Event()
    started = LoopSignal()
    async with grinder_env(batch_size_threshold=1) as (_, grinder):
        running = asyncio.create_task(grinder.submit(blocker(gate, started)))
        await started.wait()
        stopping = asyncio.create_task(grinder.stop())
        try:
            await until(lambda: grinder.stats()["stopping"], what="stopping")
            assert grinder.stats()["started"] is True
            with pytest.raises(RuntimeError, match="^WorkGrinder is stopping$"):
                await grinder.submit(pow, 2, 2)
            with pytest.raises(RuntimeError, match="^WorkGrinder is stopping$"):
                await grinder.enqueue(pow, 2, 2)
            from_thread = await asyncio.to_thread(grinder.submit_from_thread, pow, 2, 2)
            with pytest.raises(RuntimeError, match="stopping"):
                await asyncio.wait_for(asyncio.wrap_future(from_thread), 3)
        finally:
            gate.set()
        await asyncio.wait_for(stopping, 3)
        assert await running == "done"
        assert grinder.stats()["started"] is False


@pytest.mark.beyond_reference
def test_restart_on_a_new_event_loop_still_flushes_by_age() -> None:
    """Stopped while an age timer was pending, then started on another loop: partial
    batches must still leave after max_wait_seconds (0.1.1 could not change loops)."""
    manager = LeasedExecutorManager(max_pools=1, name_prefix=unique_prefix())
    grinder = WorkGrinder(executor_manager=manager, max_wait_seconds=0.2, batch_size_threshold=100)

    async def drained_by_stop() -> None:
        await manager.start()
        await grinder.start()
        try:
            future = await grinder.enqueue(abs, -1)  # arms the age timer
            await grinder.stop()  # flushes before the timer fires
            assert future.result() == 1
        finally:
            await manager.stop()

    async def flushed_by_age() -> None:
        await manager.start()
        await grinder.start()
        try:
            assert await asyncio.wait_for(grinder.submit(abs, -2), 2) == 2
        finally:
            await grinder.stop(cancel_pending=True)
            await manager.stop()

    asyncio.run(drained_by_stop())
    asyncio.run(flushed_by_age())
