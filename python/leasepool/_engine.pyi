"""Type stubs for the Rust extension ``leasepool._engine``.

They describe the extension as it is at run time (parameter names, defaults,
positional-only markers); ``python -m mypy.stubtest leasepool`` checks that.
"""

import asyncio
import logging
from collections.abc import Callable, Coroutine, Generator, Mapping
from concurrent.futures import Executor, Future
from contextvars import Context
from types import TracebackType
from typing import Any, Generic, NoReturn, ParamSpec, Self, TypeVar, TypeVarTuple, final

from typing_extensions import disjoint_base

from ._default_executor import LeasedDefaultExecutor
from ._process_logging import ProcessLoggingConfig
from .autoscale import AutoScale
from .backends import ExecutorBackend
from .metrics import GrinderMetrics, LeaseInfo, ManagerMetrics

__all__ = [
    "LeasedExecutorManager",
    "ExecutorLease",
    "DrainReport",
    "LeaseFuture",
    "EngineCoroutine",
    "WorkGrinder",
    "_shut_down_at_exit",
    "_after_fork_in_child",
    "_panic_for_tests",
    "_set_clock_skew_for_tests",
    "parse_memory_size",
]

_T = TypeVar("_T")
_T_co = TypeVar("_T_co", covariant=True)
_P = ParamSpec("_P")
_Ts = TypeVarTuple("_Ts")

@final
class LeaseFuture(Coroutine[Any, Any, _T_co], Generic[_T_co]):
    """Awaitable returned by engine operations: an asyncio future and a coroutine."""

    _asyncio_future_blocking: bool
    # asyncio.Future compatibility: True while an exception nobody retrieved is stored
    # (logged when the future is dropped); may only be set to False.
    _log_traceback: bool
    @property
    def _loop(self) -> asyncio.AbstractEventLoop: ...
    @property
    def _cancel_message(self) -> Any | None: ...
    def _make_cancelled_error(self) -> asyncio.CancelledError: ...
    def __await__(self) -> Generator[Any, None, _T_co]: ...
    def __iter__(self) -> Generator[Any, None, _T_co]: ...
    def __next__(self) -> Any: ...
    def send(self, _value: object) -> Any: ...
    def throw(
        self,
        typ: type[BaseException] | BaseException,
        val: object = None,
        tb: TracebackType | None = None,
    ) -> NoReturn: ...
    def close(self) -> None: ...
    def get_loop(self) -> asyncio.AbstractEventLoop: ...
    def done(self) -> bool: ...
    def cancelled(self) -> bool: ...
    def result(self) -> _T_co: ...
    def exception(self) -> BaseException | None: ...
    def add_done_callback(
        self, callback: Callable[[LeaseFuture[_T_co]], object], *, context: Context | None = None
    ) -> None: ...
    def remove_done_callback(self, callback: Callable[[LeaseFuture[_T_co]], object]) -> int: ...
    def cancel(self, msg: Any | None = None) -> bool: ...

@final
class EngineCoroutine(Coroutine[Any, Any, _T_co], Generic[_T_co]):
    """A lazily-run coroutine (``start()``, ``stop()``)."""

    @property
    def __name__(self) -> str: ...
    @property
    def __qualname__(self) -> str: ...
    def __await__(self) -> Generator[Any, None, _T_co]: ...
    def __iter__(self) -> Generator[Any, None, _T_co]: ...
    def __next__(self) -> Any: ...
    def send(self, _value: object) -> Any: ...
    def throw(
        self,
        typ: type[BaseException] | BaseException,
        val: object = None,
        tb: TracebackType | None = None,
    ) -> NoReturn: ...
    def close(self) -> None: ...

@final
class ExecutorLease:
    """The temporary right to run work on one leased executor."""

    @property
    def lease_id(self) -> str: ...
    @property
    def owner(self) -> str | None: ...
    @property
    def lease_seconds(self) -> float: ...
    @property
    def grace_seconds(self) -> float: ...
    @property
    def leased_at(self) -> float: ...
    @property
    def soft_expires_at(self) -> float: ...
    @property
    def hard_expires_at(self) -> float: ...
    @property
    def executor(self) -> Executor: ...
    def run(
        self, fn: Callable[_P, _T], /, *args: _P.args, **kwargs: _P.kwargs
    ) -> LeaseFuture[_T]: ...
    def _submit(
        self, fn: Callable[_P, _T], /, *args: _P.args, **kwargs: _P.kwargs
    ) -> Future[_T]: ...
    def release(self) -> LeaseFuture[None]: ...
    def __aenter__(self) -> LeaseFuture[ExecutorLease]: ...
    def __aexit__(self, _exc_type: object, _exc: object, _tb: object) -> LeaseFuture[None]: ...

@final
class DrainReport:
    """What ``drain()`` did (frozen; compares by value)."""

    @property
    def finished(self) -> int: ...
    @property
    def cancelled(self) -> int: ...
    @property
    def killed(self) -> int: ...
    @property
    def waiters_failed(self) -> int: ...
    @property
    def leases_revoked(self) -> int: ...
    @property
    def timed_out(self) -> bool: ...
    def __eq__(self, value: object, /) -> bool: ...
    def __hash__(self) -> int: ...

