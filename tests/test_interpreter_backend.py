"""Interpreter backend: sub-interpreters on 3.14+, UnsupportedBackendError before."""

from __future__ import annotations

import asyncio
import concurrent.futures
import sys
import threading
from collections.abc import AsyncIterator
from concurrent.futures.thread import BrokenThreadPool
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import _interp_funcs as f
import pytest

from leasepool import LeasedExecutorManager, LeaseExpiredError, UnsupportedBackendError

needs_314 = pytest.mark.skipif(
    sys.version_info < (3, 14), reason="InterpreterPoolExecutor is new in Python 3.14"
)


@asynccontextmanager
async def interpreter_manager(**kwargs: Any) -> AsyncIterator[LeasedExecutorManager]:
    kwargs.setdefault("max_pools", 1)
    kwargs.setdefault("workers_per_pool", 2)
    manager = LeasedExecutorManager(backend="interpreter", **kwargs)
    await manager.start()
    try:
        yield manager
    finally:
        await manager.stop()


@pytest.mark.skipif(sys.version_info >= (3, 14), reason="the backend exists on 3.14+")
def test_before_314_start_raises_unsupported_backend() -> None:
    async def main() -> None:
        manager = LeasedExecutorManager(backend="interpreter", max_pools=1)
        with pytest.raises(
            UnsupportedBackendError,
            match=r"InterpreterPoolExecutor is available only on Python 3\.14\+\.",
        ):
            await manager.start()
        assert manager.total_count == 0

    asyncio.run(main())


@needs_314
def test_calls_run_in_subinterpreters() -> None:
    async def main() -> None:
        async with interpreter_manager() as manager, await manager.acquire() as lease:
            assert await lease.run(f.add, 2, 3) == 5
            assert await lease.run(f.interpreter_id) != 0, "not the main interpreter"
            results = await asyncio.gather(*(lease.run(f.add, i, 1) for i in range(200)))
            assert results == [i + 1 for i in range(200)]
            future = lease.executor.submit(f.add, 4, 5)
            assert isinstance(future, concurrent.futures.Future)
            assert await asyncio.wrap_future(future) == 9
            loop = asyncio.get_running_loop()
            assert await loop.run_in_executor(lease.executor, f.add, 6, 7) == 13

    asyncio.run(main())


@needs_314
def test_exceptions_and_unshareable_calls_fail_their_own_await() -> None:
    async def main() -> None:
        async with interpreter_manager() as manager, await manager.acquire() as lease:
            with pytest.raises(ValueError, match="bad"):
                await lease.run(f.fail, "bad")
            with pytest.raises(Exception):  # noqa: B017 - the exact type is the stdlib's
                await lease.run(f.add, threading.Lock(), 1)  # type: ignore[arg-type]
            assert await lease.run(f.add, 1, 1) == 2

    asyncio.run(main())


@needs_314
def test_initializer_and_thread_names() -> None:
    # The initializer runs in each sub-interpreter. It must be importable there:
    # sub-interpreters do not see sys.path entries added at run time (pytest's test
    # directory), so this uses the stdlib. The recursion limit is per interpreter.
    async def main() -> None:
        async with (
            interpreter_manager(
                initializer=sys.setrecursionlimit, initargs=(4321,), name_prefix="lpinterp"
            ) as manager,
            await manager.acquire() as lease,
        ):
            seen = await asyncio.gather(*(lease.run(sys.getrecursionlimit) for _ in range(10)))
            assert set(seen) == {4321}
            assert sys.getrecursionlimit() != 4321
            names = [t.name for t in threading.enumerate()]
            assert any(name.startswith("lpinterp-") for name in names), names

    asyncio.run(main())


@needs_314
def test_failing_initializer_breaks_the_pool() -> None:
    async def main() -> None:
        async with (
            interpreter_manager(
                initializer=int, initargs=("not a number",), workers_per_pool=1
            ) as manager,
            await manager.acquire() as lease,
        ):
            with pytest.raises(BrokenThreadPool):
                await lease.run(f.add, 1, 2)
            # As in 0.1.3: the first call that reports the pool broken retires it with
            # its lease; the next lease gets a new pool (which breaks the same way).
            with pytest.raises(LeaseExpiredError, match="no longer active"):
                await lease.run(f.add, 1, 2)
            assert manager.leased_count == 0
            async with await manager.acquire() as fresh:
                with pytest.raises(BrokenThreadPool):
                    await fresh.run(f.add, 1, 2)

    asyncio.run(main())


@needs_314
def test_hard_expiry_fails_the_await_of_a_running_call(tmp_path: Path) -> None:
    gate = tmp_path / "gate"

    async def main() -> None:
        async with interpreter_manager(
            workers_per_pool=1, default_lease_seconds=0.2, lease_grace_seconds=0.1
        ) as manager:
            lease = await manager.acquire()
            try:
                with pytest.raises(LeaseExpiredError):
                    # The call cannot end before the gate opens, which happens only after
                    # the await failed: the await does not wait for the running call.
                    # (The bound turns a regression into a TimeoutError, not a hang.)
                    await asyncio.wait_for(lease.run(f.wait_for_path, str(gate), 120.0), 60)
            finally:
                # An interpreter cannot be killed: the call ends on its own, now.
                gate.touch()
            async with await manager.acquire(lease_seconds=10) as fresh:
                assert await fresh.run(f.add, 1, 2) == 3

    asyncio.run(main())


@needs_314
def test_drain_lets_running_calls_finish_then_stops(tmp_path: Path) -> None:
    from leasepool import LeasePoolDrainingError

    async def main() -> None:
        gate = tmp_path / "go"
        manager = LeasedExecutorManager(backend="interpreter", max_pools=1, workers_per_pool=2)
        await manager.start()
        lease = await manager.acquire()
        call = lease.run(f.wait_for_path, str(gate), 60.0)
        waiter = manager.acquire()
        drained = manager.drain(60)
        with pytest.raises(LeasePoolDrainingError):
            await waiter
        gate.touch()
        assert await call is True
        await lease.release()
        report = await drained
        assert (report.finished, report.waiters_failed, report.timed_out) == (1, 1, False)
        assert manager.total_count == 0

    asyncio.run(main())


@needs_314
def test_drain_deadline_abandons_a_running_call(tmp_path: Path) -> None:
    async def main() -> None:
        gate = tmp_path / "go"
        manager = LeasedExecutorManager(backend="interpreter", max_pools=1, workers_per_pool=2)
        await manager.start()
        lease = await manager.acquire()
        call = lease.run(f.wait_for_path, str(gate), 60.0)
        report = await manager.drain(0)
        assert report.timed_out and report.killed == 1, report
        with pytest.raises(Exception):  # noqa: B017 - the abandoned call's await fails
            await call
        gate.touch()  # let the abandoned sub-interpreter thread end

    asyncio.run(main())
