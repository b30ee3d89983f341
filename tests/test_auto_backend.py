"""``backend="auto"``: each pool has thread and process workers; the engine routes each
callable by what its calls cost (docs/offloading.md).

Which route a call took is observed through the pid it ran in. Moves by measurement
are driven by real CPU-bound and sleeping calls; they are asserted as "within N calls"
(the routing needs 4 agreeing samples; a preempted sample only delays it), never as a
time."""

from __future__ import annotations

import asyncio
import functools
import logging
import math
import os
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import _auto_funcs as f
import pytest
from _support import ThreadSignal, blocked_until

from leasepool import ExecutorBackend, LeasedExecutorManager, WorkGrinder
from leasepool.backends import build_executor, resolve_executor_cls
from leasepool.offload import cpu_bound, io_bound, route_hint

PARENT = os.getpid()
CPU_SECONDS = 0.02


@asynccontextmanager
async def auto_manager(**kwargs: Any) -> AsyncIterator[LeasedExecutorManager]:
    kwargs.setdefault("max_pools", 1)
    kwargs.setdefault("workers_per_pool", 2)
    manager = LeasedExecutorManager(backend="auto", **kwargs)
    await manager.start()
    try:
        yield manager
    finally:
        await manager.stop()


def routes(manager: LeasedExecutorManager) -> dict[str, dict[str, Any]]:
    return {entry["callable"]: entry for entry in manager.stats()["routing"]}


async def test_a_cpu_bound_callable_moves_to_processes_and_back_when_it_waits() -> None:
    async with auto_manager() as manager, await manager.acquire() as lease:
        pids = [await lease.run(f.work, "cpu", CPU_SECONDS) for _ in range(40)]
        assert pids[0] == PARENT, "a new callable starts on threads"
        moved = pids.index(next(p for p in pids if p != PARENT))
        assert 4 <= moved < 40
        assert all(p != PARENT for p in pids[moved:]), "no flapping back while it computes"
        entry = routes(manager)["_auto_funcs.work"]
        assert (entry["route"], entry["reason"]) == ("process", "measured")
        # The same callable now sleeps: on a process its CPU share is ~0, and it comes
        # back to threads.
        pids = [await lease.run(f.work, "io", 0.005) for _ in range(20)]
        assert pids[-1] == PARENT
        assert routes(manager)["_auto_funcs.work"]["route"] == "thread"
        assert manager.metrics().route_changes == 2


async def test_blocking_io_stays_on_threads() -> None:
    async with auto_manager() as manager, await manager.acquire() as lease:
        for _ in range(30):
            assert await lease.run(f.work, "io", 0.002) == PARENT
        entry = routes(manager)["_auto_funcs.work"]
        assert (entry["route"], entry["reason"], entry["samples"]) == ("thread", "default", 30)
        assert entry["last_cpu_share"] < 0.5
        assert manager.metrics().calls_offloaded == 0


async def test_hints_fix_the_route_from_the_first_call(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="leasepool.manager")
    async with auto_manager() as manager, await manager.acquire() as lease:
        assert await lease.run(f.cpu_where) != PARENT
        assert await lease.run(f.io_where) == PARENT
        for _ in range(6):  # sleeping on a process does not move a hinted callable
            assert await lease.run(f.cpu_where) != PARENT
        table = routes(manager)
        assert table["_auto_funcs.cpu_where"]["reason"] == "hint"
        assert table["_auto_funcs.io_where"]["route"] == "thread"
        assert manager.metrics().calls_offloaded == 7
        assert manager.metrics().route_changes == 0
    assert route_hint(f.cpu_where) == "cpu" and route_hint(f.where) is None


async def test_an_unpicklable_callable_stays_on_threads_and_says_so_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="leasepool.manager")
    local = cpu_bound(lambda: os.getpid())  # a lambda in a function: not picklable
    async with auto_manager() as manager, await manager.acquire() as lease:
        assert [await lease.run(local) for _ in range(3)] == [PARENT] * 3
        warnings = [
            r for r in caplog.records if r.getMessage().startswith("Callable cannot be pickled")
        ]
        assert len(warnings) == 1
        assert warnings[0].levelno == logging.WARNING and warnings[0].exc_info is not None
        entry = next(e for e in manager.stats()["routing"] if "lambda" in e["callable"])
        assert (entry["route"], entry["reason"]) == ("thread", "unpicklable")
        assert manager.metrics().route_changes == 1


async def test_unpicklable_arguments_move_only_that_call(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="leasepool.manager")
    async with auto_manager() as manager, await manager.acquire() as lease:
        assert await lease.run(f.cpu_where, threading.Lock()) == PARENT
        assert await lease.run(f.cpu_where, 1) != PARENT
        assert routes(manager)["_auto_funcs.cpu_where"]["route"] == "process"
        assert any(r.getMessage().startswith("Arguments cannot be pickled") for r in caplog.records)
        assert not any(r.levelno >= logging.WARNING for r in caplog.records)


