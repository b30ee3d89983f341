"""``await lease.run(fn, *args, **kwargs)``: results, errors, composition, threads."""

from __future__ import annotations

import asyncio
import contextvars
import threading
import traceback

import pytest
from _support import ThreadSignal, blocked_until, started_manager

from leasepool import LeaseExpiredError

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="unset")


class CustomError(Exception):
    pass


def explode_in_worker(value: int) -> int:
    raise CustomError(f"bad value {value}")


def keyword_only_fn(*, fn: int, other: str = "x") -> str:
    return f"{fn}-{other}"


async def test_run_returns_result_with_args_and_kwargs() -> None:
    """Positional and keyword arguments reach the function; its value is returned."""
    async with started_manager() as manager, await manager.acquire() as lease:
        assert await lease.run(divmod, 17, 5) == (3, 2)
        assert await lease.run(int, "ff", base=16) == 255
        assert await lease.run(sorted, [3, 1, 2], reverse=True) == [3, 2, 1]


async def test_fn_is_positional_only() -> None:
    """``fn`` is positional-only, so a keyword named ``fn`` is passed through."""
    async with started_manager() as manager, await manager.acquire() as lease:
        assert await lease.run(keyword_only_fn, fn=7, other="y") == "7-y"


async def test_run_under_gather() -> None:
    """Many runs combined with asyncio.gather keep their order."""
    async with started_manager(workers_per_pool=4) as manager, await manager.acquire() as lease:
        results = await asyncio.gather(*(lease.run(pow, i, 2) for i in range(50)))
        assert results == [i * i for i in range(50)]


async def test_run_under_wait_for_and_create_task() -> None:
    """run() awaitables work with wait_for, create_task and ensure_future."""
    async with started_manager() as manager, await manager.acquire() as lease:
        assert await asyncio.wait_for(lease.run(len, "abcd"), 5) == 4
        task = asyncio.create_task(lease.run(str.upper, "abc"))
        assert await task == "ABC"
        fut = asyncio.ensure_future(lease.run(abs, -9))
        assert await fut == 9


async def test_run_under_task_group() -> None:
    """run() awaitables work with TaskGroup.create_task."""
    async with started_manager() as manager, await manager.acquire() as lease:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(lease.run(hex, i)) for i in range(10)]
        assert [t.result() for t in tasks] == [hex(i) for i in range(10)]


async def test_exception_type_and_traceback_preserved() -> None:
    """The function's exception is raised at the await with its own frame in the traceback."""
    async with started_manager() as manager, await manager.acquire() as lease:
        with pytest.raises(CustomError, match="bad value 3") as info:
            await lease.run(explode_in_worker, 3)
        frames = [frame.name for frame in traceback.extract_tb(info.value.__traceback__)]
        assert "explode_in_worker" in frames
        assert manager.leased_count == 1
        assert await lease.run(max, 1, 2) == 2


async def test_error_surfaces_at_await_after_release() -> None:
    """run() on a released lease does not raise at the call, only at the await."""
    async with started_manager() as manager:
        lease = await manager.acquire()
        await lease.release()
        pending = lease.run(len, "abc")
        with pytest.raises(LeaseExpiredError) as info:
            await pending
        assert str(info.value) == "Executor lease is no longer active"


async def test_error_surfaces_at_await_under_gather() -> None:
    """A failing run inside gather(return_exceptions=True) is reported as its result."""
    async with started_manager() as manager:
        lease = await manager.acquire()
        await lease.release()
        outcomes = await asyncio.gather(lease.run(len, "abc"), return_exceptions=True)
        assert len(outcomes) == 1
        assert isinstance(outcomes[0], LeaseExpiredError)


async def test_thread_name_uses_prefix_and_sequence() -> None:
    """Work runs in threads named ``{name_prefix}-{seq}_{i}``; the first pool is seq 1."""
    async with started_manager(name_prefix="named-pool", workers_per_pool=2) as manager:
        async with await manager.acquire() as lease:
            name = await lease.run(lambda: threading.current_thread().name)
        assert name.startswith("named-pool-1_")
        assert name.removeprefix("named-pool-1_") in {"0", "1"}
        assert name != threading.current_thread().name


async def test_work_runs_off_the_event_loop_thread() -> None:
    """The callable runs in a worker thread, not in the loop's thread."""
    async with started_manager() as manager, await manager.acquire() as lease:
        ident = await lease.run(threading.get_ident)
        assert ident != threading.get_ident()


async def test_workers_run_concurrently() -> None:
    """workers_per_pool calls of one lease run at the same time."""
    async with started_manager(workers_per_pool=3) as manager, await manager.acquire() as lease:
        barrier = threading.Barrier(3, timeout=5)
        results = await asyncio.gather(*(lease.run(barrier.wait) for _ in range(3)))
        assert sorted(results) == [0, 1, 2]


async def test_running_call_finishes_after_release() -> None:
    """A call already running completes normally even if the lease is released meanwhile."""
    async with started_manager() as manager:
        lease = await manager.acquire()
        gate = threading.Event()
        started = ThreadSignal()
        try:
            call = asyncio.ensure_future(lease.run(blocked_until(gate, started)))
            await started.wait()
            await lease.release()
            gate.set()
            assert await asyncio.wait_for(call, 5) == "finished"
        finally:
            gate.set()


@pytest.mark.beyond_reference
async def test_contextvars_are_visible_in_the_call() -> None:
    """The caller's contextvars are copied into the worker call (like asyncio.to_thread)."""
    async with started_manager() as manager, await manager.acquire() as lease:
        token = request_id.set("req-42")
        try:
            assert await lease.run(request_id.get) == "req-42"
        finally:
            request_id.reset(token)
        assert await lease.run(request_id.get) == "unset"


@pytest.mark.beyond_reference
async def test_context_changes_in_worker_do_not_leak_back() -> None:
    """A contextvar set inside the call does not change the caller's context."""
    async with started_manager() as manager, await manager.acquire() as lease:
        await lease.run(request_id.set, "inside")
        assert request_id.get() == "unset"


@pytest.mark.beyond_reference
async def test_cancelled_queued_call_never_runs() -> None:
    """A call queued behind a busy worker whose awaiting task is cancelled never runs."""
    async with started_manager(workers_per_pool=1) as manager:
        lease = await manager.acquire()
        gate = threading.Event()
        started = ThreadSignal()
        ran: list[str] = []
        try:
            busy = asyncio.ensure_future(lease.run(blocked_until(gate, started)))
            await started.wait()
            queued = asyncio.create_task(lease.run(ran.append, "queued"))
            await asyncio.sleep(0)
            queued.cancel()
            with pytest.raises(asyncio.CancelledError):
                await queued
            gate.set()
            assert await asyncio.wait_for(busy, 5) == "finished"
            # The single worker is FIFO: once a later call ran, the cancelled one
            # would have run before it.
            await lease.run(ran.append, "later")
            assert ran == ["later"]
        finally:
            gate.set()
            await lease.release()
