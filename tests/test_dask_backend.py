"""The dask backend against a real ``distributed.LocalCluster`` (2 worker processes).

One cluster serves the module (starting one takes seconds); every test makes its own
manager, which opens its own client of the cluster at ``start()``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import _dask_funcs as f
import pytest
from _support import eventually, messages

from leasepool import (
    ExecutorBackend,
    LeasedExecutorManager,
    LeaseExpiredError,
    LeasePoolDrainingError,
    LeasePoolNotStartedError,
    WorkGrinder,
)
from leasepool.exceptions import WorkerLostError
from leasepool.integrations.dask import cluster_threads

distributed = pytest.importorskip("distributed")
dask = pytest.importorskip("dask")

pytestmark = pytest.mark.beyond_reference

CHUNK_PREFIX = "leasepool-chunk-"


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    with distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=2,
        processes=True,
        host="127.0.0.1",
        dashboard_address="127.0.0.1:0",  # HTTP endpoints on a free local port
        worker_dashboard_address=None,
    ) as local_cluster:
        yield local_cluster


@pytest.fixture(scope="module")
def observer(cluster: Any) -> Iterator[Any]:
    """A synchronous client the tests use to look at the scheduler."""
    with distributed.Client(cluster) as client:
        yield client


def _leasepool_tasks(dask_scheduler: Any) -> dict[str, str]:
    return {
        key: ts.state
        for key, ts in dask_scheduler.tasks.items()
        if isinstance(key, str) and key.startswith(CHUNK_PREFIX)
    }


async def scheduler_tasks(observer: Any) -> dict[str, str]:
    """The manager's chunk tasks the scheduler still knows, with their states."""
    tasks: dict[str, str] = await asyncio.to_thread(observer.run_on_scheduler, _leasepool_tasks)
    return tasks


async def until_no_tasks(observer: Any) -> None:
    """Wait until the scheduler has forgotten every chunk task of the managers."""

    async def none_left() -> bool:
        return not await scheduler_tasks(observer)

    await until_async(none_left)


async def until_async(check: Callable[[], Awaitable[bool]], limit: float = 30.0) -> None:
    """Wait (bounded) until the scheduler reaches a state: the cluster changes it on its
    own time, nothing here can be awaited instead."""
    deadline = time.monotonic() + limit
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"the scheduler did not get there within {limit}s")
        await asyncio.sleep(0.02)


async def until_no_client_of(observer: Any, name_prefix: str) -> None:
    """Wait until the scheduler lists no client of the manager named ``name_prefix``
    (each manager's client is named ``f"{name_prefix}-leasepool"``)."""
    name = f"{name_prefix}-leasepool"

    def clients(dask_scheduler: Any) -> list[str]:
        return [c for c in dask_scheduler.clients if name in str(c)]

    async def none_left() -> bool:
        return not await asyncio.to_thread(observer.run_on_scheduler, clients)

    await until_async(none_left)


def dask_manager(cluster: Any, **kwargs: Any) -> LeasedExecutorManager:
    options: dict[str, Any] = {"max_pools": 2, "workers_per_pool": 2}
    options.update(kwargs)
    if "dask_client" not in options:
        options["dask_address"] = cluster.scheduler_address
    return LeasedExecutorManager(backend="dask", **options)


async def test_run_gather_and_exceptions(cluster: Any, caplog: pytest.LogCaptureFixture) -> None:
    manager = dask_manager(cluster)
    with caplog.at_level(logging.INFO, logger="leasepool.manager"):
        await manager.start()
    assert f"Connected to Dask scheduler address={cluster.scheduler_address} threads=4" in (
        messages(caplog, logging.INFO)
    )
    try:
        assert manager.backend is ExecutorBackend.DASK
        async with await manager.acquire() as lease:
            assert await lease.run(f.add, 2, 3) == 5
            assert await lease.run(f.echo, 1, key="v") == ((1,), {"key": "v"})
            # What cannot be pickled by reference travels by value, as Dask sends it.
            assert await lease.run(lambda x: x * 3, 7) == 21
            pids = set(await asyncio.gather(*(lease.run(f.getpid) for _ in range(20))))
            assert os.getpid() not in pids
            results = await asyncio.gather(*(lease.run(f.add, i, 1) for i in range(500)))
            assert results == [i + 1 for i in range(500)]
            with pytest.raises(f.CallError, match="nope") as raised:
                await lease.run(f.fail, "nope")
            # The worker's traceback travels with it, as from a process pool.
            assert "Traceback" in str(raised.value.__cause__)
            outcomes = await asyncio.gather(
                *(
                    lease.run(f.fail if i % 2 else f.add, *((str(i),) if i % 2 else (i, 0)))
                    for i in range(10)
                ),
                return_exceptions=True,
            )
            for i, outcome in enumerate(outcomes):
                if i % 2:
                    assert isinstance(outcome, f.CallError) and str(outcome) == str(i)
                else:
                    assert outcome == i
        stats = manager.stats()
        assert stats["backend"] == "dask"
        assert stats["leased"] == 0
    finally:
        await manager.stop()


