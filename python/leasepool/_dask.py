"""The Dask backend's Python side: one ``distributed.Client`` per manager, on its loop.

The engine treats a Dask cluster like a process pool (``process_pool/`` in the
binding, ``Kind::Dask``): it queues a lease's calls, packs them into chunks as the
engine's ``chunking`` plans, runs each chunk as one task (``_process_worker.run_chunk``
over calls pickled one by one), delivers the outcomes, and decides what revocation,
draining and cancellation do. What only ``distributed`` can do is here:

* :class:`DaskConnection` — the manager's own asynchronous client, opened on the
  manager's event loop at every ``start()`` and closed at ``stop()``. It connects to
  the scheduler of the client the user passed (``dask_client=``; that client is never
  used or changed) or to ``dask_address=``. It watches the scheduler's ``remove-worker``
  events, so the calls of a worker that died fail at once with
  :class:`~leasepool.exceptions.WorkerLostError` naming the worker.
* :class:`DaskExecutor` — the per-pool ``concurrent.futures.Executor`` the engine
  submits chunks to. ``submit`` is one ``client.submit`` on the loop (a hop through
  ``call_soon_threadsafe`` from any other thread); the result comes back through one
  small task per chunk awaiting the Dask future; no thread per call.
* :class:`ChunkFuture` — a ``concurrent.futures.Future`` whose ``cancel()`` also
  cancels the Dask task, even once it runs: the engine cancels a chunk when its lease
  is revoked or when every caller of the chunk gave up.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import threading
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import CancelledError, Executor, Future, InvalidStateError
from typing import Any

from .exceptions import UnsupportedBackendError, WorkerLostError

__all__ = [
    "ChunkFuture",
    "DaskConnection",
    "DaskExecutor",
    "check_dask_arguments",
    "dumps_call",
    "import_distributed",
]

_EXTRA_HINT = "pip install 'leasepool[dask]'"
_ARGUMENTS = ("dask_client", "dask_address")


def import_distributed() -> Any:
    """The ``distributed`` module, or :class:`UnsupportedBackendError` naming the extra."""
    try:
        import distributed
    except ImportError as exc:
        raise UnsupportedBackendError(
            f"The dask backend needs the 'distributed' package: {_EXTRA_HINT}"
        ) from exc
    return distributed


def check_dask_arguments(executor_kwargs: Mapping[str, Any]) -> tuple[Any, str | None]:
    """Validate a dask manager's keyword arguments at construction.

    Returns ``(client, address)``, exactly one of them set.

    Raises:
        UnsupportedBackendError: ``distributed`` is not installed.
        TypeError: an argument the dask backend does not take, or of the wrong type.
        ValueError: neither or both of ``dask_client`` and ``dask_address``.
    """
    distributed = import_distributed()
    for key in executor_kwargs:
        if key not in _ARGUMENTS:
            raise TypeError(
                f"the dask backend got an unexpected keyword argument {key!r} "
                f"(it takes {', '.join(_ARGUMENTS)})"
            )
    client = executor_kwargs.get("dask_client")
    address = executor_kwargs.get("dask_address")
    if (client is None) == (address is None):
        raise ValueError("the dask backend needs exactly one of dask_client= or dask_address=")
    if client is not None and not isinstance(client, distributed.Client):
        raise TypeError(f"dask_client must be a distributed.Client, not {type(client).__name__}")
    if address is not None and (not isinstance(address, str) or not address):
        raise TypeError(f"dask_address must be a non-empty str, not {address!r}")
    return client, address


_dask_dumps: Callable[[object], bytes] | None = None


def dumps_call(call: tuple[Any, ...]) -> bytes:
    """``(fn, args, kwargs)`` pickled for a Dask worker the way Dask pickles a task:
    by reference where possible, by value (cloudpickle) for what lives in ``__main__``
    (a script's or notebook's functions) or cannot be pickled by reference (a lambda).
    """
    global _dask_dumps
    if _dask_dumps is None:
        from distributed.protocol.pickle import dumps

        _dask_dumps = dumps
    return _dask_dumps(call)


class ChunkFuture(Future[Any]):
    """A chunk's outcome; cancelling it cancels its Dask task too (see the module doc)."""

    def __init__(self, connection: DaskConnection) -> None:
        super().__init__()
        self._connection = connection
        self.dask_future: Any = None

    def cancel(self) -> bool:
        dask_future = self.dask_future
        if dask_future is not None:
            self._connection.cancel_task(dask_future)
        if super().cancel():
            return True
        # Running on the cluster: the chunk fails as cancelled, its task was cancelled.
        return self._connection.settle_cancelled(self)


