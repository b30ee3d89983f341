"""Executor leasing, backpressure, and adaptive CPU/I/O offloading for async Python.

A :class:`LeasedExecutorManager` owns a bounded set of executor pools. Callers
``acquire()`` a short-lived :class:`ExecutorLease`, run blocking or CPU-heavy work
through it, and give it back; when every pool is leased, callers wait in strict
arrival order (or fail fast with ``wait=False``), under an optional admission
policy (bounded waiting, per-owner limits and fair share, reserved pools,
priorities). The engine is written in Rust.
"""

from __future__ import annotations

import logging

logging.getLogger(__name__).addHandler(logging.NullHandler())

from ._process_logging import ProcessLoggingConfig  # noqa: E402
from .backends import ExecutorBackend  # noqa: E402
from .exceptions import (  # noqa: E402
    LeaseAcquireTimeoutError,
    LeaseExpiredError,
    LeasePoolDrainingError,
    LeasePoolError,
    LeasePoolNotStartedError,
    LeaseQueueFullError,
    LeaseUnavailableError,
    UnsupportedBackendError,
    WorkerCrashLoopError,
)
from .grinder import WorkGrinder  # noqa: E402
from .manager import ExecutorLease, LeasedExecutorManager  # noqa: E402

__all__ = [
    "ExecutorBackend",
    "ExecutorLease",
    "LeasedExecutorManager",
    "LeaseExpiredError",
    "LeasePoolError",
    "LeasePoolNotStartedError",
    "LeaseUnavailableError",
    "UnsupportedBackendError",
    "WorkGrinder",
    "ProcessLoggingConfig",
    # Beyond 0.1.3 (docs/compatibility.md):
    "LeaseAcquireTimeoutError",
    "LeaseQueueFullError",
    "LeasePoolDrainingError",
    "WorkerCrashLoopError",
]