def _chunks_forgotten(dask_scheduler: Any) -> int:
    prefix = dask_scheduler.task_prefixes.get("leasepool-chunk")
    return int(prefix.state_counts["forgotten"]) if prefix is not None else 0


async def test_gathered_calls_travel_in_chunks(cluster: Any, observer: Any) -> None:
    async def forgotten() -> int:
        count: int = await asyncio.to_thread(observer.run_on_scheduler, _chunks_forgotten)
        return count

    await until_no_tasks(observer)
    before = await forgotten()
    manager = dask_manager(cluster, max_pools=1)
    await manager.start()
    try:
        async with await manager.acquire() as lease:
            results = await asyncio.gather(*(lease.run(f.add, i, i) for i in range(400)))
        assert results == [2 * i for i in range(400)]
        metrics = manager.metrics()
        assert metrics.calls_finished == 400
    finally:
        await manager.stop()
    await until_no_tasks(observer)
    # 400 calls on 2 concurrent tasks: far fewer tasks than calls reached the cluster.
    tasks = await forgotten() - before
    assert 0 < tasks < 400, tasks


async def test_executor_is_a_concurrent_futures_executor(cluster: Any) -> None:
    from concurrent.futures import Executor

    manager = dask_manager(cluster)
    await manager.start()
    try:
        async with await manager.acquire() as lease:
            executor = lease.executor
            assert isinstance(executor, Executor)
            future = executor.submit(f.add, 20, 22)
            assert await asyncio.wrap_future(future) == 42
            loop = asyncio.get_running_loop()
            assert await loop.run_in_executor(executor, f.add, 1, 1) == 2
            # From another thread too (the submission hops to the manager's loop).
            from_thread = await asyncio.to_thread(lambda: executor.submit(f.add, 3, 4).result(30))
            assert from_thread == 7
    finally:
        await manager.stop()


async def test_manager_run_and_a_given_client(cluster: Any, observer: Any) -> None:
    # A synchronous client (its own loop thread): the manager uses its scheduler
    # through a client of its own and leaves the given one alone.
    manager = dask_manager(cluster, dask_client=observer)
    await manager.start()
    try:
        assert await manager.run(f.add, 1, 2) == 3
        assert await asyncio.gather(*(manager.run(f.add, i, 0) for i in range(50))) == list(
            range(50)
        )
    finally:
        await manager.stop()
    assert observer.status == "running"
    assert observer.submit(f.add, 1, 1).result(30) == 2


async def test_an_asynchronous_client_on_the_same_loop(cluster: Any) -> None:
    async with distributed.Client(
        cluster.scheduler_address, asynchronous=True, set_as_default=False
    ) as client:
        manager = dask_manager(cluster, dask_client=client)
        await manager.start()
        try:
            async with await manager.acquire() as lease:
                assert await lease.run(f.add, 5, 5) == 10
        finally:
            await manager.stop()
        # Untouched: still the caller's, still working.
        assert client.status == "running"
        assert await client.submit(f.add, 1, 2) == 3


async def test_cancel_and_release_races_settle_everything(cluster: Any, observer: Any) -> None:
    """Amplified: rounds of gathered calls, some cancelled at random points, leases
    released while calls run; every await settles, nothing stays leased or on the
    cluster."""
    rng = random.Random(14)
    manager = dask_manager(cluster, max_pools=2, workers_per_pool=2)
    await manager.start()
    try:
        for _ in range(60):
            lease = await manager.acquire()
            calls = [asyncio.ensure_future(lease.run(f.add, i, 1)) for i in range(12)]
            for _ in range(rng.randrange(4)):
                await asyncio.sleep(0)
            for call in rng.sample(calls, rng.randrange(6)):
                call.cancel()
            outcomes = await asyncio.wait_for(asyncio.gather(*calls, return_exceptions=True), 60)
            for i, outcome in enumerate(outcomes):
                assert outcome == i + 1 or isinstance(outcome, asyncio.CancelledError), outcome
            await lease.release()
        assert manager.stats()["leased"] == 0
    finally:
        await manager.stop()
    # Every call counted once: started and then ended, or cancelled before it started.
    metrics = manager.metrics()
    assert metrics.calls_started + metrics.calls_cancelled == 60 * 12
    assert metrics.calls_started == metrics.calls_finished + metrics.calls_failed

    await until_no_tasks(observer)


