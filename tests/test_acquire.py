"""acquire(): free pools, wait=False, timeouts, lease attributes and log records."""

from __future__ import annotations

import asyncio
import logging
import re
import time

import pytest
from _support import MANAGER_LOGGER, messages, started_manager

from leasepool import ExecutorLease, LeaseUnavailableError


async def test_acquire_free_pool() -> None:
    """A free pool is leased at once; a second one is created up to max_pools.

    On release, the pool above the target (min_pools=1) is shut, the other kept.
    """
    async with started_manager(max_pools=2, min_pools=1) as manager:
        lease = await manager.acquire(owner="first")
        assert isinstance(lease, ExecutorLease)
        assert (manager.total_count, manager.available_count, manager.leased_count) == (1, 0, 1)
        second = await manager.acquire(owner="second")
        assert (manager.total_count, manager.available_count, manager.leased_count) == (2, 0, 2)
        await lease.release()
        await second.release()
        assert (manager.total_count, manager.available_count, manager.leased_count) == (1, 1, 0)


async def test_wait_false_when_exhausted() -> None:
    """wait=False on an exhausted manager raises LeaseUnavailableError at once."""
    async with started_manager(max_pools=1) as manager:
        lease = await manager.acquire()
        with pytest.raises(LeaseUnavailableError) as info:
            await manager.acquire(wait=False)
        assert str(info.value) == "No executor available; max_pools=1 reached"
        assert manager.leased_count == 1
        await lease.release()
        again = await manager.acquire(wait=False)
        await again.release()


async def test_wait_false_message_names_max_pools() -> None:
    """The message reports the configured max_pools."""
    async with started_manager(max_pools=3, min_pools=3) as manager:
        leases = [await manager.acquire(wait=False) for _ in range(3)]
        with pytest.raises(LeaseUnavailableError) as info:
            await manager.acquire(wait=False)
        assert str(info.value) == "No executor available; max_pools=3 reached"
        for lease in leases:
            await lease.release()


async def test_timeout_while_exhausted() -> None:
    """A waiting acquire with a timeout raises TimeoutError naming the timeout."""
    async with started_manager(max_pools=1) as manager:
        lease = await manager.acquire()
        started = time.monotonic()
        with pytest.raises(TimeoutError) as info:
            await manager.acquire(timeout=0.05)
        elapsed = time.monotonic() - started
        assert str(info.value) == "Timed out waiting for an executor after 0.05s"
        assert elapsed >= 0.04  # never gives up early (no upper bound: the machine may be busy)
        assert (manager.total_count, manager.leased_count) == (1, 1)
        await lease.release()
        again = await manager.acquire(wait=False)
        await again.release()


async def test_waiter_gets_released_pool() -> None:
    """A waiting acquire completes once the holder releases."""
    async with started_manager(max_pools=1) as manager:
        lease = await manager.acquire(owner="holder")
        waiter = asyncio.ensure_future(manager.acquire(owner="waiter", timeout=5))
        await asyncio.sleep(0)  # let the waiter start waiting
        assert not waiter.done()
        await lease.release()
        got = await asyncio.wait_for(waiter, 5)
        assert got.owner == "waiter"
        assert manager.leased_count == 1
        await got.release()


@pytest.mark.parametrize("seconds", [0, 0.0, -1.5])
async def test_non_positive_lease_seconds(seconds: float) -> None:
    """lease_seconds <= 0 is a ValueError and leases nothing."""
    async with started_manager() as manager:
        with pytest.raises(ValueError) as info:
            await manager.acquire(lease_seconds=seconds)
        assert str(info.value) == "lease_seconds must be > 0"
        assert manager.leased_count == 0


async def test_lease_ids_are_unique_hex_strings() -> None:
    """Every lease gets a fresh 32-hex-digit string id."""
    async with started_manager(max_pools=2) as manager:
        ids = []
        for _ in range(40):
            lease = await manager.acquire()
            ids.append(lease.lease_id)
            await lease.release()
        assert all(isinstance(i, str) and re.fullmatch(r"[0-9a-f]{32}", i) for i in ids)
        assert len(set(ids)) == len(ids)


async def test_lease_attributes() -> None:
    """owner, lease_seconds, grace and expiry times are consistent with time.monotonic()."""
    async with started_manager(default_lease_seconds=42.0, lease_grace_seconds=3.5) as manager:
        before = time.monotonic()
        lease = await manager.acquire(owner="alice", lease_seconds=7)
        after = time.monotonic()
        assert lease.owner == "alice"
        assert lease.lease_seconds == 7.0
        assert isinstance(lease.lease_seconds, float)
        assert lease.grace_seconds == 3.5
        assert before <= lease.leased_at <= after
        assert lease.soft_expires_at == pytest.approx(lease.leased_at + 7.0, abs=1e-6)
        assert lease.hard_expires_at == pytest.approx(lease.leased_at + 10.5, abs=1e-6)
        await lease.release()

        default = await manager.acquire()
        assert default.owner is None
        assert default.lease_seconds == 42.0
        assert default.hard_expires_at == pytest.approx(default.leased_at + 45.5, abs=1e-6)
        await default.release()


async def test_acquire_log_records(caplog: pytest.LogCaptureFixture) -> None:
    """Creating, leasing and releasing log 0.1.1's INFO records."""
    caplog.set_level(logging.INFO, logger=MANAGER_LOGGER)
    async with started_manager(max_pools=1, lease_grace_seconds=2.5) as manager:
        lease = await manager.acquire(owner="bob", lease_seconds=30)
        lease_id = lease.lease_id
        await lease.release()
        anon = await manager.acquire(lease_seconds=0.1)
        await anon.release()
    infos = messages(caplog, logging.INFO)
    assert "Created executor backend=thread seq=1 workers=4" in infos
    assert (
        f"Leased executor backend=thread lease_id={lease_id} owner=bob seconds=30.0 grace=2.5"
        in infos
    )
    assert f"Finalized released executor lease_id={lease_id} owner=bob kept=True" in infos
    assert (
        f"Leased executor backend=thread lease_id={anon.lease_id} owner=None seconds=0.1 grace=2.5"
        in infos
    )
    assert f"Finalized released executor lease_id={anon.lease_id} owner=None kept=True" in infos


async def test_created_record_counts_sequence(caplog: pytest.LogCaptureFixture) -> None:
    """Each new executor logs its sequence number and workers_per_pool."""
    caplog.set_level(logging.INFO, logger=MANAGER_LOGGER)
    async with started_manager(max_pools=3, min_pools=1, workers_per_pool=2) as manager:
        leases = [await manager.acquire() for _ in range(3)]
        for lease in leases:
            await lease.release()
    created = [m for m in messages(caplog, logging.INFO) if m.startswith("Created executor")]
    assert created == [f"Created executor backend=thread seq={i} workers=2" for i in (1, 2, 3)]


async def test_release_is_idempotent() -> None:
    """Releasing a lease twice returns one pool, not two."""
    async with started_manager(max_pools=1) as manager:
        lease = await manager.acquire()
        await lease.release()
        await lease.release()
        assert (manager.total_count, manager.available_count, manager.leased_count) == (1, 1, 0)


async def test_context_manager_releases_on_error() -> None:
    """``async with await acquire()`` returns the pool even when the body raises."""
    async with started_manager(max_pools=1) as manager:
        with pytest.raises(KeyError):
            async with await manager.acquire() as lease:
                assert manager.leased_count == 1
                raise KeyError(lease.lease_id)
        assert (manager.available_count, manager.leased_count) == (1, 0)
