"""``backend="auto"`` and ``autoscale``: a service's blocking calls, sorted by the engine.

Half the calls below compute in pure Python (they would hold the GIL on a thread and
make the event loop late), half wait on "I/O". Nobody says which is which: the engine
measures each callable's calls and moves the computing one to worker processes after a
few calls, while the waiting one stays on threads. ``autoscale`` keeps as many pools
ready as the load used. The routing table in ``stats()`` shows every decision.
"""

from __future__ import annotations

import asyncio
import time

from leasepool import LeasedExecutorManager
from leasepool.autoscale import AutoScale


def checksum(n: int) -> int:
    """Pure-Python CPU work (holds the GIL)."""
    total = 0
    for i in range(n):
        total = (total * 31 + i) % 1_000_003
    return total


def fetch(key: int) -> str:
    """A blocking client call: waits with the GIL released."""
    time.sleep(0.005)
    return f"row {key}"


async def main() -> None:
    manager = LeasedExecutorManager(
        backend="auto", max_pools=4, workers_per_pool=2, autoscale=AutoScale()
    )
    await manager.start()
    try:
        async with await manager.acquire() as lease:
            for key in range(12):
                await asyncio.gather(lease.run(checksum, 100_000), lease.run(fetch, key))
        routes = {entry["callable"]: entry["route"] for entry in manager.stats()["routing"]}
        print(f"checksum runs on: {routes['__main__.checksum']}")
        print(f"fetch runs on: {routes['__main__.fetch']}")
        print(f"calls offloaded: {manager.metrics().calls_offloaded > 0}")
        results = await asyncio.gather(*(manager.run(fetch, key) for key in range(6)))
        print(f"{len(results)} requests, desired pools: {manager.desired_executor_count()}")
    finally:
        await manager.stop()


if __name__ == "__main__":  # worker processes start by forkserver: they import this file
    asyncio.run(main())
