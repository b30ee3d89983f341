"""WorkGrinder.submit() and enqueue(): results, errors, arguments and composition."""

from __future__ import annotations

import asyncio
import traceback

import pytest
from _grinder_funcs import ItemError, echo, fail_if_odd, grinder_env, keyword_fn


async def test_submit_returns_result_with_args_and_kwargs() -> None:
    async with grinder_env(max_wait_seconds=0.02, batch_size_threshold=1) as (_, grinder):
        assert await grinder.submit(divmod, 17, 5) == (3, 2)
        assert await grinder.submit(int, "ff", base=16) == 255
        assert await grinder.submit(echo, 1, 2, key="v") == ((1, 2), {"key": "v"})
        assert await grinder.submit(echo) == ((), {})


async def test_owner_is_not_passed_to_the_function() -> None:
    async with grinder_env(max_wait_seconds=0.02, batch_size_threshold=1) as (_, grinder):
        assert await grinder.submit(echo, 5, owner="item-1") == ((5,), {})
        future = await grinder.enqueue(echo, owner="item-2", extra=1)
        assert await future == ((), {"extra": 1})


async def test_fn_is_positional_only() -> None:
    """A keyword literally named ``fn`` goes to the function, not to submit()."""
    async with grinder_env(max_wait_seconds=0.02, batch_size_threshold=1) as (_, grinder):
        assert await grinder.submit(keyword_fn, fn="x") == "fn=x owner_seen=False"
        future = await grinder.enqueue(keyword_fn, fn="y", owner_seen=True)
        assert await future == "fn=y owner_seen=True"


async def test_submit_raises_the_function_exception() -> None:
    async with grinder_env(max_wait_seconds=0.02, batch_size_threshold=1) as (_, grinder):
        with pytest.raises(ItemError, match="^odd 3$") as info:
            await grinder.submit(fail_if_odd, 3)
        frames = [frame.name for frame in traceback.extract_tb(info.value.__traceback__)]
        assert "fail_if_odd" in frames
        assert await grinder.submit(fail_if_odd, 4) == 40


async def test_enqueue_gives_an_asyncio_future_at_once() -> None:
    """Awaiting enqueue() returns once the item is queued, before the function runs."""
    ran: list[int] = []
    async with grinder_env(max_wait_seconds=30.0, batch_size_threshold=3) as (_, grinder):
        first = await asyncio.wait_for(grinder.enqueue(ran.append, 1), 1)
        assert isinstance(first, asyncio.Future)
        assert not first.done()
        assert ran == []
        second = await grinder.enqueue(ran.append, 2)
        third = await grinder.enqueue(len, "abc")
        assert list(await asyncio.wait_for(asyncio.gather(first, second, third), 3)) == [
            None,
            None,
            3,
        ]
        assert ran == [1, 2]


async def test_enqueue_future_carries_the_exception() -> None:
    async with grinder_env(max_wait_seconds=0.02, batch_size_threshold=2) as (_, grinder):
        bad = await grinder.enqueue(fail_if_odd, 1)
        good = await grinder.enqueue(fail_if_odd, 2)
        with pytest.raises(ItemError, match="^odd 1$"):
            await bad
        assert isinstance(bad.exception(), ItemError)
        assert await good == 20


async def test_enqueue_future_belongs_to_the_running_loop() -> None:
    async with grinder_env(max_wait_seconds=0.02, batch_size_threshold=1) as (_, grinder):
        future = await grinder.enqueue(abs, -2)
        assert future.get_loop() is asyncio.get_running_loop()
        assert await future == 2


async def test_submit_under_gather_keeps_order() -> None:
    async with grinder_env(
        {"workers_per_pool": 4}, max_wait_seconds=0.02, batch_size_threshold=8
    ) as (_, grinder):
        results = await asyncio.gather(*(grinder.submit(pow, i, 2) for i in range(50)))
        assert results == [i * i for i in range(50)]


async def test_submit_with_create_task_and_wait_for() -> None:
    async with grinder_env(max_wait_seconds=0.02, batch_size_threshold=1) as (_, grinder):
        task = asyncio.create_task(grinder.submit(str.upper, "abc"))
        assert await task == "ABC"
        assert await asyncio.wait_for(grinder.submit(len, "abcd"), 3) == 4
        assert await asyncio.ensure_future(grinder.submit(abs, -9)) == 9


async def test_submit_under_task_group() -> None:
    async with grinder_env(max_wait_seconds=0.02, batch_size_threshold=5) as (_, grinder):
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(grinder.submit(hex, i)) for i in range(10)]
        assert [t.result() for t in tasks] == [hex(i) for i in range(10)]


async def test_task_group_sees_item_failure() -> None:
    async with grinder_env(max_wait_seconds=0.02, batch_size_threshold=2) as (_, grinder):
        with pytest.raises(ExceptionGroup) as info:
            async with asyncio.TaskGroup() as group:
                group.create_task(grinder.submit(fail_if_odd, 2))
                group.create_task(grinder.submit(fail_if_odd, 3))
        assert info.group_contains(ItemError, match="^odd 3$")


async def test_base_exception_subclass_reaches_submitter() -> None:
    """A non-Exception error from the function is delivered like any other."""

    class Abort(BaseException):
        pass

    def abort() -> None:
        raise Abort("stop")

    async with grinder_env(max_wait_seconds=0.02, batch_size_threshold=2) as (_, grinder):
        outcomes = await asyncio.gather(
            grinder.submit(abort), grinder.submit(abs, -1), return_exceptions=True
        )
        assert isinstance(outcomes[0], Abort)
        assert outcomes[1] == 1
        assert await grinder.submit(abs, -5) == 5


async def test_submit_with_create_task_asyncio_wait_and_as_completed() -> None:
    """asyncio.wait() takes tasks (README: wrap submit() with create_task for it);
    as_completed() takes the awaitables directly."""
    async with grinder_env(max_wait_seconds=0.02, batch_size_threshold=2) as (_, grinder):
        first = asyncio.create_task(grinder.submit(abs, -1))
        second = asyncio.create_task(grinder.submit(abs, -2))
        done, pending = await asyncio.wait({first, second}, timeout=3)
        assert (len(done), pending) == (2, set())
        assert sorted([first.result(), second.result()]) == [1, 2]
        results = [
            await next_done
            for next_done in asyncio.as_completed(
                [grinder.submit(abs, -i) for i in range(3)], timeout=3
            )
        ]
        assert sorted(results) == [0, 1, 2]
