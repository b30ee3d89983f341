"""Built-in adaptive sizing (``autoscale=``): the engine sets the desired pool count from
observed demand, acquire waits and idle pools.

Time is driven through the engine's clock seam; a check (where the controller closes
its windows) is observed through ``size_provider``, which each check calls on the loop
thread just before it acts, and which autoscaling takes as a floor."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import pytest
from _support import MANAGER_LOGGER, CheckProbe, messages, started_manager

from leasepool import LeasedExecutorManager
from leasepool.autoscale import AutoScale

WINDOW = 5.0


def resizes(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [m for m in messages(caplog, logging.INFO) if m.startswith("Autoscale target")]


async def next_window(
    manager: LeasedExecutorManager, probe: CheckProbe, advance: Callable[[float], None]
) -> None:
    advance(WINDOW)
    await probe.run_check(manager)


def test_arguments_are_checked() -> None:
    with pytest.raises(TypeError, match="autoscale must be a leasepool.autoscale.AutoScale"):
        LeasedExecutorManager(max_pools=2, autoscale="yes")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="window_seconds must be a finite number of seconds > 0"):
        AutoScale(window_seconds=0)
    with pytest.raises(ValueError, match="target_wait_seconds"):
        AutoScale(target_wait_seconds=float("nan"))
    with pytest.raises(TypeError, match="window_seconds must be a number"):
        AutoScale(window_seconds="5")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="scale_down_windows must be at least 1"):
        AutoScale(scale_down_windows=0)
    with pytest.raises(TypeError, match="scale_down_windows must be an int"):
        AutoScale(scale_down_windows=True)
    assert AutoScale(window_seconds=2).window_seconds == 2.0
    # True is the defaults; False and None are off.
    LeasedExecutorManager(max_pools=2, autoscale=True)
    LeasedExecutorManager(max_pools=2, autoscale=False)


async def test_stats_show_the_controller_only_when_it_runs() -> None:
    async with started_manager(max_pools=2) as plain:
        assert "autoscale" not in plain.stats()
        assert plain.metrics().autoscale_resizes == 0
    async with started_manager(max_pools=2, autoscale=AutoScale()) as manager:
        state = manager.stats()["autoscale"]
        assert state == {
            "target": 1,
            "window_peak": 0,
            "window_waits": 0,
            "window_slow_waits": 0,
            "surplus_windows": 0,
            "resizes": 0,
        }


async def test_a_step_of_load_is_kept_then_released_in_slow_steps(
    advance_clock: Callable[[float], None], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=MANAGER_LOGGER)
    probe = CheckProbe()
    async with started_manager(
        max_pools=8, idle_pool_seconds=1.0, size_provider=probe, autoscale=AutoScale()
    ) as manager:
        await probe.run_check(manager)
        leases = [await manager.acquire() for _ in range(6)]
        # Raised at each grant: no window had to pass.
        assert manager.desired_executor_count() == 6
        assert manager.stats()["desired"] == 6
        assert resizes(caplog)[-1] == "Autoscale target changed from=5 to=6 reason=demand"
        for lease in leases:
            await lease.release()
        # Past the idle timeout, the pools are kept: the target covers them.
        advance_clock(2.0)
        await probe.run_check(manager)
        assert manager.total_count == 6
        # Two windows of surplus: still 6; the third steps down by at most a quarter.
        for _ in range(3):
            await next_window(manager, probe, advance_clock)
        assert manager.desired_executor_count() == 6
        await next_window(manager, probe, advance_clock)
        assert manager.desired_executor_count() == 5
        assert resizes(caplog)[-1] == "Autoscale target changed from=6 to=5 reason=surplus"
        await probe.run_check(manager)
        assert manager.total_count == 5, "the pool above the target idled out"
        # Down to min_pools, one step per three windows of surplus, never below.
        for _ in range(3 * 6):
            await next_window(manager, probe, advance_clock)
        assert manager.desired_executor_count() == 1
        assert manager.total_count == 1
        assert manager.metrics().autoscale_resizes == 5 + 5


async def test_steady_load_never_resizes(
    advance_clock: Callable[[float], None], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=MANAGER_LOGGER)
    probe = CheckProbe()
    async with started_manager(
        max_pools=8, size_provider=probe, autoscale=AutoScale(), workers_per_pool=1
    ) as manager:
        await probe.run_check(manager)
        held = [await manager.acquire() for _ in range(3)]
        async with await manager.acquire():
            pass  # the level of the steady load: 3 to 4 leases
        before = manager.metrics().autoscale_resizes
        assert before == 3
        for round_ in range(20):
            # Every window: the three leases stay, a fourth comes and goes.
            async with await manager.acquire() as extra:
                assert await extra.run(int, round_) == round_
            await next_window(manager, probe, advance_clock)
        assert manager.metrics().autoscale_resizes == before
        assert manager.desired_executor_count() == 4
        for lease in held:
            assert await lease.run(len, "ok") == 2
            await lease.release()


async def test_shrinking_never_goes_below_what_is_leased(
    advance_clock: Callable[[float], None],
) -> None:
    probe = CheckProbe()
    async with started_manager(
        max_pools=8, size_provider=probe, autoscale=AutoScale(scale_down_windows=1)
    ) as manager:
        await probe.run_check(manager)
        leases = [await manager.acquire() for _ in range(8)]
        for lease in leases[2:]:
            await lease.release()
        for _ in range(30):
            await next_window(manager, probe, advance_clock)
        assert manager.desired_executor_count() == 2
        for lease in leases[:2]:
            assert await lease.run(len, "xy") == 2  # still live, never revoked
            await lease.release()


async def test_slow_acquire_waits_grow_the_target_by_half(
    advance_clock: Callable[[float], None], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=MANAGER_LOGGER)
    probe = CheckProbe()
    # An owner limit makes a caller wait while pools are free: the waits, not the
    # pool count, hold it back.
    async with started_manager(
        max_pools=8, owner_limit=1, size_provider=probe, autoscale=AutoScale()
    ) as manager:
        await probe.run_check(manager)
        first = await manager.acquire(owner="a")
        second = asyncio.ensure_future(manager.acquire(owner="a"))
        await asyncio.sleep(0)  # the second request queues behind the owner limit
        # A waiter held back by its own limit is no demand: a pool made for it would
        # idle.
        assert manager.stats()["autoscale"]["window_peak"] == 1
        assert (manager.desired_executor_count(), manager.total_count) == (1, 1)
        advance_clock(1.0)  # the waiter waits a second (the target is 10 ms)
        await first.release()
        lease = await second
        assert manager.stats()["autoscale"]["window_slow_waits"] == 1
        await next_window(manager, probe, advance_clock)
        assert manager.desired_executor_count() == 2
        assert resizes(caplog)[-1] == "Autoscale target changed from=1 to=2 reason=slow_waits"
        await lease.release()


async def test_a_restart_forgets_what_was_learnt() -> None:
    manager = LeasedExecutorManager(max_pools=6, autoscale=AutoScale())
    await manager.start()
    leases = [await manager.acquire() for _ in range(6)]
    for lease in leases:
        await lease.release()
    assert manager.desired_executor_count() == 6
    await manager.stop()
    await manager.start()
    try:
        assert (manager.desired_executor_count(), manager.total_count) == (1, 1)
        assert manager.stats()["autoscale"]["window_peak"] == 0
    finally:
        await manager.stop()


async def test_size_provider_is_a_floor(advance_clock: Callable[[float], None]) -> None:
    probe = CheckProbe(units=30)  # 3 pools at 10 units per pool
    async with started_manager(
        max_pools=8, size_provider=probe, autoscale=AutoScale(scale_down_windows=1)
    ) as manager:
        await probe.run_check(manager)
        assert manager.desired_executor_count() == 3
        leases = [await manager.acquire() for _ in range(5)]
        assert manager.desired_executor_count() == 5
        for lease in leases:
            await lease.release()
        for _ in range(20):
            await next_window(manager, probe, advance_clock)
        assert manager.desired_executor_count() == 3
        assert manager.total_count == 3


async def test_manager_run_calls_count_as_demand() -> None:
    async with started_manager(max_pools=4, workers_per_pool=1, autoscale=AutoScale()) as manager:
        results = await asyncio.gather(*(manager.run(pow, 2, n) for n in range(12)))
        assert results == [2**n for n in range(12)]
        assert manager.desired_executor_count() == 4
