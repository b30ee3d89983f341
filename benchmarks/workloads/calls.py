"""Top-level, picklable callables run by the workloads (also in worker processes)."""

from __future__ import annotations

import threading


def add(a: int, b: int) -> int:
    return a + b


def block(started: threading.Event, gate: threading.Event, timeout: float = 120.0) -> bool:
    """Occupy a worker thread until ``gate`` is set (thread backend only)."""
    started.set()
    return gate.wait(timeout)
