"""``WorkGrinder.metrics()``: counters, gauges and histograms of items and batches.

Batches are formed by the threshold (``max_wait_seconds`` out of reach), so which items
share a batch is deterministic; a batch's last item releases its lease and reports the
batch's end before its own submitter resumes, so once every item of a batch has been
awaited the batch counts as completed. Time is moved with the engine's clock seam,
never slept.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

import _grinder_funcs as f
from _grinder_funcs import LoopSignal, blocker, grinder_env, until

from leasepool import LeasedExecutorManager, LeasePoolNotStartedError, WorkGrinder
from leasepool.metrics import GrinderMetrics, HistogramSnapshot

COUNT_BOUNDS = (1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 2048.0, 4096.0)
NEVER = 3600.0  # max_wait_seconds no test reaches


def raise_on_three(value: int) -> int:
    if value == 3:
        raise ValueError("three")
    return value


def bucket(histogram: HistogramSnapshot, bound: float) -> int:
    """Observations in the bucket whose upper bound is ``bound``."""
    return histogram.counts[histogram.bounds.index(bound)]


def outcomes(m: GrinderMetrics) -> tuple[int, int, int, int]:
    return m.items_submitted, m.items_finished, m.items_failed, m.items_cancelled


def assert_consistent(m: GrinderMetrics) -> None:
    """What holds at every snapshot of an idle grinder, whatever happened before."""
    assert m.items_submitted == m.pending + m.items_finished + m.items_failed + m.items_cancelled
    assert m.batches_dispatched == m.batches_completed + m.batches_in_flight
    assert m.batch_size.count == m.batches_dispatched
    assert m.batch_latency.count == m.batches_completed


def test_a_new_grinder_has_empty_metrics() -> None:
    manager = LeasedExecutorManager(max_pools=1)
    grinder = WorkGrinder(executor_manager=manager, owner_prefix="reports")
    m = grinder.metrics()
    assert isinstance(m, GrinderMetrics)
    assert m.name == "reports"
    assert (m.pending, m.batches_in_flight) == (0, 0)
    assert outcomes(m) == (0, 0, 0, 0)
    assert (m.batches_dispatched, m.batches_completed) == (0, 0)
    assert m.batch_size.bounds == COUNT_BOUNDS
    assert m.batch_size.counts == (0,) * (len(COUNT_BOUNDS) + 1)
    latency = m.batch_latency
    assert (latency.bounds[0], latency.bounds[-1]) == (1e-6, 1000.0), "seconds"
    assert (latency.count, latency.sum) == (0, 0.0)
    assert all(isinstance(b, float) for b in latency.bounds + m.batch_size.bounds)


async def test_threshold_batches_count_items_and_batches() -> None:
    env = grinder_env(batch_size_threshold=5, max_wait_seconds=NEVER, owner_prefix="thr")
    async with env as (_, grinder):
        results = await asyncio.gather(
            *(grinder.submit(raise_on_three, i % 5) for i in range(10)), return_exceptions=True
        )
        assert sum(isinstance(r, ValueError) for r in results) == 2
        m = grinder.metrics()
    assert m.name == "thr"
    assert outcomes(m) == (10, 8, 2, 0)
    assert (m.batches_dispatched, m.batches_completed, m.batches_in_flight) == (2, 2, 0)
    assert bucket(m.batch_size, 8.0) == 2, "5 items per batch: the <= 8 bucket"
    assert (m.batch_size.count, m.batch_size.sum) == (2, 10.0)
    assert m.batch_latency.count == m.batches_completed
    assert m.batch_latency.sum > 0.0
    assert_consistent(m)


async def test_every_way_in_is_counted() -> None:
    async with grinder_env(batch_size_threshold=3, max_wait_seconds=NEVER) as (_, grinder):
        direct = grinder.submit(f.square, 2)
        queued = await grinder.enqueue(f.square, 3)

        def from_thread() -> int:
            return int(grinder.submit_from_thread(f.square, 4).result(timeout=10))

        results = await asyncio.gather(direct, queued, asyncio.to_thread(from_thread))
        assert list(results) == [4, 9, 16]
        m = grinder.metrics()
    assert outcomes(m) == (3, 3, 0, 0)
    assert (m.batches_dispatched, m.batches_completed) == (1, 1)
    assert bucket(m.batch_size, 4.0) == 1


async def test_gauges_show_pending_items_and_batches_in_flight() -> None:
    gate = threading.Event()
    started = LoopSignal()
    async with grinder_env(batch_size_threshold=3, max_wait_seconds=NEVER) as (_, grinder):
        first = [grinder.submit(blocker(gate, started)), grinder.submit(f.square, 1)]
        first.append(grinder.submit(f.square, 2))
        later = [grinder.submit(f.square, 3), grinder.submit(f.square, 4)]
        await started.wait()
        m = grinder.metrics()
        assert (m.pending, m.batches_in_flight) == (2, 1)
        assert (m.items_submitted, m.batches_dispatched, m.batches_completed) == (5, 1, 0)
        assert m.items_finished + m.items_failed + m.items_cancelled == 0
        gate.set()
        assert await asyncio.gather(*first) == ["done", 1, 4]
        m = grinder.metrics()
        assert (m.pending, m.batches_in_flight, m.batches_completed) == (2, 0, 1)
        assert m.items_finished == 3
        await grinder.stop()  # the two pending items leave in a last batch
        assert await asyncio.gather(*later) == [9, 16]
        m = grinder.metrics()
    assert outcomes(m) == (5, 5, 0, 0)
    assert (m.batches_dispatched, m.batches_completed) == (2, 2)
    assert (bucket(m.batch_size, 4.0), bucket(m.batch_size, 2.0)) == (1, 1)
    assert_consistent(m)


async def test_withdrawn_and_cancel_pending_items_are_cancelled() -> None:
    async with grinder_env(batch_size_threshold=1000, max_wait_seconds=NEVER) as (_, grinder):
        items = [grinder.submit(f.square, i) for i in range(4)]
        assert items[1].cancel()
        m = grinder.metrics()
        assert (m.pending, m.items_submitted, m.items_cancelled) == (3, 4, 1)
        await grinder.stop(cancel_pending=True)
        m = grinder.metrics()
    assert all(item.cancelled() for item in items)
    assert outcomes(m) == (4, 0, 0, 4)
    assert (m.pending, m.batches_dispatched, m.batches_completed) == (0, 0, 0)
    assert_consistent(m)


async def test_cancel_pending_stop_counts_unstarted_items_of_batches_in_flight() -> None:
    gate = threading.Event()
    started = LoopSignal()
    async with grinder_env(
        {"max_pools": 1, "workers_per_pool": 1}, batch_size_threshold=2, max_wait_seconds=NEVER
    ) as (_, grinder):
        # Batch 1 holds the only pool; its second item waits behind the blocker.
        running = grinder.submit(blocker(gate, started))
        queued_behind = grinder.submit(f.square, 1)
        # Batch 2 waits for a lease.
        waiting = [grinder.submit(f.square, 2), grinder.submit(f.square, 3)]
        await started.wait()
        assert grinder.metrics().batches_in_flight == 2
        stopping = asyncio.ensure_future(grinder.stop(cancel_pending=True))
        await until(lambda: grinder.stats()["stopping"], what="stop() began")
        gate.set()
        await stopping
        m = grinder.metrics()
    assert await running == "done"
    assert queued_behind.cancelled() and all(item.cancelled() for item in waiting)
    assert outcomes(m) == (4, 1, 0, 3)
    assert (m.batches_dispatched, m.batches_completed, m.batches_in_flight) == (2, 2, 0)
    assert m.batch_latency.count == 2
    assert_consistent(m)


async def test_parked_items_count_once_accepted() -> None:
    env = grinder_env(batch_size_threshold=1000, max_wait_seconds=NEVER, max_pending=2)
    async with env as (_, grinder):
        first, second = grinder.submit(f.square, 1), grinder.submit(f.square, 2)
        parked = grinder.enqueue(f.square, 3)  # max_pending reached: it waits for space
        assert not parked.done()
        assert grinder.metrics().items_submitted == 2, "a parked item is not accepted yet"
        assert first.cancel()  # its space admits the parked item
        accepted = await asyncio.wait_for(parked, 10)
        m = grinder.metrics()
        assert (m.items_submitted, m.items_cancelled, m.pending) == (3, 1, 2)
        await grinder.stop(cancel_pending=True)
        m = grinder.metrics()
    assert second.cancelled() and accepted.cancelled()
    assert outcomes(m) == (3, 0, 0, 3)
    assert_consistent(m)


async def test_a_refused_batch_counts_its_items_as_cancelled() -> None:
    manager = LeasedExecutorManager(max_pools=1)  # never started: every lease is refused
    grinder = WorkGrinder(executor_manager=manager, batch_size_threshold=2, max_wait_seconds=NEVER)
    await grinder.start()
    try:
        results = await asyncio.gather(
            grinder.submit(f.square, 1), grinder.submit(f.square, 2), return_exceptions=True
        )
        assert all(isinstance(r, LeasePoolNotStartedError) for r in results)
        m = grinder.metrics()
    finally:
        await grinder.stop()
    assert outcomes(m) == (2, 0, 0, 2), "refused after acceptance"
    assert (m.batches_dispatched, m.batches_completed) == (1, 1)
    assert_consistent(m)


async def test_batch_latency_runs_on_the_engine_clock(
    advance_clock: Callable[[float], None],
) -> None:
    gate = threading.Event()
    started = LoopSignal()
    async with grinder_env(batch_size_threshold=2, max_wait_seconds=NEVER) as (_, grinder):
        items = [grinder.submit(blocker(gate, started)), grinder.submit(f.square, 5)]
        await started.wait()
        advance_clock(30.0)
        gate.set()
        assert await asyncio.gather(*items) == ["done", 25]
        latency = grinder.metrics().batch_latency
    assert latency.count == 1
    assert latency.sum >= 30.0
    assert latency.quantile(1.0) >= 50.0, "30 s and more: the (25, 50] bucket or above"


async def test_metrics_from_another_thread_while_items_run() -> None:
    async with grinder_env(batch_size_threshold=10, max_wait_seconds=NEVER) as (_, grinder):
        results = asyncio.gather(*(grinder.submit(f.add, i, 1) for i in range(50)))
        seen: list[GrinderMetrics] = await asyncio.to_thread(
            lambda: [grinder.metrics() for _ in range(20)]
        )
        assert await results == [i + 1 for i in range(50)]
        m = grinder.metrics()
    assert all(s.items_submitted == 50 for s in seen)
    assert outcomes(m) == (50, 50, 0, 0)
    assert (m.batches_dispatched, m.batches_completed) == (5, 5)
    assert bucket(m.batch_size, 16.0) == 5
    assert_consistent(m)


async def test_drain_counts_its_last_batch() -> None:
    async with grinder_env(batch_size_threshold=1000, max_wait_seconds=NEVER) as (_, grinder):
        items = [grinder.submit(f.square, i) for i in range(3)]
        report = await grinder.drain(10.0)
        assert report.finished == 3
        assert await asyncio.gather(*items) == [0, 1, 4]
        m = grinder.metrics()
    assert outcomes(m) == (3, 3, 0, 0)
    assert (m.batches_dispatched, m.batches_completed) == (1, 1)


async def test_process_grinder_counts_raised_items_as_failed() -> None:
    threshold = 6
    manager = LeasedExecutorManager(backend="process", max_pools=1, workers_per_pool=2)
    await manager.start()
    try:
        grinder = WorkGrinder(
            executor_manager=manager, batch_size_threshold=threshold, max_wait_seconds=NEVER
        )
        await grinder.start()
        try:
            results: list[Any] = await asyncio.gather(
                *(grinder.submit(f.fail_if_odd, i) for i in range(threshold)),
                return_exceptions=True,
            )
            m = grinder.metrics()
        finally:
            await grinder.stop(cancel_pending=True)
    finally:
        await manager.stop()
    assert sum(isinstance(r, f.ItemError) for r in results) == 3
    assert outcomes(m) == (6, 3, 3, 0)
    assert (m.batches_dispatched, m.batches_completed) == (1, 1)
    assert bucket(m.batch_size, 8.0) == 1
    assert_consistent(m)
