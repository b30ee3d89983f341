"""The event loop's default executor, backed by a manager's call slots.

``loop.run_in_executor(None, ...)`` and ``asyncio.to_thread(...)`` submit to the loop's
default executor. CPython 3.11-3.14 accept only a ``ThreadPoolExecutor`` there
(``loop.set_default_executor`` raises ``TypeError`` otherwise; uvloop takes anything),
so :class:`LeasedDefaultExecutor` subclasses it, but never starts a thread: each
``submit()`` becomes one ``manager.run(...)`` call (one worker slot, the one-call path)
and the returned ``concurrent.futures.Future`` is chained to it.

Which thread does what:

* ``submit()`` on the loop thread (``run_in_executor``) calls ``manager.run`` at once;
  from any other thread it hands the call to the loop with ``call_soon_threadsafe``.
* The worker marks the ``concurrent.futures.Future`` running when the call starts
  (``set_running_or_notify_cancel``, as ``ThreadPoolExecutor``'s workers do), so
  ``cancel()`` succeeds exactly until then; a cancel is passed on to the manager (on the
  loop thread), which withdraws the queued call.
* The outcome is delivered from the manager future's done-callback on the loop thread,
  after the call's slot was given back.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import threading
from collections.abc import Callable
from concurrent.futures import CancelledError as FutureCancelledError
from concurrent.futures import Executor, Future, InvalidStateError, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from .backends import ExecutorBackend

if TYPE_CHECKING:
    from ._engine import LeasedExecutorManager

__all__ = ["DEFAULT_EXECUTOR_OWNER", "LeasedDefaultExecutor", "install_as_default_executor"]

DEFAULT_EXECUTOR_OWNER = "default-executor"

_T = TypeVar("_T")
_P = ParamSpec("_P")


_claims = threading.Lock()


class _Once:
    """Decides once between the worker starting a call and the loop giving up on it.

    A manager future can be cancelled while its call runs (the call finishes, its
    outcome is dropped), so "the call started" is decided here instead: whichever side
    claims first, the worker (about to run the call) or the loop (withdrawing it, or
    delivering a refusal), owns the call's fate.
    """

    __slots__ = ("_claimed",)

    def __init__(self) -> None:
        self._claimed = False

    def claim(self) -> bool:
        with _claims:
            if self._claimed:
                return False
            self._claimed = True
            return True


class _Call(_Once):
    """One submission: its future and the call."""

    __slots__ = ("args", "fn", "future")

    def __init__(self, future: Future[Any], fn: Callable[..., Any], args: tuple[Any, ...]):
        super().__init__()
        self.future = future
        self.fn = fn
        self.args = args


def _invoke(call: _Call) -> Any:
    """What the worker runs (in the context ``manager.run`` copied at submission)."""
    if not call.claim():
        return None  # the loop gave up on it first (withdrawn, manager stopped)
    if not call.future.set_running_or_notify_cancel():
        return None  # cancelled before it started: skip it, as ThreadPoolExecutor does
    return call.fn(*call.args)


def _check_thread_backend(manager: LeasedExecutorManager, what: str) -> None:
    if manager.backend is not ExecutorBackend.THREAD:
        raise ValueError(
            f"{what} needs a manager with backend='thread' (got {manager.backend.value!r}): "
            "the calls it offloads (asyncio.to_thread's context runner, closures) are "
            "not picklable"
        )


class LeasedDefaultExecutor(ThreadPoolExecutor):
    """A ``ThreadPoolExecutor`` whose calls run on a :class:`LeasedExecutorManager`.

    Made by :func:`install_as_default_executor` (or
    ``manager.install_as_default_executor()``). It starts no thread of its own: every
    ``submit()`` leases one worker slot with ``manager.run(fn, ...)``, so calls wait
    in the manager's FIFO queue (or fail with its errors: ``LeaseUnavailableError``
    with ``wait=False``, ``LeaseAcquireTimeoutError`` with ``timeout``,
    ``LeasePoolNotStartedError`` before ``start()`` or after ``stop()``). The call
    sees the ``contextvars`` of the code that submitted it.

    ``shutdown()`` refuses further submissions and never stops the manager;
    ``wait=True`` waits until every call submitted here has delivered its outcome (it
    must not be called on the loop thread, which delivers them; asyncio's
    ``shutdown_default_executor()`` calls it from a thread of its own).
    """

    def __init__(
        self,
        manager: LeasedExecutorManager,
        loop: asyncio.AbstractEventLoop,
        *,
        owner: Any = DEFAULT_EXECUTOR_OWNER,
        wait: bool = True,
        timeout: float | None = None,
        lease_seconds: float | None = None,
    ) -> None:
        _check_thread_backend(manager, "LeasedDefaultExecutor")
        # The base class keeps its bookkeeping (no thread starts before a submit, and
        # submit is ours), so code that inspects a ThreadPoolExecutor still works.
        super().__init__(max_workers=1, thread_name_prefix="leasepool-default")
        self._manager = manager
        self._loop = loop
        self._run_kwargs: dict[str, Any] = {
            "owner": owner,
            "wait": wait,
            "timeout": timeout,
            "lease_seconds": lease_seconds,
        }
        self._calls_lock = threading.Condition()
        self._calls: set[_Call] = set()
        self._closed = False
        #: The loop's default executor before this one was installed (``None`` if the
        #: loop had none yet, or if it cannot be read, as on uvloop).
        self.previous: Executor | None = None

    @property
    def manager(self) -> LeasedExecutorManager:
        return self._manager

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        return self._loop

    @property
    def in_flight(self) -> int:
        """Calls submitted here whose outcome has not been delivered yet."""
        with self._calls_lock:
            return len(self._calls)

    def submit(self, fn: Callable[_P, _T], /, *args: _P.args, **kwargs: _P.kwargs) -> Future[_T]:
        future: Future[_T] = Future()
        if kwargs:
            call = _Call(future, functools.partial(fn, *args, **kwargs), ())
        else:
            call = _Call(future, fn, args)
        with self._calls_lock:
            if self._closed:
                raise RuntimeError("cannot schedule new futures after shutdown")
            self._calls.add(call)
        if self._on_loop_thread():
            self._start(call)
            return future
        try:
            self._loop.call_soon_threadsafe(self._start, call)
        except RuntimeError:  # the loop is closed
            self._forget(call)
            raise RuntimeError("cannot schedule new futures after the event loop closed") from None
        return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        with self._calls_lock:
            self._closed = True
            calls = list(self._calls)
        if cancel_futures:
            for call in calls:
                call.future.cancel()  # only calls that have not started
        if not wait or self._loop.is_closed():  # a closed loop delivers nothing more
            return
        if self._on_loop_thread():
            raise RuntimeError(
                "LeasedDefaultExecutor.shutdown(wait=True) would block the event loop that "
                "delivers the calls' outcomes; use 'await loop.shutdown_default_executor()' "
                "or shutdown(wait=False)"
            )
        with self._calls_lock:
            self._calls_lock.wait_for(lambda: not self._calls)

    def uninstall(self) -> None:
        """Puts the loop's previous default executor back and shuts this one down
        (``wait=False``: calls in flight still finish; new submissions are refused).

        Without a previous executor to restore, the loop gets a fresh
        ``ThreadPoolExecutor(thread_name_prefix="asyncio")`` (what asyncio would make
        on first use; it starts no thread before one), or none on uvloop.
        """
        if not self._loop.is_closed():
            previous = self.previous
            if previous is None:
                try:
                    self._loop.set_default_executor(None)  # type: ignore[arg-type]
                except TypeError:  # CPython accepts only a ThreadPoolExecutor
                    previous = ThreadPoolExecutor(thread_name_prefix="asyncio")
            if previous is not None:
                self._loop.set_default_executor(previous)
        self.shutdown(wait=False)

    # -- the loop thread ---------------------------------------------------------------

    def _on_loop_thread(self) -> bool:
        try:
            return asyncio.get_running_loop() is self._loop
        except RuntimeError:
            return False

    def _start(self, call: _Call) -> None:
        """Hands one submission to the manager (loop thread)."""
        if call.future.cancelled():  # cancelled while it travelled to the loop
            self._give_up(call, None)
            return
        try:
            awaitable = self._manager.run(_invoke, call, **self._run_kwargs)
            # A LeaseFuture as it is; a not-started manager's refusal (a coroutine) as a
            # Task. A manager started on another loop fails here (ValueError).
            settled: asyncio.Future[Any] = asyncio.ensure_future(awaitable, loop=self._loop)
        except Exception as exc:
            self._give_up(call, exc)
            return
        call.future.add_done_callback(functools.partial(self._pass_on_cancel, settled))
        settled.add_done_callback(functools.partial(self._settle, call))

    def _pass_on_cancel(self, settled: asyncio.Future[Any], future: Future[Any]) -> None:
        """``future`` was cancelled (on any thread): withdraw the queued call."""
        if not future.cancelled():
            return
        if self._on_loop_thread():
            settled.cancel()
            return
        with contextlib.suppress(RuntimeError):  # a closed loop has nothing queued
            self._loop.call_soon_threadsafe(settled.cancel)

    def _settle(self, call: _Call, settled: asyncio.Future[Any]) -> None:
        """Delivers the manager future's outcome to the submitter's future (loop thread)."""
        future = call.future
        if call.claim():  # no worker started it, and now none will
            if settled.cancelled():  # withdrawn: our cancel, or manager.stop()
                future.cancel()
                self._give_up(call, None)
            else:  # refused: unavailable, timeout, not started, ...
                self._give_up(call, settled.exception() or RuntimeError("the call did not run"))
            return
        try:
            if future.cancelled():
                pass  # the worker found it cancelled, skipped it and notified
            elif settled.cancelled():  # manager.stop() raced the start: outcome lost
                future.set_exception(FutureCancelledError())
            elif (exc := settled.exception()) is not None:
                future.set_exception(exc)
            else:
                future.set_result(settled.result())
        finally:
            self._forget(call)

    def _give_up(self, call: _Call, exc: BaseException | None) -> None:
        """Settles a call no worker will run: ``exc``, or the cancellation it had."""
        call.claim()
        future = call.future
        if exc is not None:
            with contextlib.suppress(InvalidStateError):  # cancelled on another thread
                future.set_exception(exc)
        if future.cancelled():
            future.set_running_or_notify_cancel()  # as a pool's worker does: notifies
        self._forget(call)

    def _forget(self, call: _Call) -> None:
        with self._calls_lock:
            self._calls.discard(call)
            if not self._calls:
                self._calls_lock.notify_all()


def install_as_default_executor(
    manager: LeasedExecutorManager,
    loop: asyncio.AbstractEventLoop | None = None,
    *,
    owner: Any = DEFAULT_EXECUTOR_OWNER,
    wait: bool = True,
    timeout: float | None = None,
    lease_seconds: float | None = None,
) -> LeasedDefaultExecutor:
    """Makes ``manager`` run the loop's default-executor work.

    After this, ``asyncio.to_thread(...)`` and ``loop.run_in_executor(None, ...)`` on
    ``loop`` (default: the running loop) each lease one worker slot of ``manager``
    (``manager.run(fn, owner=owner, wait=wait, timeout=timeout,
    lease_seconds=lease_seconds)``), sharing its limit with every other user of the
    manager. ``manager`` must use the thread backend and be started on ``loop`` before
    the first call (calls before that fail with ``LeasePoolNotStartedError``).

    Returns the installed :class:`LeasedDefaultExecutor`; its ``uninstall()`` restores
    the previous default executor.
    """
    if loop is None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            raise RuntimeError(
                "install_as_default_executor() needs a running event loop, or loop="
            ) from None
    executor = LeasedDefaultExecutor(
        manager, loop, owner=owner, wait=wait, timeout=timeout, lease_seconds=lease_seconds
    )
    # CPython keeps the default executor in a private attribute (uvloop does not expose
    # it); reading it only lets uninstall() put it back.
    previous = getattr(loop, "_default_executor", None)
    executor.previous = previous if isinstance(previous, Executor) else None
    loop.set_default_executor(executor)
    return executor
