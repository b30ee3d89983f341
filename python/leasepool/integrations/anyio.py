"""Route anyio's worker threads through a :class:`~leasepool.LeasedExecutorManager`.

Starlette's ``run_in_threadpool`` (sync endpoints, sync background tasks, file
uploads, ``FileResponse``'s ``stat``), FastAPI's sync endpoints and dependencies, and
anyio's own file I/O all offload with ``anyio.to_thread.run_sync``, looked up as an
attribute of the ``anyio.to_thread`` module at every call. :func:`route_anyio_threads`
replaces that attribute with a function that, on an event loop that has a route, runs
the call with ``manager.run(...)`` (one worker slot) instead of anyio's thread pool, so
these offloads share the manager's limit with everything else that uses it. On any
other loop, and under trio, the original ``anyio.to_thread.run_sync`` runs unchanged.

Semantics kept from anyio (``anyio.to_thread.run_sync``):

* the call runs in a copy of the caller's ``contextvars`` context;
* a cancellation reaches a call that is still *waiting* for capacity at once (the
  call is withdrawn and never runs; anyio's limiter wait is cancellable too);
* once the call runs, ``abandon_on_cancel=False`` (the default) holds the caller until
  it returns, then raises the cancellation; ``abandon_on_cancel=True`` returns at once
  and the call runs its course (its slot stays taken until then), its outcome ignored;
  the deprecated ``cancellable=`` is accepted as anyio accepts it;
* inside the call, ``anyio.from_thread.run()``/``run_sync()`` reach the loop without a
  token and ``anyio.from_thread.check_cancelled()`` sees the caller's cancellation (this
  uses anyio's worker-thread marker, a private detail; without it they need ``token=``);
* a ``StopIteration`` raised by the call becomes ``RuntimeError`` (its cause);
* an explicit ``limiter=`` is still honoured (acquired first, as anyio does), so it
  bounds its callers on top of the manager; the *default* limiter
  (``anyio.to_thread.current_default_thread_limiter()``, 40 tokens) is not used for
  routed calls: the manager is the limit.

Differences: the manager's refusals reach the caller (``LeaseUnavailableError`` with
``wait=False``, ``LeaseAcquireTimeoutError`` with ``timeout``,
``LeasePoolNotStartedError`` outside ``start()``..``stop()``), which a service maps to
HTTP 503; and code that bound ``run_sync`` before the route was installed
(``from anyio.to_thread import run_sync``) keeps anyio's pool.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import warnings
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

import anyio
import anyio.lowlevel
import anyio.to_thread

from .._default_executor import _check_thread_backend, _Once

if TYPE_CHECKING:
    from anyio import CapacityLimiter

    from .._engine import LeasedExecutorManager

_anyio_threadlocals: threading.local | None
try:  # anyio's marker of its worker threads (private): from_thread.* without a token
    from anyio._core._eventloop import set_current_async_library as _set_async_library
    from anyio._core._eventloop import threadlocals as _anyio_threadlocals
except ImportError:  # pragma: no cover - a future anyio without them
    _anyio_threadlocals = None

__all__ = ["ANYIO_OWNER", "AnyioThreadRoute", "route_anyio_threads"]

ANYIO_OWNER = "anyio-worker-thread"

_T = TypeVar("_T")

_lock = threading.Lock()
_routes: dict[asyncio.AbstractEventLoop, AnyioThreadRoute] = {}
# anyio.to_thread.run_sync as it was when the first route was installed.
_original: Callable[..., Awaitable[Any]] | None = None


def _in_worker(
    start: _Once, token: object, scope: object, func: Callable[..., _T], args: tuple[Any, ...]
) -> _T | None:
    """What the manager's worker runs: ``func(*args)`` as an anyio worker thread."""
    if not start.claim():
        return None  # the caller was cancelled before the call started: never run it
    if _anyio_threadlocals is None:
        return _call_converting_stop(func, args)
    # In this call's own context copy (manager.run makes one per call), as anyio does:
    # code in the thread is not "in" the async library.
    _set_async_library(None)
    _anyio_threadlocals.current_token = token
    _anyio_threadlocals.current_cancel_scope = scope
    try:
        return _call_converting_stop(func, args)
    finally:
        del _anyio_threadlocals.current_token
        del _anyio_threadlocals.current_cancel_scope


def _call_converting_stop(func: Callable[..., _T], args: tuple[Any, ...]) -> _T:
    """An asyncio future cannot carry StopIteration; anyio turns it into this error."""
    try:
        return func(*args)
    except StopIteration as exc:
        raise RuntimeError("coroutine raised StopIteration") from exc


