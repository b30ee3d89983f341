"""Soak of the process backend's long-running-worker features (issue 16).

    python benchmarks/process_soak.py [--calls 20000] [--leak-mib 1] [--limit 64MiB]
                                      [--storm-seconds 30] [--workers 2]

Two scenarios, each against a real process pool:

* ``leak``: every call keeps ``--leak-mib`` MiB for good (touched, so resident);
  ``--calls`` calls, 16 callers at a time, ``max_worker_memory=--limit``. Reported: calls
  completed and failed (none may be lost), workers recycled, the largest resident size
  any worker reported after a call, the parent's resident size and open file
  descriptors once 5 % of the calls are done and at the end, throughput.
* ``storm``: every 10th call dies (``os._exit(3)``) for ``--storm-seconds``, 8 callers in
  a loop, then a healthy phase. Run twice: with ``crash_breaker=CrashBreaker(
  max_crashes=5, window_seconds=10, cooldown_seconds=5)`` and without a breaker (0.1.3's
  behaviour: a fresh executor after every crash). Reported per second of the storm: crashes
  (each one a fresh executor of ``--workers`` processes), refusals, the parent's CPU time
  (parent + reaped children), open file descriptors; then when the breaker first opened
  (seconds after the storm began), and how long after the storm the first healthy call
  succeeded.

Nothing here is a pass/fail test: the figures go into the issue's closing note and
docs/process-backend.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import statistics
import time
from typing import Any

from leasepool import LeasedExecutorManager, WorkerCrashLoopError
from leasepool.resilience import CrashBreaker

_kept: list[bytearray] = []


def leak(mib: int) -> int:
    """Keeps ``mib`` MiB resident for good; returns this worker's resident bytes."""
    block = bytearray(mib << 20)
    for offset in range(0, len(block), 4096):
        block[offset] = 1
    _kept.append(block)
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def maybe_die(i: int) -> int:
    if i % 10 == 0:
        os._exit(3)
    return i


def healthy(i: int) -> int:
    return i


def parent_rss() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def cpu_seconds() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


MiB = 1 << 20


async def leak_scenario(calls: int, leak_mib: int, limit: str, workers: int) -> dict[str, Any]:
    manager = LeasedExecutorManager(
        backend="process", max_pools=1, workers_per_pool=workers, max_worker_memory=limit
    )
    await manager.start()
    warm: tuple[float, int] | None = None  # parent RSS and fds once 5 % of calls are done
    started = time.perf_counter()
    worst = 0
    failed = 0
    done = 0
    try:
        async with await manager.acquire(lease_seconds=3600) as lease:
            next_call = 0

            async def caller() -> None:
                nonlocal next_call, worst, failed, done, warm
                while next_call < calls:
                    next_call += 1
                    try:
                        worst = max(worst, await lease.run(leak, leak_mib))
                        done += 1
                    except Exception:
                        failed += 1
                    if warm is None and done >= calls // 20:
                        warm = (parent_rss() / MiB, open_fds())

            await asyncio.gather(*(caller() for _ in range(16)))
        elapsed = time.perf_counter() - started
        metrics = manager.metrics()
    finally:
        await manager.stop()
    return {
        "calls": calls,
        "completed": done,
        "failed": failed,
        "recycled": metrics.workers_recycled,
        "worst_worker_rss_mib": worst / MiB,
        "parent_rss_mib_at_5%_and_end": (warm and warm[0], parent_rss() / MiB),
        "parent_fds_at_5%_and_end": (warm and warm[1], open_fds()),
        "calls_per_second": calls / elapsed,
    }


async def storm_scenario(seconds: float, workers: int, breaker: bool) -> dict[str, Any]:
    options: dict[str, Any] = {"backend": "process", "max_pools": 1, "workers_per_pool": workers}
    if breaker:
        options["crash_breaker"] = CrashBreaker(
            max_crashes=5, window_seconds=10, cooldown_seconds=5
        )
    manager = LeasedExecutorManager(**options)
    await manager.start()
    samples: list[dict[str, float]] = []
    opened_at: float | None = None
    try:
        async with await manager.acquire(lease_seconds=3600) as lease:
            began = time.monotonic()
            end = began + seconds
            counter = 0
            refused = 0

            async def caller() -> None:
                nonlocal counter, refused
                while time.monotonic() < end:
                    counter += 1
                    try:
                        await lease.run(maybe_die, counter)
                    except WorkerCrashLoopError:
                        refused += 1
                        await asyncio.sleep(0.05)  # a client backing off
                    except Exception:
                        pass

            async def sampler() -> None:
                nonlocal opened_at
                last_crashes, last_refused, last_cpu = 0, 0, cpu_seconds()
                while time.monotonic() < end:
                    await asyncio.sleep(1.0)
                    m = manager.metrics()
                    cpu = cpu_seconds()
                    samples.append(
                        {
                            "crashes": m.worker_crashes - last_crashes,
                            "refused": refused - last_refused,
                            "cpu": cpu - last_cpu,
                            "fds": open_fds(),
                        }
                    )
                    last_crashes, last_refused, last_cpu = m.worker_crashes, refused, cpu
                    if opened_at is None and m.crash_breaker_opens:
                        opened_at = time.monotonic() - began

            await asyncio.gather(sampler(), *(caller() for _ in range(8)))
            storm_over = time.monotonic()
            while True:  # the healthy phase: until a call succeeds
                try:
                    await lease.run(healthy, 1)
                    break
                except WorkerCrashLoopError as refusal:
                    await asyncio.sleep(min(refusal.retry_after or 0.1, 0.5))
                except Exception:
                    await asyncio.sleep(0.05)
            recovered = time.monotonic() - storm_over
            metrics = manager.metrics()
            state = manager.stats().get("crash_breaker", {}).get("state", "-")
    finally:
        await manager.stop()
    return {
        "samples": samples,
        "opened_at": opened_at,
        "recovered_after": recovered,
        "crashes": metrics.worker_crashes,
        "opens": metrics.crash_breaker_opens,
        "refused": metrics.rejected_crash_loop,
        "state_after": state,
    }


def report_storm(label: str, result: dict[str, Any]) -> None:
    samples = result["samples"]
    per_second = [s["crashes"] for s in samples]
    cpu = [s["cpu"] for s in samples]
    fds = [int(s["fds"]) for s in samples]
    print(f"storm, {label}:")
    print(f"  crashes (fresh executors): {result['crashes']}, per second: {per_second}")
    print(f"  CPU s per second (parent + children): median {statistics.median(cpu):.2f}")
    print(f"  open fds per second: min {min(fds)} max {max(fds)}")
    print(f"  breaker opened: {result['opens']} times, first at {result['opened_at']} s")
    print(f"  calls refused: {result['refused']}; state after: {result['state_after']}")
    print(f"  first healthy call {result['recovered_after']:.2f} s after the storm")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=20000)
    parser.add_argument("--leak-mib", type=int, default=1)
    parser.add_argument("--limit", default="64MiB")
    parser.add_argument("--storm-seconds", type=float, default=30.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--only", choices=("leak", "storm"), default=None)
    args = parser.parse_args()
    if args.only in (None, "leak"):
        leak = asyncio.run(leak_scenario(args.calls, args.leak_mib, args.limit, args.workers))
        print("leak:")
        for key, value in leak.items():
            print(f"  {key}: {value}")
    if args.only in (None, "storm"):
        for breaker in (True, False):
            result = asyncio.run(storm_scenario(args.storm_seconds, args.workers, breaker))
            report_storm("with crash_breaker" if breaker else "without a breaker", result)


if __name__ == "__main__":
    main()
