"""Idle retirement: a pool above the target is retired once it has idled for
``idle_pool_seconds``, not the moment it is released, so a lease-per-request service
stops rebuilding pools (and their threads) for every burst.

Time is driven through the engine's clock seam (``_set_clock_skew_for_tests``); a
check is observed through ``size_provider``, which every check calls on the loop
thread just before it acts."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import pytest
from _support import MANAGER_LOGGER, CheckProbe, messages, started_manager

from leasepool import LeasedExecutorManager


def thread_name() -> str:
    return threading.current_thread().name


async def test_default_keeps_a_released_surplus_pool_until_it_idles_out(
    advance_clock: Callable[[float], None], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=MANAGER_LOGGER)
    probe = CheckProbe()
    manager = LeasedExecutorManager(max_pools=2, min_pools=1, size_provider=probe)
    await manager.start()
    try:
        first, second = await manager.acquire(), await manager.acquire()
        await first.release()
        await second.release()
        assert (manager.total_count, manager.available_count) == (2, 2)
        assert f"Finalized released executor lease_id={first.lease_id} owner=None kept=True" in (
            messages(caplog, logging.INFO)
        )
        advance_clock(9.5)  # the default idle_pool_seconds is 10
        await probe.run_check(manager)
        assert manager.total_count == 2
        advance_clock(1.0)
        await probe.run_check(manager)
        assert manager.total_count == 1, "the surplus pool idled out"
    finally:
        await manager.stop()


async def test_a_pool_in_use_never_idles_out(advance_clock: Callable[[float], None]) -> None:
    probe = CheckProbe()
    async with started_manager(
        max_pools=2, min_pools=1, idle_pool_seconds=30, size_provider=probe
    ) as manager:
        first, second = await manager.acquire(), await manager.acquire()
        await first.release()
        await second.release()
        for _ in range(5):
            # Both pools serve a burst every 20 s: neither idles for 30 s.
            advance_clock(20)
            a, b = await manager.acquire(), await manager.acquire()
            assert await a.run(len, "a") + await b.run(len, "b") == 2
            await a.release()
            await b.release()
            await probe.run_check(manager)
            assert manager.total_count == 2
        advance_clock(31)
        await probe.run_check(manager)
        assert manager.total_count == 1


async def test_the_warmest_pool_is_reused_and_the_cold_one_ages_out(
    advance_clock: Callable[[float], None],
) -> None:
    probe = CheckProbe()
    async with started_manager(
        max_pools=2, min_pools=1, idle_pool_seconds=30, size_provider=probe, workers_per_pool=1
    ) as manager:
        # One worker per pool, so a thread name identifies its pool.
        cold, warm = await manager.acquire(), await manager.acquire()
        cold_thread = await cold.run(thread_name)
        warm_thread = await warm.run(thread_name)
        await cold.release()
        await warm.release()
        for _ in range(4):
            # One request at a time, every 10 s: always served by the warm pool.
            advance_clock(10)
            async with await manager.acquire() as lease:
                assert await lease.run(thread_name) == warm_thread
            await probe.run_check(manager)
        assert manager.total_count == 1, "the cold pool idled out meanwhile"
        assert cold_thread != warm_thread


@pytest.mark.parametrize(("idle_pool_seconds", "max_created"), [(10.0, 2), (0.0, None)])
async def test_bursty_lease_per_request_traffic_creates_pools_only_without_idle_time(
    advance_clock: Callable[[float], None],
    caplog: pytest.LogCaptureFixture,
    idle_pool_seconds: float,
    max_created: int | None,
) -> None:
    """A minute of driven time: one request every 0.1 s, a burst of two every second.
    With idle retirement the second pool is built once; without it (0.1.3), once per
    burst."""
    caplog.set_level(logging.INFO, logger=MANAGER_LOGGER)
    async with started_manager(
        max_pools=4, min_pools=1, idle_pool_seconds=idle_pool_seconds
    ) as manager:
        for tick in range(600):
            advance_clock(0.1)
            leases = [await manager.acquire()]
            if tick % 10 == 0:
                leases.append(await manager.acquire())
            for lease in leases:
                assert await lease.run(abs, -1) == 1
                await lease.release()
    created = [m for m in messages(caplog, logging.INFO) if m.startswith("Created executor")]
    if max_created is not None:
        assert len(created) <= max_created
    else:
        assert len(created) >= 60
