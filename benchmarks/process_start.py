"""Cost of a fresh process pool by start method: what a crash recovery or a new pool pays.

    python benchmarks/process_start.py [--workers 2] [--calls 4] [--repeats 5]

For each start method (``fork``, ``forkserver``, ``spawn``) and each repeat, in one
interpreter, alternating the methods so background load hits all alike: start a
process-backend manager with ``workers_per_pool`` workers, acquire a lease, and time

* ``first``: the first ``gather`` of ``--calls`` tiny calls (executor creation and
  every worker process started, then the calls);
* ``warm``: a second identical ``gather`` on the same workers.

Prints the median milliseconds of each and the ratio to ``fork``. It is the evidence
behind keeping the stdlib's default start method (docs/process-backend.md).
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from workloads.calls import add  # noqa: E402

from leasepool import LeasedExecutorManager  # noqa: E402

METHODS = ("fork", "forkserver", "spawn")


async def one_pool(method: str, workers: int, calls: int) -> tuple[float, float]:
    manager = LeasedExecutorManager(
        backend="process",
        max_pools=1,
        workers_per_pool=workers,
        mp_context=multiprocessing.get_context(method),
    )
    await manager.start()
    try:
        async with await manager.acquire() as lease:
            start = time.perf_counter()
            await asyncio.gather(*(lease.run(add, i, 1) for i in range(calls)))
            first = time.perf_counter() - start
            start = time.perf_counter()
            await asyncio.gather(*(lease.run(add, i, 1) for i in range(calls)))
            warm = time.perf_counter() - start
    finally:
        await manager.stop()
    return first * 1e3, warm * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--calls", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    firsts: dict[str, list[float]] = {m: [] for m in METHODS}
    warms: dict[str, list[float]] = {m: [] for m in METHODS}
    for _ in range(args.repeats):
        for method in METHODS:
            first, warm = asyncio.run(one_pool(method, args.workers, args.calls))
            firsts[method].append(first)
            warms[method].append(warm)
    base = statistics.median(firsts["fork"])
    print(f"workers={args.workers} calls={args.calls} repeats={args.repeats} (medians)")
    print(f"{'method':<11} {'first ms':>9} {'warm ms':>8} {'first / fork':>13}")
    for method in METHODS:
        first = statistics.median(firsts[method])
        warm = statistics.median(warms[method])
        print(f"{method:<11} {first:9.1f} {warm:8.2f} {first / base:13.1f}")


if __name__ == "__main__":
    main()
