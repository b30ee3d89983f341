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
import contextvars
import copyreg
import importlib
import io
import multiprocessing
import multiprocessing.connection
import os
import pickle
import sys
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

__all__ = ["RetiredChunk", "dumps", "initialize", "run_chunk"]

_PROTOCOL = pickle.HIGHEST_PROTOCOL
# Exit status of a worker whose parent process died (EX_SOFTWARE).
_ORPHAN_EXIT_CODE = 70

# The progress array of this worker's pool: PROGRESS_CELLS int64 per chunk slot,
# ``[chunk seq, pid, index of the call being run, bitmask of the calls that raised]``,
# then one halt flag (non-zero once the pool shut down: start no further call).
_progress: Any = None
PROGRESS_CELLS = 4
#: Calls of a chunk whose raising the bitmask can record (bit 63 would overflow).
_RAISED_RECORDED = 63


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
    memory_limit: int | None = None,
) -> None:
    """Worker initializer: lower the process's CPU priority by ``nice`` (``worker_nice``),
    open the run-queue counter (``measure_stalls``: the auto backend's routing),
    arrange to retire this worker once its memory passes ``memory_limit`` bytes
    (``max_worker_memory``), remember ``progress``, forward logs (with the calls'
    context variables on each record), run the user's initializer.

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
    if memory_limit is not None:
        _watch_memory(memory_limit)
    if log_setup is not None:
        log_queue, level, clear_handlers = log_setup
        install_worker_logging(log_queue, level, clear_handlers, user_initializer, user_initargs)
        _label_forwarded_records()
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


# ------------------------------------------------------------------ memory recycling

_memory_limit: int | None = None
"""``max_worker_memory`` in bytes, once :func:`_watch_memory` ran."""
_statm: int | None = None
"""``/proc/self/statm``, if this system has it."""
_retiring = False
"""This worker passed its memory limit: it leaves after sending its current result."""
_calls_measured = 0
"""Calls this worker ran (and measured) under ``max_worker_memory``."""
_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


class RetiredChunk(list):  # type: ignore[type-arg]
    """The outcomes of a chunk after which this worker retires: ``rss`` is the
    resident memory that passed the limit, ``calls`` how many calls the worker ran in
    all (the parent logs and counts it; one call means the limit is below what a worker
    needs). Calls of the chunk without an outcome never started; the parent re-queues
    them."""

    rss: int = 0
    pid: int = 0
    calls: int = 0

    def __reduce__(self) -> tuple[Any, ...]:
        return (_retired_chunk, (list(self), self.rss, self.pid, self.calls))


def _retired_chunk(outcomes: list[Any], rss: int, pid: int, calls: int) -> RetiredChunk:
    chunk = RetiredChunk(outcomes)
    chunk.rss, chunk.pid, chunk.calls = rss, pid, calls
    return chunk


def resident_bytes() -> int:
    """This process's resident memory now (its peak where ``/proc`` is missing)."""
    if _statm is not None:
        try:
            return int(os.pread(_statm, 128, 0).split()[1]) * _PAGE_SIZE
        except (OSError, ValueError, IndexError):
            pass
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def _watch_memory(limit: int) -> None:
    """Check memory after every call; once past ``limit``, leave gracefully.

    The stdlib's own graceful exit (``max_tasks_per_child``) is a result sent with this
    process's pid as ``exit_pid``: the executor's management thread then joins the
    process and starts a replacement, and the pool is not broken. The worker loop
    decides that from its own counter, so this wraps the function it sends results
    with (looked up as a module global at each call): once retiring, the result goes
    out with ``exit_pid`` and the worker stops by ``SystemExit`` (a clean exit that
    flushes forwarded log records).
    """
    global _memory_limit, _statm
    _memory_limit = limit
    try:
        _statm = os.open("/proc/self/statm", os.O_RDONLY)
    except OSError:
        _statm = None
    module: Any = concurrent.futures.process
    send = module._sendback_result

    def send_then_retire(
        result_queue: Any,
        work_id: Any,
        result: Any = None,
        exception: Any = None,
        exit_pid: Any = None,
    ) -> None:
        if not _retiring:
            send(result_queue, work_id, result=result, exception=exception, exit_pid=exit_pid)
            return
        send(result_queue, work_id, result=result, exception=exception, exit_pid=os.getpid())
        raise SystemExit(0)

    module._sendback_result = send_then_retire


def _over_memory_limit() -> int:
    """The resident memory if it passed the limit (this worker now retires), else 0."""
    global _retiring, _calls_measured
    limit = _memory_limit
    if limit is None:
        return 0
    _calls_measured += 1
    rss = resident_bytes()
    if rss <= limit:
        return 0
    _retiring = True
    return rss


# ----------------------------------------------------------------- context variables

