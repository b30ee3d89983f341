"""``manager.install_as_default_executor()``: asyncio's default executor on leases."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from leasepool import LeasedExecutorManager, LeasePoolNotStartedError, LeaseUnavailableError
from leasepool.integrations import (
    DEFAULT_EXECUTOR_OWNER,
    LeasedDefaultExecutor,
    install_as_default_executor,
    retry_after_seconds,
)

WAIT = 10.0  # bound of every blocking wait: a bug fails the test instead of hanging it

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")


class Gate:
    """Blocking calls that report when they started and wait to be released."""

    def __init__(self) -> None:
        self.started = threading.Semaphore(0)
        self.release = threading.Event()

    def block(self, value: Any = None) -> Any:
        self.started.release()
        assert self.release.wait(WAIT)
        return value

    def wait_started(self, n: int = 1) -> None:
        for _ in range(n):
            assert self.started.acquire(timeout=WAIT)


async def _off_loop(fn: Callable[..., Any], *args: Any) -> Any:
    """Blocks on a plain thread (not the default executor under test)."""
    done: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    loop = asyncio.get_running_loop()

    def run() -> None:
        try:
            value = fn(*args)
        except BaseException as exc:  # pragma: no cover - reported to the test
            loop.call_soon_threadsafe(done.set_exception, exc)
        else:
            loop.call_soon_threadsafe(done.set_result, value)

    threading.Thread(target=run, daemon=True).start()
    return await done


def slot_owners(manager: LeasedExecutorManager) -> list[Any]:
    return [lease["owner"] for lease in manager.stats()["leases"]]


async def test_to_thread_and_run_in_executor_take_leases() -> None:
    manager = LeasedExecutorManager(max_pools=1, workers_per_pool=2)
    await manager.start()
    try:
        executor = manager.install_as_default_executor()
        assert isinstance(executor, LeasedDefaultExecutor)
        assert isinstance(executor, ThreadPoolExecutor)
        gate = Gate()
        loop = asyncio.get_running_loop()
        via_to_thread = asyncio.ensure_future(asyncio.to_thread(gate.block, "a"))
        via_executor = loop.run_in_executor(None, gate.block, "b")
        await _off_loop(gate.wait_started, 2)
        assert manager.leased_count == 1
        assert slot_owners(manager) == [DEFAULT_EXECUTOR_OWNER] * 2
        assert executor.in_flight == 2
        # Both slots taken: a third call waits in the manager's queue.
        third = asyncio.ensure_future(asyncio.to_thread(lambda: "c"))
        await asyncio.sleep(0)
        assert not third.done()
        gate.release.set()
        assert list(await asyncio.gather(via_to_thread, via_executor, third)) == ["a", "b", "c"]
        assert executor.in_flight == 0
        assert manager.stats()["leases"] == []
    finally:
        await manager.stop()


async def test_calls_run_on_the_managers_threads_with_the_callers_context() -> None:
    manager = LeasedExecutorManager(max_pools=1, workers_per_pool=1, name_prefix="lp-default")
    await manager.start()
    try:
        install_as_default_executor(manager)
        request_id.set("req-1")

        def where() -> tuple[str, str]:
            return threading.current_thread().name, request_id.get()

        name, seen = await asyncio.to_thread(where)
        assert name.startswith("lp-default-")
        assert seen == "req-1"
        # run_in_executor with a keyword-bound partial, as its documentation says.
        loop = asyncio.get_running_loop()
        assert await loop.run_in_executor(None, lambda: request_id.get()) == "req-1"

        def set_in_thread() -> str:
            request_id.set("changed in the thread")
            return request_id.get()

        assert await asyncio.to_thread(set_in_thread) == "changed in the thread"
        assert request_id.get() == "req-1"  # the call ran in a copy
    finally:
        await manager.stop()


async def test_exceptions_propagate() -> None:
    manager = LeasedExecutorManager(max_pools=1, workers_per_pool=1)
    await manager.start()
    try:
        install_as_default_executor(manager)
        with pytest.raises(ValueError, match="invalid literal"):
            await asyncio.to_thread(int, "x")
        with pytest.raises(ZeroDivisionError):
            await asyncio.get_running_loop().run_in_executor(None, divmod, 1, 0)
    finally:
        await manager.stop()


async def test_manager_refusals_reach_the_caller() -> None:
    manager = LeasedExecutorManager(max_pools=1, workers_per_pool=1)
    executor = manager.install_as_default_executor(wait=False)
    # Installed before start(): calls fail until the manager runs.
    with pytest.raises(LeasePoolNotStartedError):
        await asyncio.to_thread(int, "1")
    await manager.start()
    try:
        gate = Gate()
        blocked = asyncio.ensure_future(asyncio.to_thread(gate.block, 1))
        await _off_loop(gate.wait_started)
        with pytest.raises(LeaseUnavailableError) as info:
            await asyncio.to_thread(int, "2")
        assert retry_after_seconds(info.value) >= 1
        gate.release.set()
        assert await blocked == 1
        assert await asyncio.to_thread(int, "3") == 3
        assert executor.in_flight == 0
    finally:
        await manager.stop()


async def test_cancelling_a_queued_call_withdraws_it() -> None:
    manager = LeasedExecutorManager(max_pools=1, workers_per_pool=1)
    await manager.start()
    try:
        executor = install_as_default_executor(manager)
        gate = Gate()
        ran: list[str] = []
        blocked = asyncio.ensure_future(asyncio.to_thread(gate.block, "first"))
        await _off_loop(gate.wait_started)
        queued = asyncio.ensure_future(asyncio.to_thread(ran.append, "queued"))
        await asyncio.sleep(0)
        assert executor.in_flight == 2
        queued.cancel()
        with pytest.raises(asyncio.CancelledError):
            await queued
        gate.release.set()
        assert await blocked == "first"
        assert await asyncio.to_thread(lambda: "after") == "after"
        assert ran == []  # the cancelled call never ran
        assert executor.in_flight == 0
    finally:
        await manager.stop()


async def test_cancelling_a_running_call_lets_it_finish() -> None:
    manager = LeasedExecutorManager(max_pools=1, workers_per_pool=1)
    await manager.start()
    try:
        executor = install_as_default_executor(manager)
        gate = Gate()
        future = executor.submit(gate.block, "done anyway")
        await _off_loop(gate.wait_started)
        assert future.running()
        assert not future.cancel()  # as with ThreadPoolExecutor
        gate.release.set()
        assert await asyncio.wrap_future(future) == "done anyway"
    finally:
        await manager.stop()


async def test_concurrent_future_cancel_from_another_thread() -> None:
    manager = LeasedExecutorManager(max_pools=1, workers_per_pool=1)
    await manager.start()
    try:
        executor = install_as_default_executor(manager)
        gate = Gate()
        ran: list[int] = []
        blocked = executor.submit(gate.block, 1)
        await _off_loop(gate.wait_started)
        queued = executor.submit(ran.append, 2)
        assert await _off_loop(queued.cancel)
        done, _ = await _off_loop(concurrent.futures.wait, [queued], WAIT)
        assert queued in done  # cancelled *and notified*, as concurrent.futures.wait needs
        gate.release.set()
        assert await asyncio.wrap_future(blocked) == 1
        await asyncio.to_thread(lambda: None)  # FIFO: the withdrawn call is behind us
        assert ran == []
    finally:
        await manager.stop()


async def test_submit_from_other_threads() -> None:
    manager = LeasedExecutorManager(max_pools=2, workers_per_pool=2)
    await manager.start()
    try:
        executor = install_as_default_executor(manager)
        request_id.set("loop")

        def from_thread(i: int) -> list[Any]:
            request_id.set(f"thread-{i}")

            def row(k: int) -> tuple[int, str]:
                return k, request_id.get()

            futures = [executor.submit(row, k) for k in range(5)]
            return [f.result(WAIT) for f in futures]

        results = await asyncio.gather(*(_off_loop(from_thread, i) for i in range(4)))
        for i, rows in enumerate(results):
            assert rows == [(k, f"thread-{i}") for k in range(5)]
        assert executor.in_flight == 0
    finally:
        await manager.stop()


async def test_stop_cancels_calls_waiting_for_a_slot() -> None:
    manager = LeasedExecutorManager(max_pools=1, workers_per_pool=1)
    await manager.start()
    executor = install_as_default_executor(manager)
    gate = Gate()
    running = executor.submit(gate.block, "ran")
    await _off_loop(gate.wait_started)
    queued = executor.submit(lambda: "never")
    stopping = asyncio.ensure_future(manager.stop())
    await asyncio.sleep(0)
    gate.release.set()
    await stopping
    assert running.result(WAIT) == "ran"
    # stop() fails the manager's waiters, as it fails acquire()'s.
    assert isinstance(queued.exception(WAIT), LeasePoolNotStartedError)
    assert executor.in_flight == 0


async def test_shutdown_refuses_new_work_and_never_stops_the_manager() -> None:
    manager = LeasedExecutorManager(max_pools=1, workers_per_pool=1)
    await manager.start()
    try:
        executor = install_as_default_executor(manager)
        gate = Gate()
        running = executor.submit(gate.block, "in flight")
        await _off_loop(gate.wait_started)
        with pytest.raises(RuntimeError, match="would block the event loop"):
            executor.shutdown(wait=True)  # on the loop thread
        # From another thread, wait=True waits for the call in flight.
        shutting = asyncio.ensure_future(_off_loop(executor.shutdown, True))
        await asyncio.sleep(0)
        with pytest.raises(RuntimeError, match="after shutdown"):
            executor.submit(int, "1")
        assert not shutting.done()
        gate.release.set()
        await shutting
        assert running.result() == "in flight"
        assert await manager.run(int, "5") == 5  # the manager still serves
    finally:
        await manager.stop()


async def test_shutdown_cancel_futures_withdraws_the_queued_calls() -> None:
    manager = LeasedExecutorManager(max_pools=1, workers_per_pool=1)
    await manager.start()
    try:
        executor = install_as_default_executor(manager)
        gate = Gate()
        running = executor.submit(gate.block, "kept")
        await _off_loop(gate.wait_started)
        queued = [executor.submit(int, str(i)) for i in range(3)]
        executor.shutdown(wait=False, cancel_futures=True)
        assert all(f.cancelled() for f in queued)
        assert not running.cancelled()
        gate.release.set()
        await _off_loop(executor.shutdown, True)
        assert running.result() == "kept"
        assert executor.in_flight == 0
        assert manager.stats()["leases"] == []
    finally:
        await manager.stop()


async def test_shutdown_default_executor_and_uninstall() -> None:
    loop = asyncio.get_running_loop()
    manager = LeasedExecutorManager(max_pools=1, workers_per_pool=1)
    await manager.start()
    try:
        executor = install_as_default_executor(manager)
        executor.uninstall()
        with pytest.raises(RuntimeError, match="after shutdown"):
            executor.submit(int, "1")
        # The loop has a plain default executor again.
        name = await loop.run_in_executor(None, lambda: threading.current_thread().name)
        assert not name.startswith("leasepool")
        again = install_as_default_executor(manager)
        assert again.previous is not None or loop.__class__.__module__.startswith("uvloop")
        assert await asyncio.to_thread(int, "2") == 2
        await loop.shutdown_default_executor()  # as asyncio.run() does, on its own thread
        assert await manager.run(int, "3") == 3  # the manager was not stopped
    finally:
        await manager.stop()


def test_keyboard_interrupt_in_a_call_leaves_asyncio_run() -> None:
    """As with run_in_executor: the caller's await raises it, asyncio.run() ends."""

    def interrupt() -> None:
        raise KeyboardInterrupt

    async def main() -> None:
        manager = LeasedExecutorManager(max_pools=1)
        await manager.start()
        try:
            manager.install_as_default_executor()
            await asyncio.to_thread(interrupt)
        finally:
            await manager.stop()

    with pytest.raises(KeyboardInterrupt):
        asyncio.run(main())


