"""Callables for the ``backend="auto"`` tests; importable by worker processes."""

from __future__ import annotations

import logging
import os
import time

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
