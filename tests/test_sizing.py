"""Adaptive sizing: grow on signal, shrink idle pools, never revoke leased ones."""

from __future__ import annotations

import logging

import pytest
from _support import MANAGER_LOGGER, eventually, messages, started_manager


async def test_grow_to_target_on_notify() -> None:
    """Raising the size signal and notifying builds pools up to the target (capped)."""
    units = [0]
    async with started_manager(
        max_pools=4, min_pools=1, units_per_pool=10, size_provider=lambda: units[0]
    ) as manager:
        assert manager.total_count == 1
        units[0] = 25
        manager.notify_scale_changed()
        await eventually(lambda: manager.total_count == 3, what="growth to 3")
        assert (manager.available_count, manager.desired_executor_count()) == (3, 3)
        units[0] = 1000
        manager.notify_scale_changed()
        await eventually(lambda: manager.total_count == 4, what="growth to max_pools")
        assert manager.desired_executor_count() == 4


async def test_shrink_idle_pools_above_target() -> None:
    """Lowering the signal shuts idle pools down to the target, never below min_pools."""
    units = [30]
    async with started_manager(
        max_pools=4, min_pools=2, units_per_pool=10, size_provider=lambda: units[0]
    ) as manager:
        assert manager.total_count == 3
        units[0] = 0
        manager.notify_scale_changed()
        await eventually(lambda: manager.total_count == 2, what="shrink to min_pools")
        assert manager.available_count == 2
        async with await manager.acquire() as lease:
            assert await lease.run(len, "ok") == 2


async def test_shrinking_never_revokes_leased_pool() -> None:
    """Only idle pools are shut when the target drops; the leased one keeps working."""
    units = [30]
    async with started_manager(
        max_pools=3, min_pools=1, units_per_pool=10, size_provider=lambda: units[0]
    ) as manager:
        assert manager.total_count == 3
        leases = [await manager.acquire(owner=f"busy{i}") for i in range(2)]
        units[0] = 0
        manager.notify_scale_changed()
        await eventually(lambda: manager.available_count == 0, what="idle pool shrink")
        assert (manager.total_count, manager.leased_count) == (2, 2)
        for lease in leases:
            assert await lease.run(str, lease.owner) == lease.owner
        await leases[0].release()
        await leases[1].release()
        assert (manager.total_count, manager.available_count, manager.leased_count) == (1, 1, 0)


async def test_release_above_target_shuts_pool(caplog: pytest.LogCaptureFixture) -> None:
    """Releasing a pool while total is above the target shuts it (kept=False)."""
    caplog.set_level(logging.INFO, logger=MANAGER_LOGGER)
    units = [20]
    async with started_manager(
        max_pools=2, min_pools=1, units_per_pool=10, size_provider=lambda: units[0]
    ) as manager:
        first = await manager.acquire(owner="one")
        second = await manager.acquire(owner="two")
        units[0] = 0
        await first.release()
        assert (manager.total_count, manager.available_count, manager.leased_count) == (1, 0, 1)
        await second.release()
        assert (manager.total_count, manager.available_count, manager.leased_count) == (1, 1, 0)
    infos = messages(caplog, logging.INFO)
    assert f"Finalized released executor lease_id={first.lease_id} owner=one kept=False" in infos
    assert f"Finalized released executor lease_id={second.lease_id} owner=two kept=True" in infos


async def test_acquire_may_exceed_target_up_to_max() -> None:
    """Demand beyond the target creates pools on acquire, up to max_pools."""
    async with started_manager(max_pools=3, min_pools=1) as manager:
        leases = [await manager.acquire(wait=False) for _ in range(3)]
        assert (manager.total_count, manager.desired_executor_count()) == (3, 1)
        for lease in leases:
            await lease.release()
        assert manager.total_count == 1


async def test_stats_desired_follows_signal() -> None:
    """stats()["desired"] tracks the size signal at call time."""
    units = [0]
    async with started_manager(
        max_pools=5, units_per_pool=3, size_provider=lambda: units[0]
    ) as manager:
        assert manager.stats()["desired"] == 1
        units[0] = 7
        assert manager.stats()["desired"] == 3
        units[0] = 100
        assert manager.stats()["desired"] == 5
