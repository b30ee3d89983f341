"""Executor backends: the names users pass as ``backend=`` and the stdlib classes behind them.

The engine runs thread pools natively; these helpers keep 0.1.1's public functions,
which return and build the standard library executor classes.
"""

from __future__ import annotations

from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from enum import StrEnum
from typing import Any, cast

from .exceptions import UnsupportedBackendError

__all__ = ["ExecutorBackend", "build_executor", "normalize_backend", "resolve_executor_cls"]


class ExecutorBackend(StrEnum):
    """Where leased work runs: threads, worker processes, sub-interpreters (3.14+), the
    workers of a Dask cluster (``leasepool[dask]``), or ``auto``: threads and worker
    processes, each callable routed by measurement (``docs/offloading.md``)."""

    THREAD = "thread"
    PROCESS = "process"
    INTERPRETER = "interpreter"
    DASK = "dask"
    AUTO = "auto"


def normalize_backend(backend: ExecutorBackend | str) -> ExecutorBackend:
    """Return ``backend`` as an :class:`ExecutorBackend`; strings match case-insensitively.

    Raises:
        ValueError: the name is not a known backend.
    """
    if isinstance(backend, ExecutorBackend):
        return backend
    try:
        return ExecutorBackend(str(backend).lower())
    except ValueError as exc:
        supported = ", ".join(member.value for member in ExecutorBackend)
        raise ValueError(f"Unsupported backend {backend!r}. Supported: {supported}") from exc


def resolve_executor_cls(backend: ExecutorBackend | str) -> type[Executor]:
    """Return the standard library executor class that implements ``backend``.

    Raises:
        ValueError: unknown backend name; ``"auto"`` (no single class implements it).
        UnsupportedBackendError: the interpreter backend before Python 3.14; the dask
            backend without ``distributed`` installed.
    """
    normalized = normalize_backend(backend)
    if normalized is ExecutorBackend.AUTO:
        raise ValueError(
            "the auto backend is no single executor class: its pools mix thread and "
            "process workers (a LeasedExecutorManager(backend='auto') builds them)"
        )
    if normalized is ExecutorBackend.THREAD:
        return ThreadPoolExecutor
    if normalized is ExecutorBackend.PROCESS:
        return ProcessPoolExecutor
    if normalized is ExecutorBackend.DASK:
        from ._dask import DaskExecutor, import_distributed

        import_distributed()  # UnsupportedBackendError naming the extra
        return DaskExecutor
    try:
        from concurrent.futures import (  # type: ignore[attr-defined,unused-ignore]
            InterpreterPoolExecutor,
        )
    except ImportError as exc:
        raise UnsupportedBackendError(
            "InterpreterPoolExecutor is available only on Python 3.14+."
        ) from exc
    cls: type[Executor] = InterpreterPoolExecutor
    return cls


def build_executor(
    *,
    backend: ExecutorBackend | str,
    max_workers: int,
    name_prefix: str,
    executor_seq: int,
    executor_kwargs: dict[str, Any],
) -> Executor:
    """Build a standard library executor for ``backend``.

    Raises:
        ValueError: ``backend`` is ``"dask"`` (only a manager builds those).

    Thread and interpreter executors get ``thread_name_prefix=f"{name_prefix}-{executor_seq}"``
    unless ``executor_kwargs`` already sets one (ProcessPoolExecutor has no such option).
    """
    if normalize_backend(backend) is ExecutorBackend.DASK:
        raise ValueError(
            "the dask backend's executors belong to a LeasedExecutorManager "
            "(backend='dask'), which connects them to the cluster at start()"
        )
    executor_cls = resolve_executor_cls(backend)
    kwargs = dict(executor_kwargs)
    if normalize_backend(backend) is not ExecutorBackend.PROCESS:
        kwargs.setdefault("thread_name_prefix", f"{name_prefix}-{executor_seq}")
    factory = cast(Any, executor_cls)  # each concrete class takes max_workers
    built: Executor = factory(max_workers=max_workers, **kwargs)
    return built