def tripler(n: int) -> Callable[[], int]:
    return lambda: n * 3


async def test_callables_of_every_shape_are_routed_and_named() -> None:
    counter = f.Counter()
    async with auto_manager() as manager, await manager.acquire() as lease:
        assert await lease.run(counter, 1) == 2
        assert await lease.run(counter.method, 2) == 4
        assert await lease.run(functools.partial(f.spin, 10)) == f.spin(10)
        assert await lease.run(math.factorial, 5) == 120
        assert await lease.run(cpu_bound(math.factorial), 6) == 720
        for n in range(3):
            assert await lease.run(tripler(n)) == n * 3
        table = routes(manager)
        assert {"_auto_funcs.Counter.method", "_auto_funcs.spin", "math.factorial"} <= set(table)
        # Three lambdas made in a loop share their code: one callable.
        assert sum("<lambda>" in name for name in table) == 1
        assert table["_auto_funcs.spin"]["samples"] == 1


async def test_every_way_of_submitting_is_routed() -> None:
    async with auto_manager(workers_per_pool=2) as manager:
        assert await manager.run(f.cpu_where) != PARENT
        assert await manager.run(f.where) == PARENT
        async with await manager.acquire() as lease:
            future = lease.executor.submit(f.cpu_where)
            assert await asyncio.wrap_future(future) != PARENT
            assert await asyncio.wrap_future(lease.executor.submit(f.where)) == PARENT
        grinder = WorkGrinder(
            executor_manager=manager, batch_size_threshold=8, max_wait_seconds=0.01
        )
        await grinder.start()
        try:
            results = await asyncio.gather(
                *(grinder.submit(f.cpu_where) for _ in range(8)),
                *(grinder.submit(f.where) for _ in range(8)),
            )
        finally:
            await grinder.stop()
        assert all(pid != PARENT for pid in results[:8])
        assert results[8:] == [PARENT] * 8


async def test_failures_come_back_from_either_half() -> None:
    async with auto_manager() as manager, await manager.acquire() as lease:
        with pytest.raises(ValueError, match="from the worker process"):
            await lease.run(f.cpu_fail)
        with pytest.raises(ZeroDivisionError):
            await lease.run(divmod, 1, 0)
        metrics = manager.metrics()
        assert metrics.calls_failed == 2
        assert metrics.calls_started == metrics.calls_finished + metrics.calls_failed


async def test_worker_processes_run_at_a_lower_priority_by_default() -> None:
    base = os.nice(0)
    async with auto_manager() as manager, await manager.acquire() as lease:
        assert await lease.run(f.cpu_niceness) == min(19, base + 10)
    async with auto_manager(worker_nice=0) as manager, await manager.acquire() as lease:
        assert await lease.run(f.cpu_niceness) == base
    manager = LeasedExecutorManager(
        backend="process", max_pools=1, workers_per_pool=1, worker_nice=3
    )
    await manager.start()
    try:
        assert await manager.run(f.cpu_niceness) == min(19, base + 3)
    finally:
        await manager.stop()


async def test_worker_logs_are_forwarded(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="leasepool.tests.auto")
    async with auto_manager(forward_process_logs=True) as manager:
        pid = await manager.run(f.cpu_log, "hello from a worker")
    assert pid != PARENT
    assert any(r.getMessage() == "hello from a worker" for r in caplog.records)


async def test_stop_lets_running_calls_of_both_halves_finish() -> None:
    manager = LeasedExecutorManager(backend="auto", max_pools=1, workers_per_pool=2)
    await manager.start()
    lease = await manager.acquire()
    assert await lease.run(f.cpu_where) != PARENT  # the process half is up
    gate, started = threading.Event(), ThreadSignal()
    on_thread = asyncio.ensure_future(lease.run(blocked_until(gate, started)))
    on_process = asyncio.ensure_future(lease.run(f.work_hinted, 0.2))
    await started.wait()
    await lease.release()
    stopper = asyncio.ensure_future(manager.stop())
    gate.set()
    assert await on_thread == "finished"
    # The process call finished, or was cancelled if stop() came before it started.
    outcome = await asyncio.gather(on_process, return_exceptions=True)
    assert outcome[0] != PARENT
    await stopper
    assert manager.total_count == 0


async def test_a_drain_counts_the_calls_of_both_halves() -> None:
    manager = LeasedExecutorManager(backend="auto", max_pools=1, workers_per_pool=2)
    await manager.start()
    lease = await manager.acquire()
    calls = [
        asyncio.ensure_future(lease.run(f.cpu_where)),
        asyncio.ensure_future(lease.run(f.work, "io", 0.02)),
    ]
    await asyncio.sleep(0)
    await lease.release()
    report = await manager.drain(60)
    assert (report.finished, report.cancelled, report.killed) == (2, 0, 0)
    assert not report.timed_out
    await asyncio.gather(*calls)


