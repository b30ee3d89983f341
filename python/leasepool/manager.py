"""The lease manager and the lease (implemented in the Rust engine).

The other names are re-exported because leasepool 0.1.3 made them importable from
here (``from leasepool.manager import SizeProvider, build_executor, ...``).
"""

from __future__ import annotations

import logging
from concurrent.futures import BrokenExecutor, Executor, Future
from concurrent.futures import CancelledError as FutureCancelledError

from ._engine import DrainReport, ExecutorLease, LeasedExecutorManager
from ._process_logging import (
    ProcessLoggingConfig,
    build_queue_listener,
    coerce_log_level,
    process_worker_initializer,
)
from .backends import ExecutorBackend, build_executor, normalize_backend
from .exceptions import LeaseExpiredError, LeasePoolNotStartedError, LeaseUnavailableError
from .types import SizeProvider

__all__ = [
    "BrokenExecutor",
    "DrainReport",
    "Executor",
    "ExecutorBackend",
    "ExecutorLease",
    "Future",
    "FutureCancelledError",
    "LeaseExpiredError",
    "LeasePoolNotStartedError",
    "LeaseUnavailableError",
    "LeasedExecutorManager",
    "ProcessLoggingConfig",
    "SizeProvider",
    "build_executor",
    "build_queue_listener",
    "coerce_log_level",
    "logger",
    "normalize_backend",
    "process_worker_initializer",
]

logger = logging.getLogger(__name__)
