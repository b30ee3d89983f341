"""Thread backend: ThreadPoolExecutor's keyword arguments are honoured."""

from __future__ import annotations

import threading

import pytest

from leasepool import LeasedExecutorManager

_seen = threading.local()


def _remember(tag: str) -> None:
    _seen.tag = tag


def _tag() -> str:
    return str(getattr(_seen, "tag", "missing"))


def _thread_name() -> str:
    return threading.current_thread().name


async def test_initializer_runs_in_each_worker_before_calls() -> None:
    manager = LeasedExecutorManager(
        max_pools=1, initializer=_remember, initargs=("ready",), name_prefix="init-kw"
    )
    await manager.start()
    try:
        async with await manager.acquire() as lease:
            assert await lease.run(_tag) == "ready"
    finally:
        await manager.stop()


async def test_thread_name_prefix_overrides_the_default_names() -> None:
    manager = LeasedExecutorManager(max_pools=1, thread_name_prefix="custom-pool")
    await manager.start()
    try:
        async with await manager.acquire() as lease:
            assert await lease.run(_thread_name) == "custom-pool_0"
    finally:
        await manager.stop()


async def test_unknown_executor_keyword_fails_at_start_like_threadpoolexecutor() -> None:
    manager = LeasedExecutorManager(max_pools=1, bogus_option=True)
    with pytest.raises(TypeError, match="bogus_option"):
        await manager.start()
    assert manager.total_count == 0


def _fail(tag: str) -> None:
    raise RuntimeError(f"init failed: {tag}")


async def test_failing_initializer_breaks_the_pool_like_threadpoolexecutor() -> None:
    from concurrent.futures.thread import BrokenThreadPool

    manager = LeasedExecutorManager(max_pools=1, initializer=_fail, initargs=("x",))
    await manager.start()
    try:
        async with await manager.acquire() as lease:
            with pytest.raises(BrokenThreadPool):
                await lease.run(_tag)
    finally:
        await manager.stop()