async def test_executor_map_and_wait() -> None:
    """The Executor API built on submit(): map(), concurrent.futures.wait()."""
    manager = LeasedExecutorManager(max_pools=2, workers_per_pool=2)
    await manager.start()
    try:
        executor = install_as_default_executor(manager)
        squares = await _off_loop(lambda: list(executor.map(pow, range(8), [2] * 8)))
        assert squares == [i * i for i in range(8)]
        futures = [executor.submit(pow, 2, i) for i in range(4)]
        done, not_done = await _off_loop(concurrent.futures.wait, futures, WAIT)
        assert not not_done
        assert sorted(f.result() for f in done) == [1, 2, 4, 8]
    finally:
        await manager.stop()


def test_asyncio_run_shuts_it_down_cleanly() -> None:
    """asyncio.run() ends with shutdown_default_executor(), after the manager stopped."""
    seen: list[Any] = []

    async def main() -> None:
        manager = LeasedExecutorManager(max_pools=1, workers_per_pool=2)
        await manager.start()
        try:
            executor = manager.install_as_default_executor()
            seen.append(executor)
            seen.append(await asyncio.to_thread(sum, [1, 2, 3]))
        finally:
            await manager.stop()

    asyncio.run(main())
    executor, total = seen
    assert total == 6
    assert isinstance(executor, LeasedDefaultExecutor)
    with pytest.raises(RuntimeError, match="after shutdown"):
        executor.submit(int, "1")


