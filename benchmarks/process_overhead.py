"""Per-call cost of the process backend against a plain ProcessPoolExecutor.

    python benchmarks/process_overhead.py [--workers 2] [--n 20000] [--seq 500] [--repeats 5]

Both sides use the same number of worker processes, the default start method and the
same tiny call (``workloads.calls.add``), warmed up before timing, in one interpreter:

* ``gathered``: ``await asyncio.gather(*(call(add, i, 1) for i in range(n)))``
* ``sequential``: ``for i in range(seq): await call(add, i, 1)``

where ``call`` is ``loop.run_in_executor(executor, ...)`` for the baseline and
``lease.run`` for leasepool. Prints the median µs per call of ``--repeats`` runs
(the two sides alternate, so background load hits both alike).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from workloads.calls import add  # noqa: E402

from leasepool import LeasedExecutorManager  # noqa: E402

Call = Callable[..., Awaitable[Any]]


async def gathered(call: Call, n: int) -> float:
    start = time.perf_counter()
    results = await asyncio.gather(*(call(add, i, 1) for i in range(n)))
    elapsed = time.perf_counter() - start
    assert results[-1] == n
    return elapsed / n * 1e6


async def sequential(call: Call, n: int) -> float:
    start = time.perf_counter()
    for i in range(n):
        await call(add, i, 1)
    return (time.perf_counter() - start) / n * 1e6


async def measure(args: argparse.Namespace) -> dict[str, dict[str, list[float]]]:
    loop = asyncio.get_running_loop()
    samples: dict[str, dict[str, list[float]]] = {
        "ProcessPoolExecutor": {"gathered": [], "sequential": []},
        "leasepool": {"gathered": [], "sequential": []},
    }
    manager = LeasedExecutorManager(
        backend="process", max_pools=1, min_pools=1, workers_per_pool=args.workers
    )
    await manager.start()
    try:
        with ProcessPoolExecutor(args.workers) as executor:
            lease = await manager.acquire(lease_seconds=3600)

            def baseline(fn: Callable[..., Any], *a: Any) -> Awaitable[Any]:
                return loop.run_in_executor(executor, fn, *a)

            sides: dict[str, Call] = {"ProcessPoolExecutor": baseline, "leasepool": lease.run}
            for call in sides.values():  # warm up: processes started, code paths hot
                await gathered(call, 1000)
                await sequential(call, 50)
            for _ in range(args.repeats):
                for name, call in sides.items():
                    samples[name]["gathered"].append(await gathered(call, args.n))
                    samples[name]["sequential"].append(await sequential(call, args.seq))
            await lease.release()
    finally:
        await manager.stop()
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--seq", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    samples = asyncio.run(measure(args))
    print(f"python {sys.version.split()[0]}, {args.workers} workers, median of {args.repeats}")
    print(f"{'':22}{'gathered µs/call':>18}{'sequential µs/call':>20}")
    for name, by_mode in samples.items():
        g = statistics.median(by_mode["gathered"])
        s = statistics.median(by_mode["sequential"])
        print(f"{name:22}{g:18.1f}{s:20.1f}")


if __name__ == "__main__":
    main()
