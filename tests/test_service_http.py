"""The service example over real HTTP: uvicorn on 127.0.0.1, driven by http.client.

Every offload route (manager.run, asyncio.to_thread, a Starlette sync endpoint) shares
the manager's four slots; a saturated manager answers 503 with Retry-After.
"""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest
from _support import load_example

from leasepool import LeasedExecutorManager, LeaseUnavailableError

WAIT = 30.0


service = load_example("04_service_admission.py", "service_admission_example")


class BlockingWork:
    """``work(key)``: keys starting with "slow" report their start and wait for the test."""

    def __init__(self) -> None:
        self.started = threading.Semaphore(0)
        self.release = threading.Event()
        self.threads: set[str] = set()

    def __call__(self, key: str) -> str:
        self.threads.add(threading.current_thread().name)
        if key.startswith("slow"):
            self.started.release()
            assert self.release.wait(WAIT)
        if key.startswith("shed"):
            exc = LeaseUnavailableError("shed by the work itself")
            exc.retry_after = 2.25
            raise exc
        return f"row {key}"


def get(port: int, path: str) -> tuple[int, str | None, Any]:
    status, retry_after, body = service.get(port, path)
    return status, retry_after, json.loads(body)


@pytest.fixture(params=["asyncio", "uvloop"])
def server_loop(request: pytest.FixtureRequest) -> str:
    kind: str = request.param
    return kind


def test_saturated_service_answers_503_with_retry_after(server_loop: str) -> None:
    work = BlockingWork()
    manager = service.service_manager(name_prefix="svc")
    app = service.create_app(manager, work)
    with service.serving(app, loop=server_loop) as port:
        assert get(port, "/run/1") == (200, None, {"row": "row 1"})
        assert get(port, "/to_thread/2") == (200, None, {"row": "row 2"})
        assert get(port, "/sync/3") == (200, None, {"row": "row 3"})
        # Every route ran on the manager's threads (name_prefix), none on anyio's or
        # asyncio's own pools.
        assert work.threads and all(name.startswith("svc-") for name in work.threads)

        slow_paths = ["/run/slow1", "/to_thread/slow2", "/sync/slow3", "/sync/slow4"]
        answers: list[tuple[int, str | None, Any]] = []
        clients = [
            threading.Thread(target=lambda p=p: answers.append(get(port, p))) for p in slow_paths
        ]
        for client in clients:
            client.start()
        try:
            for _ in slow_paths:
                assert work.started.acquire(timeout=WAIT)
            assert get(port, "/health") == (200, None, {"status": "ok", "calls": 4})
            for path in ["/run/4", "/to_thread/5", "/sync/6"]:
                status, retry_after, body = get(port, path)
                assert status == 503, (path, body)
                assert body["error"] == "LeaseUnavailableError"
                assert retry_after is not None and retry_after.isdigit()
                assert int(retry_after) >= 1
                assert body["retry_after"] == int(retry_after)
        finally:
            work.release.set()
            for client in clients:
                client.join(WAIT)
        assert sorted(status for status, _, _ in answers) == [200] * 4
        assert get(port, "/to_thread/7") == (200, None, {"row": "row 7"})
        assert get(port, "/sync/8") == (200, None, {"row": "row 8"})
        assert get(port, "/run/9") == (200, None, {"row": "row 9"})
        assert get(port, "/health") == (200, None, {"status": "ok", "calls": 0})


def test_a_full_queue_sheds_with_the_engines_retry_estimate(server_loop: str) -> None:
    """``max_waiters`` bounds ``/queued``; the overflow gets 503 and a ``Retry-After``
    from the engine's estimate, and the health probe still runs on its reserved pool."""
    work = BlockingWork()
    # One unreserved slot, one waiter at most; leases of 10 s and none ended yet: the
    # estimate is 10 s x (1 waiter ahead + 1) / 2 slots (both pools) = 10 s.
    manager = service.service_manager(
        max_pools=2, workers_per_pool=1, max_waiters=1, default_lease_seconds=10.0
    )
    app = service.create_app(manager, work)
    with service.serving(app, loop=server_loop) as port:
        answers: list[tuple[int, str | None, Any]] = []
        answered = threading.Semaphore(0)

        def client(path: str) -> None:
            answers.append(get(port, path))
            answered.release()

        clients = [threading.Thread(target=client, args=(p,)) for p in ["/queued/slow1"]]
        clients[0].start()
        try:
            assert work.started.acquire(timeout=WAIT)
            # One of these two waits; the other finds the queue full and is shed.
            clients += [
                threading.Thread(target=client, args=(p,)) for p in ["/queued/2", "/queued/3"]
            ]
            for thread in clients[1:]:
                thread.start()
            assert answered.acquire(timeout=WAIT)
            (shed,) = answers
            assert shed == (503, "10", {"error": "LeaseQueueFullError", "retry_after": 10})
            assert get(port, "/health") == (200, None, {"status": "ok", "calls": 1})
        finally:
            work.release.set()
            for thread in clients:
                thread.join(WAIT)
        rows = sorted(body["row"] for status, _, body in answers if status == 200)
        assert len(answers) == 3 and rows in (["row 2", "row slow1"], ["row 3", "row slow1"])


def test_retry_after_comes_from_the_errors_estimate(server_loop: str) -> None:
    """A shedding error's ``retry_after`` (float seconds) becomes whole seconds,
    rounded up."""
    app = service.create_app(LeasedExecutorManager(max_pools=1), BlockingWork())
    with service.serving(app, loop=server_loop) as port:
        for path in ["/run/shed", "/to_thread/shed", "/sync/shed"]:
            status, retry_after, body = get(port, path)
            assert (status, retry_after) == (503, "3"), path
            assert body == {"error": "LeaseUnavailableError", "retry_after": 3}


def test_routes_are_undone_when_the_server_stops() -> None:
    import anyio.to_thread

    original = anyio.to_thread.run_sync
    app = service.create_app(LeasedExecutorManager(max_pools=1), BlockingWork())
    with service.serving(app) as port:
        assert get(port, "/sync/1")[0] == 200
        assert anyio.to_thread.run_sync is not original
    assert anyio.to_thread.run_sync is original
