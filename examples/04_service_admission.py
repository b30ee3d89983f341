"""A Starlette service whose every offload shares one limit, and sheds load with 503.

Three ways to offload blocking work, one manager behind all of them:

* ``await manager.run(fn, ...)`` (the one-call path);
* ``await asyncio.to_thread(fn, ...)``: the loop's default executor is the manager
  (``manager.install_as_default_executor()``);
* a sync endpoint, which Starlette runs with ``run_in_threadpool``, i.e.
  ``anyio.to_thread.run_sync``, routed to the manager
  (``leasepool.integrations.anyio.route_anyio_threads``).

When the manager has no free slot, those calls fail at once (``wait=False``) with
``LeaseUnavailableError``; ``/queued`` waits instead, but only while fewer than
``max_waiters`` callers wait (else ``LeaseQueueFullError``) and for at most
``QUEUE_TIMEOUT`` seconds (else ``LeaseAcquireTimeoutError``). The exception handlers
turn all of these into HTTP 503 with a ``Retry-After`` header: the engine's estimate of
when capacity is likely, rounded up. ``/health`` offloads its probe with
``reservation="health"``: one pool is reserved for it, so health checks answer while
the work saturates every other pool.

Run it and it serves itself on a free port, saturates the four slots, shows the 503s,
releases the work and shows the 200s. Serve it for real with
``uvicorn 04_service_admission:app`` (module-level ``app``).
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import socket
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from leasepool import LeaseAcquireTimeoutError, LeasedExecutorManager, LeaseUnavailableError
from leasepool.integrations import retry_after_seconds
from leasepool.integrations.anyio import route_anyio_threads

Work = Callable[[str], str]


def create_app(manager: LeasedExecutorManager, work: Work) -> Starlette:
    """The service; ``work(key)`` is the blocking call every endpoint offloads."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await manager.start()  # on the server's event loop
        executor = manager.install_as_default_executor(wait=False)
        route = route_anyio_threads(manager, wait=False)
        try:
            yield
        finally:
            route.uninstall()
            executor.uninstall()
            await manager.stop()

    async def via_run(request: Request) -> Response:
        key = request.path_params["key"]
        return JSONResponse({"row": await manager.run(work, key, owner="run", wait=False)})

    async def queued(request: Request) -> Response:
        key = request.path_params["key"]
        row = await manager.run(work, key, owner="queued", timeout=QUEUE_TIMEOUT)
        return JSONResponse({"row": row})

    async def via_to_thread(request: Request) -> Response:
        return JSONResponse({"row": await asyncio.to_thread(work, request.path_params["key"])})

    def via_sync_endpoint(request: Request) -> Response:  # Starlette runs it in "a thread"
        return JSONResponse({"row": work(request.path_params["key"])})

    async def health(request: Request) -> Response:
        # The probe runs on the reserved pool: never stuck behind saturated work.
        status = await manager.run(probe, reservation="health", wait=False)
        return JSONResponse({"status": status, "calls": len(manager.stats()["leases"])})

    async def shed(request: Request, exc: Exception) -> Response:
        seconds = retry_after_seconds(exc)  # the error's retry_after estimate, else 1 s
        return JSONResponse(
            {"error": type(exc).__name__, "retry_after": seconds},
            status_code=503,
            headers={"Retry-After": str(seconds)},
        )

    return Starlette(
        routes=[
            Route("/run/{key}", via_run),
            Route("/queued/{key}", queued),
            Route("/to_thread/{key}", via_to_thread),
            Route("/sync/{key}", via_sync_endpoint),
            Route("/health", health),
        ],
        lifespan=lifespan,
        exception_handlers={LeaseUnavailableError: shed, LeaseAcquireTimeoutError: shed},
    )


def probe() -> str:
    """A health probe (a real one would ping the database)."""
    return "ok"


def query_database(key: str) -> str:
    return f"row {key}"


QUEUE_TIMEOUT = 5.0


def service_manager(**overrides: Any) -> LeasedExecutorManager:
    """3 pools x 2 worker threads; one pool reserved for health probes, so four
    blocking calls of work at once, whichever way they come; eight more may wait."""
    settings: dict[str, Any] = {
        "max_pools": 3,
        "workers_per_pool": 2,
        "reserved_pools": {"health": 1},
        "max_waiters": 8,
    }
    return LeasedExecutorManager(**(settings | overrides))


app = create_app(service_manager(), query_database)


@contextlib.contextmanager
def serving(app: Starlette, loop: str = "asyncio") -> Iterator[int]:
    """Serves ``app`` with uvicorn on a free port of 127.0.0.1 in a thread; yields the
    port. The socket listens before the server starts, so requests can be sent at once
    (they wait in the backlog). Shuts the server down on the way out, even on failure."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    config = uvicorn.Config(app, loop=loop, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="uvicorn")
    thread.start()
    try:
        yield sock.getsockname()[1]
    finally:
        server.should_exit = True
        thread.join(30)
        sock.close()
        if thread.is_alive():
            raise RuntimeError("uvicorn did not shut down")


def get(port: int, path: str) -> tuple[int, str | None, Any]:
    """GET ``path``: (status, Retry-After header, body)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.getheader("Retry-After"), response.read().decode()
    finally:
        conn.close()


def main() -> None:
    started = threading.Semaphore(0)
    release = threading.Event()

    def slow_query(key: str) -> str:
        if key.startswith("slow"):
            started.release()
            release.wait(30)  # held until the demo lets it go
        return f"row {key}"

    demo = create_app(service_manager(), slow_query)
    with serving(demo) as port:
        print(get(port, "/run/1")[:2])
        # Saturate: four slow calls, one through each route and one more manager.run.
        paths = ["/run/slow1", "/run/slow2", "/to_thread/slow3", "/sync/slow4"]
        results: list[tuple[int, str | None, Any]] = []
        clients = [threading.Thread(target=lambda p=p: results.append(get(port, p))) for p in paths]
        for client in clients:
            client.start()
        try:
            for _ in paths:
                assert started.acquire(timeout=30)
            print("saturated:", get(port, "/health")[2])
            for path in ["/run/2", "/to_thread/3", "/sync/4"]:
                status, retry_after, body = get(port, path)
                print(path, status, f"Retry-After: {retry_after}", body)
        finally:
            release.set()
            for client in clients:
                client.join(30)
        print("released:", sorted(status for status, _, _ in results))
        print(get(port, "/sync/5")[0], get(port, "/to_thread/6")[0], get(port, "/run/7")[0])


if __name__ == "__main__":
    main()
