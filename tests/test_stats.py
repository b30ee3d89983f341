"""manager.stats(): exact keys and values, per-lease expiry entries."""

from __future__ import annotations

import time

import pytest
from _support import started_manager, unique_prefix

from leasepool import LeasedExecutorManager

STATS_KEYS = {
    "backend",
    "desired",
    "max_pools",
    "min_pools",
    "available",
    "leased",
    "total",
    "workers_per_pool",
    "leases",
}
LEASE_KEYS = {"lease_id", "owner", "seconds_until_soft_expiry", "seconds_until_hard_expiry"}


def test_stats_before_start() -> None:
    """Before start() the stats report configuration and zero counts."""
    manager = LeasedExecutorManager(
        max_pools=6, min_pools=2, workers_per_pool=3, name_prefix=unique_prefix()
    )
    assert manager.stats() == {
        "backend": "thread",
        "desired": 2,
        "max_pools": 6,
        "min_pools": 2,
        "available": 0,
        "leased": 0,
        "total": 0,
        "workers_per_pool": 3,
        "leases": [],
    }


async def test_stats_idle_after_start() -> None:
    """An idle started manager reports its min_pools as available."""
    async with started_manager(max_pools=3, min_pools=2, workers_per_pool=5) as manager:
        stats = manager.stats()
        assert set(stats) == STATS_KEYS
        assert stats == {
            "backend": "thread",
            "desired": 2,
            "max_pools": 3,
            "min_pools": 2,
            "available": 2,
            "leased": 0,
            "total": 2,
            "workers_per_pool": 5,
            "leases": [],
        }
        assert type(stats["backend"]) is str


async def test_stats_with_leases() -> None:
    """Each active lease appears once with owner and remaining soft/hard seconds."""
    async with started_manager(max_pools=3, lease_grace_seconds=5.0) as manager:
        first = await manager.acquire(owner="a", lease_seconds=10)
        second = await manager.acquire(lease_seconds=100)
        stats = manager.stats()
        elapsed_bound = time.monotonic() - min(first.leased_at, second.leased_at)
        assert (stats["available"], stats["leased"], stats["total"]) == (0, 2, 2)
        entries = {entry["lease_id"]: entry for entry in stats["leases"]}
        assert set(entries) == {first.lease_id, second.lease_id}
        assert len(stats["leases"]) == 2
        for entry in stats["leases"]:
            assert set(entry) == LEASE_KEYS
        one, two = entries[first.lease_id], entries[second.lease_id]
        assert one["owner"] == "a"
        assert two["owner"] is None
        assert 10.0 - elapsed_bound <= one["seconds_until_soft_expiry"] <= 10.0
        assert 15.0 - elapsed_bound <= one["seconds_until_hard_expiry"] <= 15.0
        assert 100.0 - elapsed_bound <= two["seconds_until_soft_expiry"] <= 100.0
        gap = two["seconds_until_hard_expiry"] - two["seconds_until_soft_expiry"]
        assert gap == pytest.approx(5.0, abs=1e-3)
        await first.release()
        assert [e["lease_id"] for e in manager.stats()["leases"]] == [second.lease_id]
        await second.release()
        assert manager.stats()["leases"] == []


async def test_stats_remaining_times_clamp_at_zero() -> None:
    """Past expiry (not yet revoked), remaining seconds are reported as 0.0, not negative."""
    async with started_manager(lease_grace_seconds=0.01) as manager:
        lease = await manager.acquire(lease_seconds=0.01)
        time.sleep(0.05)  # noqa: ASYNC251  (time passing is the behaviour under test)
        (entry,) = manager.stats()["leases"]
        assert entry["lease_id"] == lease.lease_id
        assert entry["seconds_until_soft_expiry"] == 0.0
        assert entry["seconds_until_hard_expiry"] == 0.0


async def test_stats_after_stop() -> None:
    """After stop() the counts are zero and no lease is listed."""
    manager = LeasedExecutorManager(max_pools=2, min_pools=2, name_prefix=unique_prefix())
    await manager.start()
    await manager.acquire(owner="held")
    await manager.stop()
    stats = manager.stats()
    assert (stats["available"], stats["leased"], stats["total"], stats["leases"]) == (0, 0, 0, [])
