"""Typing sample: the public API used the way an application would.

Not a test module; ``test_typing.py`` runs ``mypy --strict`` on it.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import Executor, Future
from typing import Any

from leasepool import (
    ExecutorBackend,
    ExecutorLease,
    LeasedExecutorManager,
    LeaseExpiredError,
    LeasePoolError,
    LeaseUnavailableError,
    ProcessLoggingConfig,
    WorkGrinder,
)
from leasepool.backends import normalize_backend, resolve_executor_cls


def add(left: int, right: int) -> int:
    return left + right


def greet(name: str, *, punctuation: str = "!") -> str:
    return f"hello {name}{punctuation}"


def make_manager(units: list[str]) -> LeasedExecutorManager:
    return LeasedExecutorManager(
        backend=ExecutorBackend.THREAD,
        max_pools=4,
        min_pools=1,
        units_per_pool=10,
        size_provider=lambda: len(units),
        check_interval=30.0,
        default_lease_seconds=60.0,
        lease_grace_seconds=5.0,
        workers_per_pool=2,
        name_prefix="typed",
        logger=logging.getLogger("typed"),
    )


async def use_lease(manager: LeasedExecutorManager) -> int:
    lease: ExecutorLease = await manager.acquire(owner="typed", lease_seconds=5.0, timeout=1.0)
    try:
        total: int = await lease.run(add, 1, 2)
        text: str = await lease.run(greet, "world", punctuation="?")
        executor: Executor = lease.executor
        future: Future[Any] = executor.submit(add, 3, 4)
        expires: float = lease.hard_expires_at - lease.soft_expires_at
        lease_id: str = lease.lease_id
        return total + len(text) + int(expires) + len(lease_id) + (future.result() or 0)
    finally:
        await lease.release()


async def main() -> None:
    units: list[str] = []
    manager = make_manager(units)
    await manager.start()
    try:
        async with await manager.acquire(owner="ctx") as lease:
            value: int = await lease.run(add, 2, 3)
            print(value)
        print(await use_lease(manager))
        try:
            spare = await manager.acquire(wait=False)
        except (LeaseUnavailableError, LeaseExpiredError, LeasePoolError) as exc:
            print(type(exc).__name__)
        else:
            await spare.release()
            print("acquired")
        units.append("device")
        manager.notify_scale_changed()
        stats: dict[str, Any] = manager.stats()
        counts: tuple[int, int, int] = (
            manager.available_count,
            manager.leased_count,
            manager.total_count,
        )
        desired: int = manager.desired_executor_count()
        backend: ExecutorBackend = manager.backend
        print(stats["total"], counts, desired, backend.value)
        grinder = WorkGrinder(
            executor_manager=manager,
            max_wait_seconds=0.5,
            batch_size_threshold=10,
            lease_seconds=30.0,
            owner_prefix="typed-grinder",
        )
        print(type(grinder).__name__)
    finally:
        await manager.stop()


config = ProcessLoggingConfig(enabled=False, level="INFO")
backend_cls: type[Executor] = resolve_executor_cls(normalize_backend("thread"))

if __name__ == "__main__":
    asyncio.run(main())