async def test_cancelling_the_await_cancels_the_dask_task(
    cluster: Any, observer: Any, tmp_path: Path
) -> None:
    manager = dask_manager(cluster, max_pools=1)
    await manager.start()
    release = tmp_path / "release"
    try:
        async with await manager.acquire() as lease:
            marker = tmp_path / "started"
            running = asyncio.ensure_future(lease.run(f.mark_then_wait, str(marker), str(release)))
            await eventually(marker.exists, what="the call started")
            assert list((await scheduler_tasks(observer)).values()) == ["processing"]
            running.cancel()
            with pytest.raises(asyncio.CancelledError):
                await running

            await until_no_tasks(observer)
            # The lease goes on.
            assert await lease.run(f.add, 1, 1) == 2
    finally:
        release.touch()
        await manager.stop()


async def test_expiry_revokes_and_cancels_outstanding_tasks(
    cluster: Any, observer: Any, tmp_path: Path, advance_clock: Callable[[float], None]
) -> None:
    manager = dask_manager(cluster, max_pools=1, lease_grace_seconds=1.0)
    await manager.start()
    release = tmp_path / "release"
    try:
        lease = await manager.acquire(lease_seconds=5.0)
        marker = tmp_path / "started"
        running = lease.run(f.mark_then_wait, str(marker), str(release))
        await eventually(marker.exists, what="the call started")
        advance_clock(7.0)
        manager.notify_scale_changed()
        with pytest.raises(LeaseExpiredError, match="Dask tasks"):
            await asyncio.wait_for(running, 30)

        await until_no_tasks(observer)
        with pytest.raises(LeaseExpiredError):
            await lease.run(f.add, 1, 1)
        # The pool went with its lease; a new lease gets a working one.
        async with await manager.acquire() as fresh:
            assert await fresh.run(f.add, 2, 2) == 4
    finally:
        release.touch()
        await manager.stop()


async def test_a_drain_deadline_cancels_the_running_tasks(
    cluster: Any, observer: Any, tmp_path: Path, advance_clock: Callable[[float], None]
) -> None:
    manager = dask_manager(cluster, max_pools=1, workers_per_pool=1)
    await manager.start()
    release = tmp_path / "release"
    try:
        lease = await manager.acquire()
        marker = tmp_path / "started"
        running = lease.run(f.mark_then_wait, str(marker), str(release))
        await eventually(marker.exists, what="the call started")
        queued = lease.run(f.add, 1, 1)  # waits for the one task slot
        drained = manager.drain(30)
        advance_clock(31)
        manager.notify_scale_changed()
        report = await asyncio.wait_for(drained, 60)
        with pytest.raises(LeasePoolDrainingError, match="Dask task"):
            await running
        with pytest.raises(asyncio.CancelledError):
            await queued
        assert (report.finished, report.cancelled, report.killed) == (0, 1, 1)

        await until_no_tasks(observer)
    finally:
        release.touch()
        await manager.stop()


async def test_context_variables_reach_the_cluster_workers(cluster: Any) -> None:
    manager = dask_manager(cluster, context_vars=[f.request_id])
    await manager.start()
    try:
        async with await manager.acquire() as lease:
            assert await lease.run(f.read_request_id) == "<unset>"

            async def in_request(value: str) -> str:
                f.request_id.set(value)
                return await lease.run(f.read_request_id)

            seen = await asyncio.gather(*(in_request(f"r{i}") for i in range(8)))
            assert seen == [f"r{i}" for i in range(8)]
    finally:
        await manager.stop()


async def test_what_cannot_be_pickled_fails_alone(cluster: Any) -> None:
    manager = dask_manager(cluster)
    await manager.start()
    try:
        async with await manager.acquire() as lease:
            outcomes = await asyncio.gather(
                lease.run(f.add, 1, 1),
                lease.run(f.echo, threading.Lock()),
                lease.run(f.unpicklable_result),
                lease.run(f.add, 2, 2),
                return_exceptions=True,
            )
        assert outcomes[0] == 2 and outcomes[3] == 4
        assert isinstance(outcomes[1], TypeError), outcomes[1]
        assert "pickle" in str(outcomes[1])
        assert isinstance(outcomes[2], TypeError | RuntimeError), outcomes[2]
        assert "pickle" in str(outcomes[2])
    finally:
        await manager.stop()


