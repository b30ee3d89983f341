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

__all__ = [
    "LoggerForwardingHandler",
    "ProcessLoggingConfig",
    "build_queue_listener",
    "coerce_log_level",
    "configure_process_worker_logging",
    "process_worker_initializer",
]


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


def configure_process_worker_logging(
    log_queue: Any, *, level: int | str, clear_existing_handlers: bool
) -> None:
    """In a worker process: send every record of the root logger to ``log_queue``."""
    root = logging.getLogger()
    if clear_existing_handlers:
        root.handlers.clear()
    root.addHandler(QueueHandler(log_queue))
    root.setLevel(coerce_log_level(level))


def process_worker_initializer(
    log_queue: Any | None,
    level: int | str,
    clear_existing_handlers: bool,
    user_initializer: Callable[..., object] | None,
    user_initargs: tuple[Any, ...],
) -> None:
    """Worker-process initializer: route the root logger into ``log_queue`` (if any),
    then run the user's own initializer (so records it logs are forwarded too)."""
    if log_queue is not None:
        configure_process_worker_logging(
            log_queue, level=level, clear_existing_handlers=clear_existing_handlers
        )
    if user_initializer is not None:
        user_initializer(*user_initargs)


# The name the engine's worker bootstrap uses.
install_worker_logging = process_worker_initializer


class LoggerForwardingHandler(logging.Handler):
    """Parent side: hands each record from a worker to ``target_logger.handle`` if that
    logger is enabled for its level, so the application's handlers, filters and
    levels decide what happens to it."""

    def __init__(self, target_logger: logging.Logger) -> None:
        super().__init__(level=logging.NOTSET)
        self._target_logger = target_logger

    def emit(self, record: logging.LogRecord) -> None:
        if self._target_logger.isEnabledFor(record.levelno):
            self._target_logger.handle(record)


def build_queue_listener(*, log_queue: Any, target_logger: logging.Logger) -> QueueListener:
    """The parent's listener on ``log_queue`` (not started)."""
    return QueueListener(
        log_queue, LoggerForwardingHandler(target_logger), respect_handler_level=True
    )


def start_forwarding(log_queue: Any, target: logging.Logger) -> QueueListener:
    """Start the parent's listener on ``log_queue`` (the manager stops it in ``stop()``)."""
    listener = build_queue_listener(log_queue=log_queue, target_logger=target)
    listener.start()
    return listener
