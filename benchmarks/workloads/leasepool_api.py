"""Workloads written once against the public API of leasepool 0.1.1.

The same code runs on this package ("ours") and on leasepool 0.1.1 ("ref"): the worker
process simply imports whichever ``leasepool`` its interpreter has.
"""

from __future__ import annotations

import asyncio
import gc
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

from leasepool import LeasedExecutorManager, WorkGrinder

from .calls import add, block
from .common import (
    Metrics,
    Params,
    expect,
    expected_sum,
    measure_idle,
    percentile,
    settle_rss,
    time_gathered,
    time_requests,
    time_sequential,
    time_submit_result,
    us_per_op,
)

NAME_PREFIX = "lpbench"
# Keyword arguments added to every manager built below, after the workload's own: a
# variant of "ours" (worker.py --manager-kwargs, run.py --ours-variants). Empty for
# plain "ours" and for 0.1.3.
MANAGER_KWARGS: dict[str, Any] = {}
# Managers built with MANAGER_KWARGS (worker.py checks that a variant reached one).
MANAGERS_BUILT = 0


def _manager(backend: str = "thread", **kwargs: Any) -> LeasedExecutorManager:
    """Every manager of these workloads (the WorkGrinders' too) is built here."""
    global MANAGERS_BUILT
    options: dict[str, Any] = {"max_pools": 1, "min_pools": 1, "workers_per_pool": 4}
    options.update(kwargs)
    options.update(MANAGER_KWARGS)
    if MANAGER_KWARGS:
        MANAGERS_BUILT += 1
    return LeasedExecutorManager(backend=backend, name_prefix=NAME_PREFIX, **options)


async def acquire_release(p: Params) -> Metrics:
    manager = _manager()
    await manager.start()
    try:

        async def go(k: int) -> None:
            for _ in range(k):
                lease = await manager.acquire()
                await lease.release()

        await go(p["warmup"])
        expect(manager.leased_count == 0, "all leases returned")
        gc.collect()
        t0 = time.perf_counter_ns()
        await go(p["n"])
        t1 = time.perf_counter_ns()
        expect(manager.leased_count == 0, "all leases returned")
    finally:
        await manager.stop()
    return {"us_per_op": us_per_op(t1 - t0, p["n"])}


async def sequential_run(p: Params) -> Metrics:
    manager = _manager()
    await manager.start()
    try:
        async with await manager.acquire(owner="bench") as lease:
            return await time_sequential(lease.run, p["n"], p["warmup"])
    finally:
        await manager.stop()


async def gathered_run(p: Params) -> Metrics:
    manager = _manager()
    await manager.start()
    try:
        async with await manager.acquire(owner="bench") as lease:
            return await time_gathered(lease.run, p["n"], p["warmup"])
    finally:
        await manager.stop()


async def executor_submit(p: Params) -> Metrics:
    manager = _manager()
    await manager.start()
    try:
        async with await manager.acquire(owner="bench") as lease:
            return time_submit_result(lease.executor.submit, p["n"], p["warmup"])
    finally:
        await manager.stop()


async def contended(p: Params) -> Metrics:
    tasks, rounds = p["tasks"], p["rounds"]
    manager = _manager(max_pools=2, min_pools=2)
    await manager.start()
    waits_ns: list[int] = []

    async def worker(k: int, record: bool) -> int:
        total = 0
        for i in range(k):
            t0 = time.perf_counter_ns()
            lease = await manager.acquire()
            t1 = time.perf_counter_ns()
            try:
                total += await lease.run(add, i, 1)
            finally:
                await lease.release()
            if record:
                waits_ns.append(t1 - t0)
        return total

    async def go(k: int, record: bool) -> None:
        totals = await asyncio.gather(*(worker(k, record) for _ in range(tasks)))
        expect(sum(totals) == tasks * expected_sum(k), "results")

    try:
        await go(p["warmup_rounds"], record=False)
        gc.collect()
        t0 = time.perf_counter_ns()
        await go(rounds, record=True)
        t1 = time.perf_counter_ns()
        expect(manager.leased_count == 0, "all leases returned")
    finally:
        await manager.stop()
    waits = sorted(w / 1e6 for w in waits_ns)
    return {
        "us_per_op": us_per_op(t1 - t0, tasks * rounds),
        "wait_p50_ms": percentile(waits, 0.50),
        "wait_p99_ms": percentile(waits, 0.99),
        "wait_max_ms": waits[-1],
    }


