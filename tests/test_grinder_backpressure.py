"""WorkGrinder(max_pending=N): bounded custody, FIFO waiting, fail-fast and thread blocking.

All of this is new in leasepool (0.1.1 had no bound).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from _grinder_funcs import LoopSignal, blocker, grinder_env, until

from leasepool import LeaseUnavailableError

pytestmark = pytest.mark.beyond_reference


async def fill(grinder: Any, count: int) -> tuple[threading.Event, list[asyncio.Task[Any]]]:
    """Put ``count`` blocking items in flight (needs threshold 1 and ``count`` pools)."""
    gate = threading.Event()
    tasks = []
    try:
        for _ in range(count):
            started = LoopSignal()
            tasks.append(asyncio.create_task(grinder.submit(blocker(gate, started))))
            await started.wait()
    except BaseException:
        gate.set()
        raise
    return gate, tasks


def recorder(log: list[str], name: str) -> Callable[[], str]:
    def work() -> str:
        log.append(name)
        return name

    return work


async def test_submit_waits_for_space_then_runs() -> None:
    ran: list[str] = []
    async with grinder_env({"max_pools": 2}, max_pending=2, batch_size_threshold=1) as (
        _,
        grinder,
    ):
        gate, running = await fill(grinder, 2)
        try:
            waiting = asyncio.create_task(grinder.submit(recorder(ran, "third")))
            done, _ = await asyncio.wait({waiting}, timeout=0.1)
            assert not done, "third item accepted beyond max_pending"
            assert ran == []
        finally:
            gate.set()
        assert await asyncio.wait_for(waiting, 3) == "third"
        assert await asyncio.gather(*running) == ["done", "done"]
        assert ran == ["third"]


async def test_bound_counts_items_until_they_finish_not_just_queued_ones() -> None:
    """Dispatched-but-running items still occupy the bound (stats' pending is 0)."""
    async with grinder_env(max_pending=1, wait=False, batch_size_threshold=1) as (_, grinder):
        gate, running = await fill(grinder, 1)
        try:
            assert grinder.stats()["pending"] == 0
            with pytest.raises(LeaseUnavailableError):
                await grinder.submit(abs, -1)
        finally:
            gate.set()
        await asyncio.gather(*running)
        assert await grinder.submit(abs, -2) == 2


async def test_waiters_are_admitted_in_arrival_order() -> None:
    ran: list[str] = []
    async with grinder_env({"workers_per_pool": 1}, max_pending=1, batch_size_threshold=1) as (
        _,
        grinder,
    ):
        gate, running = await fill(grinder, 1)
        names = [f"w{i}" for i in range(6)]
        try:
            waiters = [asyncio.create_task(grinder.submit(recorder(ran, n))) for n in names]
            done, _ = await asyncio.wait(waiters, timeout=0.05)
            assert not done
        finally:
            gate.set()
        assert await asyncio.wait_for(asyncio.gather(*waiters), 3) == names
        assert ran == names
        await asyncio.gather(*running)


async def test_enqueue_waits_for_space_and_returns_the_future() -> None:
    async with grinder_env(max_pending=1, batch_size_threshold=1) as (_, grinder):
        gate, running = await fill(grinder, 1)
        try:
            accepting = asyncio.create_task(grinder.enqueue(abs, -7))
            done, _ = await asyncio.wait({accepting}, timeout=0.1)
            assert not done
        finally:
            gate.set()
        future = await asyncio.wait_for(accepting, 3)
        assert isinstance(future, asyncio.Future)
        assert await asyncio.wait_for(future, 3) == 7
        await asyncio.gather(*running)


async def test_wait_false_fails_fast_when_full() -> None:
    ran: list[int] = []
    async with grinder_env({"max_pools": 2}, max_pending=2, wait=False, batch_size_threshold=1) as (
        _,
        grinder,
    ):
        gate, running = await fill(grinder, 2)
        try:
            with pytest.raises(LeaseUnavailableError, match="max_pending"):
                await grinder.submit(ran.append, 1)
            with pytest.raises(LeaseUnavailableError, match="max_pending"):
                await grinder.enqueue(ran.append, 2)
            failed = await asyncio.to_thread(grinder.submit_from_thread, ran.append, 3)
            with pytest.raises(LeaseUnavailableError):
                failed.result(timeout=0)
        finally:
            gate.set()
        await asyncio.gather(*running)
        assert await grinder.submit(ran.append, 4) is None
    assert ran == [4]


async def test_wait_false_accepts_up_to_the_bound() -> None:
    async with grinder_env(
        max_pending=5, wait=False, max_wait_seconds=30.0, batch_size_threshold=100
    ) as (_, grinder):
        futures = [await grinder.enqueue(abs, -i) for i in range(5)]
        with pytest.raises(LeaseUnavailableError):
            await grinder.enqueue(abs, -5)
        assert grinder.stats()["pending"] == 5
        await grinder.stop()
        assert [f.result() for f in futures] == [0, 1, 2, 3, 4]


async def test_submit_from_thread_blocks_the_caller_until_space() -> None:
    async with grinder_env(max_pending=1, batch_size_threshold=1) as (_, grinder):
        gate, running = await fill(grinder, 1)
        returned = threading.Event()

        def caller() -> Any:
            future = grinder.submit_from_thread(abs, -11)
            returned.set()
            return future.result(timeout=3)

        calling = asyncio.create_task(asyncio.to_thread(caller))
        try:
            blocked_for_a_while = not await asyncio.to_thread(returned.wait, 0.1)
            assert blocked_for_a_while, "submit_from_thread returned while the grinder was full"
        finally:
            gate.set()
        assert await asyncio.wait_for(calling, 3) == 11
        await asyncio.gather(*running)


async def test_submit_from_thread_gives_up_after_submit_timeout() -> None:
    async with grinder_env(max_pending=1, submit_timeout=0.2, batch_size_threshold=1) as (
        _,
        grinder,
    ):
        gate, running = await fill(grinder, 1)
        ran: list[int] = []

        def caller() -> float:
            began = time.monotonic()
            with pytest.raises(LeaseUnavailableError):
                grinder.submit_from_thread(ran.append, 1).result(timeout=30)
            return time.monotonic() - began

        try:
            waited = await asyncio.wait_for(asyncio.to_thread(caller), 30)
        finally:
            gate.set()
        assert waited >= 0.15, waited  # gave up no earlier than submit_timeout
        await asyncio.gather(*running)
        assert ran == []


async def test_submit_from_loop_thread_is_refused_even_when_full() -> None:
    """On the loop thread blocking would deadlock: as in 0.1.3 the call is refused at
    once (before any backpressure wait), and nothing is queued."""
    async with grinder_env(max_pending=1, batch_size_threshold=1) as (_, grinder):
        gate, running = await fill(grinder, 1)
        try:
            # With no submit_timeout, blocking here would never end (the gate opens only
            # below): a regression hangs, and pytest-timeout reports it with the stacks.
            with pytest.raises(RuntimeError, match="cannot be called from the owning"):
                grinder.submit_from_thread(abs, -1)
            assert grinder.stats()["pending"] == 0
        finally:
            gate.set()
        await asyncio.gather(*running)


async def test_stop_drains_parked_submitters() -> None:
    ran: list[str] = []
    async with grinder_env({"workers_per_pool": 1}, max_pending=1, batch_size_threshold=1) as (
        _,
        grinder,
    ):
        gate, running = await fill(grinder, 1)
        waiters = [asyncio.create_task(grinder.submit(recorder(ran, f"p{i}"))) for i in range(3)]
        enqueuer = asyncio.create_task(grinder.enqueue(recorder(ran, "e")))
        done, _ = await asyncio.wait([*waiters, enqueuer], timeout=0.05)
        assert not done
        stopping = asyncio.create_task(grinder.stop())
        await until(lambda: grinder.stats()["stopping"], what="stopping")
        gate.set()
        await asyncio.wait_for(stopping, 3)
        assert await asyncio.gather(*waiters) == ["p0", "p1", "p2"]
        assert await asyncio.wait_for(await enqueuer, 3) == "e"
        await asyncio.gather(*running)
    assert ran == ["p0", "p1", "p2", "e"]


async def test_stop_with_cancel_cancels_parked_submitters() -> None:
    ran: list[str] = []
    async with grinder_env(max_pending=1, batch_size_threshold=1) as (_, grinder):
        gate, running = await fill(grinder, 1)
        waiter = asyncio.create_task(grinder.submit(recorder(ran, "parked")))
        enqueuer = asyncio.create_task(grinder.enqueue(recorder(ran, "parked-e")))
        done, _ = await asyncio.wait([waiter, enqueuer], timeout=0.05)
        assert not done
        stopping = asyncio.create_task(grinder.stop(cancel_pending=True))
        await until(lambda: grinder.stats()["stopping"], what="stopping")
        gate.set()
        await asyncio.wait_for(stopping, 3)
        for task in (waiter, enqueuer):
            with pytest.raises(asyncio.CancelledError):
                await asyncio.wait_for(task, 3)
        assert await asyncio.gather(*running) == ["done"]
    assert ran == []


async def test_stop_releases_a_blocked_thread_submitter() -> None:
    """A thread blocked for space is released by stop() with the stopping error."""
    async with grinder_env(max_pending=1, batch_size_threshold=1) as (_, grinder):
        gate, running = await fill(grinder, 1)
        returned = threading.Event()

        def caller() -> BaseException | None:
            future = grinder.submit_from_thread(abs, -1)
            returned.set()
            outcome: BaseException | None = future.exception(3)
            return outcome

        calling = asyncio.create_task(asyncio.to_thread(caller))
        try:
            assert not await asyncio.to_thread(returned.wait, 0.1), "caller was not blocked"
            stopping = asyncio.create_task(grinder.stop(cancel_pending=True))
            outcome = await asyncio.wait_for(calling, 3)
        finally:
            gate.set()
        await asyncio.wait_for(stopping, 3)
        assert isinstance(outcome, RuntimeError), outcome
        assert "stopping" in str(outcome)
        await asyncio.gather(*running)


async def test_cancelled_waiting_submitter_never_runs() -> None:
    ran: list[str] = []
    async with grinder_env({"workers_per_pool": 1}, max_pending=1, batch_size_threshold=1) as (
        _,
        grinder,
    ):
        gate, running = await fill(grinder, 1)
        dropped = asyncio.create_task(grinder.submit(recorder(ran, "dropped")))
        kept = asyncio.create_task(grinder.submit(recorder(ran, "kept")))
        done, _ = await asyncio.wait({dropped, kept}, timeout=0.05)
        assert not done
        dropped.cancel()
        with pytest.raises(asyncio.CancelledError):
            await dropped
        gate.set()
        assert await asyncio.wait_for(kept, 3) == "kept"
        await asyncio.gather(*running)
    assert ran == ["kept"]


async def test_cancelled_waiting_enqueue_never_runs() -> None:
    """Cancelling enqueue() before it returned the future withdraws the item: nobody
    could ever see its result."""
    ran: list[str] = []
    async with grinder_env({"workers_per_pool": 1}, max_pending=1, batch_size_threshold=1) as (
        _,
        grinder,
    ):
        gate, running = await fill(grinder, 1)
        dropped = asyncio.create_task(grinder.enqueue(recorder(ran, "dropped")))
        kept = asyncio.create_task(grinder.submit(recorder(ran, "kept")))
        done, _ = await asyncio.wait({dropped, kept}, timeout=0.05)
        assert not done
        dropped.cancel()
        with pytest.raises(asyncio.CancelledError):
            await dropped
        gate.set()
        assert await asyncio.wait_for(kept, 3) == "kept"
        await asyncio.gather(*running)
    assert ran == ["kept"]
