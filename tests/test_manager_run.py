"""``manager.run(fn, *args)``: the one-call path.

A call holds one worker *slot* of a shared pool, not a whole pool, with the same
FIFO, backpressure, expiry, contextvars and errors as a lease. Waiting is observed
through events and the manager's counters; time through the engine's clock seam.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import threading
from collections.abc import Callable
from typing import Any

import pytest
from _support import MANAGER_LOGGER, eventually, messages, started_manager

from leasepool import (
    LeaseAcquireTimeoutError,
    LeasedExecutorManager,
    LeasePoolNotStartedError,
    LeaseUnavailableError,
)

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")


def thread_name() -> str:
    return threading.current_thread().name


class Gate:
    """Calls that block until the test opens them, reporting when each started."""

    def __init__(self) -> None:
        self.opened = threading.Event()
        self.started: list[str] = []
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)

    def call(self, tag: str) -> str:
        with self._lock:
            self.started.append(tag)
            self._changed.notify_all()
        if not self.opened.wait(30):
            raise AssertionError("the gate was never opened")
        return tag

    async def wait_started(self, count: int) -> None:
        def wait() -> None:
            with self._lock:
                if not self._changed.wait_for(lambda: len(self.started) >= count, 30):
                    raise AssertionError(f"{count} calls never started: {self.started}")

        await asyncio.to_thread(wait)


async def test_runs_the_call_with_its_arguments_and_the_callers_context() -> None:
    async with started_manager(name_prefix="onecall") as manager:
        request_id.set("req-7")

        def work(a: int, b: int) -> tuple[int, str, str]:
            return a + b, request_id.get(), thread_name()

        total, seen, thread = await manager.run(work, 2, 3, owner="handler")
        assert (total, seen) == (5, "req-7")
        assert thread.startswith("onecall-1_")
        assert manager.stats()["leases"] == [], "the slot went back with the call"


async def test_errors_raise_at_the_await_with_the_original_exception() -> None:
    async with started_manager() as manager:

        def fail() -> None:
            raise KeyError("missing")

        with pytest.raises(KeyError, match="missing"):
            await manager.run(fail)
        assert await manager.run(int, "5") == 5, "the slot is usable again"


async def test_one_call_holds_one_worker_not_a_whole_pool() -> None:
    gate = Gate()
    async with started_manager(max_pools=2, workers_per_pool=2) as manager:
        calls = [manager.run(gate.call, str(i), owner=f"r{i}") for i in range(4)]
        await gate.wait_started(4)
        stats = manager.stats()
        assert (stats["total"], stats["leased"], stats["available"]) == (2, 2, 0)
        assert sorted(lease["owner"] for lease in stats["leases"]) == ["r0", "r1", "r2", "r3"]
        with pytest.raises(LeaseUnavailableError, match="max_pools=2 reached"):
            await manager.run(gate.call, "x", wait=False)
        gate.opened.set()
        assert await asyncio.gather(*calls) == ["0", "1", "2", "3"]
        # idle_pool_seconds=0 here (0.1.3 sizing): the surplus pool left with its last call.
        assert (manager.leased_count, manager.available_count) == (0, 1)


async def test_waiting_calls_start_in_arrival_order() -> None:
    gate = Gate()
    async with started_manager(max_pools=1, workers_per_pool=1) as manager:
        first = manager.run(gate.call, "first")
        await gate.wait_started(1)
        queued = [manager.run(gate.call, f"w{i}") for i in range(5)]
        gate.opened.set()
        await asyncio.gather(first, *queued)
        assert gate.started == ["first", "w0", "w1", "w2", "w3", "w4"]


async def test_calls_and_pool_leases_share_one_fifo_queue() -> None:
    gate = Gate()
    order: list[str] = []
    async with started_manager(max_pools=1, workers_per_pool=2) as manager:
        running = manager.run(gate.call, "running")
        await gate.wait_started(1)
        acquiring = manager.acquire(owner="pool")  # queued at the call
        # A slot is free on the shared pool, but the pool request is ahead.
        late = manager.run(order.append, "late")
        gate.opened.set()
        assert await running == "running"
        lease = await acquiring
        assert order == [], "the later call waits behind the pool request"
        await lease.release()
        await late
        assert order == ["late"]


async def test_withdrawing_a_pool_request_lets_the_call_behind_it_start() -> None:
    gate = Gate()
    async with started_manager(max_pools=1, workers_per_pool=2) as manager:
        running = manager.run(gate.call, "running")
        acquiring = manager.acquire(owner="pool", timeout=60)
        behind = manager.run(gate.call, "behind")
        acquiring.cancel()
        # Only the pool request kept `behind` from the free slot: it starts now,
        # while `running` still holds the other one.
        await gate.wait_started(2)
        gate.opened.set()
        assert list(await asyncio.gather(running, behind)) == ["running", "behind"]


async def test_wait_false_fails_fast_while_anyone_waits() -> None:
    gate = Gate()
    async with started_manager(max_pools=1, workers_per_pool=1) as manager:
        running = manager.run(gate.call, "running")
        queued = manager.run(gate.call, "queued")
        with pytest.raises(LeaseUnavailableError):
            await manager.run(gate.call, "fast", wait=False)
        gate.opened.set()
        assert list(await asyncio.gather(running, queued)) == ["running", "queued"]
        assert "fast" not in gate.started


async def test_timeout_bounds_the_wait_and_the_call_never_runs() -> None:
    gate = Gate()
    async with started_manager(max_pools=1, workers_per_pool=1) as manager:
        running = manager.run(gate.call, "running")
        with pytest.raises(LeaseAcquireTimeoutError, match="after 0.01s") as caught:
            await manager.run(gate.call, "late", timeout=0.01)
        assert isinstance(caught.value, TimeoutError)
        gate.opened.set()
        assert await running == "running"
        assert await manager.run(gate.call, "next") == "next"
        assert gate.started == ["running", "next"], "the timed-out call never ran"
        assert manager.stats()["leases"] == []


async def test_a_zero_or_negative_timeout_takes_capacity_now_or_fails_now() -> None:
    gate = Gate()
    async with started_manager(max_pools=1, workers_per_pool=1) as manager:
        assert await manager.run(int, "7", timeout=0) == 7, "capacity was free"
        running = manager.run(gate.call, "running")
        for timeout in (0, -1):
            with pytest.raises(LeaseAcquireTimeoutError, match=f"after {timeout}s"):
                await manager.run(gate.call, "late", timeout=timeout)
        gate.opened.set()
        assert await running == "running"
        assert gate.started == ["running"]


def test_a_timeout_never_fails_a_call_that_got_its_slot() -> None:
    """The timer is fired by hand (a recorded ``call_later``), so no time passes."""

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        timers: list[asyncio.TimerHandle] = []
        real_call_later = loop.call_later

        def recording_call_later(delay: float, callback: Any, *args: Any) -> Any:
            handle = real_call_later(3600, callback, *args)
            timers.append(handle)
            return handle

        loop.call_later = recording_call_later  # type: ignore[method-assign,assignment]
        gate = Gate()
        async with started_manager(max_pools=1, workers_per_pool=1) as manager:
            running = manager.run(gate.call, "running")
            granted_later = manager.run(gate.call, "second", timeout=5)
            still_queued = manager.run(gate.call, "third", timeout=5)
            assert len(timers) == 2
            gate.opened.set()
            assert await running == "running"
            await gate.wait_started(2)
            timers[0]._run()  # the second call holds its slot now: no effect
            timers[1]._run()  # the third call may or may not have its slot yet
            assert await granted_later == "second"
            try:
                outcome = await still_queued
            except LeaseAcquireTimeoutError:
                assert "third" not in gate.started
            else:
                assert outcome == "third"

    asyncio.run(scenario())


async def test_cancelling_a_queued_call_withdraws_it() -> None:
    gate = Gate()
    async with started_manager(max_pools=1, workers_per_pool=1) as manager:
        running = manager.run(gate.call, "running")
        await gate.wait_started(1)
        doomed = asyncio.ensure_future(manager.run(gate.call, "doomed"))
        after = manager.run(gate.call, "after")
        doomed.cancel()
        gate.opened.set()
        assert list(await asyncio.gather(running, after)) == ["running", "after"]
        with pytest.raises(asyncio.CancelledError):
            await doomed
        assert gate.started == ["running", "after"]
        assert manager.stats()["leases"] == []


async def test_cancelling_a_running_call_lets_it_finish_before_the_slot_returns() -> None:
    gate = Gate()
    async with started_manager(max_pools=1, workers_per_pool=1) as manager:
        task = asyncio.ensure_future(manager.run(gate.call, "running"))
        await gate.wait_started(1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert len(manager.stats()["leases"]) == 1, "the call still runs on its slot"
        follower = manager.run(gate.call, "follower")
        gate.opened.set()
        assert await follower == "follower"
        assert gate.started == ["running", "follower"]


async def test_not_started_and_bad_arguments_raise_at_the_await() -> None:
    manager = LeasedExecutorManager(max_pools=1)
    with pytest.raises(LeasePoolNotStartedError):
        await manager.run(int, "1")
    async with started_manager() as manager:
        with pytest.raises(ValueError, match="lease_seconds must be > 0"):
            await manager.run(int, "1", lease_seconds=0)
        assert await manager.run(int, "2", lease_seconds=5) == 2
    with pytest.raises(LeasePoolNotStartedError):
        await manager.run(int, "1")


async def test_stop_refuses_waiting_calls_and_lets_running_ones_finish() -> None:
    gate = Gate()
    manager = LeasedExecutorManager(max_pools=1, workers_per_pool=1)
    await manager.start()
    running = manager.run(gate.call, "running")
    await gate.wait_started(1)
    waiting = manager.run(gate.call, "waiting")
    stopping = asyncio.ensure_future(manager.stop())
    with pytest.raises(LeasePoolNotStartedError):
        await waiting
    gate.opened.set()
    await stopping
    assert await running == "running"
    assert gate.started == ["running"]


async def test_an_expired_call_is_revoked_and_its_pool_takes_no_new_calls(
    advance_clock: Callable[[float], None], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger=MANAGER_LOGGER)
    gate = Gate()
    async with started_manager(
        max_pools=2, workers_per_pool=2, name_prefix="expiry", lease_grace_seconds=1
    ) as manager:
        overrun = manager.run(gate.call, "overrun", owner="slow", lease_seconds=1)
        neighbour = manager.run(gate.call, "neighbour", lease_seconds=600)
        await gate.wait_started(2)
        advance_clock(10)
        manager.notify_scale_changed()
        await eventually(lambda: len(manager.stats()["leases"]) == 1, what="revocation")
        assert any(
            "Revoking expired executor" in m and "owner=slow" in m
            for m in messages(caplog, logging.WARNING)
        )
        # The tainted pool still runs `neighbour`, but takes no new call.
        assert (await manager.run(thread_name)).startswith("expiry-2_")
        gate.opened.set()
        assert await neighbour == "neighbour"
        assert await overrun == "overrun", "a thread's call cannot be stopped; it finishes"
        await eventually(lambda: manager.stats()["leased"] == 0, what="pool revoked")


async def test_steady_calls_reuse_the_same_threads() -> None:
    async with started_manager(
        max_pools=4, min_pools=1, workers_per_pool=1, idle_pool_seconds=10.0
    ) as manager:
        names = set()
        for _ in range(200):
            names.update(await asyncio.gather(*(manager.run(thread_name) for _ in range(3))))
        assert len(names) <= 3, names
        assert manager.total_count <= 3


async def test_slot_records_are_logged_at_debug(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger=MANAGER_LOGGER)
    async with started_manager() as manager:
        await manager.run(int, "3", owner="handler")
    records = messages(caplog, logging.DEBUG)
    assert any(m.startswith("Leased executor slot backend=thread") for m in records)
    assert any(
        m.startswith("Finished executor slot lease_id=") and m.endswith("owner=handler")
        for m in records
    )


async def test_process_backend_runs_calls_in_worker_processes() -> None:
    import os

    manager = LeasedExecutorManager(backend="process", max_pools=1, workers_per_pool=2)
    await manager.start()
    try:
        pids = await asyncio.gather(*(manager.run(os.getpid) for _ in range(4)))
        assert os.getpid() not in pids
        assert await manager.run(divmod, 17, 5) == (3, 2)
    finally:
        await manager.stop()


async def test_process_backend_revokes_an_overrunning_call_and_kills_its_worker(
    advance_clock: Callable[[float], None], tmp_path: Any
) -> None:
    import _proc_funcs as f

    from leasepool import LeaseExpiredError

    manager = LeasedExecutorManager(
        backend="process", max_pools=1, workers_per_pool=1, lease_grace_seconds=1
    )
    await manager.start()
    try:
        marker = tmp_path / "started"
        overrun = manager.run(f.mark_then_sleep, str(marker), 600.0, lease_seconds=1)
        await eventually(marker.exists, what="the call started in its worker")
        pid = int(marker.read_text())
        advance_clock(10)
        manager.notify_scale_changed()
        with pytest.raises(LeaseExpiredError, match="expired and was revoked"):
            await overrun
        await eventually(lambda: f.process_gone(pid), what="the worker was terminated")
        assert await manager.run(f.add, 2, 2) == 4, "a fresh pool serves the next call"
    finally:
        await manager.stop()
