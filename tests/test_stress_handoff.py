"""Stress: many tasks racing acquire / timeout / cancel / release on few pools.

Whatever the interleaving, no pool is lost or duplicated: at the end every pool is
free again, every lease was released exactly once, and no two holders ever held more
leases than there are pools.
"""

from __future__ import annotations

import asyncio
import random

import pytest

from leasepool import LeasedExecutorManager


def _add(a: int, b: int) -> int:
    return a + b


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_cancellations_and_timeouts_never_lose_a_pool(seed: int) -> None:
    rng = random.Random(seed)
    max_pools = 2
    manager = LeasedExecutorManager(max_pools=max_pools, min_pools=1, name_prefix=f"stress{seed}")
    await manager.start()
    holders = 0
    peak = 0
    completed = 0

    async def worker(i: int) -> None:
        nonlocal holders, peak, completed
        timeout = rng.choice([None, None, 0.0005, 0.002, 0.05])
        try:
            lease = await manager.acquire(owner=f"w{i}", timeout=timeout)
        except TimeoutError:
            return
        holders += 1
        peak = max(peak, holders)
        try:
            assert await lease.run(_add, i, 1) == i + 1
            if rng.random() < 0.3:
                await asyncio.sleep(0)
        finally:
            holders -= 1
            await lease.release()
        completed += 1

    tasks = [asyncio.create_task(worker(i)) for i in range(300)]
    for _ in range(60):
        await asyncio.sleep(0)
        victim = rng.choice(tasks)
        victim.cancel()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    for result in results:
        assert result is None or isinstance(result, asyncio.CancelledError), result

    assert peak <= max_pools
    assert completed > 0
    assert manager.leased_count == 0
    assert manager.available_count == manager.total_count <= max_pools
    # Every pool can still be leased at once, without waiting.
    leases = [await manager.acquire(wait=False) for _ in range(max_pools)]
    for lease in leases:
        await lease.release()
    await manager.stop()


async def test_manager_dropped_without_stop_lets_its_workers_exit() -> None:
    import gc
    import threading

    manager = LeasedExecutorManager(max_pools=1, name_prefix="dropped-mgr")
    await manager.start()
    lease = await manager.acquire()
    assert await lease.run(_add, 1, 1) == 2
    await lease.release()
    workers = [t for t in threading.enumerate() if t.name.startswith("dropped-mgr-")]
    assert workers, "the call ran on a named worker thread"
    del lease, manager
    gc.collect()
    for thread in workers:
        await asyncio.to_thread(thread.join, 5)
        assert not thread.is_alive(), thread.name
