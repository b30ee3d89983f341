"""Admission control through the public API: bounded waiting with ``retry_after``,
per-owner limits, fair share, reserved pools and priorities (docs/admission.md).

Waiters are queued in a known order by giving each task one loop turn
(``sleep(0)``), which is where its acquire registers; hand-offs are observed through
the futures, never through elapsed time.
"""

from __future__ import annotations

import asyncio
import math
import threading
from collections.abc import Callable
from typing import Any

import pytest
from _support import started_manager

from leasepool import (
    ExecutorLease,
    LeaseAcquireTimeoutError,
    LeasedExecutorManager,
    LeaseQueueFullError,
    LeaseUnavailableError,
)

pytestmark = pytest.mark.beyond_reference

OVERTAKE_LIMIT = 8  # the engine's bound on overtakes in a row (docs/admission.md)


async def queued(manager: LeasedExecutorManager, **kwargs: Any) -> asyncio.Task[ExecutorLease]:
    """An acquire task that has registered its place in the queue."""
    task = asyncio.create_task(manager.acquire(**kwargs))
    await asyncio.sleep(0)
    assert not task.done(), "expected to wait"
    return task


async def first_done(tasks: dict[str, asyncio.Task[ExecutorLease]]) -> str:
    """The name of the one task that got the pool just handed off."""
    done, _ = await asyncio.wait(tasks.values(), return_when=asyncio.FIRST_COMPLETED)
    (task,) = done
    return next(name for name, t in tasks.items() if t is task)


def assert_retry_hint(err: LeaseUnavailableError | LeaseAcquireTimeoutError) -> float:
    retry_after = err.retry_after
    assert isinstance(retry_after, float)
    assert math.isfinite(retry_after) and retry_after >= 0.0
    return retry_after


# --- bounded waiting --------------------------------------------------------------


async def test_a_full_queue_sheds_with_queue_full_and_a_retry_hint() -> None:
    async with started_manager(max_waiters=2, default_lease_seconds=30.0) as manager:
        held = await manager.acquire()
        waiting = [await queued(manager), await queued(manager)]
        with pytest.raises(LeaseQueueFullError) as caught:
            await manager.acquire()
        assert isinstance(caught.value, LeaseUnavailableError), "a 503 handler catches it"
        assert "max_waiters=2" in str(caught.value)
        # No lease has ended yet: the 30 s asked for, two ahead, one pool.
        assert assert_retry_hint(caught.value) == pytest.approx(90.0)
        with pytest.raises(LeaseQueueFullError):
            await manager.run(print)
        await held.release()
        lease = await waiting[0]
        await lease.release()
        await (await waiting[1]).release()


async def test_max_waiters_zero_fails_fast_for_everyone() -> None:
    async with started_manager(max_waiters=0) as manager:
        held = await manager.acquire()
        with pytest.raises(LeaseQueueFullError):
            await manager.acquire(timeout=60)
        assert manager.leased_count == 1
        await held.release()


async def test_wait_false_and_timeouts_carry_retry_after_from_observed_holds(
    advance_clock: Callable[[float], None],
) -> None:
    async with started_manager(max_pools=2, min_pools=2) as manager:
        for _ in range(2):
            lease = await manager.acquire()
            advance_clock(4.0)
            await lease.release()
        held = [await manager.acquire(), await manager.acquire()]
        with pytest.raises(LeaseUnavailableError) as caught:
            await manager.acquire(wait=False)
        # Leases were held 4 s (the clock seam; a few real milliseconds on top):
        # one turn of two pools is about 2 s.
        assert assert_retry_hint(caught.value) == pytest.approx(2.0, abs=0.2)
        with pytest.raises(LeaseAcquireTimeoutError) as timed_out:
            await manager.acquire(timeout=0)
        assert assert_retry_hint(timed_out.value) == pytest.approx(2.0, abs=0.2)
        with pytest.raises(LeaseAcquireTimeoutError) as run_timed_out:
            await manager.run(print, timeout=0)
        assert_retry_hint(run_timed_out.value)
        for lease in held:
            await lease.release()


