"""Lease and executor lifecycle (0.1.3 parity): draining, expired releases, broken
pools, and pool shutdowns that start on a worker's own thread."""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import threading
import time
from concurrent.futures import BrokenExecutor

import _proc_funcs as f
import pytest
from _support import (
    MANAGER_LOGGER,
    ThreadSignal,
    blocked_until,
    eventually,
    messages,
    prefix_threads_alive,
    started_manager,
    unique_prefix,
)

from leasepool import LeasedExecutorManager, LeaseExpiredError


async def test_released_lease_drains_before_its_pool_moves_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A lease released with calls in flight keeps its pool until they finish: the
    next caller waits, and never shares the pool's workers with them."""
    caplog.set_level(logging.INFO, logger=MANAGER_LOGGER)
    async with started_manager(max_pools=1, workers_per_pool=1) as manager:
        lease = await manager.acquire(owner="first")
        gate, started = threading.Event(), ThreadSignal()
        running = lease.executor.submit(blocked_until(gate, started))
        await started.wait()
        await lease.release()

        assert manager.leased_count == 1, "a draining lease still holds its pool"
        assert [entry["owner"] for entry in manager.stats()["leases"]] == ["first"]
        with pytest.raises(LeaseExpiredError, match="^Executor lease has been released$"):
            lease.executor.submit(len, "x")
        with pytest.raises(LeaseExpiredError, match="^Executor lease has been released$"):
            await lease.run(len, "x")

        nxt = asyncio.ensure_future(manager.acquire(owner="second"))
        await asyncio.sleep(0)  # one loop turn: a free pool would be granted by now
        assert not nxt.done(), "the pool moved on while a call of the old lease ran"

        gate.set()
        second = await asyncio.wait_for(nxt, 30)
        assert running.done() and running.result() == "finished"
        with pytest.raises(LeaseExpiredError, match="^Executor lease is no longer active$"):
            await lease.run(len, "x")
        assert await second.run(len, "abc") == 3
        await second.release()

    infos = messages(caplog, logging.INFO)
    assert (
        f"Released executor lease_id={lease.lease_id} owner=first pending=1 draining=True" in infos
    )
    finalized = f"Finalized released executor lease_id={lease.lease_id} owner=first kept=True"
    assert infos.index(finalized) < infos.index(
        f"Leased executor backend=thread lease_id={second.lease_id} owner=second "
        "seconds=300.0 grace=15.0"
    )


async def test_release_without_calls_in_flight_hands_over_at_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger=MANAGER_LOGGER)
    async with started_manager(max_pools=1) as manager:
        lease = await manager.acquire(owner="quick")
        assert await lease.run(len, "ab") == 2
        nxt = asyncio.ensure_future(manager.acquire(owner="next"))
        await asyncio.sleep(0)
        await lease.release()
        assert nxt.done(), "nothing in flight: the waiter is served by the release itself"
        await (await nxt).release()
    assert not [m for m in messages(caplog, logging.INFO) if "draining" in m]


async def test_draining_lease_is_still_revoked_at_its_hard_expiry(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger=MANAGER_LOGGER)
    gate = threading.Event()
    async with started_manager(
        max_pools=1, workers_per_pool=1, check_interval=0.02, lease_grace_seconds=0.01
    ) as manager:
        lease = await manager.acquire(owner="stuck", lease_seconds=0.05)
        started = ThreadSignal()
        lease.executor.submit(blocked_until(gate, started))
        await started.wait()
        await lease.release()
        assert manager.leased_count == 1
        await eventually(lambda: manager.leased_count == 0, what="revocation")
        gate.set()
        assert (
            f"Revoking expired executor lease_id={lease.lease_id} owner=stuck "
            "lease_seconds=0.05 grace=0.01"
        ) in messages(caplog, logging.WARNING)
        async with await manager.acquire(timeout=30) as fresh:
            assert await fresh.run(len, "abcd") == 4


