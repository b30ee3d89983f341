"""The service under test: a Starlette app whose endpoints offload a real sqlite3
query, through the implementation named by ``SERVICE_IMPL``.

    SERVICE_IMPL=leasepool|leasepool_run|executor|anyio  SERVICE_DB=/path/to.db  uvicorn app:app

``leasepool`` is whichever leasepool the interpreter imports: this package, or
upstream 0.1.3 in its own virtualenv (the harness runs both): a lease per request.
``leasepool_run`` is this package's one-call path, ``manager.run(fn, *args)``. Endpoints:

* ``GET /query/{n}``: one indexed sqlite3 lookup, waiting for capacity (FIFO, bounded
  by ``SERVICE_WAIT_SECONDS``; 503 when it runs out).
* ``GET /busy/{n}``: the same lookup, or 503 at once when there is no capacity
  (``wait=False``; ``executor`` has no backpressure and always runs it).
* ``GET /_metrics``: threads started since the process began, and RSS.

Every thread opens its own sqlite3 connection (sqlite3 objects are per-thread), so a
new worker thread also costs a new connection, as with real database drivers.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

IMPL = os.environ.get("SERVICE_IMPL", "leasepool")
DB_PATH = os.environ["SERVICE_DB"]
CONCURRENCY = int(os.environ.get("SERVICE_CONCURRENCY", "16"))
MIN_POOLS = int(os.environ.get("SERVICE_MIN_POOLS", "4"))
WAIT_SECONDS = float(os.environ.get("SERVICE_WAIT_SECONDS", "5"))

# -------------------------------------------------------------- threads started, RSS

_started = 0
_started_lock = threading.Lock()
_original_start = threading.Thread.start


def _counting_start(self: threading.Thread) -> None:
    global _started
    with _started_lock:
        _started += 1
    _original_start(self)


threading.Thread.start = _counting_start  # type: ignore[method-assign]


def _rss_bytes() -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


# ---------------------------------------------------------------------- the query

_local = threading.local()


def lookup(n: int) -> tuple[int, str]:
    conn = getattr(_local, "conn", None)
    if conn is None:
        conn = sqlite3.connect(DB_PATH, check_same_thread=True)
        _local.conn = conn
    row = conn.execute("SELECT id, payload FROM items WHERE id = ?", (n,)).fetchone()
    return (int(row[0]), str(row[1])) if row else (n, "")


Offload = Callable[[int, bool], Awaitable[tuple[int, str] | None]]


def _leasepool() -> tuple[Offload, Callable[[], Awaitable[None]], Callable[[], Awaitable[None]]]:
    from leasepool import LeasedExecutorManager, LeaseUnavailableError

    manager = LeasedExecutorManager(max_pools=CONCURRENCY, min_pools=MIN_POOLS, workers_per_pool=1)

    async def offload(n: int, wait: bool) -> tuple[int, str] | None:
        try:
            lease = await manager.acquire(owner="service", wait=wait, timeout=WAIT_SECONDS)
        except (LeaseUnavailableError, TimeoutError):
            return None
        try:
            result: tuple[int, str] = await lease.run(lookup, n)
            return result
        finally:
            await lease.release()

    return offload, manager.start, manager.stop


def _leasepool_run() -> tuple[
    Offload, Callable[[], Awaitable[None]], Callable[[], Awaitable[None]]
]:
    from leasepool import LeasedExecutorManager, LeaseUnavailableError

    # The README's recipe: the same 16 threads as 4 pools of 4; each call holds one.
    workers = 4
    manager = LeasedExecutorManager(
        max_pools=max(1, CONCURRENCY // workers), min_pools=1, workers_per_pool=workers
    )

    async def offload(n: int, wait: bool) -> tuple[int, str] | None:
        try:
            result: tuple[int, str] = await manager.run(
                lookup, n, owner="service", wait=wait, timeout=WAIT_SECONDS
            )
        except (LeaseUnavailableError, TimeoutError):
            return None
        return result

    return offload, manager.start, manager.stop


def _executor() -> tuple[Offload, Callable[[], Awaitable[None]], Callable[[], Awaitable[None]]]:
    pool = ThreadPoolExecutor(CONCURRENCY)

    async def offload(n: int, wait: bool) -> tuple[int, str] | None:
        return await asyncio.get_running_loop().run_in_executor(pool, lookup, n)

    async def start() -> None:
        pass

    async def stop() -> None:
        pool.shutdown(wait=True)

    return offload, start, stop


def _anyio() -> tuple[Offload, Callable[[], Awaitable[None]], Callable[[], Awaitable[None]]]:
    import anyio
    import anyio.to_thread

    limiter = anyio.CapacityLimiter(CONCURRENCY)

    async def offload(n: int, wait: bool) -> tuple[int, str] | None:
        if not wait and limiter.available_tokens == 0:
            return None
        with anyio.move_on_after(WAIT_SECONDS):
            return await anyio.to_thread.run_sync(lookup, n, limiter=limiter)
        return None

    async def start() -> None:
        pass

    async def stop() -> None:
        pass

    return offload, start, stop


OFFLOAD, START, STOP = {
    "leasepool": _leasepool,
    "leasepool_run": _leasepool_run,
    "executor": _executor,
    "anyio": _anyio,
}[IMPL]()


def _respond(result: tuple[int, str] | None) -> Response:
    if result is None:
        return JSONResponse({"error": "busy"}, status_code=503)
    return JSONResponse({"id": result[0], "payload": result[1]})


async def query(request: Request) -> Response:
    return _respond(await OFFLOAD(int(request.path_params["n"]), True))


async def busy(request: Request) -> Response:
    return _respond(await OFFLOAD(int(request.path_params["n"]), False))


async def metrics(request: Request) -> Response:
    return JSONResponse({"threads_started": _started, "rss": _rss_bytes()})


@contextlib.asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
    await START()
    try:
        yield {}
    finally:
        await STOP()


app = Starlette(
    routes=[
        Route("/query/{n:int}", query),
        Route("/busy/{n:int}", busy),
        Route("/_metrics", metrics),
    ],
    lifespan=lifespan,
)