_context_vars: dict[tuple[str, str], contextvars.ContextVar[Any]] = {}
"""The calls' context variables found so far, by ``(module, attribute)``."""


def _context_var(module: str, attribute: str) -> contextvars.ContextVar[Any]:
    var = _context_vars.get((module, attribute))
    if var is None:
        found: Any = sys.modules.get(module) or importlib.import_module(module)
        for part in attribute.split("."):
            found = getattr(found, part)
        var = _context_vars[(module, attribute)] = found
    return var


_context_failures: set[tuple[str, str]] = set()
"""Context variables this worker could not set (each reported once)."""


def _call_in_context(
    context: Sequence[tuple[str, str, bytes]], fn: Any, args: Any, kwargs: Any
) -> Any:
    for module, attribute, value in context:
        try:
            _context_var(module, attribute).set(pickle.loads(value))
        except Exception as exc:
            # Not the call's failure: the variable stays unset, as for a value the
            # parent could not pickle, and the worker says why once.
            if (module, attribute) not in _context_failures:
                _context_failures.add((module, attribute))
                import logging

                logging.getLogger("leasepool.worker").warning(
                    "Context variable %s:%s not set in worker process %d: %r",
                    module,
                    attribute,
                    os.getpid(),
                    exc,
                )
    return fn(*args, **kwargs) if kwargs else fn(*args)


class _ContextLabels:
    """Log filter: each forwarded record carries the calls' context variables set
    where it was logged, as attributes named after the variables (``%(request_id)s``
    in the application's formatter), unless the record has that attribute already."""

    def filter(self, record: Any) -> bool:
        for var in _context_vars.values():
            name = var.name
            if name not in record.__dict__:
                value = var.get(_UNSET)
                if value is not _UNSET:
                    setattr(record, name, _travels(value))
        return True


def _travels(value: Any) -> Any:
    """``value`` if it can cross to the parent with the record, else its ``repr()``
    (a value that cannot be pickled would make the log queue drop the record)."""
    if isinstance(value, (str, int, float, bool, type(None))):
        return value
    try:
        dumps(value)
    except Exception:
        return repr(value)
    return value


_UNSET = object()


def _label_forwarded_records() -> None:
    import logging
    from logging.handlers import QueueHandler

    for handler in logging.getLogger().handlers:
        if isinstance(handler, QueueHandler):
            handler.addFilter(_ContextLabels())


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
    calls: Sequence[bytes | tuple[bytes, Sequence[tuple[str, str, bytes]]]],
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
    base = PROGRESS_CELLS * slot
    halt = len(progress) - 1 if progress is not None else -1
    if progress is not None:
        # Index, mask and pid first, the sequence number last: a reader that sees this
        # chunk's number also sees which call it is at.
        progress[base + 3] = 0
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
    for index, item in enumerate(calls):
        if progress is not None and progress[halt]:
            break  # the pool shut down: the parent cancels what did not start
        if index:
            if mark > deadline:
                break
            if progress is not None:
                progress[base + 2] = index
        try:
            if isinstance(item, tuple):  # with the caller's context variables
                payload, context = item
                fn, args, kwargs = loads(payload)
                value = contextvars.copy_context().run(_call_in_context, context, fn, args, kwargs)
            else:
                fn, args, kwargs = loads(item)
                value = fn(*args, **kwargs) if kwargs else fn(*args)
        except BaseException as exc:
            if progress is not None and index < _RAISED_RECORDED:
                # Its outcome is this exception: never re-run it (an idempotent call's
                # retry after a crash is for calls whose worker died under them).
                progress[base + 3] |= 1 << index
            now, cpu, stall = perf_counter(), thread_time(), queued()
            costs = (now - mark, cpu - cpu_mark, stall - queue_mark)
            append((False, _failure(exc, pickle_outcome), *costs))
            mark, cpu_mark, queue_mark = now, cpu, stall
            if _memory_limit is not None and (rss := _over_memory_limit()):
                return _retire(outcomes, rss)
            continue
        now, cpu, stall = perf_counter(), thread_time(), queued()
        costs = (now - mark, cpu - cpu_mark, stall - queue_mark)
        try:
            append((True, pickle_outcome(value), *costs))
        except BaseException as exc:
            append((False, _failure(exc, pickle_outcome), *costs))
        del value
        mark, cpu_mark, queue_mark = now, cpu, stall
        if _memory_limit is not None and (rss := _over_memory_limit()):
            return _retire(outcomes, rss)
    return outcomes


def _retire(outcomes: list[tuple[bool, bytes, float, float, float]], rss: int) -> RetiredChunk:
    return _retired_chunk(outcomes, rss, os.getpid(), _calls_measured)


def _no_stall() -> float:
    return 0.0
