"""WorkGrinder.submit_from_thread(): concurrent futures from any thread, never hanging."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading

import pytest
from _grinder_funcs import ItemError, add, echo, fail_if_odd, grinder_env, unique_prefix

from leasepool import LeasedExecutorManager, WorkGrinder


async def test_from_a_plain_thread() -> None:
    async with grinder_env(max_wait_seconds=0.02, batch_size_threshold=4) as (_, grinder):

        def caller() -> list[object]:
            futures = [grinder.submit_from_thread(pow, i, 2) for i in range(10)]
            assert all(isinstance(f, concurrent.futures.Future) for f in futures)
            return [f.result(timeout=3) for f in futures]

        assert await asyncio.to_thread(caller) == [i * i for i in range(10)]


async def test_args_kwargs_owner_and_exceptions() -> None:
    async with grinder_env(max_wait_seconds=0.02, batch_size_threshold=3) as (_, grinder):

        def caller() -> None:
            echoed = grinder.submit_from_thread(echo, 1, owner="o", key=2)
            bad = grinder.submit_from_thread(fail_if_odd, 7)
            good = grinder.submit_from_thread(fail_if_odd, 8)
            assert echoed.result(timeout=3) == ((1,), {"key": 2})
            with pytest.raises(ItemError, match="^odd 7$"):
                bad.result(timeout=3)
            assert good.result(timeout=3) == 80

        await asyncio.to_thread(caller)


async def test_from_worker_threads_of_another_executor() -> None:
    async with grinder_env(max_wait_seconds=0.02, batch_size_threshold=5) as (_, grinder):
        loop = asyncio.get_running_loop()

        def worker(i: int) -> tuple[tuple[int, int], str]:
            return grinder.submit_from_thread(divmod, i, 7).result(timeout=3), (
                threading.current_thread().name
            )

        with concurrent.futures.ThreadPoolExecutor(4, thread_name_prefix="other") as pool:
            results = await asyncio.gather(
                *(loop.run_in_executor(pool, worker, i) for i in range(20))
            )
        assert [r for r, _ in results] == [divmod(i, 7) for i in range(20)]
        assert all(name.startswith("other") for _, name in results)


async def test_from_the_loop_thread_itself_is_refused() -> None:
    """As in 0.1.3: on the owning loop's thread the thread APIs would block the loop they
    wait for, so they raise at once and queue nothing."""
    async with grinder_env(max_wait_seconds=0.02, batch_size_threshold=1) as (_, grinder):
        with pytest.raises(RuntimeError) as info:
            grinder.submit_from_thread(sum, [1, 2, 3])
        assert str(info.value) == (
            "WorkGrinder.submit_from_thread() cannot be called from the owning "
            "event-loop thread; use the async API instead."
        )
        with pytest.raises(RuntimeError, match=r"^WorkGrinder.stats_from_thread\(\) cannot"):
            grinder.stats_from_thread()
        assert grinder.stats()["pending"] == 0
        # From another thread both work.
        future = await asyncio.to_thread(grinder.submit_from_thread, sum, [1, 2, 3])
        assert await asyncio.wait_for(asyncio.wrap_future(future), 3) == 6
        assert (await asyncio.to_thread(grinder.stats_from_thread))["started"] is True


async def test_after_stop_returns_an_already_failed_future() -> None:
    async with grinder_env(max_wait_seconds=0.02, batch_size_threshold=1) as (_, grinder):
        await grinder.stop()
        future = await asyncio.to_thread(grinder.submit_from_thread, abs, -1)
        with pytest.raises(RuntimeError, match="not started"):
            await asyncio.wait_for(asyncio.wrap_future(future), 3)


@pytest.mark.beyond_reference
async def test_after_stop_the_future_is_failed_immediately() -> None:
    """No loop round trip: the returned future is already done."""
    async with grinder_env(max_wait_seconds=0.02, batch_size_threshold=1) as (_, grinder):
        await grinder.stop()
        future = grinder.submit_from_thread(abs, -1)
        assert future.done()
        assert isinstance(future.exception(), RuntimeError)


@pytest.mark.beyond_reference
@pytest.mark.parametrize("stop_first", [True, False], ids=["stopped", "never-stopped"])
def test_after_loop_closed_returns_a_failed_future(stop_first: bool) -> None:
    """Once the grinder's loop is closed, submit_from_thread fails fast instead of
    hanging (0.1.1 raised "Event loop is closed" or left the future pending)."""
    grinder_box: list[WorkGrinder] = []

    async def main() -> None:
        manager = LeasedExecutorManager(max_pools=1, name_prefix=unique_prefix())
        await manager.start()
        try:
            grinder = WorkGrinder(
                executor_manager=manager, max_wait_seconds=0.02, batch_size_threshold=1
            )
            await grinder.start()
            assert await grinder.submit(abs, -3) == 3
            grinder_box.append(grinder)
            if stop_first:
                await grinder.stop()
        finally:
            await manager.stop()

    asyncio.run(main())
    (grinder,) = grinder_box

    def caller() -> concurrent.futures.Future[int]:
        return grinder.submit_from_thread(abs, -1)

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        future = pool.submit(caller).result(timeout=3)
    assert future.done()
    with pytest.raises(RuntimeError):
        future.result(timeout=0)


async def test_many_threads_each_get_their_own_results() -> None:
    async with grinder_env(
        {"max_pools": 2, "workers_per_pool": 2}, max_wait_seconds=0.01, batch_size_threshold=8
    ) as (_, grinder):

        def caller(base: int) -> list[int]:
            futures = [grinder.submit_from_thread(add, base, i) for i in range(50)]
            return [f.result(timeout=3) for f in futures]

        results = await asyncio.gather(*(asyncio.to_thread(caller, b * 1000) for b in range(4)))
        assert results == [[b * 1000 + i for i in range(50)] for b in range(4)]


async def test_cancelled_thread_future_never_runs() -> None:
    ran: list[str] = []
    async with grinder_env(max_wait_seconds=30.0, batch_size_threshold=3) as (_, grinder):

        def caller() -> list[object]:
            dropped = grinder.submit_from_thread(ran.append, "dropped")
            kept = grinder.submit_from_thread(ran.append, "kept")
            assert dropped.cancel()
            # The cancelled item left the queue at once: two more fill the batch of 3.
            assert grinder.stats()["pending"] == 1
            last = grinder.submit_from_thread(ran.append, "last")
            extra = grinder.submit_from_thread(ran.append, "extra")
            return [
                dropped.cancelled(),
                kept.result(timeout=30),
                last.result(timeout=30),
                extra.result(timeout=30),
            ]

        assert await asyncio.to_thread(caller) == [True, None, None, None]
    assert sorted(ran) == ["extra", "kept", "last"]