async def test_a_timed_out_waiter_reports_a_retry_hint() -> None:
    async with started_manager() as manager:
        held = await manager.acquire()
        with pytest.raises(LeaseAcquireTimeoutError) as caught:
            await manager.acquire(timeout=0.01)
        assert_retry_hint(caught.value)
        await held.release()


# --- owner limits and fair share ---------------------------------------------------


async def test_an_owner_at_its_limit_waits_while_other_owners_are_served() -> None:
    async with started_manager(max_pools=3, owner_limit=1) as manager:
        a1 = await manager.acquire(owner="a")
        a2 = await queued(manager, owner="a")
        b1 = await manager.acquire(owner="b", wait=False)
        with pytest.raises(LeaseUnavailableError):
            await manager.acquire(owner="a", wait=False)
        anonymous = await manager.acquire(wait=False)  # no limit without an owner
        assert not a2.done()
        await a1.release()
        second = await a2
        assert second.owner == "a"
        for lease in (second, b1, anonymous):
            await lease.release()


async def test_owner_limit_applies_to_one_call_runs() -> None:
    async with started_manager(max_pools=2, workers_per_pool=2, owner_limit=1) as manager:
        loop = asyncio.get_running_loop()
        started, release = asyncio.Event(), threading.Event()

        def block() -> bool:
            loop.call_soon_threadsafe(started.set)
            return release.wait()

        first = asyncio.ensure_future(manager.run(block, owner="a"))
        await started.wait()
        second = asyncio.ensure_future(manager.run(lambda: "a2", owner="a"))
        assert await manager.run(lambda: "b", owner="b") == "b"
        assert not second.done()
        release.set()
        assert await first is True
        assert await second == "a2"


async def test_fair_share_serves_the_quiet_owner_next_despite_a_flood() -> None:
    async with started_manager(fair_share=True) as manager:
        held = await manager.acquire(owner="noisy")
        flood = [await queued(manager, owner="noisy") for _ in range(200)]
        quiet = await queued(manager, owner="quiet")
        await held.release()
        lease = await quiet
        assert lease.owner == "quiet"
        assert not any(task.done() for task in flood)
        await lease.release()
        # FIFO within the noisy owner.
        for task in flood:
            lease = await task
            await lease.release()


async def test_fair_share_takes_turns_among_owners_holding_equally_few() -> None:
    async with started_manager(max_pools=3, min_pools=3, fair_share=True) as manager:
        b = await manager.acquire(owner="b")
        a = await manager.acquire(owner="a")
        c = await manager.acquire(owner="c")
        tasks = {"a": await queued(manager, owner="a")}
        tasks["b"] = await queued(manager, owner="b")
        await c.release()
        # a and b hold one lease each; b was served longer ago, so b goes first
        # although a queued first.
        assert await first_done(tasks) == "b"
        await (await tasks["b"]).release()
        await (await tasks["a"]).release()
        await a.release()
        await b.release()


async def test_strict_fifo_is_the_default_across_owners() -> None:
    async with started_manager() as manager:
        held = await manager.acquire(owner="noisy")
        tasks = {"noisy": await queued(manager, owner="noisy")}
        tasks["quiet"] = await queued(manager, owner="quiet")
        await held.release()
        assert await first_done(tasks) == "noisy"
        await (await tasks["noisy"]).release()
        await (await tasks["quiet"]).release()


async def test_cancelled_waiters_never_lose_the_pool_under_fair_share() -> None:
    async with started_manager(fair_share=True, owner_limit=2) as manager:
        held = await manager.acquire(owner="a")
        doomed = [await queued(manager, owner=f"o{i % 3}") for i in range(9)]
        survivor = await queued(manager, owner="late")
        for task in doomed:
            task.cancel()
        await asyncio.gather(*doomed, return_exceptions=True)
        await held.release()
        lease = await survivor
        assert lease.owner == "late"
        await lease.release()
        assert (manager.available_count, manager.leased_count) == (1, 0)


