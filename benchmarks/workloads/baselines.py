"""Baselines for the workloads that have a non-leasepool equivalent.

* ``executor``:  ``loop.run_in_executor(ThreadPoolExecutor(4), fn, *args)``
* ``to_thread``: ``asyncio.to_thread(fn, *args)`` (the loop's default executor)
* ``anyio``:     ``anyio.to_thread.run_sync(fn, *args, limiter=CapacityLimiter(4))``
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from .common import (
    AsyncCall,
    Metrics,
    Params,
    time_gathered,
    time_requests,
    time_sequential,
    time_submit_result,
)

WORKERS = 4


def _noop() -> None:
    return None


def make_call(impl: str) -> tuple[AsyncCall, Callable[[], None]]:
    """Return (call, cleanup) for a baseline; must be called inside the running loop."""
    if impl == "executor":
        loop = asyncio.get_running_loop()
        pool = ThreadPoolExecutor(WORKERS, thread_name_prefix="lpbench-tpe")

        def run_in_executor(fn: Callable[..., Any], *args: Any) -> Awaitable[Any]:
            return loop.run_in_executor(pool, fn, *args)

        return run_in_executor, lambda: pool.shutdown(wait=True)
    if impl == "to_thread":
        return asyncio.to_thread, _noop
    if impl == "anyio":
        import anyio
        import anyio.to_thread

        limiter = anyio.CapacityLimiter(WORKERS)

        def run_sync(fn: Callable[..., Any], *args: Any) -> Awaitable[Any]:
            return anyio.to_thread.run_sync(fn, *args, limiter=limiter)

        return run_sync, _noop
    raise ValueError(f"unknown baseline {impl!r}")


async def sequential_run(impl: str, p: Params) -> Metrics:
    call, cleanup = make_call(impl)
    try:
        return await time_sequential(call, p["n"], p["warmup"])
    finally:
        cleanup()


async def gathered_run(impl: str, p: Params) -> Metrics:
    call, cleanup = make_call(impl)
    try:
        return await time_gathered(call, p["n"], p["warmup"])
    finally:
        cleanup()


async def executor_submit(impl: str, p: Params) -> Metrics:
    if impl != "executor":
        raise ValueError(f"executor_submit has no {impl!r} baseline")
    with ThreadPoolExecutor(WORKERS, thread_name_prefix="lpbench-tpe") as pool:
        return time_submit_result(pool.submit, p["n"], p["warmup"])


async def one_call(impl: str, p: Params) -> Metrics:
    capacity = p["capacity"]
    loop = asyncio.get_running_loop()
    if impl == "executor":
        with ThreadPoolExecutor(capacity, thread_name_prefix="lpbench-tpe") as pool:

            def run_in_executor(fn: Callable[..., Any], *args: Any) -> Awaitable[Any]:
                return loop.run_in_executor(pool, fn, *args)

            return await time_requests(run_in_executor, p["tasks"], p["rounds"], p["warmup"])
    if impl == "anyio":
        import anyio
        import anyio.to_thread

        limiter = anyio.CapacityLimiter(capacity)

        def run_sync(fn: Callable[..., Any], *args: Any) -> Awaitable[Any]:
            return anyio.to_thread.run_sync(fn, *args, limiter=limiter)

        return await time_requests(run_sync, p["tasks"], p["rounds"], p["warmup"])
    raise ValueError(f"one_call has no {impl!r} baseline")


WORKLOADS: dict[str, Callable[[str, Params], Awaitable[Metrics]]] = {
    "sequential_run": sequential_run,
    "gathered_run": gathered_run,
    "executor_submit": executor_submit,
    "one_call": one_call,
}
