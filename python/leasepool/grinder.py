"""WorkGrinder: batches many small submissions onto leased executors.

``ConcurrentFuture`` and ``LeasedExecutorManager`` are re-exported because
leasepool 0.1.3 made them importable from here.
"""

from __future__ import annotations

import logging
from concurrent.futures import Future as ConcurrentFuture

from ._engine import WorkGrinder
from .manager import LeasedExecutorManager

__all__ = ["ConcurrentFuture", "LeasedExecutorManager", "WorkGrinder", "logger"]

logger = logging.getLogger(__name__)
