"""WorkGrinder: many small submissions batched onto leased executors."""

import asyncio

from leasepool import LeasedExecutorManager, WorkGrinder


def square(value: int) -> int:
    return value * value


async def main() -> None:
    manager = LeasedExecutorManager(backend="thread", max_pools=2, min_pools=1)
    await manager.start()

    grinder = WorkGrinder(
        executor_manager=manager,
        batch_size_threshold=50,
        max_wait_seconds=2.0,
        lease_seconds=60.0,
    )

    await grinder.start()

    try:
        results = await asyncio.gather(
            *(grinder.submit(square, i, owner=f"item-{i}") for i in range(200))
        )
        print(sum(results), grinder.stats())
    finally:
        await grinder.stop(cancel_pending=True)
        await manager.stop()


asyncio.run(main())
