"""WorkGrinder under many concurrent submitters: every item resolves exactly once with
its own result."""

from __future__ import annotations

import asyncio
import concurrent.futures
from typing import Any

import pytest
from _grinder_funcs import CallCounter, grinder_env

COROUTINES = 50
PER_COROUTINE = 40
THREADS = 4
PER_THREAD = 100


def item_value(key: tuple[str, int, int]) -> tuple[str, int, int, int]:
    kind, owner, seq = key
    return kind, owner, seq, owner * 100_003 + seq * 7


async def run_coroutine_submitters(grinder: Any, counter: CallCounter) -> None:
    def work(key: tuple[str, int, int]) -> tuple[str, int, int, int]:
        counter.record(key)
        return item_value(key)

    async def submitter(owner: int) -> list[Any]:
        results = []
        for seq in range(PER_COROUTINE):
            key = ("co", owner, seq)
            if seq % 4 == 3:
                future = await grinder.enqueue(work, key, owner=f"co-{owner}")
                results.append(await future)
            else:
                results.append(await grinder.submit(work, key, owner=f"co-{owner}"))
        return results

    outcomes = await asyncio.gather(*(submitter(o) for o in range(COROUTINES)))
    for owner, results in enumerate(outcomes):
        assert results == [item_value(("co", owner, seq)) for seq in range(PER_COROUTINE)]


def thread_submitter(grinder: Any, counter: CallCounter, owner: int) -> list[Any]:
    def work(key: tuple[str, int, int]) -> tuple[str, int, int, int]:
        counter.record(key)
        return item_value(key)

    futures = [
        grinder.submit_from_thread(work, ("th", owner, seq), owner=f"th-{owner}")
        for seq in range(PER_THREAD)
    ]
    return [f.result(timeout=4) for f in futures]


def assert_each_ran_once(counter: CallCounter, threads: bool) -> None:
    expected = {("co", o, s) for o in range(COROUTINES) for s in range(PER_COROUTINE)}
    if threads:
        expected |= {("th", o, s) for o in range(THREADS) for s in range(PER_THREAD)}
    assert set(counter.counts) == expected
    assert set(counter.counts.values()) == {1}


async def test_many_coroutine_submitters() -> None:
    counter = CallCounter()
    async with grinder_env(
        {"max_pools": 2, "workers_per_pool": 4}, max_wait_seconds=0.02, batch_size_threshold=16
    ) as (_, grinder):
        await asyncio.wait_for(run_coroutine_submitters(grinder, counter), 4.5)
        assert grinder.stats()["pending"] == 0
    assert_each_ran_once(counter, threads=False)


async def mixed(grinder: Any, counter: CallCounter) -> None:
    loop = asyncio.get_running_loop()
    with concurrent.futures.ThreadPoolExecutor(THREADS) as pool:
        thread_runs = [
            loop.run_in_executor(pool, thread_submitter, grinder, counter, owner)
            for owner in range(THREADS)
        ]
        await run_coroutine_submitters(grinder, counter)
        thread_results = await asyncio.gather(*thread_runs)
    for owner, results in enumerate(thread_results):
        assert results == [item_value(("th", owner, seq)) for seq in range(PER_THREAD)]


@pytest.mark.beyond_reference
async def test_many_coroutine_and_thread_submitters() -> None:
    counter = CallCounter()
    async with grinder_env(
        {"max_pools": 2, "workers_per_pool": 4}, max_wait_seconds=0.02, batch_size_threshold=16
    ) as (_, grinder):
        await asyncio.wait_for(mixed(grinder, counter), 4.5)
        assert grinder.stats()["pending"] == 0
    assert_each_ran_once(counter, threads=True)


@pytest.mark.beyond_reference
async def test_many_submitters_with_bounded_custody() -> None:
    counter = CallCounter()
    async with grinder_env(
        {"max_pools": 2, "workers_per_pool": 4},
        max_wait_seconds=0.02,
        batch_size_threshold=16,
        max_pending=32,
    ) as (_, grinder):
        await asyncio.wait_for(mixed(grinder, counter), 4.5)
        assert grinder.stats()["pending"] == 0
    assert_each_ran_once(counter, threads=True)
