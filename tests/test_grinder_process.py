"""WorkGrinder on a process-backend manager: top-level functions run in worker processes."""

from __future__ import annotations

import asyncio
import os
import pickle
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import _grinder_funcs as f

from leasepool import LeasedExecutorManager, WorkGrinder


@asynccontextmanager
async def process_grinder(**grinder_kwargs: Any) -> AsyncIterator[WorkGrinder]:
    manager = LeasedExecutorManager(backend="process", max_pools=1, workers_per_pool=2)
    await manager.start()
    try:
        grinder = WorkGrinder(executor_manager=manager, **grinder_kwargs)
        await grinder.start()
        try:
            yield grinder
        finally:
            await grinder.stop(cancel_pending=True)
    finally:
        await manager.stop()


async def test_results_come_back_from_worker_processes() -> None:
    async with process_grinder(max_wait_seconds=0.02, batch_size_threshold=4) as grinder:
        assert await grinder.submit(f.square, 12) == 144
        assert await grinder.submit(f.add, 2, b=5) == 7
        assert await grinder.submit(f.echo, 1, owner="p", key="v") == ((1,), {"key": "v"})
        future = await grinder.enqueue(f.square, 3)
        assert await future == 9
        pids = set(await asyncio.gather(*(grinder.submit(f.getpid) for _ in range(4))))
        assert os.getpid() not in pids


async def test_exceptions_are_per_item() -> None:
    async with process_grinder(max_wait_seconds=30.0, batch_size_threshold=6) as grinder:
        outcomes = await asyncio.gather(
            *(grinder.submit(f.fail_if_odd, i) for i in range(6)), return_exceptions=True
        )
    for i, outcome in enumerate(outcomes):
        if i % 2:
            assert isinstance(outcome, f.ItemError)
            assert str(outcome) == f"odd {i}"
        else:
            assert outcome == i * 10


async def test_many_items_across_batches() -> None:
    async with process_grinder(max_wait_seconds=0.02, batch_size_threshold=16) as grinder:
        results = await asyncio.wait_for(
            asyncio.gather(*(grinder.submit(f.square, i) for i in range(300))), 4
        )
        assert results == [i * i for i in range(300)]


async def test_submit_from_thread_with_process_backend() -> None:
    async with process_grinder(max_wait_seconds=0.02, batch_size_threshold=8) as grinder:

        def caller() -> list[int]:
            futures = [grinder.submit_from_thread(f.add, i, 1) for i in range(20)]
            return [fut.result(timeout=4) for fut in futures]

        assert await asyncio.to_thread(caller) == [i + 1 for i in range(20)]


async def test_unpicklable_function_fails_only_its_item() -> None:
    async with process_grinder(max_wait_seconds=30.0, batch_size_threshold=2) as grinder:
        bad, good = await asyncio.gather(
            grinder.submit(lambda: 1), grinder.submit(f.square, 4), return_exceptions=True
        )
    assert isinstance(bad, pickle.PicklingError | AttributeError | TypeError), repr(bad)
    assert good == 16
