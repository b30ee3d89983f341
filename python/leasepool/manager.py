"""The lease manager and the lease (implemented in the Rust engine)."""

from __future__ import annotations

import logging

from ._engine import ExecutorLease, LeasedExecutorManager

__all__ = ["ExecutorLease", "LeasedExecutorManager", "logger"]

logger = logging.getLogger(__name__)
