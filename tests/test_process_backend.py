"""Process backend: results, executor kwargs, picklability, parallelism, cancellation."""

from __future__ import annotations

import asyncio
import concurrent.futures
import multiprocessing
import os
import pickle
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import _proc_funcs as f
import pytest

from leasepool import LeasedExecutorManager, LeaseExpiredError


@asynccontextmanager
async def process_manager(**kwargs: Any) -> AsyncIterator[LeasedExecutorManager]:
    kwargs.setdefault("max_pools", 1)
    kwargs.setdefault("workers_per_pool", 2)
    manager = LeasedExecutorManager(backend="process", **kwargs)
    await manager.start()
    try:
        yield manager
    finally:
        await manager.stop()


def test_run_submit_and_run_in_executor_return_results() -> None:
    async def main() -> None:
        async with process_manager() as manager, await manager.acquire() as lease:
            assert await lease.run(f.add, 2, 3) == 5
            assert await lease.run(f.echo, 1, key="v") == ((1,), {"key": "v"})
            future = lease.executor.submit(f.add, 4, 5)
            assert isinstance(future, concurrent.futures.Future)
            assert await asyncio.wrap_future(future) == 9
            loop = asyncio.get_running_loop()
            assert await loop.run_in_executor(lease.executor, f.add, 6, 7) == 13
            assert list(lease.executor.map(f.add, [1, 2], [10, 20])) == [11, 22]
            assert await lease.run(f.getpid) != os.getpid()

    asyncio.run(main())


def test_many_gathered_calls_keep_their_order_and_values() -> None:
    async def main() -> None:
        async with process_manager() as manager, await manager.acquire() as lease:
            results = await asyncio.gather(*(lease.run(f.add, i, i) for i in range(3000)))
            assert results == [2 * i for i in range(3000)]

    asyncio.run(main())


def test_exceptions_are_per_call_and_carry_the_remote_traceback() -> None:
    async def main() -> None:
        async with process_manager() as manager, await manager.acquire() as lease:
            calls = [
                lease.run(f.fail, "bad") if i % 3 == 0 else lease.run(f.add, i, 0)
                for i in range(30)
            ]
            results = await asyncio.gather(*calls, return_exceptions=True)
            for i, result in enumerate(results):
                if i % 3 == 0:
                    assert isinstance(result, ValueError) and str(result) == "bad"
                    cause = result.__cause__
                    assert type(cause).__name__ == "_RemoteTraceback"
                    assert "in fail" in str(cause)
                else:
                    assert result == i

    asyncio.run(main())


def test_unpicklable_calls_fail_only_their_own_await() -> None:
    async def main() -> None:
        async with process_manager() as manager, await manager.acquire() as lease:
            ok_before = lease.run(f.add, 1, 1)
            bad_fn = lease.run(lambda: 1)
            bad_arg = lease.run(f.echo, lambda: 2)
            bad_result = lease.run(f.return_unpicklable)
            bad_exception = lease.run(f.raise_needs_two_args)
            ok_after = lease.run(f.add, 2, 2)
            results = await asyncio.gather(
                ok_before,
                bad_fn,
                bad_arg,
                bad_result,
                bad_exception,
                ok_after,
                return_exceptions=True,
            )
            assert results[0] == 2 and results[5] == 4
            assert isinstance(results[1], (pickle.PicklingError, AttributeError))
            assert isinstance(results[2], (pickle.PicklingError, AttributeError))
            assert isinstance(results[3], TypeError)  # cannot pickle '_thread.lock'
            assert isinstance(results[4], TypeError)  # NeedsTwoArgs cannot be rebuilt
            future = lease.executor.submit(lambda: 3)
            with pytest.raises((pickle.PicklingError, AttributeError)):
                await asyncio.wrap_future(future)
            # The pool is unharmed.
            assert await lease.run(f.add, 20, 22) == 42

    asyncio.run(main())


def test_initializer_and_initargs_run_in_every_worker() -> None:
    async def main() -> None:
        async with (
            process_manager(initializer=f.remember, initargs=("a", 1)) as manager,
            await manager.acquire() as lease,
        ):
            seen = await asyncio.gather(*(lease.run(f.initialized) for _ in range(20)))
            assert set(seen) == {("a", 1)}

    asyncio.run(main())


def test_mp_context_is_used() -> None:
    async def main() -> None:
        async with (
            process_manager(
                mp_context=multiprocessing.get_context("spawn"), workers_per_pool=1
            ) as manager,
            await manager.acquire() as lease,
        ):
            assert await lease.run(f.process_kind) == "SpawnProcess"

    asyncio.run(main())


