"""Standard-library glue of the process and interpreter backends.

The engine decides what happens to calls: when a chunk leaves, which calls a crash
failed, whether a pool is unusable. This module only builds the executors' arguments
and reads what an executor leaves behind, including the private
``ProcessPoolExecutor`` attributes ``_processes`` and ``_executor_manager_thread`` and
``InterpreterPoolExecutor._threads``: their use is confined here, type-checked, so a
change in CPython breaks one small module rather than the extension.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import multiprocessing
import signal
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import Executor
from multiprocessing.connection import wait as wait_for_sentinels
from multiprocessing.process import BaseProcess
from typing import Any, NamedTuple

from ._process_logging import ProcessLoggingConfig, coerce_log_level
from ._process_worker import initialize as worker_initialize
from .backends import ExecutorBackend, resolve_executor_cls

__all__ = [
    "ExecutorSettings",
    "describe_exit",
    "executor_processes",
    "keep_workers_replaced",
    "executor_threads",
    "launch_processes",
    "resolve_executor_settings",
    "stop_broken_processes",
    "submit_task",
    "wait_for_teardown",
]


class ExecutorSettings(NamedTuple):
    """How every executor of one manager is built (resolved at its first start)."""

    executor_cls: Callable[..., Executor]
    #: Keyword arguments for the executor; for the process backend without
    #: ``initializer``/``initargs``, which are composed per executor.
    kwargs: dict[str, Any]
    #: ``(log_setup, user_initializer, user_initargs, nice, auto, memory_limit)``: the
    #: arguments of ``_process_worker.initialize`` after the progress array (process
    #: backend).
    initargs_tail: tuple[Any, ...]
    #: ``max_tasks_per_child`` is set: one call per task, so it keeps counting calls.
    one_call_per_task: bool
    #: The user set ``thread_name_prefix`` (interpreter backend).
    has_thread_prefix: bool
    #: The parent end of log forwarding: the queue and the target logger.
    log_queue: Any
    log_target: logging.Logger | None
    #: The dask backend's client (a ``_dask.DaskConnection``), else ``None``.
    connection: Any = None


def _forwarding_context(kwargs: dict[str, Any], one_call_per_task: bool) -> Any:
    """The multiprocessing context the log queue comes from.

    As in leasepool 0.1.3, without an explicit ``mp_context`` that context never
    forks (the listener thread already runs in the parent): forkserver where
    available, else spawn; spawn with ``max_tasks_per_child``, which is what
    ``ProcessPoolExecutor`` picks then. The chosen context is set on ``kwargs``.
    """
    context = kwargs.get("mp_context")
    if context is None:
        methods = multiprocessing.get_all_start_methods()
        method = "forkserver" if "forkserver" in methods and not one_call_per_task else "spawn"
        context = multiprocessing.get_context(method)
        kwargs["mp_context"] = context
    return context


def resolve_executor_settings(
    kind: str,
    backend: ExecutorBackend,
    workers: int,
    name_prefix: str,
    executor_kwargs: Mapping[str, Any],
    process_logging: ProcessLoggingConfig,
    logger: logging.Logger,
) -> ExecutorSettings:
    """Resolve and validate the executor arguments of a ``kind`` (``"process"``,
    ``"interpreter"`` or ``"dask"``) manager.

    Raises:
        TypeError, ValueError: what constructing the executor raises for bad
            arguments (leasepool 0.1.1 raised them at ``start()`` too).
    """
    if kind == "dask":
        return _dask_settings(executor_kwargs, name_prefix, logger)
    executor_cls: Callable[..., Executor] = resolve_executor_cls(backend)
    kwargs = dict(executor_kwargs)
    one_call_per_task = kwargs.get("max_tasks_per_child") is not None
    has_thread_prefix = "thread_name_prefix" in kwargs
    probe_kwargs = dict(kwargs)
    initargs_tail: tuple[Any, ...] = ()
    log_queue: Any = None
    log_target: logging.Logger | None = None
    if kind == "process":
        nice = worker_nice(kwargs.pop("worker_nice", 0))
        probe_kwargs.pop("worker_nice", None)
        # The process half of backend="auto": its threads run user code while the
        # first worker process starts, so it never forks (a lock a thread holds would
        # be copied held); and its workers measure their run-queue wait for routing.
        auto = bool(kwargs.pop(AUTO_MARK, False))
        probe_kwargs.pop(AUTO_MARK, None)
        memory_limit = kwargs.pop("max_worker_memory", None)
        probe_kwargs.pop("max_worker_memory", None)
        if kwargs.get("mp_context", 0) is None:  # None is the executor's "default"
            del kwargs["mp_context"]
            probe_kwargs.pop("mp_context", None)
        if (auto or memory_limit is not None) and "mp_context" not in kwargs:
            _forwarding_context(kwargs, one_call_per_task)
            probe_kwargs["mp_context"] = kwargs["mp_context"]
        if memory_limit is not None:
            _check_replaceable_workers(kwargs["mp_context"])
        initializer = kwargs.pop("initializer", None)
        initargs = tuple(kwargs.pop("initargs", ()))
        log_setup: tuple[Any, int, bool] | None = None
        if process_logging.enabled:
            context = _forwarding_context(kwargs, one_call_per_task)
            probe_kwargs["mp_context"] = context
            log_queue = context.Queue(-1)
            level = coerce_log_level(process_logging.level)
            log_setup = (log_queue, level, process_logging.clear_child_handlers)
            target = process_logging.target_logger
            log_target = target if target is not None else logger
        initargs_tail = (log_setup, initializer, initargs, nice, auto, memory_limit)
        probe_kwargs["initializer"] = worker_initialize
        probe_kwargs["initargs"] = (None, *initargs_tail)
    elif not has_thread_prefix:
        probe_kwargs["thread_name_prefix"] = f"{name_prefix}-0"
    # Constructing an executor starts no process or thread; it raises what it raises.
    executor_cls(workers, **probe_kwargs).shutdown(wait=False)
    return ExecutorSettings(
        executor_cls,
        kwargs,
        initargs_tail,
        one_call_per_task,
        has_thread_prefix,
        log_queue,
        log_target,
    )


def _check_replaceable_workers(context: Any) -> None:
    """``max_worker_memory`` replaces a worker from the executor's management thread,
    which must not fork (the stdlib refuses ``max_tasks_per_child`` with fork for the
    same reason)."""
    if context.get_start_method(allow_none=False) == "fork":
        raise ValueError(
            "max_worker_memory is incompatible with the 'fork' start method: a retired "
            "worker is replaced from a thread; use mp_context with 'forkserver' or "
            "'spawn' (the default when max_worker_memory is set)"
        )


AUTO_MARK = "_leasepool_auto_half"
"""The executor argument the binding adds for the process half of ``backend="auto"``."""


def worker_nice(value: object) -> int:
    """``worker_nice``: how much lower than the parent's the worker processes' CPU
    priority is (``os.nice`` in each worker): 0 (the same) to 19."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"worker_nice must be an int, not {type(value).__name__}")
    if not 0 <= value <= 19:
        raise ValueError(f"worker_nice must be between 0 and 19, got {value}")
    return value


