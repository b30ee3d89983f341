"""Helpers for the WorkGrinder tests (imported by them; not a test file).

The top-level functions are picklable, so the process-backend tests can send them to
worker processes. The module imports nothing but the standard library at import time
(leasepool is imported inside :func:`grinder_env`), so worker processes load it fast.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from typing import Any

GRINDER_LOGGER = "leasepool.grinder"
MANAGER_LOGGER = "leasepool.manager"

_prefix_counter = itertools.count(1)


# ---------------------------------------------------------------- picklable functions


class ItemError(Exception):
    """Raised by :func:`fail_if_odd`; picklable (one positional argument)."""


def square(value: int) -> int:
    return value * value


def add(a: int, b: int = 0) -> int:
    return a + b


def fail_if_odd(value: int) -> int:
    if value % 2:
        raise ItemError(f"odd {value}")
    return value * 10


def getpid() -> int:
    return os.getpid()


def keyword_fn(*, fn: str, owner_seen: bool = False) -> str:
    """Has a keyword argument literally named ``fn`` (``submit``'s fn is positional-only)."""
    return f"fn={fn} owner_seen={owner_seen}"


def echo(*args: Any, **kwargs: Any) -> tuple[tuple[Any, ...], dict[str, Any]]:
    return args, kwargs


# ------------------------------------------------------------------- test scaffolding


def unique_prefix(tag: str = "g") -> str:
    """A thread-name prefix no other manager in this session uses."""
    return f"tgr{tag}{next(_prefix_counter)}x"


@contextlib.asynccontextmanager
async def grinder_env(
    manager_kwargs: dict[str, Any] | None = None, **grinder_kwargs: Any
) -> AsyncIterator[tuple[Any, Any]]:
    """A started thread-backend manager (``max_pools=1`` unless given) and a started
    grinder on it; both are always stopped (pending grinder items are cancelled)."""
    from leasepool import LeasedExecutorManager, WorkGrinder

    mkw = dict(manager_kwargs or {})
    mkw.setdefault("max_pools", 1)
    mkw.setdefault("name_prefix", unique_prefix())
    manager = LeasedExecutorManager(**mkw)
    await manager.start()
    try:
        grinder = WorkGrinder(executor_manager=manager, **grinder_kwargs)
        await grinder.start()
        try:
            yield manager, grinder
        finally:
            await grinder.stop(cancel_pending=True)
    finally:
        await manager.stop()


class LoopSignal:
    """A one-shot signal any thread raises and the event loop awaits."""

    def __init__(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._event = asyncio.Event()
        self.fired = threading.Event()

    def fire(self) -> None:
        self.fired.set()
        self._loop.call_soon_threadsafe(self._event.set)

    async def wait(self, within: float = 30.0) -> None:
        await asyncio.wait_for(self._event.wait(), within)


def blocker(
    gate: threading.Event, started: LoopSignal | None = None, value: Any = "done"
) -> Callable[[], Any]:
    """A worker function that reports it started, then blocks until ``gate`` is set."""

    def work() -> Any:
        if started is not None:
            started.fire()
        if not gate.wait(5):
            raise RuntimeError("gate never opened")
        return value

    return work


async def until(predicate: Callable[[], bool], within: float = 30.0, what: str = "") -> None:
    """Yield to the loop until ``predicate()`` holds (bounded); for state that other
    tasks reach without signalling (e.g. a task reaching its first await)."""
    deadline = time.monotonic() + within
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not reached within {within}s: {what}")
        await asyncio.sleep(0.001)


class CallCounter:
    """Thread-safe count of invocations per item id."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.counts: Counter[Any] = Counter()

    def record(self, key: Any) -> None:
        with self._lock:
            self.counts[key] += 1
