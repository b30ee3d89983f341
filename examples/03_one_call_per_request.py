"""The one-call path a request-serving app uses: ``await manager.run(fn, *args)``.

Each "request" below offloads one blocking call. A call holds one worker slot (not a
whole pool), waits in FIFO order with a bounded ``timeout``, or fails fast with
``wait=False``, which a web handler maps to HTTP 503. The call sees the caller's
``contextvars``.
"""

from __future__ import annotations

import asyncio
import contextvars
import threading

from leasepool import LeaseAcquireTimeoutError, LeasedExecutorManager, LeaseUnavailableError

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")
release_slow_calls = threading.Event()


def query_database(key: int) -> str:
    if key < 0:
        release_slow_calls.wait(30)  # a slow query, held until the demo lets it go
    return f"row {key} for {request_id.get()}"


async def handle(
    key: int, *, wait: bool = True, wait_seconds: float | None = None
) -> tuple[int, str]:
    request_id.set(f"req-{key}")
    try:
        row = await manager.run(
            query_database, key, owner="lookup", wait=wait, timeout=wait_seconds
        )
    except (LeaseUnavailableError, LeaseAcquireTimeoutError) as exc:
        return 503, type(exc).__name__
    return 200, row


# 2 pools x 2 workers: four calls at once.
manager = LeasedExecutorManager(max_pools=2, min_pools=1, workers_per_pool=2)


async def main() -> None:
    await manager.start()
    try:
        print(await handle(7))
        # run() takes its slot at the call, before the first await.
        slow = [manager.run(query_database, -i, owner="slow") for i in range(1, 5)]
        stats = manager.stats()
        print("saturated:", stats["leased"], "pools,", len(stats["leases"]), "calls")
        print(await handle(8, wait=False))
        print(await handle(9, wait_seconds=0.05))
        release_slow_calls.set()
        print([row.split()[0] for row in await asyncio.gather(*slow)])
        print(await handle(10, wait=False))
    finally:
        await manager.stop()


if __name__ == "__main__":
    asyncio.run(main())
