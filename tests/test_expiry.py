"""Background expiry: leases past their hard expiry are revoked without any submission."""

from __future__ import annotations

import asyncio
import logging

import pytest
from _support import MANAGER_LOGGER, eventually, messages, started_manager

from leasepool import LeaseExpiredError


async def test_checker_revokes_expired_lease(caplog: pytest.LogCaptureFixture) -> None:
    """An expired lease is revoked by the checker and logged at WARNING."""
    caplog.set_level(logging.INFO, logger=MANAGER_LOGGER)
    async with started_manager(
        max_pools=1, check_interval=0.02, lease_grace_seconds=0.03
    ) as manager:
        lease = await manager.acquire(owner="sleepy", lease_seconds=0.05)
        await eventually(lambda: manager.leased_count == 0, what="revocation")
        overdue, revoked = messages(caplog, logging.WARNING)
        # The leak report first (at the soft expiry), then 0.1.3's revocation record.
        assert overdue.startswith(
            f"Executor lease held past its soft expiry lease_id={lease.lease_id} "
            "owner=sleepy kind=pool age="
        )
        assert revoked == (
            f"Revoking expired executor lease_id={lease.lease_id} owner=sleepy "
            "lease_seconds=0.05 grace=0.03"
        )
        with pytest.raises(LeaseExpiredError) as info:
            lease.executor.submit(len, "x")
        assert str(info.value) == "Executor lease is no longer active"


async def test_revocation_restores_min_pools() -> None:
    """After revoking, the manager rebuilds pools up to min_pools and leases again."""
    async with started_manager(
        max_pools=2, min_pools=2, check_interval=0.02, lease_grace_seconds=0.01
    ) as manager:
        first = await manager.acquire(lease_seconds=0.03)
        second = await manager.acquire(lease_seconds=0.03)
        assert manager.available_count == 0
        await eventually(lambda: manager.leased_count == 0, what="revocation")
        assert (manager.total_count, manager.available_count) == (2, 2)
        fresh = await manager.acquire(wait=False)
        assert await fresh.run(len, "ok") == 2
        await fresh.release()
        await first.release()
        await second.release()
        assert (manager.total_count, manager.available_count, manager.leased_count) == (2, 2, 0)


async def test_revocation_wakes_waiter() -> None:
    """A waiter blocked on a full manager gets a pool once the holder's lease expires."""
    async with started_manager(
        max_pools=1, check_interval=0.02, lease_grace_seconds=0.01
    ) as manager:
        await manager.acquire(owner="forgetful", lease_seconds=0.03)
        lease = await manager.acquire(owner="patient", timeout=3)
        assert lease.owner == "patient"
        assert manager.leased_count == 1
        await lease.release()


async def test_unexpired_lease_is_not_revoked() -> None:
    """Leases within lease_seconds + grace survive many checker passes."""
    async with started_manager(
        max_pools=2, check_interval=0.01, lease_grace_seconds=0.01
    ) as manager:
        keeper = await manager.acquire(lease_seconds=30)
        short = await manager.acquire(lease_seconds=0.02)
        await eventually(lambda: manager.leased_count == 1, what="short lease revocation")
        assert [entry["lease_id"] for entry in manager.stats()["leases"]] == [keeper.lease_id]
        assert await keeper.run(len, "abc") == 3
        await keeper.release()
        with pytest.raises(LeaseExpiredError):
            await short.run(len, "x")


async def test_check_interval_picks_up_size_changes() -> None:
    """Without notify, the checker still re-reads size_provider every check_interval."""
    units = [0]
    async with started_manager(
        max_pools=3, units_per_pool=1, check_interval=0.02, size_provider=lambda: units[0]
    ) as manager:
        assert manager.total_count == 1
        units[0] = 3
        await eventually(lambda: manager.total_count == 3, what="growth by periodic check")
        units[0] = 0
        await eventually(lambda: manager.total_count == 1, what="shrink by periodic check")


async def test_notify_wakes_checker_promptly() -> None:
    """With a long check_interval, notify_scale_changed() triggers a check right away."""
    units = [0]
    async with started_manager(
        max_pools=4, units_per_pool=5, check_interval=120.0, size_provider=lambda: units[0]
    ) as manager:
        assert manager.total_count == 1
        units[0] = 11
        manager.notify_scale_changed()
        await eventually(lambda: manager.total_count == 3, limit=30.0, what="growth")
        assert manager.available_count == 3


@pytest.mark.beyond_reference
async def test_expiry_does_not_wait_for_check_interval() -> None:
    """The checker wakes at the next hard expiry even when check_interval is long."""
    async with started_manager(
        max_pools=1, check_interval=120.0, lease_grace_seconds=0.02
    ) as manager:
        await manager.acquire(lease_seconds=0.03)
        await eventually(lambda: manager.leased_count == 0, limit=30.0, what="revocation")
        assert (manager.total_count, manager.available_count) == (1, 1)


async def test_notify_from_another_thread() -> None:
    """notify_scale_changed() may be called from a non-loop thread."""
    units = [0]
    async with started_manager(
        max_pools=2, units_per_pool=1, check_interval=120.0, size_provider=lambda: units[0]
    ) as manager:
        assert manager.total_count == 1
        units[0] = 2
        await asyncio.to_thread(manager.notify_scale_changed)
        await eventually(lambda: manager.total_count == 2, limit=30.0, what="growth")