class DaskConnection:
    """One manager's client of a Dask cluster (see the module doc).

    ``open``/``close`` and every Dask call run on the manager's event loop; ``submit``
    and ``cancel_task`` may be called from any thread.
    """

    def __init__(
        self, client: Any, address: str | None, name_prefix: str, logger: logging.Logger
    ) -> None:
        self._logger = logger
        self._user_client = client
        self._address = address
        self._name_prefix = name_prefix
        self._client: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._closed = False
        self._pending: list[tuple[ChunkFuture, Callable[..., Any], tuple[Any, ...]]] = []
        # Chunks on the cluster: task key -> the engine's future of it.
        self._running: dict[str, ChunkFuture] = {}
        self._watchers: set[asyncio.Task[None]] = set()
        self._keys = itertools.count(1)
        self._token = ""
        self._on_change: Callable[[], object] | None = None
        self._on_worker_lost: Callable[[], object] | None = None
        self._connecting = False
        self._session = 0
        self._lost_logged = False
        self._at_most_once = True
        self._subscribed_comm: Any = None
        #: Threads of the cluster's workers, as last heard (0 until connected): what a
        #: ``size_provider`` that follows the cluster reads (``integrations.dask``).
        self.cluster_threads = 0

    # -- lifecycle (on the loop) -------------------------------------------------------

    def open(
        self,
        on_open: Callable[[BaseException | None], object],
        on_change: Callable[[], object] | None = None,
        on_worker_lost: Callable[[], object] | None = None,
    ) -> None:
        """Connect on the running loop; ``on_open(error or None)`` once connected or not.

        ``on_change()`` is called (on the loop) whenever a worker joined or left and
        :attr:`cluster_threads` was updated: the manager re-sizes at once.
        ``on_worker_lost()`` is called once per worker that died with calls of this
        manager on it (the manager counts it as a worker crash).
        """
        loop = asyncio.get_running_loop()
        self._on_change = on_change
        self._on_worker_lost = on_worker_lost
        self._loop = loop
        self._loop_thread = threading.get_ident()
        self._closed = False
        self._session += 1
        client = self._client
        if client is not None and client.status == "running":
            # A start() that overtook the last stop(): that stop leaves the client to
            # this run (its calls still finish on it).
            self._connecting = False
            loop.call_soon(on_open, None)
            return
        self._client = None
        self._token = uuid.uuid4().hex[:12]
        self._start_connecting(on_open, first=True)

    def _start_connecting(
        self, on_open: Callable[[BaseException | None], object] | None, *, first: bool
    ) -> None:
        assert self._loop is not None
        self._connecting = True
        task = self._loop.create_task(self._connect(on_open, first=first, session=self._session))
        self._watchers.add(task)
        task.add_done_callback(self._watchers.discard)

    async def _connect(
        self,
        on_open: Callable[[BaseException | None], object] | None,
        *,
        first: bool,
        session: int,
    ) -> None:
        """Open a client. The first connection's failure is ``start()``'s; either way
        the calls that waited for it fail, and the next call tries again."""
        client: Any = None
        try:
            client = await self._open_client()
            if self._closed or session != self._session:
                # stop() (or a stop and a new start) came first: nobody's client.
                raise RuntimeError("the manager was stopped while it connected to the cluster")
            self._client = client
            self._lost_logged = False
            await self._refresh_size(notify=not first)
        except BaseException as exc:  # noqa: BLE001 - reported to start() and the calls
            if session == self._session:
                self._connecting = False
                if self._client is client:
                    self._client = None
                self._fail_pending(exc)
            if client is not None and self._client is not client:
                self._close_in_background(client)
            if on_open is not None:
                on_open(exc)
            if isinstance(exc, (KeyboardInterrupt, SystemExit, asyncio.CancelledError)):
                raise
            return
        self._connecting = False
        self._logger.info(
            "%s Dask scheduler address=%s threads=%s",
            "Connected to" if first else "Reconnected to",
            client.scheduler.address,
            self.cluster_threads,
        )
        pending, self._pending = self._pending, []
        for future, fn, args in pending:
            self._send(client, future, fn, args)
        if on_open is not None:
            on_open(None)

    async def _open_client(self) -> Any:
        distributed = import_distributed()
        if self._user_client is not None:
            scheduler = getattr(self._user_client, "scheduler", None)
            if scheduler is None or self._user_client.status in ("closing", "closed"):
                raise RuntimeError(
                    "the dask_client given to the manager is closed; the manager connects "
                    "to that client's scheduler"
                )
            address = scheduler.address
            security = getattr(self._user_client, "security", None)
        else:
            address, security = self._address, None
        client = await distributed.Client(
            address,
            asynchronous=True,
            security=security,
            name=f"{self._name_prefix}-leasepool",
            set_as_default=False,
        )
        try:
            client.subscribe_topic("all", self._on_cluster_event)
            self._subscribed_comm = client.scheduler_comm
            await self._install_at_most_once(client)
        except BaseException:
            self._close_in_background(client)
            raise
        return client

    def _close_in_background(self, client: Any) -> None:
        async def close_client() -> None:
            with contextlib.suppress(Exception):
                await client.close()

        assert self._loop is not None
        task = self._loop.create_task(close_client())
        self._watchers.add(task)
        task.add_done_callback(self._watchers.discard)

    def close(self, on_closed: Callable[[], object]) -> None:
        """Close the client (on the loop); ``on_closed()`` when it is closed."""
        self._closed = True
        self._fail_pending(RuntimeError("the manager stopped before this call was sent"))
        client, self._client = self._client, None
        if client is None or self._loop is None:
            on_closed()
            return

        async def close_client() -> None:
            try:
                if client.status == "running":
                    client.unsubscribe_topic("all")
                await client.close()
            finally:
                on_closed()

        task = self._loop.create_task(close_client())
        self._watchers.add(task)
        task.add_done_callback(self._watchers.discard)

    # -- submission (any thread) -------------------------------------------------------

    def submit(self, future: ChunkFuture, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
        """Send ``fn(*args)`` to the cluster; its outcome settles ``future``."""
        if threading.get_ident() == self._loop_thread:
            self._submit_now(future, fn, args)
            return
        loop = self._loop
        if loop is None:
            future.set_exception(RuntimeError("the dask backend was never started"))
            return
        try:
            loop.call_soon_threadsafe(self._submit_now, future, fn, args)
        except RuntimeError as exc:  # the loop is closed
            future.set_exception(RuntimeError(f"the manager's event loop is closed: {exc}"))

    def _submit_now(
        self, future: ChunkFuture, fn: Callable[..., Any], args: tuple[Any, ...]
    ) -> None:
        if not future.set_running_or_notify_cancel():
            return
        if self._closed:
            future.set_exception(RuntimeError("the manager stopped before this call was sent"))
            return
        client = self._client
        if client is None or client.status in ("closing", "closed"):
            # Connecting; or the client gave up on a lost scheduler (after
            # distributed.comm.timeouts.connect): connect anew, and send once connected.
            self._pending.append((future, fn, args))
            if not self._connecting:
                self._client = None
                self._start_connecting(None, first=False)
            return
        self._send(client, future, fn, args)

    def _send(
        self, client: Any, future: ChunkFuture, fn: Callable[..., Any], args: tuple[Any, ...]
    ) -> None:
        """``client.submit`` for a running ``future``; a task awaits the outcome."""
        if future.done():  # failed or cancelled while it waited for the connection
            return
        if client.status == "running" and client.scheduler_comm is not self._subscribed_comm:
            self._resubscribe(client)
        if client.status != "running":
            # Reconnecting to a lost scheduler: Dask cancels what it has and would not
            # send this; fail it now rather than leave it hanging.
            self._log_lost(client)
            future.set_exception(
                ConnectionError(
                    f"no connection to the Dask scheduler {client.scheduler.address} "
                    f"(the client is {client.status}); the call was not sent"
                )
            )
            return
        key = f"leasepool-chunk-{self._token}-{next(self._keys)}"
        try:
            dask_future = client.submit(fn, *args, key=key, pure=False)
        except BaseException as exc:  # noqa: BLE001 - fails this chunk's calls only
            future.set_exception(exc)
            return
        future.dask_future = dask_future
        if future.done():  # cancelled (from another thread) while it was submitted
            self.cancel_task(dask_future)
            return
        self._running[key] = future
        assert self._loop is not None
        task = self._loop.create_task(self._watch(key, dask_future, future))
        self._watchers.add(task)
        task.add_done_callback(self._watchers.discard)

    async def _watch(self, key: str, dask_future: Any, future: ChunkFuture) -> None:
        try:
            value = await dask_future
        except asyncio.CancelledError as exc:
            self._settle(future, None, exc)
            raise  # this watcher itself was cancelled (the loop is closing)
        except CancelledError as exc:  # the Dask task was cancelled
            self._settle(future, None, self._cancelled_error(exc))
        except BaseException as exc:  # noqa: BLE001 - the chunk's task failed
            self._settle(future, None, exc)
        else:
            self._settle(future, value, None)
        finally:
            self._running.pop(key, None)
            dask_future.release()

    def _cancelled_error(self, exc: BaseException) -> BaseException:
        """What a Dask task cancelled without our asking means: the client gave up on a
        lost scheduler (after ``distributed.comm.timeouts``), so say that."""
        if self._client is not None and self._client.status != "running":
            self._log_lost(self._client)
            lost = ConnectionError(
                f"lost the connection to the Dask scheduler {self._client.scheduler.address} "
                "before this call's outcome came back (it may or may not have run)"
            )
            lost.__cause__ = exc
            return lost
        return exc

    def _log_lost(self, client: Any) -> None:
        if not self._lost_logged:
            self._lost_logged = True
            self._logger.warning(
                "Lost the connection to the Dask scheduler address=%s client=%s; calls "
                "fail until it is back",
                client.scheduler.address,
                client.status,
            )

    def _settle(self, future: ChunkFuture, value: Any, error: BaseException | None) -> None:
        try:
            if error is None:
                future.set_result(value)
            else:
                future.set_exception(error)
        except InvalidStateError:
            pass  # cancelled, or failed by a worker loss first

    def settle_cancelled(self, future: ChunkFuture) -> bool:
        """Fail a running chunk as cancelled (its task was cancelled on the cluster)."""
        try:
            future.set_exception(asyncio.CancelledError("the chunk's Dask task was cancelled"))
        except InvalidStateError:
            return False
        return True

    def cancel_task(self, dask_future: Any) -> None:
        """Cancel a Dask task, even a running one (from any thread)."""
        loop, client = self._loop, self._client
        if loop is None or client is None:
            return

        def cancel() -> None:
            if self._client is client:
                task = asyncio.ensure_future(client.cancel([dask_future], force=True))
                self._watchers.add(task)
                task.add_done_callback(self._watchers.discard)

        if threading.get_ident() == self._loop_thread:
            cancel()
            return
        with contextlib.suppress(RuntimeError):  # the loop is closed: so is the client
            loop.call_soon_threadsafe(cancel)

    # -- cluster events (on the loop) --------------------------------------------------

    def _on_cluster_event(self, event: tuple[float, Any]) -> None:
        """A worker joined or left: re-read the cluster's size. One that left without
        being asked to fails the chunks it was running.

        The scheduler would run them again elsewhere (``allowed-failures`` times); a
        call is run at most once unless its caller asks otherwise, so the chunk fails
        now and its task is cancelled.
        """
        _, message = event
        if not isinstance(message, dict):
            return
        action = message.get("action")
        if action in ("add-worker", "remove-worker") and self._loop is not None:
            task = self._loop.create_task(self._refresh_size(notify=True))
            self._watchers.add(task)
            task.add_done_callback(self._watchers.discard)
        if action != "remove-worker" or message.get("expected"):
            return  # retired on purpose: its tasks move elsewhere without having failed
        worker = message.get("worker", "?")
        lost = 0
        for key in message.get("processing-tasks", ()):
            future = self._running.get(key) if isinstance(key, str) else None
            if future is None:
                continue
            lost += 1
            retried = (
                "it was not run again"
                if self._at_most_once
                else "the scheduler may have started it again elsewhere before its task "
                "was cancelled (leasepool's plugin is not installed on the scheduler)"
            )
            error = WorkerLostError(
                f"The Dask worker {worker} died (or left the cluster) while running "
                f"this call; {retried}"
            )
            error.worker = str(worker)
            self._settle(future, None, error)
            if future.dask_future is not None:
                self.cancel_task(future.dask_future)
        if lost:
            if self._on_worker_lost is not None:
                self._on_worker_lost()
            self._logger.warning("Dask worker lost worker=%s chunks_failed=%s", worker, lost)

    def _resubscribe(self, client: Any) -> None:
        """The client reconnected by itself (to a restarted scheduler): the new
        scheduler has neither the event subscription nor the plugin."""
        self._subscribed_comm = client.scheduler_comm
        client.subscribe_topic("all", self._on_cluster_event)
        self._lost_logged = False
        self._logger.info("Reconnected to Dask scheduler address=%s", client.scheduler.address)

        async def renew() -> None:
            await self._install_at_most_once(client)
            await self._refresh_size(notify=True)

        assert self._loop is not None
        task = self._loop.create_task(renew())
        self._watchers.add(task)
        task.add_done_callback(self._watchers.discard)

    async def _install_at_most_once(self, client: Any) -> None:
        """Register ``_dask_plugin.AtMostOncePlugin`` on the scheduler (idempotent);
        without it, say once what that means."""
        from ._dask_plugin import AtMostOncePlugin

        try:
            await client.register_plugin(AtMostOncePlugin())
        except Exception as exc:  # noqa: BLE001 - the scheduler cannot import leasepool
            if self._at_most_once:
                self._logger.warning(
                    "The Dask scheduler could not install leasepool's at-most-once plugin "
                    "(is leasepool installed on the scheduler?): a call whose worker dies "
                    "may be started again by the scheduler before its task is cancelled: %r",
                    exc,
                )
            self._at_most_once = False
        else:
            self._at_most_once = True

    async def _refresh_size(self, *, notify: bool) -> None:
        client = self._client
        if client is None:
            return
        try:
            identity = await client.scheduler.identity(n_workers=0)
        except OSError:
            return  # the scheduler is gone: the next event or reconnect tells more
        self.cluster_threads = int(identity.get("total_threads", 0))
        if notify and self._on_change is not None:
            self._on_change()

    def _fail_pending(self, error: BaseException) -> None:
        """Fail the calls waiting for a connection, each with its own exception (one
        object raised in many places would grow its traceback every time)."""
        pending, self._pending = self._pending, []
        for future, _, _ in pending:
            failed = ConnectionError(f"could not connect to the Dask scheduler: {error!r}")
            failed.__cause__ = error
            self._settle(future, None, failed)


class DaskExecutor(Executor):
    """The executor of one dask pool: chunks go to the cluster through ``connection``."""

    def __init__(self, max_workers: int, *, connection: DaskConnection) -> None:
        self._max_workers = max_workers
        self._connection = connection
        self._shutdown = False

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> ChunkFuture:
        if kwargs:
            raise TypeError("DaskExecutor.submit takes positional arguments only")
        if self._shutdown:
            raise RuntimeError("cannot schedule new futures after shutdown")
        future = ChunkFuture(self._connection)
        self._connection.submit(future, fn, args)
        return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        # The engine cancels the chunks it still has in flight itself.
        self._shutdown = True
