"""Mistakes a service makes with the API are loud: an exception nobody retrieves is
logged as asyncio does for its futures, a missing ``await`` is named, and an acquire
timeout is told apart from a timeout of the user's own call."""

from __future__ import annotations

import asyncio
import gc
import threading
from typing import Any

import pytest
from _support import started_manager

from leasepool import LeaseAcquireTimeoutError, LeasePoolError
from leasepool._engine import LeaseFuture


def boom() -> None:
    raise ValueError("boom")


async def settled(future: LeaseFuture[Any]) -> None:
    """Wait until ``future`` is done without retrieving its outcome."""
    done = asyncio.Event()
    future.add_done_callback(lambda _: done.set())
    await done.wait()


class HandlerSpy:
    """Installs itself as the running loop's exception handler."""

    def __init__(self) -> None:
        self.contexts: list[dict[str, Any]] = []
        self.called = asyncio.Event()
        asyncio.get_running_loop().set_exception_handler(self)

    def __call__(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        self.contexts.append(context)
        self.called.set()

    def uninstall(self) -> None:
        asyncio.get_running_loop().set_exception_handler(None)


async def test_unawaited_failing_run_logs_its_exception() -> None:
    """0.1.3's coroutine at least warned "never awaited"; asyncio futures log an
    exception nobody retrieved. So does LeaseFuture."""
    spy = HandlerSpy()
    try:
        async with started_manager() as manager, await manager.acquire() as lease:
            ran = threading.Event()

            def fail() -> None:
                ran.set()
                boom()

            lease.run(fail)  # the mistake: no await, the result is dropped at once
            await asyncio.wait_for(spy.called.wait(), 30)
            assert ran.is_set()
    finally:
        spy.uninstall()
    [context] = spy.contexts
    assert context["message"] == "LeaseFuture exception was never retrieved"
    assert isinstance(context["exception"], ValueError)
    assert str(context["exception"]) == "boom"


async def test_retrieved_or_silenced_exceptions_are_not_logged() -> None:
    spy = HandlerSpy()
    try:
        async with started_manager() as manager, await manager.acquire() as lease:
            awaited = lease.run(boom)
            with pytest.raises(ValueError, match="boom"):
                await awaited
            via_exception = lease.run(boom)
            await settled(via_exception)
            assert isinstance(via_exception.exception(), ValueError)
            gathered = await asyncio.gather(lease.run(boom), return_exceptions=True)
            assert isinstance(gathered[0], ValueError)
            silenced = lease.run(boom)
            await settled(silenced)
            assert silenced._log_traceback
            silenced._log_traceback = False
            with pytest.raises(ValueError, match="only be set to False"):
                silenced._log_traceback = True
            del awaited, via_exception, gathered, silenced
            gc.collect()
            # A later call's completion passes through the same loop inbox: anything
            # the dropped futures had posted would have run before this returns.
            assert await lease.run(len, "ok") == 2
            await asyncio.sleep(0)
    finally:
        spy.uninstall()
    assert spy.contexts == []


async def test_async_with_without_await_says_so() -> None:
    async with started_manager() as manager:
        with pytest.raises(TypeError, match="did you forget `await`"):
            async with manager.acquire():  # type: ignore[attr-defined]
                pass
        # The lease granted to the dropped awaitable went back to the manager.
        gc.collect()
        assert manager.leased_count == 0
        lease = await manager.acquire(wait=False)
        await lease.release()


async def test_lease_attributes_on_the_awaitable_name_the_missing_await() -> None:
    async with started_manager() as manager:
        pending = manager.acquire()
        for name in ("run", "release", "executor", "lease_id"):
            with pytest.raises(AttributeError, match=f"no attribute '{name}'.*forget `await`"):
                getattr(pending, name)
            assert not hasattr(pending, name)
        await (await pending).release()


async def test_acquire_timeout_is_a_distinct_timeout_error() -> None:
    async with started_manager(max_pools=1) as manager, await manager.acquire():
        with pytest.raises(LeaseAcquireTimeoutError) as waited:
            await manager.acquire(timeout=0.01)
        with pytest.raises(LeaseAcquireTimeoutError) as immediate:
            await manager.acquire(timeout=0)
    for info in (waited, immediate):
        assert isinstance(info.value, TimeoutError), "still caught by `except TimeoutError`"
        assert isinstance(info.value, LeasePoolError)
    assert str(waited.value) == "Timed out waiting for an executor after 0.01s"
    assert str(immediate.value) == "Timed out waiting for an executor after 0s"
