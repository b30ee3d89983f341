"""Timing and measuring helpers shared by every implementation."""

from __future__ import annotations

import asyncio
import gc
import os
import time
from collections.abc import Awaitable, Callable, Iterable
from concurrent.futures import Future
from typing import Any

from .calls import add

Params = dict[str, Any]
Metrics = dict[str, float]
AsyncCall = Callable[..., Awaitable[Any]]
SubmitCall = Callable[..., "Future[Any]"]

_PAGE = os.sysconf("SC_PAGE_SIZE")


class CheckError(AssertionError):
    """A workload produced a wrong result: its timing is not trustworthy."""


def expect(condition: bool, what: str) -> None:
    if not condition:
        raise CheckError(what)


def expected_sum(n: int) -> int:
    """sum(add(i, 1) for i in range(n))."""
    return n * (n - 1) // 2 + n


def rss_bytes() -> int:
    """Resident set size from /proc/self/statm (sees Rust and C allocations too)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * _PAGE


def settle_rss() -> int:
    gc.collect()
    return rss_bytes()


def context_switches() -> int:
    """Voluntary + involuntary context switches summed over all threads of this process."""
    total = 0
    try:
        tids = os.listdir("/proc/self/task")
    except OSError:
        return 0
    for tid in tids:
        try:
            with open(f"/proc/self/task/{tid}/status") as f:
                for line in f:
                    if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
                        total += int(line.split()[1])
        except OSError:
            continue  # the thread ended meanwhile
    return total


def percentile(sorted_values: list[float], q: float) -> float:
    """Linear-interpolated percentile (q in [0, 1]) of an already sorted list."""
    if not sorted_values:
        return float("nan")
    pos = q * (len(sorted_values) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    frac = pos - lo
    return sorted_values[lo] * (1 - frac) + sorted_values[hi] * frac


def us_per_op(elapsed_ns: int, ops: int) -> float:
    return elapsed_ns / ops / 1_000


async def time_sequential(call: AsyncCall, n: int, warmup: int) -> Metrics:
    """``await call(add, i, 1)`` n times, one after the other."""

    async def go(k: int) -> int:
        total = 0
        for i in range(k):
            total += await call(add, i, 1)
        return total

    expect(await go(warmup) == expected_sum(warmup), "warm-up results")
    gc.collect()
    t0 = time.perf_counter_ns()
    total = await go(n)
    t1 = time.perf_counter_ns()
    expect(total == expected_sum(n), "results")
    return {"us_per_op": us_per_op(t1 - t0, n)}


async def time_gathered(call: AsyncCall, n: int, warmup: int) -> Metrics:
    """``await asyncio.gather(*(call(add, i, 1) for i in range(n)))``."""

    async def go(k: int) -> int:
        results: Iterable[int] = await asyncio.gather(*(call(add, i, 1) for i in range(k)))
        return sum(results)

    expect(await go(warmup) == expected_sum(warmup), "warm-up results")
    gc.collect()
    t0 = time.perf_counter_ns()
    total = await go(n)
    t1 = time.perf_counter_ns()
    expect(total == expected_sum(n), "results")
    return {"us_per_op": us_per_op(t1 - t0, n)}


async def time_requests(call: AsyncCall, tasks: int, rounds: int, warmup_rounds: int) -> Metrics:
    """``tasks`` concurrent callers each ``await call(add, i, 1)`` ``rounds`` times, as the
    handlers of a request-serving app do: wall and CPU time (all threads) per call, and
    the p99 latency of one call."""
    latencies_ns: list[int] = []

    async def caller(k: int, record: bool) -> int:
        total = 0
        for i in range(k):
            t0 = time.perf_counter_ns()
            total += await call(add, i, 1)
            if record:
                latencies_ns.append(time.perf_counter_ns() - t0)
        return total

    async def go(k: int, record: bool) -> None:
        totals = await asyncio.gather(*(caller(k, record) for _ in range(tasks)))
        expect(sum(totals) == tasks * expected_sum(k), "results")

    await go(warmup_rounds, record=False)
    gc.collect()
    c0, t0 = time.process_time_ns(), time.perf_counter_ns()
    await go(rounds, record=True)
    c1, t1 = time.process_time_ns(), time.perf_counter_ns()
    ops = tasks * rounds
    latencies = sorted(ns / 1e6 for ns in latencies_ns)
    return {
        "us_per_op": us_per_op(t1 - t0, ops),
        "cpu_us_per_op": us_per_op(c1 - c0, ops),
        "p99_ms": percentile(latencies, 0.99),
    }


def time_submit_result(submit: SubmitCall, n: int, warmup: int) -> Metrics:
    """Submit n calls to a concurrent.futures executor, then ``.result()`` each.

    Blocks the calling (event-loop) thread on purpose: this is the synchronous
    ``lease.executor`` interface.
    """

    def go(k: int) -> int:
        futures = [submit(add, i, 1) for i in range(k)]
        return sum(f.result() for f in futures)

    expect(go(warmup) == expected_sum(warmup), "warm-up results")
    gc.collect()
    t0 = time.perf_counter_ns()
    total = go(n)
    t1 = time.perf_counter_ns()
    expect(total == expected_sum(n), "results")
    return {"us_per_op": us_per_op(t1 - t0, n)}


async def measure_idle(seconds: float, settle: float = 0.5) -> Metrics:
    """CPU time and context switches of the whole process while the loop sleeps."""
    await asyncio.sleep(settle)
    gc.collect()
    # Read /proc outside the CPU-time window.
    s0 = context_switches()
    c0, w0 = time.process_time_ns(), time.perf_counter_ns()
    await asyncio.sleep(seconds)
    c1, w1 = time.process_time_ns(), time.perf_counter_ns()
    s1 = context_switches()
    wall_s = (w1 - w0) / 1e9
    return {
        "cpu_ms_per_s": (c1 - c0) / 1e6 / wall_s,
        "wakeups_per_s": (s1 - s0) / wall_s,
    }
