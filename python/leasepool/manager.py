"""The lease manager and the lease (implemented in the Rust engine).

The other names are re-exported because leasepool 0.1.3 made them importable from
here (``from leasepool.manager import SizeProvider, build_executor, ...``).
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import BrokenExecutor, Executor, Future
from concurrent.futures import CancelledError as FutureCancelledError
from typing import Any

from ._default_executor import (
    DEFAULT_EXECUTOR_OWNER,
    LeasedDefaultExecutor,
    install_as_default_executor,
)
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


def _install_as_default_executor(
    self: LeasedExecutorManager,
    loop: asyncio.AbstractEventLoop | None = None,
    *,
    owner: Any = DEFAULT_EXECUTOR_OWNER,
    wait: bool = True,
    timeout: float | None = None,
    lease_seconds: float | None = None,
) -> LeasedDefaultExecutor:
    return install_as_default_executor(
        self, loop, owner=owner, wait=wait, timeout=timeout, lease_seconds=lease_seconds
    )


# A method of the extension class written in Python (the class accepts new attributes),
# so the binding stays free of stdlib executor glue (docs/ARCHITECTURE.md).
_install_as_default_executor.__name__ = "install_as_default_executor"
_install_as_default_executor.__qualname__ = "LeasedExecutorManager.install_as_default_executor"
_install_as_default_executor.__doc__ = install_as_default_executor.__doc__
setattr(LeasedExecutorManager, "install_as_default_executor", _install_as_default_executor)  # noqa: B010
