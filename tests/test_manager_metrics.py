"""manager.metrics(), manager.leases() and the leak report, through the public API.

Times are driven through the engine's clock seam (``advance_clock``); assertions on
durations are lower bounds only (a bucket below the skew must stay empty).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import threading
from collections.abc import Callable

import _proc_funcs as f
import pytest
from _support import MANAGER_LOGGER, ThreadSignal, blocked_until, eventually, messages
from _support import started_manager as started

from leasepool import (
    LeaseAcquireTimeoutError,
    LeasedExecutorManager,
    LeaseQueueFullError,
    LeaseUnavailableError,
)
from leasepool.metrics import HistogramSnapshot, ManagerMetrics


def below(histogram: HistogramSnapshot, seconds: float) -> int:
    """Observations in the buckets whose bound is below ``seconds``."""
    return sum(
        n for bound, n in zip(histogram.bounds, histogram.counts, strict=False) if bound < seconds
    )


def lease_balance(m: ManagerMetrics) -> None:
    """Every lease granted is live or ended exactly one way."""
    ended = m.leases_released + m.leases_revoked + m.leases_stopped
    assert m.leases_granted == ended + m.leases_live


async def test_counts_grants_releases_calls_and_refusals() -> None:
    async with started(max_pools=1, max_waiters=1) as manager:
        lease = await manager.acquire(owner="a")
        assert await lease.run(sum, [1, 2]) == 3
        with pytest.raises(ZeroDivisionError):
            await lease.run(divmod, 1, 0)
        with pytest.raises(LeaseUnavailableError):
            await manager.acquire(wait=False)
        with pytest.raises(LeaseAcquireTimeoutError):
            await manager.acquire(timeout=0.01)
        waiter = asyncio.ensure_future(manager.acquire())
        await eventually(lambda: manager.metrics().waiters == 1, what="queued")
        with pytest.raises(LeaseQueueFullError):
            await manager.acquire()
        await manager.release(lease.lease_id)
        second = await waiter
        m = manager.metrics()
        assert (m.leases_granted, m.leases_released, m.leases_live) == (2, 1, 1)
        assert (m.calls_started, m.calls_finished, m.calls_failed) == (2, 1, 1)
        assert (m.rejected_unavailable, m.rejected_queue_full) == (1, 1)
        assert m.acquire_timeouts == 1
        assert m.acquire_wait.count == 2 and m.lease_hold.count == 1
        assert m.call_run.count == 2 and m.call_queue.count == 2
        assert (m.pools_total, m.pools_leased, m.pools_created) == (1, 1, 1)
        assert (m.name, m.backend) == (manager.metrics().name, "thread")
        lease_balance(m)
        await manager.release(second.lease_id)
    stopped = manager.metrics()
    assert stopped.pools_retired == stopped.pools_created == 1
    lease_balance(stopped)


async def test_wait_and_hold_times_follow_the_engine_clock(
    advance_clock: Callable[[float], None],
) -> None:
    async with started(max_pools=1) as manager:
        first = await manager.acquire()
        waiter = asyncio.ensure_future(manager.acquire())
        await eventually(lambda: manager.metrics().waiters == 1, what="queued")
        advance_clock(3.0)
        await manager.release(first.lease_id)
        second = await waiter
        m = manager.metrics()
        # Granted at once (0) and after >= 3 s of waiting; held >= 3 s.
        assert m.acquire_wait.counts[0] == 1 and m.acquire_wait.count == 2
        assert below(m.acquire_wait, 2.5) == 1, m.acquire_wait
        assert m.acquire_wait.sum >= 3.0
        assert m.lease_hold.count == 1 and below(m.lease_hold, 2.5) == 0
        await manager.release(second.lease_id)


async def test_cancelled_calls_are_counted() -> None:
    gate = threading.Event()
    async with started(max_pools=1, workers_per_pool=1) as manager:
        lease = await manager.acquire()
        signal = ThreadSignal()
        running = asyncio.ensure_future(lease.run(blocked_until(gate, signal)))
        await signal.wait()
        queued = asyncio.ensure_future(lease.run(int))
        await asyncio.sleep(0)
        queued.cancel()
        gate.set()
        assert await running == "finished"
        with pytest.raises(asyncio.CancelledError):
            await queued
        await lease.run(int)  # the worker has passed the cancelled call
        m = manager.metrics()
        assert (m.calls_started, m.calls_finished, m.calls_cancelled) == (2, 2, 1)
        await manager.release(lease.lease_id)


async def test_stop_and_drain_count_what_they_end() -> None:
    manager = LeasedExecutorManager(max_pools=1, idle_pool_seconds=0)
    await manager.start()
    await manager.acquire()
    waiter = asyncio.ensure_future(manager.acquire())
    await eventually(lambda: manager.metrics().waiters == 1, what="queued")
    await manager.stop()
    with pytest.raises(Exception):  # noqa: B017 - 0.1.3's not-started error
        await waiter
    m = manager.metrics()
    assert (m.leases_stopped, m.rejected_draining, m.leases_live) == (1, 1, 0)
    lease_balance(m)


async def test_per_owner_breakdown_is_bounded() -> None:
    async with started(max_pools=3, metrics_owners=1) as manager:
        a = await manager.acquire(owner="tenant-a")
        b = await manager.acquire(owner="tenant-b")
        anon = await manager.acquire()
        with pytest.raises(LeaseUnavailableError):
            await manager.acquire(owner="tenant-a", wait=False)
        await manager.release(b.lease_id)
        owners = manager.metrics().owners
        assert set(owners) == {"tenant-a", "__other__", "__anonymous__"}
        assert (owners["tenant-a"].leases_granted, owners["tenant-a"].leases_held) == (1, 1)
        assert owners["tenant-a"].leases_rejected == 1
        assert (owners["__other__"].leases_granted, owners["__other__"].leases_held) == (1, 0)
        assert owners["__anonymous__"].leases_held == 1
        for lease in (a, anon):
            await manager.release(lease.lease_id)
    async with started() as plain:
        await (await plain.acquire(owner="x")).release()
        assert plain.metrics().owners == {}


async def test_metrics_off_reports_zeros() -> None:
    async with started(metrics=False) as manager:
        lease = await manager.acquire()
        await lease.run(int)
        m = manager.metrics()
        assert (m.leases_granted, m.calls_started, m.acquire_wait.count) == (0, 0, 0)
        assert m.leases_live == 1, "gauges are the state, kept either way"
        await lease.release()


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"metrics": 1}, TypeError, "metrics must be a bool"),
        ({"track_acquire_site": "yes"}, TypeError, "track_acquire_site must be a bool"),
        ({"metrics_owners": -1}, ValueError, "metrics_owners must be None or an integer >= 0"),
        ({"metrics_owners": True}, ValueError, "metrics_owners must be None or an integer"),
        ({"metrics_owners": 4, "metrics": False}, ValueError, "metrics_owners needs metrics"),
    ],
)
def test_bad_observability_arguments(
    kwargs: dict[str, object], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        LeasedExecutorManager(max_pools=1, **kwargs)  # type: ignore[arg-type]


async def test_leases_lists_live_leases_with_their_acquire_site() -> None:
    gate = threading.Event()
    async with started(max_pools=2, track_acquire_site=True) as manager:
        line = inspect.currentframe().f_lineno + 1  # type: ignore[union-attr]
        lease = await manager.acquire(owner="job-7", lease_seconds=60)
        signal = ThreadSignal()
        call = asyncio.ensure_future(manager.run(blocked_until(gate, signal), owner="req"))
        await signal.wait()
        pool, slot = manager.leases()
        assert (pool.lease_id, pool.owner, pool.kind) == (lease.lease_id, "job-7", "pool")
        assert pool.acquire_site == f"{__file__}:{line}"
        assert 0 < pool.seconds_until_soft_expiry <= 60
        assert pool.seconds_until_hard_expiry > pool.seconds_until_soft_expiry
        assert not pool.overdue and not pool.draining and pool.calls_in_flight == 0
        assert (slot.kind, slot.owner, slot.calls_in_flight) == ("call", "req", 1)
        assert slot.acquire_site is not None and slot.acquire_site.startswith(__file__)
        gate.set()
        await call
        await lease.release()
        assert manager.leases() == []
    async with started() as untracked:
        lease = await untracked.acquire()
        assert untracked.leases()[0].acquire_site is None
        await lease.release()


async def test_leak_report_warns_once_per_overdue_lease(
    caplog: pytest.LogCaptureFixture, advance_clock: Callable[[float], None]
) -> None:
    caplog.set_level(logging.WARNING, logger=MANAGER_LOGGER)
    async with started(max_pools=2, track_acquire_site=True) as manager:
        line = inspect.currentframe().f_lineno + 1  # type: ignore[union-attr]
        leaky = await manager.acquire(owner="leaky", lease_seconds=5)
        fine = await manager.acquire(owner="fine", lease_seconds=60)
        advance_clock(6.0)
        manager.notify_scale_changed()  # rings the checker: it runs the periodic check
        await eventually(lambda: manager.metrics().leases_overdue == 1, what="leak report")
        manager.notify_scale_changed()
        await eventually(lambda: manager.leases()[0].overdue, what="overdue flag")
        (warning,) = messages(caplog, logging.WARNING)
        assert warning.startswith(
            f"Executor lease held past its soft expiry lease_id={leaky.lease_id} "
            "owner=leaky kind=pool age="
        )
        assert warning.endswith(f"acquired_at={__file__}:{line}")
        assert [info.overdue for info in manager.leases()] == [True, False]
        assert manager.metrics().leases_overdue == 1, "reported once"
        for lease in (leaky, fine):
            await lease.release()


async def test_process_backend_counts_calls_and_crashes() -> None:
    async with started(max_pools=1, backend="process", workers_per_pool=1) as manager:
        lease = await manager.acquire()
        assert await lease.run(f.add, 1, 2) == 3
        with pytest.raises(ValueError, match="boom"):
            await lease.run(f.fail, "boom")
        with pytest.raises(Exception, match="exit code 3"):
            await lease.run(f.crash_exit, 3)
        assert await lease.run(f.add, 2, 2) == 4, "the pool recovers"
        m = manager.metrics()
        assert (m.calls_started, m.calls_finished, m.calls_failed) == (4, 2, 2)
        assert m.worker_crashes == 1
        assert m.call_run.count == 3, "the crashed call has no run time"
        await lease.release()
