"""Cold-path configuration of the manager, checked in typed Python.

The engine validates what it computes with (pool counts, durations; see ``coerce`` in
the binding). What only the standard library gives meaning to — the keyword arguments
a ``ThreadPoolExecutor`` accepts, how worker-process logging is configured — is
checked here, with the messages leasepool 0.1.3 raised.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

from ._process_logging import ProcessLoggingConfig, coerce_log_level

__all__ = ["ThreadPoolSettings", "process_logging_config", "thread_pool_settings"]


class ThreadPoolSettings(NamedTuple):
    """The ``ThreadPoolExecutor`` arguments the native thread pools honour."""

    initializer: Callable[..., object] | None
    initargs: tuple[Any, ...] | None
    thread_name_prefix: str | None


def thread_pool_settings(executor_kwargs: Mapping[str, Any]) -> ThreadPoolSettings:
    """Check the thread backend's ``**executor_kwargs`` as ``ThreadPoolExecutor`` does.

    Raises:
        TypeError: an argument ``ThreadPoolExecutor`` does not take, or ``initargs``
            that is not iterable.
    """
    initializer: Callable[..., object] | None = None
    initargs: tuple[Any, ...] | None = None
    thread_name_prefix: str | None = None
    for key, value in executor_kwargs.items():
        if key == "initializer":
            initializer = value
        elif key == "initargs":
            initargs = tuple(value)
        elif key == "thread_name_prefix":
            thread_name_prefix = None if value is None else str(value)
        else:
            raise TypeError(
                f"ThreadPoolExecutor.__init__() got an unexpected keyword argument '{key}'"
            )
    return ThreadPoolSettings(initializer, initargs, thread_name_prefix)


def process_logging_config(
    backend: str,
    process_logging: ProcessLoggingConfig | None,
    forward_process_logs: bool,
    process_log_level: int | str | None,
    process_log_target_logger: logging.Logger | None,
    clear_process_log_handlers: bool,
) -> ProcessLoggingConfig:
    """The manager's worker-logging configuration, from either ``process_logging`` or
    the older ``forward_process_logs``/``process_log_*`` arguments (not both).

    Raises:
        ValueError: both forms given; forwarding asked of a backend other than
            ``"process"``; a level that names no logging level.
    """
    if process_log_level is None:
        process_log_level = logging.INFO
    if process_logging is not None:
        legacy_given = (
            forward_process_logs
            or process_log_level != logging.INFO
            or process_log_target_logger is not None
            or not clear_process_log_handlers
        )
        if legacy_given:
            raise ValueError(
                "Pass either process_logging or the forward_process_logs/process_log_* "
                "arguments, not both."
            )
        config = process_logging
    else:
        config = ProcessLoggingConfig(
            enabled=forward_process_logs,
            level=process_log_level,
            target_logger=process_log_target_logger,
            clear_child_handlers=clear_process_log_handlers,
        )
    if config.enabled and backend not in ("process", "auto"):
        raise ValueError("process log forwarding is only supported for process backend")
    coerce_log_level(config.level)
    return config
