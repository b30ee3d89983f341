"""``lease.executor``: a concurrent.futures.Executor that cannot outlive its lease."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time

import pytest
from _support import ThreadSignal, blocked_until, started_manager

from leasepool import LeaseExpiredError

NO_SHUTDOWN = (
    "Do not shut down a leased executor directly. Return the lease with `await lease.release()`."
)


async def test_executor_is_a_stdlib_executor() -> None:
    """The proxy is an Executor; submit() returns a real concurrent.futures.Future."""
    async with started_manager() as manager, await manager.acquire() as lease:
        executor = lease.executor
        assert isinstance(executor, concurrent.futures.Executor)
        future = executor.submit(pow, 3, 4)
        assert isinstance(future, concurrent.futures.Future)
        assert await asyncio.wrap_future(future) == 81
        assert future.result(0) == 81


async def test_submit_passes_kwargs() -> None:
    """submit(fn, *args, **kwargs) forwards keyword arguments."""
    async with started_manager() as manager, await manager.acquire() as lease:
        future = lease.executor.submit(int, "101", base=2)
        assert await asyncio.wrap_future(future) == 5


async def test_run_in_executor_accepts_the_proxy() -> None:
    """loop.run_in_executor(lease.executor, fn, *args) works."""
    async with started_manager() as manager, await manager.acquire() as lease:
        loop = asyncio.get_running_loop()
        assert await loop.run_in_executor(lease.executor, max, 4, 9) == 9


async def test_executor_map() -> None:
    """Executor.map over the proxy yields results in order."""
    async with started_manager(workers_per_pool=2) as manager, await manager.acquire() as lease:
        results = await asyncio.to_thread(lambda: list(lease.executor.map(abs, [-1, 2, -3])))
        assert results == [1, 2, 3]


async def test_submitted_exception_is_stored_in_future() -> None:
    """An exception raised by submitted work is available from the future."""
    async with started_manager() as manager, await manager.acquire() as lease:
        future = lease.executor.submit(int, "not a number")
        with pytest.raises(ValueError, match="invalid literal"):
            await asyncio.wrap_future(future)


async def test_shutdown_is_refused() -> None:
    """shutdown() raises RuntimeError and the pool keeps working."""
    async with started_manager() as manager, await manager.acquire() as lease:
        with pytest.raises(RuntimeError) as info:
            lease.executor.shutdown()
        assert str(info.value) == NO_SHUTDOWN
        with pytest.raises(RuntimeError):
            lease.executor.shutdown(wait=False, cancel_futures=True)
        assert await lease.run(len, "still alive") == 11


async def test_with_block_on_proxy_is_refused() -> None:
    """Using the proxy as a context manager would shut it down on exit: refused."""
    async with started_manager() as manager, await manager.acquire() as lease:
        with pytest.raises(RuntimeError) as info, lease.executor:
            pass
        assert str(info.value) == NO_SHUTDOWN
        assert await lease.run(len, "ok") == 2


async def test_submit_after_release() -> None:
    """After release, submit() raises LeaseExpiredError synchronously."""
    async with started_manager() as manager:
        lease = await manager.acquire()
        executor = lease.executor
        await lease.release()
        with pytest.raises(LeaseExpiredError) as info:
            executor.submit(len, "x")
        assert str(info.value) == "Executor lease is no longer active"


async def test_submit_after_hard_expiry_revokes() -> None:
    """submit() past the hard expiry revokes the lease and raises LeaseExpiredError.

    The loop is held (no await) from expiry to submit, so the background checker
    cannot revoke first; the submit itself must notice.
    """
    async with started_manager(lease_grace_seconds=0.02) as manager:
        lease = await manager.acquire(owner="late", lease_seconds=0.02)
        time.sleep(0.06)  # noqa: ASYNC251  (time passing is the behaviour under test)
        with pytest.raises(LeaseExpiredError) as info:
            lease.executor.submit(len, "x")
        assert str(info.value) == "Executor lease expired and was revoked"
        assert manager.leased_count == 0
        assert manager.stats()["leases"] == []
        with pytest.raises(LeaseExpiredError) as info:
            lease.executor.submit(len, "x")
        assert str(info.value) == "Executor lease is no longer active"


async def test_submit_during_grace_period_still_works() -> None:
    """Past the soft expiry but inside the grace period, submissions are accepted."""
    async with started_manager(lease_grace_seconds=30.0) as manager:
        lease = await manager.acquire(lease_seconds=0.01)
        time.sleep(0.03)  # noqa: ASYNC251  (time passing is the behaviour under test)
        assert await asyncio.wrap_future(lease.executor.submit(len, "abc")) == 3
        assert manager.leased_count == 1
        await lease.release()


async def test_work_submitted_before_release_finishes() -> None:
    """Work submitted before release completes normally after the release."""
    async with started_manager() as manager:
        lease = await manager.acquire()
        gate = threading.Event()
        started = ThreadSignal()
        try:
            future = lease.executor.submit(blocked_until(gate, started))
            await started.wait()
            await lease.release()
            gate.set()
            assert await asyncio.wait_for(asyncio.wrap_future(future), 5) == "finished"
        finally:
            gate.set()


async def test_revoked_lease_run_raises_at_await() -> None:
    """lease.run() on an expired lease raises LeaseExpiredError at the await."""
    async with started_manager(lease_grace_seconds=0.01) as manager:
        lease = await manager.acquire(lease_seconds=0.01)
        time.sleep(0.04)  # noqa: ASYNC251  (time passing is the behaviour under test)
        pending = lease.run(len, "x")
        with pytest.raises(LeaseExpiredError):
            await pending
        assert manager.leased_count == 0
