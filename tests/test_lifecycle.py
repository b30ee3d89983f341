"""start()/stop() lifecycle: idempotence, restart, not-started errors, INFO records."""

from __future__ import annotations

import logging

import pytest
from _support import MANAGER_LOGGER, messages, unique_prefix

from leasepool import LeasedExecutorManager, LeasePoolNotStartedError

NOT_STARTED = "LeasedExecutorManager is not started"


async def test_acquire_before_start_raises() -> None:
    """acquire() on a never-started manager raises LeasePoolNotStartedError."""
    manager = LeasedExecutorManager(max_pools=1, name_prefix=unique_prefix())
    with pytest.raises(LeasePoolNotStartedError) as info:
        await manager.acquire()
    assert str(info.value) == NOT_STARTED
    with pytest.raises(LeasePoolNotStartedError):
        await manager.acquire(wait=False)


async def test_start_creates_min_pools_and_is_idempotent() -> None:
    """start() builds min_pools executors; a second start() changes nothing."""
    manager = LeasedExecutorManager(max_pools=4, min_pools=2, name_prefix=unique_prefix())
    await manager.start()
    try:
        assert (manager.total_count, manager.available_count, manager.leased_count) == (2, 2, 0)
        lease = await manager.acquire(owner="held")
        await manager.start()
        assert (manager.total_count, manager.available_count, manager.leased_count) == (2, 1, 1)
        assert await lease.run(sum, [1, 2, 3]) == 6
        await lease.release()
    finally:
        await manager.stop()


async def test_stop_is_idempotent_and_clears_pools() -> None:
    """stop() twice is fine; afterwards counts are zero and acquire refuses."""
    manager = LeasedExecutorManager(max_pools=2, min_pools=2, name_prefix=unique_prefix())
    await manager.start()
    await manager.acquire(owner="left-behind")
    await manager.stop()
    await manager.stop()
    assert (manager.total_count, manager.available_count, manager.leased_count) == (0, 0, 0)
    assert manager.stats()["leases"] == []
    with pytest.raises(LeasePoolNotStartedError) as info:
        await manager.acquire()
    assert str(info.value) == NOT_STARTED


async def test_stop_before_start_is_safe() -> None:
    """stop() on a never-started manager returns normally and leaves it usable."""
    manager = LeasedExecutorManager(max_pools=1, name_prefix=unique_prefix())
    await manager.stop()
    assert manager.total_count == 0
    await manager.start()
    try:
        assert manager.total_count == 1
    finally:
        await manager.stop()


async def test_restart_after_stop() -> None:
    """A stopped manager can be started again and hands out working leases."""
    manager = LeasedExecutorManager(max_pools=2, min_pools=1, name_prefix=unique_prefix())
    await manager.start()
    await manager.stop()
    await manager.start()
    try:
        assert manager.total_count == 1
        async with await manager.acquire(owner="second-life") as lease:
            assert await lease.run(pow, 2, 10) == 1024
        assert (manager.available_count, manager.leased_count) == (1, 0)
    finally:
        await manager.stop()


def test_notify_scale_changed_before_start_is_noop() -> None:
    """notify_scale_changed() without a running manager (or loop) does nothing."""
    manager = LeasedExecutorManager(max_pools=3, size_provider=lambda: 100)
    manager.notify_scale_changed()
    assert manager.total_count == 0


async def test_notify_scale_changed_after_stop_is_noop() -> None:
    """notify_scale_changed() after stop() neither raises nor creates pools."""
    manager = LeasedExecutorManager(
        max_pools=3, size_provider=lambda: 100, name_prefix=unique_prefix()
    )
    await manager.start()
    await manager.stop()
    manager.notify_scale_changed()
    assert manager.total_count == 0


async def test_lifecycle_log_records(caplog: pytest.LogCaptureFixture) -> None:
    """start()/stop() log INFO records on ``leasepool.manager`` with 0.1.1's text."""
    caplog.set_level(logging.INFO, logger=MANAGER_LOGGER)
    manager = LeasedExecutorManager(max_pools=1, name_prefix=unique_prefix())
    await manager.start()
    await manager.start()
    await manager.stop()
    infos = messages(caplog, logging.INFO)
    started = "LeasedExecutorManager started backend=thread total=1 available=1 leased=0 target=1"
    assert infos.count(started) == 1
    assert "LeasedExecutorManager stopped" in infos
    assert infos.index(started) < infos.index("LeasedExecutorManager stopped")


async def test_lifecycle_records_go_to_custom_logger(caplog: pytest.LogCaptureFixture) -> None:
    """With logger=..., the records go to that logger and not to leasepool.manager."""
    custom = logging.getLogger("tests.custom.lifecycle")
    caplog.set_level(logging.INFO, logger=custom.name)
    caplog.set_level(logging.INFO, logger=MANAGER_LOGGER)
    manager = LeasedExecutorManager(
        max_pools=3, min_pools=2, logger=custom, name_prefix=unique_prefix()
    )
    await manager.start()
    await manager.stop()
    infos = messages(caplog, logging.INFO, custom.name)
    assert (
        "LeasedExecutorManager started backend=thread total=2 available=2 leased=0 target=2"
        in infos
    )
    assert "LeasedExecutorManager stopped" in infos
    assert messages(caplog, logging.INFO) == []
