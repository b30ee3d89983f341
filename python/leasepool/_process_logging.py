"""Forwarding of worker-process log records to the parent's loggers.

``ProcessLoggingConfig`` is the user-facing switch. The functions below run in
worker processes (they are pickled by reference), which is why they live in Python.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from logging.handlers import QueueHandler
from typing import Any

__all__ = ["ProcessLoggingConfig", "coerce_log_level"]


@dataclass(frozen=True, slots=True)
class ProcessLoggingConfig:
    """Whether and how records logged in worker processes reach the parent.

    Attributes:
        enabled: forward worker records (process backend only).
        level: minimum level set on each worker's root logger (int or level name).
        target_logger: parent logger that handles forwarded records; defaults to the
            manager's logger.
        clear_child_handlers: drop handlers the worker inherited (after ``fork``) so
            nothing is printed twice.
    """

    enabled: bool = False
    level: int | str = logging.INFO
    target_logger: logging.Logger | None = None
    clear_child_handlers: bool = True


def coerce_log_level(level: int | str) -> int:
    """Return the numeric level for an int or a standard level name.

    Raises:
        ValueError: ``level`` names no logging level.
    """
    if isinstance(level, str):
        resolved = logging.getLevelName(level.upper())
        if isinstance(resolved, int):
            return resolved
        raise ValueError(f"Invalid logging level: {level!r}")
    return int(level)


def install_worker_logging(
    log_queue: Any,
    level: int,
    clear_existing_handlers: bool,
    user_initializer: Callable[..., object] | None,
    user_initargs: tuple[Any, ...],
) -> None:
    """Worker-process initializer: route the root logger into ``log_queue``, then run
    the user's own initializer (so records it logs are forwarded too)."""
    root = logging.getLogger()
    if clear_existing_handlers:
        root.handlers.clear()
    root.addHandler(QueueHandler(log_queue))
    root.setLevel(level)
    if user_initializer is not None:
        user_initializer(*user_initargs)