def _dask_settings(
    executor_kwargs: Mapping[str, Any], name_prefix: str, logger: logging.Logger
) -> ExecutorSettings:
    """The dask backend: every pool's executor submits through one connection."""
    from ._dask import DaskConnection, DaskExecutor, check_dask_arguments

    client, address = check_dask_arguments(executor_kwargs)
    connection = DaskConnection(client, address, name_prefix, logger)
    executor_cls = functools.partial(DaskExecutor, connection=connection)
    return ExecutorSettings(executor_cls, {}, (), False, False, None, None, connection)


def executor_processes(executor: Executor) -> list[BaseProcess]:
    """A snapshot of a ``ProcessPoolExecutor``'s worker processes, taken in one step
    while its management thread may change the dict."""
    processes: dict[int, BaseProcess] | None = getattr(executor, "_processes", None)
    return list(processes.values()) if processes else []


def executor_threads(executor: Executor) -> list[threading.Thread]:
    """The threads to join once a drained executor is dropped: a process pool's
    management thread, or an interpreter pool's worker threads."""
    manager: threading.Thread | None = getattr(executor, "_executor_manager_thread", None)
    if manager is not None:
        return [manager]
    threads: set[threading.Thread] | None = getattr(executor, "_threads", None)
    return list(threads) if threads else []


# Held while one of leasepool's process pools starts its workers (``launch_processes``).
_WORKER_START = threading.Lock()


def launch_processes(executor: Executor) -> None:
    """Start every worker process of a fresh ``ProcessPoolExecutor`` now, on this
    thread, instead of at its first ``submit()`` (the stdlib starts them there: all
    at once with fork, one per submit with spawn/forkserver).

    Uses private API present in CPython 3.11 to 3.14; without it the executor starts
    its processes itself, as usual.
    """
    launch = getattr(executor, "_launch_processes", None)
    start_manager = getattr(executor, "_start_executor_manager_thread", None)
    shutdown_lock = getattr(executor, "_shutdown_lock", None)
    if launch is None or start_manager is None or shutdown_lock is None:
        return
    # As ``submit()`` does it: under the executor's lock, processes first (the stdlib
    # refuses to fork once its manager thread runs). One pool at a time: each pool
    # starts its workers on its own spawner thread, and a forked worker inherits every
    # descriptor open in the parent at the fork, including the write end of the pipe
    # whose end-of-file tells another executor that *its* worker died, if that worker
    # was being started at the same moment. The first worker's death then never shows
    # and its call hangs (seen: a worker killed on its first call left a zombie and a
    # future that never completed, about one run in twenty).
    with shutdown_lock:
        with _WORKER_START:
            launch()
        start_manager()


