"""Code that runs inside the worker processes of the process backend.

The engine (``process_pool.rs``) ships queued calls to a ``ProcessPoolExecutor`` in
chunks: one executor task runs :func:`run_chunk` over a list of calls that the parent
pickled one by one (:func:`dumps`). Every call's outcome is pickled on its own too,
so an argument, return value or exception that cannot cross the process boundary
fails only its own call, never the chunk or the pool.

:func:`initialize` is the executor's ``initializer``: it keeps the shared progress
array (which call of which chunk this process is running, read by the parent only
after a worker died) and then installs log forwarding and/or runs the user's own
initializer.

These functions are pickled by reference, which is why they are Python.
"""

from __future__ import annotations

import concurrent.futures.process
import copyreg
import io
import multiprocessing
import multiprocessing.connection
import os
import pickle
import threading
from collections import ChainMap
from collections.abc import Callable, MutableMapping, Sequence

# The stdlib's own carrier of a worker traceback: unpickled, it sets the exception's
# __cause__ to a _RemoteTraceback, exactly as ProcessPoolExecutor reports errors.
from concurrent.futures.process import _ExceptionWithTraceback
from multiprocessing.reduction import ForkingPickler
from time import perf_counter, thread_time
from typing import Any

from ._process_logging import install_worker_logging

__all__ = ["dumps", "initialize", "run_chunk"]

_PROTOCOL = pickle.HIGHEST_PROTOCOL
# Exit status of a worker whose parent process died (EX_SOFTWARE).
_ORPHAN_EXIT_CODE = 70

# The progress array of this worker's pool: three int64 per chunk slot,
# ``[chunk seq, pid, index of the call being run]``, then one halt flag (non-zero once
# the pool shut down: start no further call).
_progress: Any = None


# What ForkingPickler (ProcessPoolExecutor's pickler) looks reducers up in: its extra
# reducers (connections, sockets, ...) over copyreg's. A live view, not the copy that
# ForkingPickler.__init__ makes for every instance (a third of the cost of a call).
_DISPATCH = ChainMap(ForkingPickler._extra_reducers, copyreg.dispatch_table)  # type: ignore[attr-defined]


def dumps(obj: object) -> bytes:
    """Pickle ``obj`` the way ``ProcessPoolExecutor`` does (``ForkingPickler``)."""
    buf = io.BytesIO()
    pickler = pickle.Pickler(buf, _PROTOCOL)
    pickler.dispatch_table = _DISPATCH
    pickler.dump(obj)
    return buf.getvalue()


def initialize(
    progress: Any,
    log_setup: tuple[Any, int, bool] | None,
    user_initializer: Callable[..., object] | None,
    user_initargs: tuple[Any, ...],
    nice: int = 0,
    measure_stalls: bool = False,
) -> None:
    """Worker initializer: lower the process's CPU priority by ``nice`` (``worker_nice``),
    open the run-queue counter (``measure_stalls``: the auto backend's routing),
    remember ``progress``, forward logs, run the user's initializer.

    An exception from the user's initializer propagates, so the executor treats it
    exactly as it treats a failing initializer of its own.
    """
    global _progress, _schedstat
    if nice:
        os.nice(nice)
    if measure_stalls:
        try:
            # This thread runs the calls: its own counter.
            _schedstat = os.open("/proc/thread-self/schedstat", os.O_RDONLY)
        except OSError:
            _schedstat = None
    _progress = progress
    _forget_inherited_executors()
    _exit_with_parent()
    if log_setup is not None:
        log_queue, level, clear_handlers = log_setup
        install_worker_logging(log_queue, level, clear_handlers, user_initializer, user_initargs)
    elif user_initializer is not None:
        user_initializer(*user_initargs)


def _forget_inherited_executors() -> None:
    """Drop the parent's process executors this worker inherited by ``fork``.

    ``concurrent.futures.process`` keeps every live executor's wakeup pipe in
    ``_threads_wakeups`` and, when a process exits, wakes each one under its lock
    (CPython 3.13 takes ``_ThreadWakeup._lock``). A worker forked while another thread
    of the parent held one of those locks inherits it held forever, so the worker
    would hang at exit. None of those executors is this process's (their management
    threads do not exist here): a worker started by spawn or forkserver has none.
    """
    wakeups: MutableMapping[Any, Any] | None = getattr(
        concurrent.futures.process, "_threads_wakeups", None
    )
    if wakeups is not None:
        wakeups.clear()


