"""Event-loop ownership, as leasepool 0.1.3: a started manager or grinder belongs to the
loop it started on. Another loop gets a ``RuntimeError`` at once, and nothing changes."""

from __future__ import annotations

import asyncio
import operator
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from leasepool import (
    LeasedExecutorManager,
    LeaseExpiredError,
    LeasePoolNotStartedError,
    WorkGrinder,
)

MANAGER_MESSAGE = "LeasedExecutorManager.{}() must be called from its owning event loop."
GRINDER_MESSAGE = (
    "WorkGrinder async methods must be called from its owning event loop; "
    "use submit_from_thread() or stats_from_thread() from other threads."
)


async def on_another_loop(make: Callable[[], Awaitable[Any]]) -> BaseException | None:
    """Await ``make()`` on a fresh event loop in another thread; return what it raised."""

    async def attempt() -> BaseException | None:
        try:
            await make()
        except BaseException as exc:  # noqa: BLE001 - the exception is the result
            return exc
        return None

    return await asyncio.to_thread(asyncio.run, attempt())


@pytest.mark.parametrize(
    ("method", "call"),
    [
        ("acquire", lambda m: m.acquire()),
        ("acquire", lambda m: m.acquire(wait=False)),
        ("start", lambda m: m.start()),
        ("stop", lambda m: m.stop()),
    ],
    ids=["acquire", "acquire-no-wait", "start", "stop"],
)
async def test_manager_refuses_a_foreign_loop_and_changes_nothing(
    method: str, call: Callable[[LeasedExecutorManager], Awaitable[Any]]
) -> None:
    manager = LeasedExecutorManager(max_pools=1)
    await manager.start()
    try:
        before = manager.stats()
        raised = await on_another_loop(lambda: call(manager))
        assert isinstance(raised, RuntimeError)
        assert str(raised) == MANAGER_MESSAGE.format(method)
        after = manager.stats()
        assert (after["total"], after["available"], after["leased"]) == (
            before["total"],
            before["available"],
            before["leased"],
        )
        # Still running and usable on its own loop.
        async with await manager.acquire(wait=False) as lease:
            assert await lease.run(operator.add, 1, 2) == 3
    finally:
        await manager.stop()
    assert manager.total_count == 0


async def test_acquire_created_off_loop_and_awaited_on_the_owner_loop_works() -> None:
    """``run_coroutine_threadsafe(manager.acquire(), loop)`` is a valid 0.1.3 pattern."""
    manager = LeasedExecutorManager(max_pools=1)
    await manager.start()
    loop = asyncio.get_running_loop()
    try:

        def from_thread() -> Any:
            async def take() -> Any:
                return await manager.acquire(owner="threaded")

            return asyncio.run_coroutine_threadsafe(take(), loop).result(10)

        lease = await asyncio.to_thread(from_thread)
        assert lease.owner == "threaded"
        await lease.release()
    finally:
        await manager.stop()


async def test_acquire_during_stop_never_returns_a_lease() -> None:
    manager = LeasedExecutorManager(max_pools=1)
    await manager.start()
    held = await manager.acquire()
    stopping = asyncio.ensure_future(manager.stop())
    await asyncio.sleep(0)  # stop() has begun
    with pytest.raises(LeasePoolNotStartedError):
        await manager.acquire(wait=False)
    with pytest.raises(LeasePoolNotStartedError):
        await manager.acquire()
    await stopping
    with pytest.raises(LeasePoolNotStartedError):
        await manager.acquire()
    # The lease held across stop() is dead: it takes no more work.
    with pytest.raises(LeaseExpiredError):
        await held.run(operator.add, 1, 2)


async def _grinder_env() -> tuple[LeasedExecutorManager, WorkGrinder]:
    manager = LeasedExecutorManager(max_pools=1)
    await manager.start()
    grinder = WorkGrinder(executor_manager=manager, batch_size_threshold=1, max_wait_seconds=0.01)
    await grinder.start()
    return manager, grinder


@pytest.mark.parametrize(
    "call",
    [
        lambda g: g.submit(operator.add, 1, 2),
        lambda g: g.enqueue(operator.add, 1, 2),
        lambda g: g.stop(),
    ],
    ids=["submit", "enqueue", "stop"],
)
async def test_grinder_async_methods_refuse_a_foreign_loop(
    call: Callable[[WorkGrinder], Awaitable[Any]],
) -> None:
    manager, grinder = await _grinder_env()
    try:
        raised = await on_another_loop(lambda: call(grinder))
        assert isinstance(raised, RuntimeError)
        assert str(raised) == GRINDER_MESSAGE
        stats = grinder.stats()
        assert (stats["started"], stats["pending"]) == (True, 0)
        assert await grinder.submit(operator.add, 2, 3) == 5
    finally:
        await grinder.stop()
        await manager.stop()


async def test_grinder_start_on_a_foreign_loop_is_refused() -> None:
    manager, grinder = await _grinder_env()
    try:
        raised = await on_another_loop(grinder.start)
        assert isinstance(raised, RuntimeError)
        assert str(raised) == "WorkGrinder is already started on a different event loop"
        await grinder.start()  # idempotent on its own loop
    finally:
        await grinder.stop()
        await manager.stop()


async def test_grinder_submit_while_stopping_says_it_is_stopping() -> None:
    manager, grinder = await _grinder_env()
    try:
        release = asyncio.Event()
        loop = asyncio.get_running_loop()

        def blocked() -> str:
            asyncio.run_coroutine_threadsafe(release.wait(), loop).result(30)
            return "done"

        running = grinder.submit(blocked)
        stopping = asyncio.ensure_future(grinder.stop())
        await asyncio.sleep(0)  # stop() has begun and waits for the running item
        with pytest.raises(RuntimeError) as info:
            await grinder.submit(operator.add, 1, 2)
        assert str(info.value) == "WorkGrinder is stopping"
        release.set()
        await stopping
        assert await running == "done"
    finally:
        await manager.stop()