class _NeverIdle:
    """Stands in for ``ProcessPoolExecutor``'s count of idle workers so that it never
    sees one: every worker that leaves gracefully is replaced.

    The executor replaces a worker that left through ``max_tasks_per_child`` only if it
    believes no other worker is idle, from a count of results minus submissions (a
    semaphore up to CPython 3.13, an integer from 3.14). Worker exits break that count:
    a credit left by an earlier result lets the exit pass without a replacement, the
    next submission spends another, and a pool whose workers all left this way runs
    nothing again (seen with ``max_worker_memory``: every queued call hung, no worker
    process alive). leasepool starts every worker up front anyway; this keeps it so.
    """

    # The semaphore's interface (3.11-3.13).
    def acquire(self, blocking: bool = True, timeout: float | None = None) -> bool:
        return False

    def release(self, n: int = 1) -> None:
        pass

    # The integer's (3.14): `count > 0` is never true; `+= 1` and `-= 1` keep this.
    def __gt__(self, other: object) -> bool:
        return False

    def __iadd__(self, other: object) -> _NeverIdle:
        return self

    def __isub__(self, other: object) -> _NeverIdle:
        return self


def keep_workers_replaced(executor: Executor) -> None:
    """Make a fresh ``ProcessPoolExecutor`` replace every worker that leaves
    gracefully (see ``_NeverIdle``); without the private attributes, nothing changes."""
    for name in ("_idle_worker_semaphore", "_idle_worker_number"):
        if hasattr(executor, name):
            setattr(executor, name, _NeverIdle())


def submit_task(executor: Executor, fn: Callable[..., Any], *args: Any) -> Any:
    """``executor.submit(fn, *args)``, and a wake-up of its management thread if the
    submission started a worker process.

    ``ProcessPoolExecutor.submit`` (CPython 3.11 to 3.14) wakes the management thread
    *before* it starts a replacement worker on demand (after one left through
    ``max_tasks_per_child`` or ``max_worker_memory``). The woken thread may already be
    waiting again, on the sentinels of the workers it knew, when the new worker appears:
    if that worker dies on its first call, nothing wakes the thread, and the call's
    future never completes. A second wake-up after the spawn makes it look again.
    """
    processes: dict[int, BaseProcess] | None = getattr(executor, "_processes", None)
    before = len(processes) if processes is not None else 0
    future = executor.submit(fn, *args)
    processes = getattr(executor, "_processes", None)
    if processes is not None and len(processes) != before:
        wakeup = getattr(executor, "_executor_manager_thread_wakeup", None)
        lock = getattr(executor, "_shutdown_lock", None)
        if wakeup is not None and lock is not None:
            # Under the executor's lock, as submit() wakes it: the management thread
            # closes the wake-up pipe under the same lock when it ends.
            with lock:
                if not getattr(executor, "_shutdown_thread", True):
                    wakeup.wakeup()
    return future


def wait_for_teardown(executor: Executor, grace: float) -> None:
    """Wait until a broken process pool has failed its work and stopped its processes.

    Its management thread ends after joining them; the processes are killed if that
    takes longer than ``grace`` seconds.
    """
    manager: threading.Thread | None = getattr(executor, "_executor_manager_thread", None)
    if manager is None:
        return
    processes = executor_processes(executor)
    manager.join(grace)
    if manager.is_alive():
        for process in processes:
            _best_effort_kill(process)
        manager.join(grace)


def _best_effort_kill(process: BaseProcess) -> None:
    with contextlib.suppress(OSError, ValueError, AttributeError):  # gone, or closed
        process.kill()


def _best_effort_join(process: BaseProcess, timeout: float) -> None:
    with contextlib.suppress(AssertionError, OSError, ValueError):  # never started, closed
        process.join(timeout)


def _exit_code(process: BaseProcess) -> int | None:
    """The exit code of a process known to be dead, else ``None``."""
    try:
        code = process.exitcode
        if code is not None:
            return code
        # The sentinel can signal a death a moment before the exit status is there.
        if wait_for_sentinels([process.sentinel], 0):
            _best_effort_join(process, 1.0)
        return process.exitcode
    except (OSError, ValueError):
        return None  # closed


def stop_broken_processes(executor: Executor, grace: float) -> tuple[list[tuple[int, int]], bool]:
    """Stop every process of a broken executor before anyone reads its progress.

    Returns the processes that had died on their own, as ``(pid, exitcode)``, and
    whether every survivor was killed and reaped. (On CPython 3.11 the executor fails
    its futures before it terminates the surviving workers, so a survivor could still
    start the next call of its chunk after the progress array said it had not.)
    """
    dead: list[tuple[int, int]] = []
    survivors: list[BaseProcess] = []
    for process in executor_processes(executor):
        code = _exit_code(process)
        if code is None:
            survivors.append(process)
        elif process.pid is not None:
            dead.append((process.pid, code))
    for process in survivors:
        _best_effort_kill(process)
    all_reaped = True
    for process in survivors:
        _best_effort_join(process, grace)
        all_reaped = all_reaped and _exit_code(process) is not None
    return dead, all_reaped


def describe_exit(code: int) -> str:
    """``exit code 3``, or ``signal 9 (SIGKILL)`` for a negative exit code."""
    if code >= 0:
        return f"exit code {code}"
    number = -code
    try:
        return f"signal {number} ({signal.Signals(number).name})"
    except ValueError:
        return f"signal {number}"
