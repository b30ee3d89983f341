"""Forwarding of worker-process log records to the parent's loggers.

``ProcessLoggingConfig`` is the user-facing switch. ``install_worker_logging`` runs in
worker processes (it is pickled by reference), which is why it lives in Python; the
parent end is a ``QueueListener`` whose handler re-enters the target logger, so the
application's own handlers, filters and levels decide what happens to each record.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from logging.handlers import QueueHandler, QueueListener
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


class _ForwardToLogger(logging.Handler):
    """Hands each record from a worker to ``target.handle`` (if enabled for its level)."""

    def __init__(self, target: logging.Logger) -> None:
        super().__init__()
        self._target = target

    def emit(self, record: logging.LogRecord) -> None:
        if self._target.isEnabledFor(record.levelno):
            self._target.handle(record)


def start_forwarding(log_queue: Any, target: logging.Logger) -> QueueListener:
    """Start the parent's listener on ``log_queue`` (the manager stops it in ``stop()``)."""
    listener = QueueListener(log_queue, _ForwardToLogger(target), respect_handler_level=True)
    listener.start()
    return listener
