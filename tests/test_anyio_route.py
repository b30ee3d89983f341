"""``route_anyio_threads``: anyio.to_thread.run_sync (Starlette's run_in_threadpool) on
a manager, with anyio's cancellation semantics."""

from __future__ import annotations

import asyncio
import contextvars
import threading
from collections.abc import Callable
from typing import Any

import anyio
import anyio.from_thread
import anyio.to_thread
import pytest
from starlette.concurrency import run_in_threadpool

from leasepool import LeasedExecutorManager, LeaseUnavailableError
from leasepool.integrations.anyio import ANYIO_OWNER, route_anyio_threads

WAIT = 10.0

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")


class Gate:
    def __init__(self) -> None:
        self.started = threading.Semaphore(0)
        self.release = threading.Event()
        self.finished: list[Any] = []

    def block(self, value: Any = None) -> Any:
        self.started.release()
        assert self.release.wait(WAIT)
        self.finished.append(value)
        return value


async def _off_loop(fn: Callable[..., Any], *args: Any) -> Any:
    """Blocks on a plain thread, outside anyio and the manager."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[Any] = loop.create_future()

    def run() -> None:
        value = fn(*args)
        loop.call_soon_threadsafe(done.set_result, value)

    threading.Thread(target=run, daemon=True).start()
    return await done


async def wait_started(gate: Gate, n: int = 1) -> None:
    for _ in range(n):
        assert await _off_loop(gate.started.acquire, True, WAIT)


def owners(manager: LeasedExecutorManager) -> list[Any]:
    return [lease["owner"] for lease in manager.stats()["leases"]]


async def test_run_sync_and_run_in_threadpool_take_leases() -> None:
    manager = LeasedExecutorManager(max_pools=1, workers_per_pool=2, name_prefix="lp-anyio")
    await manager.start()
    try:
        with route_anyio_threads(manager) as route:
            assert route.installed
            gate = Gate()
            a = asyncio.ensure_future(anyio.to_thread.run_sync(gate.block, "a"))
            b = asyncio.ensure_future(run_in_threadpool(gate.block, value="b"))
            await wait_started(gate, 2)
            assert owners(manager) == [ANYIO_OWNER] * 2
            gate.release.set()
            assert list(await asyncio.gather(a, b)) == ["a", "b"]
            name = await anyio.to_thread.run_sync(lambda: threading.current_thread().name)
            assert name.startswith("lp-anyio-")
            request_id.set("req-9")
            assert await run_in_threadpool(request_id.get) == "req-9"
        assert not route.installed
        name = await anyio.to_thread.run_sync(lambda: threading.current_thread().name)
        assert name == "AnyIO worker thread"
    finally:
        await manager.stop()


async def test_refusals_and_exceptions_reach_the_caller() -> None:
    manager = LeasedExecutorManager(max_pools=1, workers_per_pool=1)
    await manager.start()
    try:
        with route_anyio_threads(manager, wait=False):
            with pytest.raises(ValueError, match="invalid literal"):
                await anyio.to_thread.run_sync(int, "x")
            gate = Gate()
            blocked = asyncio.ensure_future(anyio.to_thread.run_sync(gate.block, 1))
            await wait_started(gate)
            with pytest.raises(LeaseUnavailableError):
                await run_in_threadpool(int, "2")
            gate.release.set()
            assert await blocked == 1
    finally:
        await manager.stop()


async def test_stop_iteration_becomes_runtime_error_as_in_anyio() -> None:
    manager = LeasedExecutorManager(max_pools=1)
    await manager.start()
    try:
        with route_anyio_threads(manager):
            with pytest.raises(RuntimeError, match="StopIteration") as info:
                await anyio.to_thread.run_sync(next, iter([]))
            assert isinstance(info.value.__cause__, StopIteration)
    finally:
        await manager.stop()


async def test_cancel_while_waiting_for_a_slot_withdraws_the_call() -> None:
    manager = LeasedExecutorManager(max_pools=1, workers_per_pool=1)
    await manager.start()
    try:
        with route_anyio_threads(manager):
            gate = Gate()
            ran: list[str] = []
            blocked = asyncio.ensure_future(anyio.to_thread.run_sync(gate.block, "first"))
            await wait_started(gate)
            with anyio.move_on_after(0.01) as scope:
                await anyio.to_thread.run_sync(ran.append, "queued")
            assert scope.cancelled_caught
            gate.release.set()
            assert await blocked == "first"
            await anyio.to_thread.run_sync(ran.append, "later")
            assert ran == ["later"]  # the cancelled call never ran
    finally:
        await manager.stop()


@pytest.mark.parametrize("abandon", [False, True])
async def test_cancel_while_running(abandon: bool) -> None:
    """abandon_on_cancel=False holds the caller until the call returns, as anyio does;
    True lets it go at once while the call runs its course."""
    manager = LeasedExecutorManager(max_pools=1, workers_per_pool=1)
    await manager.start()
    try:
        with route_anyio_threads(manager):
            gate = Gate()
            returned_early: list[bool] = []

            async def host() -> None:
                async with anyio.create_task_group() as tg:
                    tg.start_soon(_run, tg)

            async def _run(tg: anyio.abc.TaskGroup) -> None:
                await anyio.to_thread.run_sync(gate.block, "x", abandon_on_cancel=abandon)
                pytest.fail("the cancellation was not delivered")

            task = asyncio.ensure_future(host())
            await wait_started(gate)
            task.cancel()
            # Let the cancellation reach the routed call.
            for _ in range(5):
                await asyncio.sleep(0)
            returned_early.append(task.done())
            gate.release.set()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert returned_early == [abandon]
            assert await anyio.to_thread.run_sync(lambda: "next") == "next"
            assert gate.finished == ["x"]  # a started call always runs to its end
    finally:
        await manager.stop()


async def test_from_thread_works_inside_a_routed_call() -> None:
    manager = LeasedExecutorManager(max_pools=1, workers_per_pool=1)
    await manager.start()
    try:
        with route_anyio_threads(manager):
            loop_thread = threading.current_thread().name

            async def on_loop() -> str:
                return threading.current_thread().name

            def in_worker() -> tuple[str, str]:
                anyio.from_thread.check_cancelled()  # not cancelled: returns
                return anyio.from_thread.run(on_loop), anyio.from_thread.run_sync(
                    lambda: threading.current_thread().name
                )

            assert await anyio.to_thread.run_sync(in_worker) == (loop_thread, loop_thread)
    finally:
        await manager.stop()


async def test_check_cancelled_sees_the_callers_cancellation() -> None:
    manager = LeasedExecutorManager(max_pools=1, workers_per_pool=1)
    await manager.start()
    try:
        with route_anyio_threads(manager):
            observed = threading.Event()
            gate = Gate()

            def poll() -> None:
                gate.started.release()
                assert gate.release.wait(WAIT)
                try:
                    anyio.from_thread.check_cancelled()
                except BaseException:
                    observed.set()
                    raise

            async def cancel_once_started(tg: anyio.abc.TaskGroup) -> None:
                await wait_started(gate)
                tg.cancel_scope.cancel()
                gate.release.set()

            async with anyio.create_task_group() as tg:
                tg.start_soon(cancel_once_started, tg)
                await anyio.to_thread.run_sync(poll)
                pytest.fail("the cancellation was not delivered")
            assert observed.is_set()
    finally:
        await manager.stop()


async def test_an_explicit_limiter_still_bounds_its_callers() -> None:
    manager = LeasedExecutorManager(max_pools=1, workers_per_pool=4)
    await manager.start()
    try:
        with route_anyio_threads(manager):
            limiter = anyio.CapacityLimiter(1)
            gate = Gate()
            first = asyncio.ensure_future(anyio.to_thread.run_sync(gate.block, 1, limiter=limiter))
            await wait_started(gate)
            second = asyncio.ensure_future(anyio.to_thread.run_sync(gate.block, 2, limiter=limiter))
            for _ in range(5):
                await asyncio.sleep(0)
            assert limiter.borrowed_tokens == 1
            assert len(owners(manager)) == 1  # the second waits for the limiter, not a slot
            gate.release.set()
            assert list(await asyncio.gather(first, second)) == [1, 2]
    finally:
        await manager.stop()


async def test_cancellable_is_the_deprecated_alias() -> None:
    manager = LeasedExecutorManager(max_pools=1)
    await manager.start()
    try:
        with route_anyio_threads(manager), pytest.warns(DeprecationWarning, match="cancellable"):
            assert await anyio.to_thread.run_sync(int, "4", cancellable=True) == 4
    finally:
        await manager.stop()


async def test_one_route_per_loop_and_other_loops_untouched() -> None:
    manager = LeasedExecutorManager(max_pools=1, name_prefix="lp-routed")
    await manager.start()
    try:
        with route_anyio_threads(manager):
            with pytest.raises(RuntimeError, match="already routed"):
                route_anyio_threads(manager)

            def other_loop() -> str:
                async def main() -> str:
                    return await anyio.to_thread.run_sync(lambda: threading.current_thread().name)

                return anyio.run(main)

            assert await _off_loop(other_loop) == "AnyIO worker thread"
    finally:
        await manager.stop()


def test_needs_a_thread_manager_and_a_running_loop() -> None:
    with pytest.raises(ValueError, match="backend='thread'"):
        route_anyio_threads(LeasedExecutorManager(backend="process", max_pools=1))
    with pytest.raises(RuntimeError, match="running event loop"):
        route_anyio_threads(LeasedExecutorManager(max_pools=1))