def _watch_parent(sentinel: int) -> None:
    multiprocessing.connection.wait([sentinel])
    # The parent is gone: nobody can take this worker's results or tell it to stop,
    # and a call stuck in user code would keep it alive forever.
    os._exit(_ORPHAN_EXIT_CODE)


def _exit_with_parent() -> None:
    """End this worker when the parent process dies, whatever it is doing.

    ``multiprocessing`` gives each child a sentinel that becomes readable when its
    parent exits (for the fork start method, once every process holding the other end
    is gone: later siblings inherit it, and they end the same way, last first). A
    daemon thread waits on it; no polling.
    """
    parent = multiprocessing.parent_process()
    sentinel = getattr(parent, "sentinel", None)
    if sentinel is None:
        return
    watcher = threading.Thread(
        target=_watch_parent, args=(sentinel,), name="leasepool-parent-watch", daemon=True
    )
    watcher.start()


def _failure(exc: BaseException, pickle_outcome: Callable[[object], bytes] = dumps) -> bytes:
    carried = _ExceptionWithTraceback(exc, exc.__traceback__)  # type: ignore[arg-type]
    try:
        return pickle_outcome(carried)
    except BaseException as err:  # the exception itself cannot be pickled
        text = f"{type(exc).__name__}: {exc} (and it could not be pickled: {err!r})"
        return pickle_outcome(RuntimeError(text))


_schedstat: int | None = None
"""``/proc/thread-self/schedstat`` of the thread that runs calls, if it is measured."""


def _run_queue_seconds() -> float:
    """Seconds this thread has been runnable but waiting for a CPU (0 if not measured)."""
    fd = _schedstat
    if fd is None:
        return 0.0
    try:
        return int(os.pread(fd, 128, 0).split()[1]) * 1e-9
    except (OSError, ValueError, IndexError):
        return 0.0


def run_chunk(
    slot: int,
    seq: int,
    calls: Sequence[bytes],
    budget: float,
    pickle_outcome: Callable[[object], bytes] = dumps,
) -> list[tuple[bool, bytes, float, float, float]]:
    """Run pickled calls in order; return one ``(ok, pickled outcome, seconds, cpu
    seconds, stalled seconds)`` each.

    The outcome is the pickled value, or the pickled exception (``ok`` false); the
    parent learns from ``seconds`` how to pack later chunks, and from the CPU seconds
    (this thread's CPU clock over the same span) and the stalled ones (its run-queue
    wait, when measured) whether a call computes or waits (the ``auto`` backend's
    routing). After ``budget`` seconds no further call is started (the first always
    is): the parent re-queues the calls without an outcome, so a slow call does not
    hold back the rest of its chunk. Once the pool's halt flag is set, no call is
    started at all: the parent cancels them. ``pickle_outcome`` pickles each outcome
    (the dask backend passes Dask's pickler, so a class of the caller's ``__main__``
    comes back as it went).
    """
    progress = _progress
    base = 3 * slot
    halt = len(progress) - 1 if progress is not None else -1
    if progress is not None:
        # Index and pid first, the sequence number last: a reader that sees this
        # chunk's number also sees which call it is at.
        progress[base + 2] = 0
        progress[base + 1] = os.getpid()
        progress[base] = seq
    outcomes: list[tuple[bool, bytes, float, float, float]] = []
    append = outcomes.append
    loads = pickle.loads
    queued = _run_queue_seconds if _schedstat is not None else _no_stall
    mark = perf_counter()  # when the current call started
    cpu_mark, queue_mark = thread_time(), queued()
    deadline = mark + budget
    for index, payload in enumerate(calls):
        if progress is not None and progress[halt]:
            break  # the pool shut down: the parent cancels what did not start
        if index:
            if mark > deadline:
                break
            if progress is not None:
                progress[base + 2] = index
        try:
            fn, args, kwargs = loads(payload)
            value = fn(*args, **kwargs) if kwargs else fn(*args)
        except BaseException as exc:
            now, cpu, stall = perf_counter(), thread_time(), queued()
            costs = (now - mark, cpu - cpu_mark, stall - queue_mark)
            append((False, _failure(exc, pickle_outcome), *costs))
            mark, cpu_mark, queue_mark = now, cpu, stall
            continue
        now, cpu, stall = perf_counter(), thread_time(), queued()
        costs = (now - mark, cpu - cpu_mark, stall - queue_mark)
        try:
            append((True, pickle_outcome(value), *costs))
        except BaseException as exc:
            append((False, _failure(exc, pickle_outcome), *costs))
        del value
        mark, cpu_mark, queue_mark = now, cpu, stall
    return outcomes


def _no_stall() -> float:
    return 0.0