def test_a_forked_worker_does_not_inherit_the_parents_executors() -> None:
    """A worker forked from the parent leaves the parent's executors out of its
    exit-time wakeups: a wakeup lock another parent thread held at the fork would hang
    it at exit forever (CPython 3.13 takes that lock in ``_python_exit``)."""

    async def main() -> None:
        async with (
            process_manager(mp_context=multiprocessing.get_context("fork"), max_pools=2) as manager,
            await manager.acquire() as first,
            await manager.acquire() as second,
        ):
            # Two executors live in the parent; each worker forked from it sees none.
            assert await first.run(f.getpid) != os.getpid()
            assert await second.run(f.inherited_executor_wakeups) == 0
            assert await first.run(f.inherited_executor_wakeups) == 0

    asyncio.run(main())


def test_max_tasks_per_child_counts_calls_not_chunks() -> None:
    async def main() -> None:
        async with (
            process_manager(max_tasks_per_child=1, workers_per_pool=1) as manager,
            await manager.acquire() as lease,
        ):
            pids = await asyncio.gather(*(lease.run(f.getpid) for _ in range(4)))
            assert len(set(pids)) == 4, "every call in a fresh worker"
            assert await lease.run(f.process_kind) == "SpawnProcess"

    asyncio.run(main())


def test_bad_executor_kwargs_raise_at_start_like_the_executor() -> None:
    async def main() -> None:
        manager = LeasedExecutorManager(backend="process", max_pools=1, no_such_option=1)
        with pytest.raises(TypeError, match="no_such_option"):
            await manager.start()
        manager = LeasedExecutorManager(backend="process", max_pools=1, max_tasks_per_child=0)
        with pytest.raises(ValueError, match="max_tasks_per_child"):
            await manager.start()

    asyncio.run(main())


@pytest.mark.parametrize("workers", [2, 3])
def test_calls_run_in_parallel_on_distinct_workers(workers: int) -> None:
    """``workers`` calls that each wait for all the others at a barrier can only all
    return if they run at the same time, each in its own worker process. (A pool that
    ran them one after another would fail them with BrokenBarrierError, not hang.)"""
    # The barrier lives in a manager process; its proxy pickles, so this works with
    # any start method of the workers. The manager itself is spawned: no fork of a
    # process that has engine threads.
    with multiprocessing.get_context("spawn").Manager() as sync:
        barrier = sync.Barrier(workers)

        async def main() -> list[int]:
            async with (
                process_manager(workers_per_pool=workers) as manager,
                await manager.acquire() as lease,
            ):
                return await asyncio.gather(
                    *(lease.run(f.rendezvous, barrier, 60.0) for _ in range(workers))
                )

        pids = asyncio.run(main())
    assert len(set(pids)) == workers, pids
    assert os.getpid() not in pids


def test_cancelled_queued_call_never_runs(tmp_path: Any) -> None:
    marker = tmp_path / "ran"

    async def main() -> None:
        async with process_manager(workers_per_pool=1) as manager, await manager.acquire() as lease:
            # One worker, two chunks in flight: the third call waits in the pool.
            busy = [lease.run(f.sleep_then, 0.3) for _ in range(2)]
            queued = lease.run(f.touch_after, 0, str(marker))
            queued.cancel()
            await asyncio.gather(*busy)
            assert await lease.run(f.add, 1, 1) == 2
            with pytest.raises(asyncio.CancelledError):
                await queued

    asyncio.run(main())
    assert not marker.exists()


def test_submit_after_release_is_refused() -> None:
    async def main() -> None:
        async with process_manager() as manager:
            lease = await manager.acquire()
            executor = lease.executor
            await lease.release()
            with pytest.raises(LeaseExpiredError):
                executor.submit(f.add, 1, 2)
            with pytest.raises(LeaseExpiredError):
                await lease.run(f.add, 1, 2)

    asyncio.run(main())


def test_released_pool_is_reused_with_its_workers() -> None:
    async def main() -> None:
        async with process_manager(workers_per_pool=1) as manager:
            async with await manager.acquire() as lease:
                first = await lease.run(f.getpid)
            async with await manager.acquire() as lease:
                assert await lease.run(f.getpid) == first
            assert manager.stats()["workers_per_pool"] == 1

    asyncio.run(main())


def test_running_calls_finish_when_the_manager_stops() -> None:
    async def main() -> None:
        with multiprocessing.get_context("spawn").Manager() as sync:
            started, release = sync.Event(), sync.Event()
            manager = LeasedExecutorManager(backend="process", max_pools=1, workers_per_pool=1)
            await manager.start()
            lease = await manager.acquire()
            running = lease.run(f.started_then_wait, started, release, "done")
            queued = lease.run(f.getpid)  # never starts: the only worker is busy
            assert await asyncio.to_thread(started.wait, 60)
            stopping = asyncio.ensure_future(manager.stop())
            await asyncio.sleep(0)  # let stop() begin; it must wait for the running call
            assert not stopping.done()
            release.set()
            await stopping
            assert await running == "done"
            # Queued (here or already inside the executor) but never started: cancelled.
            with pytest.raises(asyncio.CancelledError):
                await queued

    asyncio.run(main())
