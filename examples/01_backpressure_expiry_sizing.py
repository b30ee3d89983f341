"""Backpressure, lease expiry, adaptive sizing and diagnostics, as in the README."""

import asyncio

from leasepool import LeasedExecutorManager, LeaseUnavailableError


async def main() -> None:
    connected_devices: set[str] = set()

    manager = LeasedExecutorManager(
        backend="thread",
        max_pools=10,
        min_pools=1,
        units_per_pool=10,
        size_provider=lambda: len(connected_devices),
        default_lease_seconds=300.0,
        lease_grace_seconds=15.0,
    )
    await manager.start()
    try:
        # Backpressure: wait up to 2 s for a free pool ...
        lease = await manager.acquire(owner="wait-for-capacity", timeout=2.0)
        await lease.release()

        # ... or fail fast (an HTTP handler would answer 503 here).
        held = [await manager.acquire(owner=f"holder-{i}") for i in range(10)]
        try:
            await manager.acquire(owner="no-wait", wait=False)
        except LeaseUnavailableError as exc:
            print("fail fast:", exc)
        for item in held:
            await item.release()

        # Expiry: after lease_seconds + grace, the lease accepts no new work.
        lease = await manager.acquire(lease_seconds=30.0, owner="bounded-operation")
        print("hard expiry in", round(lease.hard_expires_at - lease.leased_at, 1), "s")
        await lease.release()

        # Adaptive sizing: 25 devices / 10 per pool -> 3 pools.
        connected_devices.update(f"device-{i}" for i in range(25))
        manager.notify_scale_changed()
        print("desired pools:", manager.desired_executor_count())

        # Diagnostics.
        print(manager.backend)
        print(manager.available_count)
        print(manager.leased_count)
        print(manager.total_count)
        print(manager.stats())
    finally:
        await manager.stop()


asyncio.run(main())