# --- reserved pools ----------------------------------------------------------------


async def test_reserved_pools_keep_health_checks_running_when_work_saturates() -> None:
    async with started_manager(max_pools=3, reserved_pools={"health": 1}) as manager:
        work = [await manager.acquire(owner="work") for _ in range(2)]
        with pytest.raises(LeaseUnavailableError):
            await manager.acquire(owner="work", wait=False)
        stuck = await queued(manager, owner="work")
        # Not queued behind the saturated work, and not taken by it either.
        assert await manager.run(lambda: "ok", reservation="health", wait=False) == "ok"
        health = await manager.acquire(reservation="health", wait=False)
        assert not stuck.done()
        await health.release()
        assert not stuck.done(), "the reserved pool never goes to unreserved work"
        await work[0].release()
        await (await stuck).release()
        await work[1].release()


async def test_a_reserved_class_borrows_unreserved_pools() -> None:
    async with started_manager(max_pools=3, reserved_pools={"health": 1}) as manager:
        leases = [await manager.acquire(reservation="health", wait=False) for _ in range(3)]
        assert manager.leased_count == 3
        for lease in leases:
            await lease.release()


# --- priorities --------------------------------------------------------------------


async def test_higher_priority_goes_first_and_overtaking_is_bounded() -> None:
    async with started_manager() as manager:
        lease = await manager.acquire()
        low = await queued(manager, owner="low", priority=-1)
        order: list[str] = []
        for _ in range(OVERTAKE_LIMIT + 1):
            high = await queued(manager, owner="high", priority=5)
            await lease.release()
            name = await first_done({"low": low, "high": high})
            order.append(name)
            lease = await (low if name == "low" else high)
            if name == "low":
                high.cancel()
                await asyncio.gather(high, return_exceptions=True)
        assert order == ["high"] * OVERTAKE_LIMIT + ["low"]
        await lease.release()


# --- validation --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"max_waiters": -1}, ValueError, "max_waiters must be None or an integer >= 0"),
        ({"max_waiters": True}, ValueError, "max_waiters must be None or an integer >= 0"),
        ({"max_waiters": 1.5}, ValueError, "max_waiters must be None or an integer >= 0"),
        ({"owner_limit": 0}, ValueError, "owner_limit must be None or an integer >= 1"),
        ({"fair_share": 1}, TypeError, "fair_share must be a bool"),
        ({"reserved_pools": ["health"]}, TypeError, "reserved_pools must be a mapping"),
        ({"reserved_pools": {1: 1}}, TypeError, "reserved_pools keys must be str"),
        ({"reserved_pools": {"h": 0}}, ValueError, "reserved_pools values must be None or"),
        (
            {"reserved_pools": {"h": 1, "t": 1}},
            ValueError,
            "reserved_pools must leave at least one of max_pools unreserved",
        ),
    ],
)
def test_bad_admission_settings_are_refused_at_construction(
    kwargs: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        LeasedExecutorManager(max_pools=2, **kwargs)


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"reservation": "nope"}, ValueError, "unknown reservation 'nope'"),
        ({"reservation": 3}, TypeError, "reservation must be a str or None"),
        ({"priority": "high"}, TypeError, "priority must be an int"),
        ({"priority": True}, TypeError, "priority must be an int"),
        ({"priority": 2**40}, ValueError, "priority must fit in 32 bits"),
    ],
)
async def test_bad_request_arguments_fail_at_the_await_and_take_nothing(
    kwargs: dict[str, Any], error: type[Exception], message: str
) -> None:
    async with started_manager(reserved_pools=None) as manager:
        with pytest.raises(error, match=message):
            await manager.acquire(**kwargs)
        with pytest.raises(error, match=message):
            await manager.run(print, **kwargs)
        assert (manager.available_count, manager.leased_count) == (1, 0)