async def test_release_after_hard_expiry_never_returns_the_pool(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The release wins the race against the expiry scan: still, an expired lease's
    pool is not kept (0.1.3 finalizes it with kept=False)."""
    caplog.set_level(logging.INFO, logger=MANAGER_LOGGER)
    prefix = unique_prefix("expired")
    async with started_manager(
        max_pools=2, min_pools=1, lease_grace_seconds=0.0, check_interval=120, name_prefix=prefix
    ) as manager:
        lease = await manager.acquire(owner="late", lease_seconds=0.01)
        assert (await lease.run(threading.current_thread)).name.startswith(f"{prefix}-1_")
        # Hold the loop thread until the lease is past its hard expiry, so the scan
        # (which runs on this thread) cannot revoke it first.
        while time.monotonic() < lease.hard_expires_at:
            pass
        await lease.release()
        infos = messages(caplog, logging.INFO)
        assert (
            f"Finalized released executor lease_id={lease.lease_id} owner=late kept=False" in infos
        )
        assert manager.leased_count == 0
        assert manager.total_count == 1, "min_pools is restored with a fresh pool"
        async with await manager.acquire() as fresh:
            fresh_thread = await fresh.run(threading.current_thread)
            assert fresh_thread.name.startswith(f"{prefix}-2_"), "a new pool, not the expired one"


async def test_thread_pool_with_a_failing_initializer_is_retired(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """0.1.3 retires an executor on the first call that reports it broken: the lease
    ends with it, and the next lease gets a new pool, not the broken one."""
    caplog.set_level(logging.WARNING, logger=MANAGER_LOGGER)
    attempts: list[str] = []

    def initializer() -> None:
        attempts.append(threading.current_thread().name)
        if len(attempts) == 1:
            raise RuntimeError("first initializer fails")

    prefix = unique_prefix("broken")
    async with started_manager(
        max_pools=1, workers_per_pool=1, name_prefix=prefix, initializer=initializer
    ) as manager:
        lease = await manager.acquire(owner="unlucky")
        with pytest.raises(BrokenExecutor, match="initializer failed"):
            await lease.run(len, "x")
        with pytest.raises(LeaseExpiredError, match="^Executor lease is no longer active$"):
            await lease.run(len, "x")
        assert (manager.leased_count, manager.total_count) == (0, 1)
        await lease.release()  # a no-op now
        async with await manager.acquire() as fresh:
            assert await fresh.run(len, "abc") == 3
        assert attempts[0].startswith(f"{prefix}-1_")
        assert attempts[1].startswith(f"{prefix}-2_"), "a new pool, not the broken one"
    warnings = messages(caplog, logging.WARNING)
    assert len(warnings) == 1
    assert warnings[0].startswith(
        f"Retiring broken executor lease_id={lease.lease_id} owner=unlucky "
        "exc_type=BrokenThreadPool exc=BrokenThreadPool("
    )


async def test_pool_retired_by_a_drain_shuts_down_from_its_own_worker_thread() -> None:
    """The drain finishes on the worker that ran the last call, and the pool it frees
    is above target, so that worker shuts its own pool down: it must not wait for
    itself (0.1.3 defers such shutdowns; here shutdown never joins)."""
    prefix = unique_prefix("selfstop")
    async with started_manager(
        max_pools=2, min_pools=1, workers_per_pool=2, name_prefix=prefix
    ) as manager:
        first = await manager.acquire()
        second = await manager.acquire()
        gate, started = threading.Event(), ThreadSignal()
        running = second.executor.submit(blocked_until(gate, started))
        done_on: list[str] = []
        running.add_done_callback(lambda _: done_on.append(threading.current_thread().name))
        await started.wait()
        await second.release()
        assert manager.total_count == 2
        gate.set()
        await eventually(lambda: manager.total_count == 1, what="retirement")
        assert done_on and done_on[0].startswith(f"{prefix}-2_")
        await eventually(
            lambda: not prefix_threads_alive(f"{prefix}-2_"), what="retired pool's workers exit"
        )
        await first.release()
        async with await manager.acquire() as fresh:
            assert await fresh.run(len, "ok") == 2


def test_process_lease_drains_before_its_pool_moves_on() -> None:
    async def main() -> None:
        with multiprocessing.get_context("spawn").Manager() as sync:
            started, release = sync.Event(), sync.Event()
            manager = LeasedExecutorManager(backend="process", max_pools=1, workers_per_pool=1)
            await manager.start()
            try:
                lease = await manager.acquire(owner="proc")
                running = lease.executor.submit(f.started_then_wait, started, release, "done")
                assert await asyncio.to_thread(started.wait, 60)
                await lease.release()
                nxt = asyncio.ensure_future(manager.acquire())
                await asyncio.sleep(0)
                assert not nxt.done()
                release.set()
                second = await asyncio.wait_for(nxt, 60)
                assert running.result(timeout=0) == "done"
                assert await second.run(f.add, 2, 3) == 5
                await second.release()
            finally:
                await manager.stop()

    asyncio.run(main())


def test_process_pool_retired_by_a_drain_leaves_no_worker_behind() -> None:
    """The drain finishes on a thread of the process backend, which then shuts the
    (above-target) pool down: no deadlock, and its workers exit."""

    async def main() -> None:
        manager = LeasedExecutorManager(
            backend="process", max_pools=2, min_pools=1, workers_per_pool=1, idle_pool_seconds=0
        )
        await manager.start()
        try:
            first = await manager.acquire()
            second = await manager.acquire()
            pid = await second.run(f.getpid)
            slow = second.run(f.pid_after, 0.2)
            await second.release()
            assert await slow == pid
            await eventually(lambda: manager.total_count == 1, what="retirement")
            await eventually(lambda: f.process_gone(pid), what="worker exit")
            await first.release()
        finally:
            await manager.stop()

    asyncio.run(main())
