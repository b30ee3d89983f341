#!/usr/bin/env python3
"""Per-call cost of the dask backend next to raw ``distributed``, in one run.

    python benchmarks/dask_overhead.py                    # 2 workers x 1 thread, 7 repeats
    python benchmarks/dask_overhead.py --repeats 9 --gathered 4000 --markdown

One ``distributed.LocalCluster`` (worker processes on 127.0.0.1, dashboards off) serves
every variant; one asynchronous ``Client`` (the raw baselines) and one started
``backend="dask"`` manager (``workers_per_pool`` = the cluster's threads, so both
sides may run as many tasks at once; two pools: one for the benchmark's lease, one
for the WorkGrinder's batches) share the event loop. The called
function does nothing (``operator.add``): what is timed is the cost of getting a call
to a worker and its result back.

Workloads (wall time per call; every repeat runs each variant once, in an order that
rotates from repeat to repeat, so drift in the machine's speed falls on all alike):

* ``sequential`` — one call at a time: ``await lease.run(add, i, 1)`` vs ``await
  client.submit(add, i, 1, pure=False)``.
* ``gathered`` — ``--gathered`` calls at once: ``asyncio.gather(lease.run ...)`` vs
  ``asyncio.gather(client.submit ...)`` vs ``client.gather(client.map(...))``.
* ``WorkGrinder`` (in ``gathered``) — the same calls through a ``WorkGrinder`` over
  the manager (batches of up to 256 items, 5 ms at most to fill one).

The report gives medians over the repeats and each variant's ratio to raw
``client.submit`` (the per-repeat ratios' median: the two ran seconds apart).
"""

from __future__ import annotations

import argparse
import asyncio
import operator
import platform
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from importlib import metadata
from typing import Any

from distributed import Client, LocalCluster

from leasepool import LeasedExecutorManager, WorkGrinder

Variant = Callable[[int], Awaitable[None]]


def _check(results: list[Any], n: int) -> None:
    if results != [i + 1 for i in range(n)]:
        raise AssertionError("wrong results")


async def measure(args: argparse.Namespace, address: str, threads: int) -> dict[str, Any]:
    add = operator.add
    # distributed is untyped.
    client_cm = Client(address, asynchronous=True, set_as_default=False)  # type: ignore[no-untyped-call]
    async with client_cm as client:
        manager = LeasedExecutorManager(
            backend="dask", dask_address=address, max_pools=2, workers_per_pool=threads
        )
        await manager.start()
        grinder = WorkGrinder(
            executor_manager=manager, batch_size_threshold=256, max_wait_seconds=0.005
        )
        await grinder.start()
        lease = await manager.acquire()
        try:

            async def ours_sequential(n: int) -> None:
                _check([await lease.run(add, i, 1) for i in range(n)], n)

            async def raw_sequential(n: int) -> None:
                _check([await client.submit(add, i, 1, pure=False) for i in range(n)], n)

            async def ours_gathered(n: int) -> None:
                _check(list(await asyncio.gather(*(lease.run(add, i, 1) for i in range(n)))), n)

            async def raw_gathered(n: int) -> None:
                futures = [client.submit(add, i, 1, pure=False) for i in range(n)]
                _check(list(await asyncio.gather(*futures)), n)

            async def raw_map(n: int) -> None:
                futures = client.map(add, range(n), [1] * n, pure=False)
                _check(list(await client.gather(futures)), n)

            async def ours_grinder(n: int) -> None:
                items = [grinder.submit(add, i, 1) for i in range(n)]
                _check(list(await asyncio.gather(*items)), n)

            workloads: dict[str, tuple[int, dict[str, Variant]]] = {
                "sequential": (
                    args.sequential,
                    {"client.submit": raw_sequential, "lease.run": ours_sequential},
                ),
                "gathered": (
                    args.gathered,
                    {
                        "client.submit": raw_gathered,
                        "client.map": raw_map,
                        "lease.run": ours_gathered,
                        "WorkGrinder": ours_grinder,
                    },
                ),
            }
            report: dict[str, Any] = {}
            for name, (n, variants) in workloads.items():
                for run in variants.values():  # warm up: imports, pickling caches
                    await run(min(n, 50))
                samples: dict[str, list[float]] = {v: [] for v in variants}
                order = list(variants)
                for repeat in range(args.repeats):
                    rotated = order[repeat % len(order) :] + order[: repeat % len(order)]
                    for variant in rotated:
                        start = time.perf_counter()
                        await variants[variant](n)
                        samples[variant].append((time.perf_counter() - start) / n)
                    print(f"{name} repeat {repeat + 1}/{args.repeats}", file=sys.stderr)
                report[name] = {"calls": n, "samples": samples}
            return report
        finally:
            await lease.release()
            await grinder.stop()
            await manager.stop()


def render(report: dict[str, Any], args: argparse.Namespace, threads: int) -> str:
    lines = [
        f"Dask backend vs raw distributed ({args.workers} workers x {args.threads} threads, "
        f"LocalCluster on 127.0.0.1; {args.repeats} repeats, medians; distributed "
        f"{metadata.version('distributed')}, Python {platform.python_version()}, "
        f"`python benchmarks/dask_overhead.py "
        f"--repeats {args.repeats} --gathered {args.gathered} --sequential {args.sequential}`)",
        "",
        "| workload | calls | variant | µs per call | calls/s | vs raw client.submit |",
        "|---|---:|---|---:|---:|---:|",
    ]
    for name, cell in report.items():
        samples: dict[str, list[float]] = cell["samples"]
        base = samples["client.submit"]
        for variant, values in samples.items():
            median = statistics.median(values)
            ratios = [v / b for v, b in zip(values, base, strict=True)]
            ratio = statistics.median(ratios)
            lines.append(
                f"| {name} | {cell['calls']} | {variant} | {median * 1e6:,.0f} | "
                f"{1 / median:,.0f} | {ratio:.2f} ({min(ratios):.2f}–{max(ratios):.2f}) |"
            )
    lines.append("")
    lines.append(f"workers_per_pool = {threads} (the cluster's threads).")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1, help="threads per worker")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--sequential", type=int, default=200)
    parser.add_argument("--gathered", type=int, default=2000)
    args = parser.parse_args()
    with LocalCluster(  # type: ignore[no-untyped-call]  # distributed is untyped
        n_workers=args.workers,
        threads_per_worker=args.threads,
        host="127.0.0.1",
        dashboard_address="127.0.0.1:0",  # HTTP endpoints on a free local port
        worker_dashboard_address=None,
    ) as cluster:
        threads = args.workers * args.threads
        report = asyncio.run(measure(args, cluster.scheduler_address, threads))
    print(render(report, args, threads))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