async def one_call(p: Params) -> Metrics:
    capacity, per_pool = p["capacity"], 4
    call: Callable[..., Awaitable[Any]]
    if hasattr(LeasedExecutorManager, "run"):
        # Ours: the one-call path, each call holding one worker of 4 pools x 4 workers.
        manager = _manager(max_pools=capacity // per_pool, workers_per_pool=per_pool)
        call = manager.run
    else:
        # 0.1.3 has no one-call path: a lease per call, one worker per pool (its README's
        # sizing, min_pools below max_pools).
        manager = _manager(max_pools=capacity, min_pools=4, workers_per_pool=1)

        async def lease_per_call(fn: Callable[..., Any], *args: Any) -> Any:
            lease = await manager.acquire()
            try:
                return await lease.run(fn, *args)
            finally:
                await lease.release()

        call = lease_per_call

    await manager.start()
    try:
        return await time_requests(call, p["tasks"], p["rounds"], p["warmup"])
    finally:
        await manager.stop()


async def _grind(manager: LeasedExecutorManager, p: Params) -> Metrics:
    await manager.start()
    try:
        grinder = WorkGrinder(
            executor_manager=manager,
            batch_size_threshold=100,
            max_wait_seconds=0.05,
            lease_seconds=300.0,
        )
        await grinder.start()
        try:
            return await time_gathered(grinder.submit, p["n"], p["warmup"])
        finally:
            await grinder.stop()
    finally:
        await manager.stop()


async def grinder(p: Params) -> Metrics:
    return await _grind(_manager(max_pools=2), p)


async def process_run(p: Params) -> Metrics:
    manager = _manager("process")
    await manager.start()
    try:
        async with await manager.acquire(owner="bench") as lease:
            return await time_gathered(lease.run, p["n"], p["warmup"])
    finally:
        await manager.stop()


async def process_grinder(p: Params) -> Metrics:
    return await _grind(_manager("process"), p)


async def idle_cpu(p: Params) -> Metrics:
    manager = _manager(max_pools=2)
    await manager.start()
    try:
        async with await manager.acquire(owner="bench") as lease:
            expect(await lease.run(add, 1, 1) == 2, "result")
        return await measure_idle(p["seconds"])
    finally:
        await manager.stop()


async def memory_pools(p: Params) -> Metrics:
    n = p["n"]
    # Warm up code paths and lazy imports with a small manager first.
    small = _manager(max_pools=2, min_pools=2)
    await small.start()
    lease = await small.acquire()
    await lease.release()
    await small.stop()
    del small, lease

    manager = _manager(max_pools=n, min_pools=n)
    r0 = settle_rss()
    await manager.start()
    r1 = settle_rss()
    expect(manager.total_count == n, f"{n} pools")
    leases = [await manager.acquire() for _ in range(n)]
    r2 = settle_rss()
    expect(manager.leased_count == n, f"{n} leases")
    for held in leases:
        await held.release()
    await manager.stop()
    return {"bytes_per_pool": (r1 - r0) / n, "bytes_per_lease": (r2 - r1) / n}


async def memory_queued(p: Params) -> Metrics:
    n = p["n"]
    manager = _manager(workers_per_pool=1)
    await manager.start()
    try:
        async with await manager.acquire(owner="bench") as lease:
            # Warm up (also starts the worker thread).
            warm = await asyncio.gather(*(lease.run(add, i, 1) for i in range(1_000)))
            expect(sum(warm) == expected_sum(1_000), "warm-up results")
            started, gate = threading.Event(), threading.Event()
            blocker = asyncio.ensure_future(lease.run(block, started, gate))
            expect(await asyncio.to_thread(started.wait, 30.0), "blocker started")
            r0 = settle_rss()
            queued = asyncio.gather(*(lease.run(add, i, 1) for i in range(n)))
            for _ in range(3):  # let coroutine-based run() reach the executor
                await asyncio.sleep(0)
            r1 = settle_rss()
            gate.set()
            expect(await blocker is True, "blocker released")
            expect(sum(await queued) == expected_sum(n), "results")
    finally:
        await manager.stop()
    return {"bytes_per_call": (r1 - r0) / n}


WORKLOADS: dict[str, Callable[[Params], Awaitable[Metrics]]] = {
    "acquire_release": acquire_release,
    "sequential_run": sequential_run,
    "gathered_run": gathered_run,
    "executor_submit": executor_submit,
    "contended": contended,
    "grinder": grinder,
    "process_run": process_run,
    "process_grinder": process_grinder,
    "idle_cpu": idle_cpu,
    "memory_pools": memory_pools,
    "memory_queued": memory_queued,
    "one_call": one_call,
}