def test_arguments_are_checked() -> None:
    with pytest.raises(TypeError, match="backend='auto' takes only initializer, initargs"):
        LeasedExecutorManager(backend="auto", max_pools=1, max_tasks_per_child=3)
    assert ExecutorBackend("auto") is ExecutorBackend.AUTO
    with pytest.raises(ValueError, match="the auto backend is no single executor class"):
        resolve_executor_cls("auto")
    with pytest.raises(ValueError, match="the auto backend is no single executor class"):
        build_executor(
            backend="auto", max_workers=1, name_prefix="x", executor_seq=1, executor_kwargs={}
        )
    with pytest.raises(TypeError, match="expected a callable"):
        cpu_bound(3)  # type: ignore[type-var]
    assert io_bound(f.where) is f.where


@pytest.mark.parametrize(
    ("value", "error", "message"),
    [
        (-1, ValueError, "between 0 and 19"),
        (20, ValueError, "between 0 and 19"),
        ("5", TypeError, "must be an int"),
        (True, TypeError, "must be an int"),
    ],
)
async def test_worker_nice_is_checked_at_start(
    value: object, error: type[Exception], message: str
) -> None:
    manager = LeasedExecutorManager(backend="auto", max_pools=1, worker_nice=value)
    with pytest.raises(error, match=message):
        await manager.start()


async def test_an_initializer_runs_in_threads_and_processes() -> None:
    async with auto_manager(initializer=f.spin, initargs=(10,)) as manager:
        assert await manager.run(f.cpu_where) != PARENT
        assert await manager.run(f.where) == PARENT


async def test_worker_processes_are_never_forked_from_the_threads_process() -> None:
    # A thread of the pool holds a lock while the first worker process starts: a forked
    # worker would inherit it held and never return (the process half uses forkserver).
    async with auto_manager(workers_per_pool=2) as manager, await manager.acquire() as lease:
        release, holding = threading.Event(), ThreadSignal()
        holder = asyncio.ensure_future(lease.run(f.hold_shared_lock, release, holding.fire))
        await holding.wait()
        try:
            assert await asyncio.wait_for(lease.run(f.take_shared_lock), 60) != PARENT
        finally:
            release.set()
        assert await holder is True


async def test_calls_sleeping_beside_a_call_do_not_make_it_look_busy() -> None:
    async with auto_manager(workers_per_pool=10) as manager, await manager.acquire() as lease:
        sleepers = [asyncio.ensure_future(lease.run(f.work, "io", 1.0)) for _ in range(8)]
        pids = [await lease.run(f.mostly_sleeping, 0.004, 0.016) for _ in range(16)]
        await asyncio.gather(*sleepers)
        assert pids == [PARENT] * 16
        assert routes(manager)["_auto_funcs.mostly_sleeping"]["route"] == "thread"


async def test_wrappers_do_not_poison_or_hide_what_they_wrap(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="leasepool.manager")
    async with auto_manager() as manager, await manager.acquire() as lease:
        # A partial and an instance that cannot be pickled: only those calls move.
        assert await lease.run(functools.partial(f.pid_of, threading.Lock())) == PARENT
        assert await lease.run(f.pid_of, 1) != PARENT
        # An instance is its class's __call__ (a hint is read the first time).
        assert await lease.run(cpu_bound(f.WithLock())) != PARENT
        assert await lease.run(f.WithLock(threading.Lock())) == PARENT
        assert await lease.run(f.WithLock()) != PARENT
        # A hint on a partial is read.
        assert await lease.run(cpu_bound(functools.partial(f.where))) != PARENT
        table = routes(manager)
        assert all(entry["reason"] != "unpicklable" for entry in table.values())
        assert all(len(name) <= 200 for name in table)
        assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


async def test_calls_offloaded_counts_calls_that_ran_in_processes() -> None:
    async with auto_manager() as manager, await manager.acquire() as lease:
        assert await lease.run(f.pid_of, threading.Lock()) == PARENT  # rerouted
        for _ in range(3):
            assert await lease.run(f.pid_of) != PARENT
        assert manager.metrics().calls_offloaded == 3
        assert routes(manager)["_auto_funcs.pid_of"]["offloaded"] == 3


async def test_a_requeued_call_that_no_longer_pickles_fails_instead_of_hanging() -> None:
    f.PicklesOnce.pickled = 0
    async with auto_manager(workers_per_pool=1) as manager, await manager.acquire() as lease:
        for _ in range(50):  # measured fast: later calls travel in chunks
            await lease.run(f.cpu_step, 0)
        executor = lease.executor
        futures = [
            executor.submit(f.cpu_step, "slow"),
            executor.submit(f.cpu_step, f.PicklesOnce()),
        ]
        futures += [executor.submit(f.cpu_step, i) for i in range(3)]
        done, pending = await asyncio.wait([asyncio.wrap_future(x) for x in futures], timeout=60)
        assert not pending
        metrics = manager.metrics()
        assert metrics.calls_started == metrics.calls_finished + metrics.calls_failed
