"""A step of load against three ways of sizing: autoscale, a load-following
``size_provider``, and the defaults.

    python benchmarks/autoscale_step.py [--low 2] [--high 12] [--window 0.5]
                                        [--steady 12] [--after 8] [--repeats 3]

``--low`` tasks hold leases (each: acquire, hold 5–30 ms, release, pause 0–10 ms, again)
for 2 s; then ``--high`` tasks for ``--steady`` s (the step, then steady noisy load);
then ``--low`` again for ``--after`` s. Thread backend, one worker per pool, ``max_pools``
16, ``idle_pool_seconds=0`` (a pool above the target leaves as soon as it is free):

* ``autoscale``: ``autoscale=AutoScale(window_seconds=--window)``;
* ``size_provider``: ``size_provider`` = the number of tasks holding a lease now,
  ``units_per_pool=1``, ``check_interval=--window`` (what an application computes);
* ``defaults``: neither (``min_pools=1``), but 0.1.3's sizing with the default
  ``idle_pool_seconds`` of 10 s.

Reported (medians of ``--repeats``): how long after the step ``desired`` first covered
``--high``; pools created + retired per minute during the steady phase (churn: each
is a pool's threads started or joined); target changes per minute during the steady
phase; acquire wait p99 during it; and how long after the step down ``desired`` came
back to ``--low`` or less.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import time
from typing import Any

from leasepool import LeasedExecutorManager
from leasepool.autoscale import AutoScale

VARIANTS = ("autoscale", "size_provider", "defaults")


class Load:
    """``tasks`` lease holders, changed on the fly."""

    def __init__(self, manager: LeasedExecutorManager) -> None:
        self.manager = manager
        self.holding = 0
        self.waits: list[float] = []
        self.recording = False
        self._tasks: list[asyncio.Task[None]] = []

    async def _holder(self, rng: random.Random) -> None:
        while True:
            start = time.perf_counter()
            lease = await self.manager.acquire()
            if self.recording:
                self.waits.append(time.perf_counter() - start)
            self.holding += 1
            try:
                await asyncio.sleep(rng.uniform(0.005, 0.030))
            finally:
                self.holding -= 1
                await lease.release()
            await asyncio.sleep(rng.uniform(0.0, 0.010))

    async def resize(self, tasks: int, seed: int) -> None:
        while len(self._tasks) > tasks:
            task = self._tasks.pop()
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        while len(self._tasks) < tasks:
            rng = random.Random(seed * 1000 + len(self._tasks))
            self._tasks.append(asyncio.ensure_future(self._holder(rng)))

    async def stop(self) -> None:
        await self.resize(0, 0)


def build(name: str, window: float, load: list[Load]) -> LeasedExecutorManager:
    common: dict[str, Any] = {"max_pools": 16, "workers_per_pool": 1, "metrics": True}
    if name == "autoscale":
        return LeasedExecutorManager(
            idle_pool_seconds=0, autoscale=AutoScale(window_seconds=window), **common
        )
    if name == "size_provider":
        return LeasedExecutorManager(
            idle_pool_seconds=0,
            units_per_pool=1,
            check_interval=window,
            size_provider=lambda: load[0].holding if load else 0,
            **common,
        )
    return LeasedExecutorManager(**common)


async def watch(manager: LeasedExecutorManager, until: float, covers: int, above: bool) -> float:
    """Seconds until ``desired`` reaches ``covers`` (``above``: at least; else at most);
    ``inf`` if not before ``until``."""
    start = time.perf_counter()
    while time.perf_counter() < until:
        desired = manager.desired_executor_count()
        if (desired >= covers) if above else (desired <= covers):
            return time.perf_counter() - start
        await asyncio.sleep(0.005)
    return float("inf")


async def one_run(name: str, args: argparse.Namespace, seed: int) -> dict[str, float]:
    holder: list[Load] = []
    manager = build(name, args.window, holder)
    await manager.start()
    load = Load(manager)
    holder.append(load)
    try:
        await load.resize(args.low, seed)
        await asyncio.sleep(2.0)
        step = time.perf_counter()
        await load.resize(args.high, seed)
        reached = await watch(manager, step + args.steady / 2, args.high, above=True)
        # Steady phase: the second half of the high load.
        await asyncio.sleep(max(0.0, step + args.steady / 2 - time.perf_counter()))
        before = manager.metrics()
        load.recording = True
        steady_start = time.perf_counter()
        targets = 0
        last = manager.desired_executor_count()
        while time.perf_counter() < steady_start + args.steady / 2:
            await asyncio.sleep(0.01)
            now_desired = manager.desired_executor_count()
            targets += now_desired != last
            last = now_desired
        steady = time.perf_counter() - steady_start
        after = manager.metrics()
        load.recording = False
        down = time.perf_counter()
        await load.resize(args.low, seed)
        shrunk = await watch(manager, down + args.after, args.low, above=False)
    finally:
        await load.stop()
        await manager.stop()
    created = after.pools_created - before.pools_created
    churn = created + (after.pools_retired - before.pools_retired)
    waits = sorted(load.waits)
    return {
        "reach_s": reached,
        "churn_per_min": churn / steady * 60,
        "target_changes_per_min": targets / steady * 60,
        "wait_p99_ms": waits[int(len(waits) * 0.99)] * 1000 if waits else 0.0,
        "shrink_s": shrunk,
    }


def report(samples: dict[str, list[dict[str, float]]], args: argparse.Namespace) -> str:
    def med(name: str, key: str) -> float:
        return statistics.median(s[key] for s in samples[name])

    def seconds(value: float) -> str:
        return "never" if value == float("inf") else f"{value:.2f}"

    lines = [
        f"{args.low} → {args.high} → {args.low} lease holders, {args.window:g} s windows/checks, "
        f"medians of {args.repeats} repeats:",
        "",
        "| sizing | desired covers the step after (s) | pools created+retired /min (steady) "
        "| target changes /min (steady) | acquire wait p99 (ms, steady) "
        f"| back to ≤ {args.low} after (s) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name in VARIANTS:
        lines.append(
            f"| {name} | {seconds(med(name, 'reach_s'))} | {med(name, 'churn_per_min'):.0f} "
            f"| {med(name, 'target_changes_per_min'):.1f} | {med(name, 'wait_p99_ms'):.2f} "
            f"| {seconds(med(name, 'shrink_s'))} |"
        )
    return "\n".join(lines)


async def measure(args: argparse.Namespace) -> dict[str, list[dict[str, float]]]:
    samples: dict[str, list[dict[str, float]]] = {name: [] for name in VARIANTS}
    for repeat in range(args.repeats):
        order = VARIANTS[repeat % 3 :] + VARIANTS[: repeat % 3]
        for name in order:
            samples[name].append(await one_run(name, args, repeat))
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--low", type=int, default=2)
    parser.add_argument("--high", type=int, default=12)
    parser.add_argument("--window", type=float, default=0.5)
    parser.add_argument("--steady", type=float, default=12.0)
    parser.add_argument("--after", type=float, default=8.0)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(report(asyncio.run(measure(args)), args))


if __name__ == "__main__":
    main()