@disjoint_base
class LeasedExecutorManager:
    """Bounded async manager of leased executor pools."""

    def __new__(
        cls,
        *,
        backend: ExecutorBackend | str = "thread",
        max_pools: int,
        min_pools: int = 1,
        units_per_pool: int = 10,
        size_provider: Callable[[], int] | None = None,
        check_interval: float = 120.0,
        default_lease_seconds: float = 300.0,
        lease_grace_seconds: float = 15.0,
        workers_per_pool: int = 4,
        name_prefix: str = "leasepool",
        logger: logging.Logger | None = None,
        process_logging: ProcessLoggingConfig | None = None,
        forward_process_logs: bool = False,
        process_log_level: int | str = 20,
        process_log_target_logger: logging.Logger | None = None,
        clear_process_log_handlers: bool = True,
        idle_pool_seconds: float = 10.0,
        max_waiters: int | None = None,
        owner_limit: int | None = None,
        fair_share: bool = False,
        reserved_pools: Mapping[str, int] | None = None,
        metrics: bool = True,
        metrics_owners: int = 0,
        track_acquire_site: bool = False,
        autoscale: AutoScale | bool | None = None,
        **executor_kwargs: Any,
    ) -> Self: ...
    @property
    def backend(self) -> ExecutorBackend: ...
    def metrics(self) -> ManagerMetrics:
        """The engine's counters and histograms (zeros with ``metrics=False``)."""
    def leases(self) -> list[LeaseInfo]:
        """Every live lease, oldest grant first."""
    @property
    def available_count(self) -> int: ...
    @property
    def leased_count(self) -> int: ...
    @property
    def total_count(self) -> int: ...
    def start(self) -> EngineCoroutine[None]: ...
    def stop(self) -> EngineCoroutine[None]: ...
    def drain(self, timeout: float) -> LeaseFuture[DrainReport]:
        """Graceful drain: stop granting, finish or stop the work by ``timeout`` s, stop."""
    def acquire(
        self,
        *,
        lease_seconds: float | None = None,
        owner: str | None = None,
        wait: bool = True,
        timeout: float | None = None,
        priority: int = 0,
        reservation: str | None = None,
    ) -> LeaseFuture[ExecutorLease]: ...
    def run(
        self,
        func: Callable[[*_Ts], _T],
        /,
        *args: *_Ts,
        owner: Any = None,
        timeout: float | None = None,
        wait: bool = True,
        lease_seconds: float | None = None,
        priority: int = 0,
        reservation: str | None = None,
    ) -> LeaseFuture[_T]:
        """Run ``func(*args)`` on one worker slot: the one-call path."""
    def release(self, lease_id: str) -> LeaseFuture[None]: ...
    def notify_scale_changed(self) -> None: ...
    @property
    def _dask_connection(self) -> Any: ...
    def desired_executor_count(self) -> int: ...
    def stats(self) -> dict[str, Any]: ...
    # Defined in Python (leasepool/manager.py), attached to this class at import.
    def install_as_default_executor(
        self,
        loop: asyncio.AbstractEventLoop | None = None,
        *,
        owner: Any = "default-executor",
        wait: bool = True,
        timeout: float | None = None,
        lease_seconds: float | None = None,
    ) -> LeasedDefaultExecutor:
        """``asyncio.to_thread``/``run_in_executor(None, ...)`` on ``loop`` use this manager."""

@disjoint_base
class WorkGrinder:
    """Batches many small submissions onto leased executors."""

    def __new__(
        cls,
        *,
        executor_manager: LeasedExecutorManager,
        max_wait_seconds: float = 10.0,
        batch_size_threshold: int = 20,
        lease_seconds: float = 60.0,
        owner_prefix: str = "work-grinder",
        logger: logging.Logger | None = None,
        max_pending: int | None = None,
        wait: bool = True,
        submit_timeout: float | None = None,
    ) -> Self: ...
    def start(self) -> EngineCoroutine[None]: ...
    def stop(self, *, cancel_pending: bool = False) -> EngineCoroutine[None]: ...
    def drain(self, timeout: float) -> LeaseFuture[DrainReport]:
        """Graceful drain: accept nothing, finish batches by ``timeout`` s, cancel the rest."""
    def submit(
        self, fn: Callable[..., _T], /, *args: Any, owner: str | None = None, **kwargs: Any
    ) -> LeaseFuture[_T]: ...
    def enqueue(
        self, fn: Callable[..., _T], /, *args: Any, owner: str | None = None, **kwargs: Any
    ) -> LeaseFuture[asyncio.Future[_T]]: ...
    def submit_from_thread(
        self, fn: Callable[..., _T], /, *args: Any, owner: str | None = None, **kwargs: Any
    ) -> Future[_T]: ...
    def stats(self) -> dict[str, Any]: ...
    def metrics(self) -> GrinderMetrics:
        """Counters, gauges and histograms of items and batches (any thread)."""
    def astats(self) -> LeaseFuture[dict[str, Any]]: ...
    def stats_from_thread(self, timeout: float | None = None) -> dict[str, Any]: ...

# Plumbing of the extension itself; never call these.

def _shut_down_at_exit() -> None:
    """``threading._register_atexit`` hook: every live pool stops taking work."""

def _after_fork_in_child() -> None:
    """``os.register_at_fork(after_in_child=...)`` hook: the child disowns the parent's threads."""

def _panic_for_tests() -> NoReturn:
    """Test hook: panics inside the engine; always raises ``RuntimeError``."""

def _set_clock_skew_for_tests(seconds: float) -> None:
    """Test hook: the engine's clock runs ``seconds`` ahead of ``time.monotonic()``."""

def parse_memory_size(text: str) -> int:
    """Bytes in a size such as ``"512MiB"``, ``"1.5GB"``, ``"64M"`` or ``"4096"``.

    Raises:
        ValueError: text that is not a size, or a size below one byte.
    """
