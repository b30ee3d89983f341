"""Callables for the ``backend="auto"`` tests; importable by worker processes."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable

from leasepool.offload import cpu_bound, io_bound


def spin(n: int) -> int:
    """Pure-Python CPU work: holds the GIL throughout."""
    total = 0
    for i in range(n):
        total += i * i % 7
    return total


def work(mode: str, amount: float) -> int:
    """CPU-bound or I/O-bound depending on ``mode``: one callable whose nature changes.
    Returns the pid it ran in."""
    if mode == "cpu":
        deadline = time.thread_time() + amount
        while time.thread_time() < deadline:
            spin(1_000)
    else:
        time.sleep(amount)
    return os.getpid()


def where() -> int:
    return os.getpid()


@cpu_bound
def cpu_where(*_ignored: object) -> int:
    return os.getpid()


@io_bound
def io_where() -> int:
    return os.getpid()


@cpu_bound
def cpu_niceness() -> int:
    return os.nice(0)


@cpu_bound
def cpu_log(message: str) -> int:
    logging.getLogger("leasepool.tests.auto").warning(message)
    return os.getpid()


@cpu_bound
def cpu_fail() -> None:
    raise ValueError("from the worker process")


class Counter:
    """A callable instance (routed by identity)."""

    def __call__(self, x: int) -> int:
        return x + 1

    def method(self, x: int) -> int:
        return x * 2


@cpu_bound
def work_hinted(seconds: float) -> int:
    """CPU-hinted, sleeps (a long call on the process half)."""
    time.sleep(seconds)
    return os.getpid()


SHARED_LOCK = threading.Lock()


@io_bound
def hold_shared_lock(release: threading.Event, holding: Callable[[], None]) -> bool:
    """Holds a module-level lock on a worker thread (saying so) until ``release``."""
    with SHARED_LOCK:
        holding()
        return release.wait(60)


@cpu_bound
def take_shared_lock() -> int:
    """In a worker process: a forked child would inherit SHARED_LOCK held forever."""
    with SHARED_LOCK:
        return os.getpid()


def mostly_sleeping(cpu_seconds: float, sleep_seconds: float) -> int:
    """A little CPU, mostly sleep (20 % CPU with 0.004 / 0.016)."""
    deadline = time.thread_time() + cpu_seconds
    while time.thread_time() < deadline:
        pass
    time.sleep(sleep_seconds)
    return os.getpid()


@cpu_bound
def pid_of(*_ignored: object) -> int:
    return os.getpid()


@cpu_bound
def cpu_step(x: object) -> int:
    if x == "slow":
        time.sleep(0.2)  # longer than a chunk's budget: the rest of its chunk re-queues
    return os.getpid()


class PicklesOnce:
    """An argument whose second pickling fails."""

    pickled = 0

    def __reduce__(self) -> tuple[object, ...]:
        PicklesOnce.pickled += 1
        if PicklesOnce.pickled > 1:
            raise RuntimeError("cannot pickle any more")
        return (str, ("ok",))


class WithLock:
    """A callable instance that cannot be pickled (it holds a lock)."""

    def __init__(self, lock: object = None) -> None:
        self.lock = lock
        self.rows = list(range(10_000))  # a huge repr

    def __call__(self) -> int:
        return os.getpid()