async def test_a_killed_worker_fails_only_its_calls(
    cluster: Any, observer: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    manager = dask_manager(cluster, max_pools=2, workers_per_pool=1)
    await manager.start()
    release = tmp_path / "release"
    try:
        doomed = await manager.acquire()
        other = await manager.acquire()
        marker = tmp_path / "started"
        running = doomed.run(f.mark_then_wait, str(marker), str(release))
        await eventually(marker.exists, what="the call started")
        address, pid = marker.read_text().split()
        os.kill(int(pid), signal.SIGKILL)
        with pytest.raises(WorkerLostError) as raised:
            await asyncio.wait_for(running, 60)
        assert raised.value.worker == address
        assert address in str(raised.value)
        assert f"Dask worker lost worker={address} chunks_failed=1" in messages(
            caplog, logging.WARNING
        )
        assert manager.metrics().worker_crashes == 1

        await until_no_tasks(observer)
        # Not started again on the other worker (the at-most-once scheduler plugin).
        runs = await asyncio.to_thread(Path(f"{marker}.runs").read_text)
        assert runs.split() == [pid]
        # Nothing else is lost: both leases go on (the nanny restarts the worker).
        assert await asyncio.wait_for(other.run(f.add, 1, 2), 60) == 3
        assert await asyncio.wait_for(doomed.run(f.add, 2, 2), 60) == 4
        await doomed.release()
        await other.release()
        assert manager.stats()["leased"] == 0
    finally:
        release.touch()
        await manager.stop()


async def test_grinder_batches_run_on_the_cluster(cluster: Any) -> None:
    manager = dask_manager(cluster, max_pools=1)
    await manager.start()
    grinder = WorkGrinder(executor_manager=manager, batch_size_threshold=64, max_wait_seconds=0.01)
    await grinder.start()
    try:
        results = await asyncio.wait_for(
            asyncio.gather(*(grinder.submit(f.add, i, 1) for i in range(300))), 60
        )
        assert results == [i + 1 for i in range(300)]
        failed = await asyncio.gather(grinder.submit(f.fail, "x"), return_exceptions=True)
        assert isinstance(failed[0], f.CallError)
        metrics = grinder.metrics()
        assert metrics.items_finished == 300
        assert metrics.items_failed == 1
    finally:
        await grinder.stop()
        await manager.stop()


async def test_stop_closes_its_client_and_a_restart_reconnects(cluster: Any, observer: Any) -> None:
    manager = dask_manager(cluster, name_prefix="restartable")
    for _ in range(2):
        await manager.start()
        try:
            assert await manager.run(f.add, 1, 1) == 2
        finally:
            await manager.stop()
    with pytest.raises(LeasePoolNotStartedError):
        await manager.acquire()
    await until_no_client_of(observer, "restartable")


async def test_pools_follow_the_cluster_as_workers_join_and_leave(cluster: Any) -> None:
    manager: LeasedExecutorManager = dask_manager(
        cluster,
        max_pools=8,
        workers_per_pool=2,
        units_per_pool=2,
        size_provider=lambda: cluster_threads(manager),
    )
    assert cluster_threads(manager) == 0  # not connected yet
    await manager.start()
    try:
        assert cluster_threads(manager) == 4  # 2 workers x 2 threads
        assert manager.desired_executor_count() == 2

        async def desired(count: int) -> bool:
            return bool(manager.stats()["desired"] == count)

        # No check_interval passes here (120 s): the scheduler's add-worker and
        # remove-worker events wake the manager.
        await asyncio.to_thread(cluster.scale, 3)
        await until_async(lambda: desired(3))
        assert cluster_threads(manager) == 6
        async with await manager.acquire() as lease:
            assert await lease.run(f.add, 1, 1) == 2
            await asyncio.to_thread(cluster.scale, 2)  # retires a worker on purpose
            await until_async(lambda: desired(2))
            # A worker retired on purpose fails nothing.
            assert await lease.run(f.add, 2, 2) == 4
    finally:
        await asyncio.to_thread(cluster.scale, 2)
        await asyncio.to_thread(cluster.wait_for_workers, 2, 60)
        await manager.stop()


async def test_a_stop_while_connecting_fails_the_start(cluster: Any) -> None:
    manager = dask_manager(cluster)
    starting = asyncio.ensure_future(manager.start())
    await asyncio.sleep(0)  # start() began connecting
    await manager.stop()
    with pytest.raises(RuntimeError, match="stopped while it connected"):
        await starting
    with pytest.raises(LeasePoolNotStartedError):
        await manager.acquire()


async def test_calls_made_while_connecting_are_sent_once_connected(cluster: Any) -> None:
    manager = dask_manager(cluster)
    starting = asyncio.ensure_future(manager.start())
    await asyncio.sleep(0)  # started, still connecting
    starting.cancel()  # the caller stops waiting; the manager goes on connecting
    with pytest.raises(asyncio.CancelledError):
        await starting
    try:
        calls = [manager.run(f.add, i, 1) for i in range(5)]
        assert await asyncio.wait_for(asyncio.gather(*calls), 60) == [1, 2, 3, 4, 5]
    finally:
        await manager.stop()


def local_cluster(**kwargs: Any) -> Any:
    return distributed.LocalCluster(
        n_workers=1,
        threads_per_worker=1,
        host="127.0.0.1",
        dashboard_address="127.0.0.1:0",
        worker_dashboard_address=None,
        **kwargs,
    )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


async def test_a_lost_scheduler_fails_calls_and_a_new_one_is_reconnected(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="leasepool.manager")
    port = free_port()
    doomed = local_cluster(scheduler_port=port)
    manager = LeasedExecutorManager(
        backend="dask", dask_address=doomed.scheduler_address, max_pools=1
    )
    # The client gives a lost scheduler this long to come back.
    with dask.config.set({"distributed.comm.timeouts.connect": "2s"}):
        await manager.start()
    try:
        lease = await manager.acquire()
        assert await lease.run(f.add, 1, 1) == 2
        await asyncio.to_thread(doomed.close)
        # Refused at once while the client tries to reconnect, or failed when it gives up.
        with pytest.raises(ConnectionError, match="Dask scheduler"):
            await asyncio.wait_for(lease.run(f.add, 2, 2), 60)
        # The client gives up (after the 2 s connect timeout) ...
        connection = manager._dask_connection

        async def gave_up() -> bool:
            return bool(connection._client.status == "closed")

        await until_async(gave_up)
        # ... and a scheduler back at the address: the next call opens a new client.
        revived = await asyncio.to_thread(local_cluster, scheduler_port=port)
        try:

            async def back() -> bool:
                try:
                    return bool(await asyncio.wait_for(lease.run(f.add, 3, 3), 60) == 6)
                except ConnectionError:
                    return False

            await until_async(back, limit=60)
            assert await lease.run(f.add, 4, 4) == 8
            lost = [
                m for m in messages(caplog, logging.WARNING) if m.startswith("Lost the connection")
            ]
            assert len(lost) == 1, lost  # once per outage
            assert f"address={doomed.scheduler_address}" in lost[0]
            reconnected = [
                m for m in messages(caplog, logging.INFO) if m.startswith("Reconnected to Dask")
            ]
            assert reconnected == [
                f"Reconnected to Dask scheduler address={doomed.scheduler_address} threads=1"
            ]

        finally:
            await asyncio.wait_for(manager.stop(), 60)
            await asyncio.to_thread(revived.close)
    finally:
        await asyncio.to_thread(doomed.close)


async def test_a_start_overtaking_an_unfinished_stop_gets_a_working_connection(
    cluster: Any, observer: Any, tmp_path: Path
) -> None:
    manager = dask_manager(cluster, name_prefix="overtaken")
    await manager.start()
    release = tmp_path / "release"
    marker = tmp_path / "started"
    running = manager.run(f.mark_then_wait, str(marker), str(release))
    await eventually(marker.exists, what="the call started")
    stopping = asyncio.ensure_future(manager.stop())  # waits for the running call
    await asyncio.sleep(0)
    release.touch()
    await manager.start()  # before that stop() finished
    try:
        # Awaited directly: the call ends while stop() detaches the old loop bridge,
        # which once ran this Task's wake-up inside stop()'s own Task (asyncio refused
        # it and this await hung).
        assert await running == "released"
        await asyncio.wait_for(stopping, 60)
        assert await asyncio.wait_for(manager.run(f.add, 1, 1), 60) == 2
    finally:
        await manager.stop()

    await until_no_client_of(observer, "overtaken")


async def test_stop_and_restart_while_connecting(cluster: Any, observer: Any) -> None:
    manager = dask_manager(cluster, name_prefix="restarted-early")
    first = asyncio.ensure_future(manager.start())
    await asyncio.sleep(0)
    await manager.stop()
    await manager.start()
    try:
        with pytest.raises(RuntimeError, match="stopped while it connected"):
            await first
        assert await asyncio.wait_for(manager.run(f.add, 2, 3), 60) == 5
    finally:
        await manager.stop()

    await until_no_client_of(observer, "restarted-early")


async def test_a_first_connection_that_failed_is_retried_by_later_calls() -> None:
    port = free_port()
    manager = LeasedExecutorManager(
        backend="dask", dask_address=f"tcp://127.0.0.1:{port}", max_pools=1
    )
    with dask.config.set({"distributed.comm.timeouts.connect": "1s"}):
        starting = asyncio.ensure_future(manager.start())
        await asyncio.sleep(0)
        starting.cancel()  # the manager stays started, connecting
        with pytest.raises(asyncio.CancelledError):
            await starting
        try:
            with pytest.raises(ConnectionError):
                await asyncio.wait_for(manager.run(f.add, 1, 1), 60)
            late = await asyncio.to_thread(local_cluster, scheduler_port=port)
            try:

                async def connected() -> bool:
                    try:
                        return bool(await asyncio.wait_for(manager.run(f.add, 2, 2), 60) == 4)
                    except ConnectionError:
                        return False

                await until_async(connected, limit=60)
            finally:
                await asyncio.wait_for(manager.stop(), 60)
                await asyncio.to_thread(late.close)
        finally:
            await manager.stop()


async def test_classes_of_the_callers_main_travel_both_ways(cluster: Any) -> None:
    # A script's (or notebook's) own classes: pickled by value, as Dask does.
    namespace: dict[str, Any] = {}
    exec(  # noqa: S102 - defines classes whose module is __main__, as a script's are
        textwrap.dedent(
            """
            class Point:
                def __init__(self, x):
                    self.x = x

            class ScriptError(Exception):
                pass

            def make_point(x):
                return Point(x)

            def raise_script_error(text):
                raise ScriptError(text)
            """
        ),
        namespace,
    )
    for value in namespace.values():
        if isinstance(value, type) or callable(value):
            value.__module__ = "__main__"
    manager = dask_manager(cluster)
    await manager.start()
    try:
        point = await manager.run(namespace["make_point"], 7)
        assert type(point).__name__ == "Point" and point.x == 7
        with pytest.raises(Exception, match="from the script") as raised:
            await manager.run(namespace["raise_script_error"], "from the script")
        assert type(raised.value).__name__ == "ScriptError"
    finally:
        await manager.stop()


async def test_unreachable_cluster_fails_start() -> None:
    manager = LeasedExecutorManager(backend="dask", dask_address="tcp://127.0.0.1:1", max_pools=1)
    with dask.config.set({"distributed.comm.timeouts.connect": "1s"}), pytest.raises(OSError):
        await manager.start()
    # Not left half started.
    with pytest.raises(LeasePoolNotStartedError):
        await manager.acquire()
    await manager.stop()


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({}, ValueError, "exactly one of dask_client= or dask_address="),
        (
            {"dask_address": "tcp://127.0.0.1:1", "dask_client": object()},
            ValueError,
            "exactly one",
        ),
        ({"dask_client": object()}, TypeError, "dask_client must be a distributed.Client"),
        ({"dask_address": 8786}, TypeError, "dask_address must be a non-empty str"),
        ({"dask_address": ""}, TypeError, "dask_address must be a non-empty str"),
        (
            {"dask_address": "tcp://127.0.0.1:1", "initializer": print},
            TypeError,
            "unexpected keyword argument 'initializer'",
        ),
    ],
)
def test_arguments_are_checked_at_construction(
    kwargs: dict[str, Any], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        LeasedExecutorManager(backend="dask", max_pools=1, **kwargs)


def test_without_distributed_the_backend_names_the_extra() -> None:
    script = textwrap.dedent(
        """
        import sys
        sys.modules["distributed"] = None  # as if not installed
        from leasepool import LeasedExecutorManager, UnsupportedBackendError
        from leasepool.backends import resolve_executor_cls
        for attempt in (
            lambda: LeasedExecutorManager(backend="dask", max_pools=1, dask_address="x"),
            lambda: resolve_executor_cls("dask"),
        ):
            try:
                attempt()
            except UnsupportedBackendError as exc:
                print(exc)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    lines = done.stdout.splitlines()
    assert len(lines) == 2, done
    for line in lines:
        assert "leasepool[dask]" in line and "distributed" in line