def test_needs_a_thread_backend_and_a_loop() -> None:
    loop = asyncio.new_event_loop()
    try:
        with pytest.raises(ValueError, match="backend='thread'"):
            LeasedDefaultExecutor(LeasedExecutorManager(backend="process", max_pools=1), loop)
    finally:
        loop.close()
    with pytest.raises(RuntimeError, match="running event loop"):
        install_as_default_executor(LeasedExecutorManager(max_pools=1))


def test_cpython_refuses_other_executors() -> None:
    """Why it is a ThreadPoolExecutor subclass (CPython 3.11-3.14)."""
    loop = asyncio.new_event_loop()
    try:
        with pytest.raises(TypeError, match="ThreadPoolExecutor"):
            loop.set_default_executor(concurrent.futures.Executor())
    finally:
        loop.close()


@pytest.mark.parametrize(
    ("retry_after", "expected"),
    [
        (None, 1),
        (0.0, 1),
        (0.2, 1),
        (1.0, 1),
        (1.01, 2),
        (7.5, 8),
        (float("nan"), 1),
        (float("inf"), 1),
        (-3.0, 1),
        ("soon", 1),
        (True, 1),
    ],
)
def test_retry_after_seconds(retry_after: Any, expected: int) -> None:
    """Whole seconds, rounded up, at least 1; unusable estimates fall back to 1 s."""
    exc = LeaseUnavailableError("busy")
    if retry_after is not None:
        exc.retry_after = retry_after
    assert retry_after_seconds(exc) == expected


def test_retry_after_seconds_default() -> None:
    assert retry_after_seconds(LeaseUnavailableError("busy"), default=2.5) == 3
