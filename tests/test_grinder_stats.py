"""WorkGrinder diagnostics: stats(), astats() and stats_from_thread()."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

import pytest
from _grinder_funcs import LoopSignal, blocker, grinder_env, until

from leasepool import LeasedExecutorManager, WorkGrinder

KEYS = {
    "started",
    "stopping",
    "pending",
    "batch_size_threshold",
    "max_wait_seconds",
    "lease_seconds",
    "oldest_wait_seconds",
}


def check_static(stats: dict[str, Any]) -> None:
    assert set(stats) == KEYS
    assert stats["batch_size_threshold"] == 50
    assert stats["max_wait_seconds"] == 30.0
    assert stats["lease_seconds"] == 20.0


async def test_stats_while_items_wait(advance_clock: Callable[[float], None]) -> None:
    async with grinder_env(max_wait_seconds=30.0, batch_size_threshold=50, lease_seconds=20.0) as (
        _,
        grinder,
    ):
        idle = grinder.stats()
        check_static(idle)
        assert (idle["started"], idle["stopping"], idle["pending"]) == (True, False, 0)
        assert idle["oldest_wait_seconds"] == 0.0

        for i in range(3):
            await grinder.enqueue(abs, i)
        advance_clock(12.5)  # the engine's clock: the items' age, without waiting for it
        waiting = grinder.stats()
        check_static(waiting)
        assert waiting["pending"] == 3
        assert 12.5 <= waiting["oldest_wait_seconds"] < 30.0
        assert isinstance(waiting["oldest_wait_seconds"], float)
        assert grinder.stats()["oldest_wait_seconds"] >= waiting["oldest_wait_seconds"]

        await grinder.stop()
        stopped = grinder.stats()
        check_static(stopped)
        assert (stopped["started"], stopped["pending"], stopped["oldest_wait_seconds"]) == (
            False,
            0,
            0.0,
        )


async def test_pending_excludes_items_already_dispatched() -> None:
    gate = threading.Event()
    started = LoopSignal()
    async with grinder_env(max_wait_seconds=30.0, batch_size_threshold=2) as (_, grinder):
        batch = asyncio.gather(grinder.submit(blocker(gate, started)), grinder.submit(abs, -1))
        try:
            await started.wait()
            stats = grinder.stats()
            assert (stats["pending"], stats["oldest_wait_seconds"]) == (0, 0.0)
            await grinder.enqueue(abs, -2)
            assert grinder.stats()["pending"] == 1
        finally:
            gate.set()
        assert list(await batch) == ["done", 1]


async def test_stopping_flag_during_stop() -> None:
    gate = threading.Event()
    started = LoopSignal()
    async with grinder_env(batch_size_threshold=1) as (_, grinder):
        running = asyncio.create_task(grinder.submit(blocker(gate, started)))
        await started.wait()
        stopping = asyncio.create_task(grinder.stop())
        try:
            await until(lambda: grinder.stats()["stopping"], what="stopping reported")
            stats = await grinder.astats()
            assert (stats["started"], stats["stopping"]) == (True, True)
        finally:
            gate.set()
        await stopping
        assert await running == "done"


async def test_astats_matches_stats() -> None:
    async with grinder_env(max_wait_seconds=30.0, batch_size_threshold=50, lease_seconds=20.0) as (
        _,
        grinder,
    ):
        await grinder.enqueue(abs, 1)
        awaited = await grinder.astats()
        direct = grinder.stats()
        check_static(awaited)
        assert awaited["pending"] == direct["pending"] == 1
        assert awaited["started"] is True
        assert 0.0 <= awaited["oldest_wait_seconds"] <= direct["oldest_wait_seconds"]


async def test_astats_before_start() -> None:
    grinder = WorkGrinder(
        executor_manager=LeasedExecutorManager(max_pools=1),
        max_wait_seconds=30.0,
        batch_size_threshold=50,
        lease_seconds=20.0,
    )
    stats = await grinder.astats()
    check_static(stats)
    assert (stats["started"], stats["pending"]) == (False, 0)


async def test_stats_from_thread() -> None:
    async with grinder_env(max_wait_seconds=30.0, batch_size_threshold=50, lease_seconds=20.0) as (
        _,
        grinder,
    ):
        await grinder.enqueue(abs, 1)
        await grinder.enqueue(abs, 2)
        stats = await asyncio.to_thread(grinder.stats_from_thread)
        check_static(stats)
        assert (stats["started"], stats["pending"]) == (True, 2)
        with_timeout = await asyncio.to_thread(grinder.stats_from_thread, 3.0)
        assert with_timeout["pending"] == 2
        keyword = await asyncio.to_thread(lambda: grinder.stats_from_thread(timeout=3.0))
        assert set(keyword) == KEYS


def test_stats_from_thread_before_start_raises() -> None:
    grinder = WorkGrinder(executor_manager=LeasedExecutorManager(max_pools=1))
    with pytest.raises(RuntimeError, match="not started"):
        grinder.stats_from_thread()


@pytest.mark.beyond_reference
async def test_stats_is_safe_from_another_thread() -> None:
    """Called from a worker thread while the loop keeps queueing items."""
    async with grinder_env(max_wait_seconds=30.0, batch_size_threshold=1000) as (_, grinder):
        stop = threading.Event()
        reading = LoopSignal()
        seen: list[int] = []

        def reader() -> None:
            while not stop.is_set():
                stats = grinder.stats()
                assert set(stats) == KEYS
                seen.append(stats["pending"])
                if not reading.fired.is_set():
                    reading.fire()

        thread_done = asyncio.create_task(asyncio.to_thread(reader))
        try:
            await reading.wait()
            for i in range(200):
                await grinder.enqueue(abs, i)
                if i % 20 == 0:
                    await asyncio.sleep(0)
        finally:
            stop.set()
        await thread_done
        assert seen == sorted(seen), "pending went backwards"
        assert all(0 <= n <= 200 for n in seen)
        assert (await asyncio.to_thread(grinder.stats))["pending"] == 200
