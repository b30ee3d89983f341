"""Shared helpers for the test-suite (imported by the test modules, not a test file)."""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import itertools
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from leasepool import LeasedExecutorManager

MANAGER_LOGGER = "leasepool.manager"

_prefix_counter = itertools.count(1)


def unique_prefix(tag: str = "lp") -> str:
    """A thread-name prefix no other manager in this test session uses."""
    return f"t{tag}{next(_prefix_counter)}x"


@contextlib.asynccontextmanager
async def started_manager(**kwargs: Any) -> AsyncIterator[LeasedExecutorManager]:
    """Start a thread-backend manager (``max_pools=1`` unless given) and always stop it.

    Pools above the target retire at release (``idle_pool_seconds=0``, 0.1.3's sizing)
    unless a test asks otherwise: most tests check 0.1.3's semantics; idle retirement
    has tests of its own.
    """
    kwargs.setdefault("max_pools", 1)
    kwargs.setdefault("idle_pool_seconds", 0.0)
    kwargs.setdefault("name_prefix", unique_prefix())
    manager = LeasedExecutorManager(**kwargs)
    await manager.start()
    try:
        yield manager
    finally:
        await manager.stop()


async def eventually(
    predicate: Callable[[], bool], limit: float = 30.0, what: str = "condition"
) -> None:
    """Wait (bounded) until a background activity makes ``predicate`` true.

    Only for things a background checker does "eventually"; everything else in the
    suite waits on events or futures. The limit only turns a condition that never
    comes into a failure: it is generous, as the machine may be busy.
    """
    deadline = time.monotonic() + limit
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {limit}s")
        await asyncio.sleep(0.01)


class ThreadSignal:
    """A one-shot signal a worker thread raises and the event loop awaits."""

    def __init__(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._event = asyncio.Event()
        self.fired = threading.Event()

    def fire(self) -> None:
        """Call from any thread."""
        self.fired.set()
        self._loop.call_soon_threadsafe(self._event.set)

    async def wait(self, limit: float = 30.0) -> None:
        await asyncio.wait_for(self._event.wait(), limit)


def messages(
    caplog: pytest.LogCaptureFixture, level: int, logger: str = MANAGER_LOGGER
) -> list[str]:
    """Formatted messages of the captured records of ``logger`` at exactly ``level``."""
    return [r.getMessage() for r in caplog.records if r.name == logger and r.levelno == level]


def prefix_threads_alive(prefix: str) -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith(prefix) and t.is_alive()]


def blocked_until(gate: threading.Event, started: ThreadSignal | None = None) -> Callable[[], str]:
    """A worker function that reports it started, then blocks until ``gate`` is set."""

    def work() -> str:
        if started is not None:
            started.fire()
        if not gate.wait(10):
            raise RuntimeError("gate never opened")
        return "finished"

    return work


EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def load_example(filename: str, module_name: str) -> ModuleType:
    """Import ``examples/<filename>`` (not a package) as ``module_name``."""
    spec = importlib.util.spec_from_file_location(module_name, EXAMPLES / filename)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


class CheckProbe:
    """``size_provider`` that reports each call, so a test can wait for a check (every
    check calls it on the loop thread just before it acts)."""

    def __init__(self, units: int = 0) -> None:
        self.units = units
        self.called = asyncio.Event()

    def __call__(self) -> int:
        self.called.set()
        return self.units

    async def run_check(self, manager: LeasedExecutorManager) -> None:
        """Ask for a check and return once it has run (it runs on this loop)."""
        self.called.clear()
        manager.notify_scale_changed()
        await asyncio.wait_for(self.called.wait(), 30)