class AnyioThreadRoute:
    """One event loop's anyio offloads, running on one manager. Made by
    :func:`route_anyio_threads`; ``uninstall()`` (or leaving the ``with`` block) ends
    it."""

    def __init__(
        self,
        manager: LeasedExecutorManager,
        loop: asyncio.AbstractEventLoop,
        run_kwargs: dict[str, Any],
    ) -> None:
        self._manager = manager
        self._loop = loop
        self._run_kwargs = run_kwargs
        self._token: object = None

    @property
    def manager(self) -> LeasedExecutorManager:
        return self._manager

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        return self._loop

    @property
    def installed(self) -> bool:
        with _lock:
            return _routes.get(self._loop) is self

    def uninstall(self) -> None:
        """Ends the route (idempotent). Calls already running finish on the manager."""
        with _lock:
            if _routes.get(self._loop) is not self:
                return
            del _routes[self._loop]
            if not _routes and anyio.to_thread.run_sync is run_sync and _original is not None:
                anyio.to_thread.run_sync = _original  # type: ignore[assignment]

    def __enter__(self) -> AnyioThreadRoute:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.uninstall()

    async def _run(
        self,
        func: Callable[..., _T],
        args: tuple[Any, ...],
        abandon_on_cancel: bool,
        limiter: CapacityLimiter | None,
    ) -> _T:
        await anyio.lowlevel.checkpoint()  # every anyio call is a checkpoint
        if limiter is None:
            return await self._call(func, args, abandon_on_cancel)
        async with limiter:
            return await self._call(func, args, abandon_on_cancel)

    async def _call(
        self, func: Callable[..., _T], args: tuple[Any, ...], abandon_on_cancel: bool
    ) -> _T:
        if self._token is None:
            self._token = anyio.lowlevel.current_token()
        # The worker's check_cancelled() walks up the scopes from this one.
        with anyio.CancelScope() as scope:
            start = _Once()
            # Its value is None only for a call that never started: never returned here.
            settled: asyncio.Future[Any] = asyncio.ensure_future(
                self._manager.run(
                    _in_worker, start, self._token, scope, func, args, **self._run_kwargs
                )
            )
            try:
                # A future of our own, so a cancellation always interrupts this await
                # (awaiting the manager's future directly would keep a cancelled task
                # waiting for a running call while anyio retries the cancel every loop
                # iteration).
                result: _T = await asyncio.shield(settled)
                return result
            except asyncio.CancelledError:
                if start.claim():  # it had not started, and now never will
                    settled.cancel()  # withdraws it from the manager's queue
                    raise
                if settled.done() or abandon_on_cancel:  # over, or left to run its course
                    raise
                # Running and not abandoned: wait for it as anyio does (shielded), then
                # deliver the cancellation. Its outcome is dropped.
                with anyio.CancelScope(shield=True):
                    with contextlib.suppress(Exception):
                        await asyncio.shield(settled)
                raise
        # Only a cancellation of the scope itself ends here, and nothing cancels it.
        raise asyncio.CancelledError


async def run_sync(
    func: Callable[..., _T],
    *args: Any,
    abandon_on_cancel: bool = False,
    cancellable: bool | None = None,
    limiter: CapacityLimiter | None = None,
) -> _T:
    """``anyio.to_thread.run_sync`` while a route is installed: the routed loop's calls
    run on its manager; other loops (and trio) get anyio's own."""
    if cancellable is not None:
        abandon_on_cancel = cancellable
        warnings.warn(
            "The `cancellable=` keyword argument to `anyio.to_thread.run_sync` is "
            "deprecated since AnyIO 4.1.0; use `abandon_on_cancel=` instead",
            DeprecationWarning,
            stacklevel=2,
        )
    try:
        route = _routes.get(asyncio.get_running_loop())
    except RuntimeError:  # not on an asyncio loop (trio)
        route = None
    if route is None:
        assert _original is not None
        result: _T = await _original(
            func, *args, abandon_on_cancel=abandon_on_cancel, limiter=limiter
        )
        return result
    return await route._run(func, args, abandon_on_cancel, limiter)


def route_anyio_threads(
    manager: LeasedExecutorManager,
    *,
    loop: asyncio.AbstractEventLoop | None = None,
    owner: Any = ANYIO_OWNER,
    wait: bool = True,
    timeout: float | None = None,
    lease_seconds: float | None = None,
) -> AnyioThreadRoute:
    """Runs ``anyio.to_thread.run_sync`` calls made on ``loop`` (default: the running
    loop) with ``manager.run(func, *args, owner=owner, wait=wait, timeout=timeout,
    lease_seconds=lease_seconds)``. Installed at once; returns the route, also a context
    manager: ``uninstall()`` or leaving the ``with`` block restores anyio's own
    ``run_sync`` once no loop is routed any more.

    ``manager`` must use the thread backend and be started on ``loop`` before the first
    routed call. One route per loop (``RuntimeError`` otherwise).
    """
    global _original
    _check_thread_backend(manager, "route_anyio_threads()")
    if loop is None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            msg = "route_anyio_threads() needs a running event loop, or loop="
            raise RuntimeError(msg) from None
    route = AnyioThreadRoute(
        manager,
        loop,
        {"owner": owner, "wait": wait, "timeout": timeout, "lease_seconds": lease_seconds},
    )
    with _lock:
        if loop in _routes:
            raise RuntimeError("anyio worker threads of this event loop are already routed")
        # The first route patches anyio (unless still patched: a restore found someone
        # else's wrapper on top of ours and left both in place).
        if not _routes and anyio.to_thread.run_sync is not run_sync:
            _original = anyio.to_thread.run_sync
            anyio.to_thread.run_sync = run_sync  # type: ignore[assignment]
        _routes[loop] = route
    return route
