#!/usr/bin/env python3
"""What the engine's metrics cost per operation, measured in one process.

    python benchmarks/metrics_overhead.py                      # asyncio, 200k ops, 7 blocks
    python benchmarks/metrics_overhead.py --loop uvloop --blocks 9
    python benchmarks/metrics_overhead.py --ops acquire_release --n 500000

One started manager per variant (default: the package defaults "on", plus "off"
``metrics=False``, "site" ``track_acquire_site=True``, "owners" ``metrics_owners=16``),
all in this process and on the same event loop, each with two pools of 4 worker
threads (one pool holds the lease of ``lease_run`` throughout; the other serves
``acquire_release`` and ``manager_run``). For every operation (``acquire_release``: ``lease = await
manager.acquire(owner=...); await lease.release()``; ``manager_run``: ``await
manager.run(int, owner=...)``; ``lease_run``: ``await lease.run(int)`` on one held
lease) the script times ``--n`` sequential operations per variant, in blocks: every
block runs each variant once, in an order that rotates from block to block, so drift in
the machine's speed (other processes, frequency) falls on all variants alike. The
report gives, per operation and variant, the median over the blocks of wall time and of
CPU time (every thread of the process) per operation, and the median and range of the
per-block ratios to "off" and to "on" (the two ran in the same block, seconds apart).

Every call names the same owner (``--owner``, default "bench"), so ``metrics_owners``
has an owner to break down. ``--cpu N`` pins the process (loop and worker threads) to
one CPU: no cross-CPU wake-ups, whose latency on a small VM depends on what the other
CPU is doing and swamps a few hundred ns in the round-trip operations.
``--import-anyio`` imports anyio first (the acquire site skips anyio's frames, and
looks for the package on every capture until it is imported). Linux only (/proc).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import gc
import hashlib
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, TypeVar

from leasepool import ExecutorLease, LeasedExecutorManager

sys.path.insert(0, str(Path(__file__).resolve().parent))
from spec import ManagerKwargs, parse_variant  # noqa: E402

OPS = ("acquire_release", "manager_run", "lease_run")
DEFAULT_VARIANTS = ("off=metrics=False", "site=track_acquire_site=True", "owners=metrics_owners=16")
# The package defaults (metrics on); always measured, the reference of "vs on".
ON = "on"
OFF = "off"

HOLD_SECONDS = 7 * 24 * 3600.0
T = TypeVar("T")

Timed = Callable[[int], Awaitable[None]]


@dataclass
class Block:
    """One timed run of ``n`` operations of one variant."""

    op: str
    variant: str
    block: int
    position: int  # order within the block
    wall_ns_per_op: float
    cpu_ns_per_op: float


@dataclass
class Summary:
    op: str
    variant: str
    wall_ns: float  # median over blocks
    wall_min_ns: float
    wall_max_ns: float
    cpu_ns: float
    ratios: dict[str, tuple[float, float, float]] = field(default_factory=dict)
    # reference -> (median, min, max) of per-block wall ratios variant / reference


class LoadMeter:
    """CPU used by other processes (share of the machine) between start() and stop()."""

    def __init__(self) -> None:
        self._tick = os.sysconf("SC_CLK_TCK")
        self._cpus = os.cpu_count() or 1
        self._start = self._read()

    def _read(self) -> tuple[float, float, float]:
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
        busy = (sum(fields[:8]) - fields[3] - fields[4]) / self._tick
        times = os.times()
        return busy, times.user + times.system, time.monotonic()

    def foreign_share(self) -> float:
        busy0, own0, t0 = self._start
        busy1, own1, t1 = self._read()
        return max(0.0, (busy1 - busy0) - (own1 - own0)) / ((t1 - t0) * self._cpus)


def run_loop(coro: Coroutine[Any, Any, T], loop: str) -> T:
    if loop == "uvloop":
        import uvloop

        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            return runner.run(coro)
    return asyncio.run(coro)


def loadavg() -> str:
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def make_op(op: str, manager: LeasedExecutorManager, lease: ExecutorLease, owner: str) -> Timed:
    if op == "acquire_release":

        async def acquire_release(n: int) -> None:
            for _ in range(n):
                held = await manager.acquire(owner=owner)
                await held.release()

        return acquire_release
    if op == "manager_run":

        async def manager_run(n: int) -> None:
            for _ in range(n):
                await manager.run(int, owner=owner)

        return manager_run
    if op == "lease_run":

        async def lease_run(n: int) -> None:
            for _ in range(n):
                await lease.run(int)

        return lease_run
    raise ValueError(f"unknown op {op!r}")


def build_manager(name: str, kwargs: ManagerKwargs) -> LeasedExecutorManager:
    options: dict[str, Any] = {"max_pools": 2, "min_pools": 2, "workers_per_pool": 4}
    options.update(kwargs)
    return LeasedExecutorManager(name_prefix=f"mo-{name}", **options)


async def measure(
    variants: dict[str, ManagerKwargs],
    ops: Sequence[str],
    n: int,
    blocks: int,
    owner: str,
    record: Callable[[Block], None],
) -> list[Block]:
    managers = {name: build_manager(name, kwargs) for name, kwargs in variants.items()}
    for manager in managers.values():
        await manager.start()
    # lease_run runs on a lease held throughout; acquire_release and manager_run use the
    # manager's other pool.
    # Held for the whole run: far longer than the default lease (300 s).
    leases = {
        name: await m.acquire(owner=owner, lease_seconds=HOLD_SECONDS)
        for name, m in managers.items()
    }
    out: list[Block] = []
    try:
        names = list(variants)
        for op in ops:
            calls = {name: make_op(op, managers[name], leases[name], owner) for name in names}
            for name in names:  # warm-up: start the threads, fill caches and free lists
                await calls[name](max(1_000, n // 20))
            for b in range(blocks):
                shift = b % len(names)
                order = names[shift:] + names[:shift]
                for position, name in enumerate(order):
                    gc.collect()
                    c0, t0 = time.process_time_ns(), time.perf_counter_ns()
                    await calls[name](n)
                    c1, t1 = time.process_time_ns(), time.perf_counter_ns()
                    block = Block(op, name, b, position, (t1 - t0) / n, (c1 - c0) / n)
                    out.append(block)
                    record(block)
                    print(
                        f"  {op:<16} block {b + 1}/{blocks} {name:<8} "
                        f"{(t1 - t0) / n:8.0f} ns/op wall {(c1 - c0) / n:8.0f} ns/op CPU",
                        file=sys.stderr,
                        flush=True,
                    )
    finally:
        for lease in leases.values():
            await lease.release()
        for manager in managers.values():
            await manager.stop()
    return out


def summarize(results: list[Block], variants: Sequence[str]) -> list[Summary]:
    summaries: list[Summary] = []
    for op in dict.fromkeys(r.op for r in results):
        by = {(r.variant, r.block): r for r in results if r.op == op}  # (variant, block) -> Block
        for name in variants:
            mine = [r for (v, _), r in by.items() if v == name]
            walls = [r.wall_ns_per_op for r in mine]
            summary = Summary(
                op,
                name,
                statistics.median(walls),
                min(walls),
                max(walls),
                statistics.median(r.cpu_ns_per_op for r in mine),
            )
            for ref in (OFF, ON):
                if ref == name or ref not in variants:
                    continue
                ratios = [
                    r.wall_ns_per_op / by[(ref, r.block)].wall_ns_per_op
                    for r in mine
                    if (ref, r.block) in by
                ]
                summary.ratios[ref] = (statistics.median(ratios), min(ratios), max(ratios))
            summaries.append(summary)
    return summaries


def table(summaries: list[Summary]) -> list[str]:
    lines = [
        "| op | variant | wall ns/op (min–max) | CPU ns/op | vs off: ratio (range) "
        "| vs on: ratio (range) |",
        "|---|---|---|---|---|---|",
    ]
    for s in summaries:
        cells = [
            s.op,
            s.variant,
            f"{s.wall_ns:,.0f} ({s.wall_min_ns:,.0f}–{s.wall_max_ns:,.0f})",
            f"{s.cpu_ns:,.0f}",
        ]
        for ref in (OFF, ON):
            if ref in s.ratios:
                med, lo, hi = s.ratios[ref]
                cells.append(f"{med:.3f} ({lo:.3f}–{hi:.3f})")
            else:
                cells.append("–")
        lines.append("| " + " | ".join(cells) + " |")
    return lines


# ------------------------------------------------------------- instruction counts
# Timing cannot resolve a few per cent on a shared 2-vCPU VM (blocks of the same variant
# vary by +-15 %). Instructions executed per operation (every thread of the process,
# counted by valgrind's cachegrind) show the work the metrics add without that noise;
# they do not show wake-up latencies or cache effects. Each (op, variant) runs in a
# child process twice, with --n and 2 x --n operations after the same warm-up; the
# difference divided by --n is the count per operation (start-up, imports and warm-up
# cancel out). PYTHONHASHSEED=0 keeps the two runs' dict layouts identical.
WARMUP_OPS = 2_000


async def child(kwargs: ManagerKwargs, op: str, n: int, owner: str) -> None:
    """One variant, one op: warm up, then ``n`` operations (run under valgrind)."""
    manager = build_manager("child", kwargs)
    await manager.start()
    lease = await manager.acquire(owner=owner, lease_seconds=HOLD_SECONDS)
    try:
        call = make_op(op, manager, lease, owner)
        await call(WARMUP_OPS)
        await call(n)
    finally:
        await lease.release()
        await manager.stop()


def instructions(argv_child: list[str]) -> int:
    """Instructions executed by ``python metrics_overhead.py --child ...`` (all threads)."""
    cmd = [
        "valgrind",
        "--tool=cachegrind",
        "--cache-sim=no",
        "--cachegrind-out-file=/dev/null",
        sys.executable,
        str(Path(__file__).resolve()),
        *argv_child,
    ]
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    for line in proc.stderr.splitlines():
        if "I refs:" in line or "I   refs:" in line:
            return int(line.rsplit(":", 1)[1].strip().replace(",", ""))
    raise RuntimeError(f"no instruction count from valgrind:\n{proc.stderr[-2000:]}")


def count_instructions(
    args: argparse.Namespace, variants: dict[str, ManagerKwargs], ops: Sequence[str]
) -> int:
    print(f"# instructions per operation (cachegrind), {args.n} vs {2 * args.n} operations")
    lines = [
        "| op | variant | instructions/op | vs off | vs on |",
        "|---|---|---|---|---|",
    ]
    for op in ops:
        per_op: dict[str, float] = {}
        for name in variants:
            base = ["--child", name, "--ops", op, "--loop", args.loop, "--owner", args.owner]
            base += ["--variants", *args.variants]
            base += ["--import-anyio"] if args.import_anyio else []
            counts = [instructions([*base, "--n", str(k * args.n)]) for k in (1, 2)]
            per_op[name] = (counts[1] - counts[0]) / args.n
            print(f"  {op:<16} {name:<8} {per_op[name]:,.0f} instructions/op", file=sys.stderr)
        for name, value in per_op.items():
            cells = [op, name, f"{value:,.0f}"]
            for ref in (OFF, ON):
                if ref == name or ref not in per_op:
                    cells.append("–")
                else:
                    diff = value - per_op[ref]
                    cells.append(f"{value / per_op[ref]:.3f} ({diff:+,.0f})")
            lines.append("| " + " | ".join(cells) + " |")
    print("\n".join(lines), flush=True)
    return 0


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--n", type=int, default=200_000, help="operations per block")
    parser.add_argument("--blocks", type=int, default=7, help="blocks (medians over them)")
    parser.add_argument(
        "--ops", default=",".join(OPS), help=f"comma-separated, among {', '.join(OPS)}"
    )
    parser.add_argument("--loop", choices=("asyncio", "uvloop"), default="asyncio")
    parser.add_argument(
        "--variants",
        nargs="+",
        default=list(DEFAULT_VARIANTS),
        metavar="NAME=KEY=VALUE[,KEY=VALUE...]",
        help=f"measured besides {ON!r} (the defaults); default: {' '.join(DEFAULT_VARIANTS)}",
    )
    parser.add_argument("--owner", default="bench", help="owner named by every call")
    parser.add_argument("--cpu", type=int, help="pin the process to this CPU")
    parser.add_argument("--import-anyio", action="store_true", help="import anyio first")
    parser.add_argument(
        "--instructions",
        action="store_true",
        help="count instructions per operation under valgrind instead of timing "
        "(--n operations vs 2 x --n; try --n 10000)",
    )
    parser.add_argument("--child", metavar="NAME", help=argparse.SUPPRESS)
    parser.add_argument(
        "--json", type=Path, help="append every block here as it is timed (JSON lines)"
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    ops = [op.strip() for op in args.ops.split(",") if op.strip()]
    unknown = [op for op in ops if op not in OPS]
    if unknown or not ops:
        sys.exit(f"error: unknown --ops {unknown}; choose from {', '.join(OPS)}")
    variants: dict[str, ManagerKwargs] = {ON: {}}
    for text in args.variants:
        try:
            variant = parse_variant(text)
        except ValueError as exc:
            sys.exit(f"error: --variants {exc}")
        if variant.name in variants:
            sys.exit(f"error: --variants: {variant.name!r} given twice (or is {ON!r})")
        variants[variant.name] = variant.kwargs

    if args.cpu is not None:
        os.sched_setaffinity(0, {args.cpu})
    if args.import_anyio:
        import anyio  # noqa: F401

    if args.child:
        coro = child(variants[args.child], ops[0], args.n, args.owner)
        run_loop(coro, args.loop)
        return 0
    import leasepool
    from leasepool import _engine

    engine = Path(_engine.__file__ or "?")
    built = dt.datetime.fromtimestamp(engine.stat().st_mtime, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
    digest = hashlib.sha256(engine.read_bytes()).hexdigest()[:12]
    pinned = f"pinned to CPU {args.cpu}" if args.cpu is not None else "not pinned"
    head = [
        f"# metrics_overhead.py {' '.join(sys.argv[1:] if argv is None else argv)}",
        f"# leasepool {metadata.version('leasepool')} ({leasepool.__file__}; engine built "
        f"{built} UTC, sha256 {digest}); "
        f"Python {platform.python_version()}; loop {args.loop}; {os.cpu_count()} CPUs, "
        f"{pinned}; anyio imported: {'anyio' in sys.modules}",
        "# variants: "
        + "; ".join(
            f"{name}: " + (", ".join(f"{k}={v!r}" for k, v in kw.items()) or "defaults")
            for name, kw in variants.items()
        ),
        f"# n={args.n} per block, {args.blocks} blocks; load average before: {loadavg()}",
    ]
    print("\n".join(head), flush=True)
    if args.instructions:
        return count_instructions(args, variants, ops)
    meter = LoadMeter()
    t0 = time.monotonic()
    tags = {
        "run": dt.datetime.now(dt.UTC).strftime("%Y%m%d-%H%M%S"),
        "loop": args.loop,
        "n": args.n,
        "cpu": args.cpu,
        "anyio": "anyio" in sys.modules,
        "engine_sha256": digest,
    }

    def record(block: Block) -> None:
        if args.json:
            with args.json.open("a", encoding="utf-8") as f:
                f.write(json.dumps({**tags, **asdict(block)}) + "\n")

    results = run_loop(measure(variants, ops, args.n, args.blocks, args.owner, record), args.loop)
    print(
        f"# took {time.monotonic() - t0:.0f} s; other processes used "
        f"{meter.foreign_share():.1%} of the machine meanwhile; load average after: "
        f"{loadavg()}"
    )
    print("\n".join(table(summarize(results, list(variants)))), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
