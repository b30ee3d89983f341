"""A FastAPI service that exports its manager's metrics to Prometheus at ``/metrics``.

``/work/{rounds}`` offloads a blocking call with ``await manager.run(...)``; ``/metrics``
renders the app's own ``CollectorRegistry``, in which a ``PrometheusCollector`` reads
``manager.metrics()`` at each scrape (so the values are those of the scrape; nothing is
updated between scrapes). The app's own registry, not prometheus_client's global
``REGISTRY``: the app serves exactly what it registers. The manager counts leases per
owner (``metrics_owners``), so ``/work`` shows up under ``owner="work"``.

Run it and it serves itself on a free port of 127.0.0.1, sends a few ``/work``
requests, prints the ``leasepool_`` lines of ``/metrics`` and exits. Serve it for real
with ``uvicorn 05_metrics_fastapi:app`` (module-level ``app``) and point Prometheus at
``/metrics``. Needs ``pip install 'leasepool[prometheus]' fastapi uvicorn``.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import socket
import threading
from collections.abc import AsyncIterator, Iterator

import uvicorn
from fastapi import FastAPI, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from leasepool import LeasedExecutorManager
from leasepool.metrics import PrometheusCollector


def digest(rounds: int) -> str:
    """The blocking work: ``rounds`` chained SHA-256 hashes."""
    value = b"leasepool"
    for _ in range(rounds):
        value = hashlib.sha256(value).digest()
    return value.hex()[:16]


def create_app(manager: LeasedExecutorManager, registry: CollectorRegistry) -> FastAPI:
    """The service; its metrics are served from ``registry``."""
    PrometheusCollector(manager, registry=registry)  # label manager="<name_prefix>"

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await manager.start()  # on the server's event loop
        try:
            yield
        finally:
            await manager.stop()

    app = FastAPI(lifespan=lifespan)

    @app.get("/work/{rounds}")
    async def work(rounds: int) -> dict[str, str]:
        return {"digest": await manager.run(digest, rounds, owner="work")}

    @app.get("/metrics")
    async def metrics() -> Response:
        # On the event loop: reading the snapshot does not block.
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return app


def service_manager() -> LeasedExecutorManager:
    return LeasedExecutorManager(
        max_pools=2, workers_per_pool=2, name_prefix="api", metrics_owners=8
    )


app = create_app(service_manager(), CollectorRegistry())


@contextlib.contextmanager
def serving(app: FastAPI) -> Iterator[int]:
    """Serves ``app`` with uvicorn on a free port of 127.0.0.1 in a thread; yields the
    port. The socket listens before the server starts, so requests can be sent at once.
    Shuts the server down (and so the lifespan stops the manager) on the way out."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
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


def get(port: int, path: str) -> str:
    """GET ``path``; the body (an error unless the status is 200)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        body = response.read().decode()
        if response.status != 200:
            raise RuntimeError(f"GET {path}: {response.status} {body}")
        return body
    finally:
        conn.close()


def main() -> None:
    demo = create_app(service_manager(), CollectorRegistry())
    with serving(demo) as port:
        for rounds in (1, 10, 100, 1000):
            get(port, f"/work/{rounds}")
        exposition = get(port, "/metrics")
    for line in exposition.splitlines():
        if line.startswith("leasepool_"):
            print(line)


if __name__ == "__main__":
    main()
