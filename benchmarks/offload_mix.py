"""Mixed CPU and blocking-I/O calls at fixed concurrency: all threads, all processes, auto.

    python benchmarks/offload_mix.py [--callers 16] [--calls 30] [--workers 8]
                                     [--cpu-ms 5] [--io-ms 10] [--repeats 5] [--loop asyncio]

Half of ``--callers`` tasks call a pure-Python CPU function (``workloads.calls.spin``,
calibrated to ``--cpu-ms`` on one core), half a blocking sleep (``sleep_io``,
``--io-ms``), each ``--calls`` times in a row, all at once. Every variant is
configured with ``--workers`` workers:

* ``asyncio threads`` / ``asyncio processes``: ``loop.run_in_executor`` on a
  ``ThreadPoolExecutor`` / ``ProcessPoolExecutor`` of ``--workers`` (the baselines);
* ``leasepool thread`` / ``leasepool process``: one lease on a pool of ``--workers``;
  ``leasepool process nice``: the same with ``worker_nice=10``;
* ``leasepool auto``: one lease on a ``backend="auto"`` pool with the same
  ``workers_per_pool`` (so ``--workers`` threads *and* up to ``--workers`` processes:
  what a user switching from ``thread`` or ``process`` gets); ``leasepool auto half``:
  ``--workers / 2`` of each, the same number of workers in all as the fixed variants.
  Both are warmed up first so the routing has learnt (4 calls per callable).

Reported per variant (medians of ``--repeats`` runs, the variants in rotating order):
throughput (calls per second), p99 latency of the I/O calls, and event-loop lag: how
late a task that sleeps 1 ms wakes, p99 over the run. Ratios are against the best of
the fixed choices (every variant but auto, the baselines included).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from workloads.calls import sleep_io, spin  # noqa: E402

from leasepool import LeasedExecutorManager  # noqa: E402

Call = Callable[..., Awaitable[Any]]
VARIANTS = (
    "asyncio threads",
    "asyncio processes",
    "leasepool thread",
    "leasepool process",
    "leasepool process nice",
    "leasepool auto",
    "leasepool auto half",
)
FIXED = tuple(name for name in VARIANTS if not name.startswith("leasepool auto"))


def calibrate(cpu_ms: float) -> int:
    """Loop steps of ``spin`` that take ``cpu_ms`` on this machine (one core, idle)."""
    n = 10_000
    while True:
        start = time.perf_counter()
        spin(n)
        elapsed = time.perf_counter() - start
        if elapsed > 0.02:
            return max(1, int(n * cpu_ms / 1000 / elapsed))
        n *= 2


def p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


async def loop_lag(stop: asyncio.Event, lags: list[float]) -> None:
    """How late a 1 ms sleep wakes, again and again until ``stop``."""
    while not stop.is_set():
        start = time.perf_counter()
        await asyncio.sleep(0.001)
        lags.append(time.perf_counter() - start - 0.001)


async def one_run(call: Call, args: argparse.Namespace, steps: int) -> dict[str, float]:
    io_latencies: list[float] = []
    lags: list[float] = []

    async def cpu_caller() -> None:
        for _ in range(args.calls):
            await call(spin, steps)

    async def io_caller() -> None:
        for _ in range(args.calls):
            start = time.perf_counter()
            await call(sleep_io, args.io_ms / 1000)
            io_latencies.append(time.perf_counter() - start)

    stop = asyncio.Event()
    monitor = asyncio.create_task(loop_lag(stop, lags))
    half = args.callers // 2
    start = time.perf_counter()
    await asyncio.gather(*(cpu_caller() for _ in range(half)), *(io_caller() for _ in range(half)))
    elapsed = time.perf_counter() - start
    stop.set()
    await monitor
    return {
        "throughput": 2 * half * args.calls / elapsed,
        "io_p99_ms": p99(io_latencies) * 1000,
        "lag_p99_ms": p99(lags) * 1000 if lags else float("nan"),
    }


@asynccontextmanager
async def variant(name: str, workers: int) -> AsyncIterator[Call]:
    loop = asyncio.get_running_loop()
    if name.startswith("asyncio"):
        kind = ThreadPoolExecutor if name.endswith("threads") else ProcessPoolExecutor
        executor: Executor = kind(workers)

        def submit(fn: Callable[..., Any], *a: Any) -> Awaitable[Any]:
            return loop.run_in_executor(executor, fn, *a)

        try:
            yield submit
        finally:
            executor.shutdown(wait=True)
        return
    backend = name.split()[1]
    per_pool = max(1, workers // 2) if name.endswith("half") else workers
    # auto's process workers run at nice 10 by default; "process nice" is the process
    # backend with the same setting, to tell routing from priority apart.
    extra: dict[str, Any] = {"worker_nice": 10} if name.endswith("nice") else {}
    manager = LeasedExecutorManager(
        backend=backend,
        max_pools=1,
        workers_per_pool=per_pool,
        default_lease_seconds=3600,
        **extra,
    )
    await manager.start()
    try:
        async with await manager.acquire() as lease:
            yield lease.run
    finally:
        await manager.stop()


async def measure(args: argparse.Namespace) -> dict[str, list[dict[str, float]]]:
    steps = args.spin_steps or calibrate(args.cpu_ms)
    samples: dict[str, list[dict[str, float]]] = {name: [] for name in VARIANTS}
    learning: dict[str, float] = {}
    async with _all_variants(args.workers) as calls:
        for name, call in calls.items():  # warm-up: workers started, routes learnt
            learn_start = time.perf_counter()
            await asyncio.gather(*(call(spin, steps) for _ in range(4)), call(sleep_io, 0.001))
            learning[name] = time.perf_counter() - learn_start
            await one_run(call, argparse.Namespace(**{**vars(args), "calls": 3}), steps)
        for repeat in range(args.repeats):
            order = VARIANTS[repeat % len(VARIANTS) :] + VARIANTS[: repeat % len(VARIANTS)]
            for name in order:
                samples[name].append(await one_run(calls[name], args, steps))
    print(f"spin steps: {steps}", file=sys.stderr)
    return samples


@asynccontextmanager
async def _all_variants(workers: int) -> AsyncIterator[dict[str, Call]]:
    calls: dict[str, Call] = {}
    stack: list[Any] = []
    try:
        for name in VARIANTS:
            cm = variant(name, workers)
            calls[name] = await cm.__aenter__()
            stack.append(cm)
        yield calls
    finally:
        for cm in reversed(stack):
            await cm.__aexit__(None, None, None)


def report(samples: dict[str, list[dict[str, float]]], args: argparse.Namespace) -> str:
    def median(name: str, key: str) -> float:
        return statistics.median(s[key] for s in samples[name])

    best_fixed = max(FIXED, key=lambda n: median(n, "throughput"))
    lines = [
        f"{args.callers} callers (half `spin({args.spin_steps or 'calibrated'})` ≈ "
        f"{args.cpu_ms:g} ms CPU, half `sleep` "
        f"{args.io_ms:g} ms) × {args.calls} calls, {args.workers} workers per variant, "
        f"{args.loop}, medians of {args.repeats} repeats:",
        "",
        "| variant | calls/s | vs best fixed | I/O p99 ms | loop lag p99 ms |",
        "|---|---:|---:|---:|---:|",
    ]
    base = median(best_fixed, "throughput")
    for name in VARIANTS:
        tput = median(name, "throughput")
        lines.append(
            f"| {name} | {tput:,.0f} | {tput / base:.2f} | {median(name, 'io_p99_ms'):.1f} "
            f"| {median(name, 'lag_p99_ms'):.2f} |"
        )
    fixed = [
        max(s["throughput"] for s in runs)
        for runs in zip(*(samples[name] for name in FIXED), strict=True)
    ]
    lines.append("")
    for name in ("leasepool auto", "leasepool auto half"):
        auto = [s["throughput"] for s in samples[name]]
        ratios = sorted(a / f for a, f in zip(auto, fixed, strict=True))
        lines.append(
            f"{name} / best fixed choice of the same repeat: median "
            f"{statistics.median(ratios):.2f} (range {ratios[0]:.2f}–{ratios[-1]:.2f})"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--callers", type=int, default=16)
    parser.add_argument("--calls", type=int, default=30)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--cpu-ms", type=float, default=5.0)
    parser.add_argument("--io-ms", type=float, default=10.0)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--loop", choices=("asyncio", "uvloop"), default="asyncio")
    parser.add_argument(
        "--spin-steps",
        type=int,
        default=0,
        help="loop steps of each CPU call (default: calibrated to --cpu-ms; fix it to "
        "compare runs: the calibration follows the VM's speed of the moment)",
    )
    args = parser.parse_args()
    factory: Callable[[], asyncio.AbstractEventLoop] = asyncio.new_event_loop
    if args.loop == "uvloop":
        import uvloop

        factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        samples = runner.run(measure(args))
    print(report(samples, args))


if __name__ == "__main__":
    main()
