"""Top-level, picklable callables run by the workloads (also in worker processes)."""

from __future__ import annotations

import threading


def add(a: int, b: int) -> int:
    return a + b


def block(started: threading.Event, gate: threading.Event, timeout: float = 120.0) -> bool:
    """Occupy a worker thread until ``gate`` is set (thread backend only)."""
    started.set()
    return gate.wait(timeout)


def spin(n: int) -> int:
    """Pure-Python CPU work that holds the GIL throughout (``n`` loop steps)."""
    total = 0
    for i in range(n):
        total += i * i % 7
    return total


def sleep_io(seconds: float) -> float:
    """Blocking I/O as a sync client does it: the GIL is released while it waits."""
    import time

    time.sleep(seconds)
    return seconds
