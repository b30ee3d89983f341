#!/usr/bin/env python3
"""Admission-control benchmark: overload at 2x capacity, and a noisy neighbour.

    python benchmarks/admission.py                      # 10 s cells, 3 repeats, both loops
    python benchmarks/admission.py --seconds 4 --repeats 1 --out /tmp/adm.md
    python benchmarks/admission.py --report benchmarks/results/admission-<time>.jsonl

Every call is a blocking ``time.sleep(service)`` (10 ms by default) on a manager with
``max_pools=1, workers_per_pool=4``: 4 slots, a capacity of 400 calls/s.

* **overload**: an open-loop, seeded Poisson arrival process at ``--load`` x capacity
  (2x: 800/s) for ``--seconds``; every arrival is one ``await manager.run(...)`` task.
  Variants: ``unbounded`` (``max_waiters=None``, ``timeout=--timeout``), ``max_waiters``
  (``max_waiters=2 x slots``, shed with ``LeaseQueueFullError``), ``fail_fast``
  (``wait=False``), and the reference ``anyio`` (``anyio.to_thread.run_sync`` with a
  ``CapacityLimiter(4)``, the same give-up time on the wait only).
* **noisy neighbour**: owner A keeps ``--flood`` calls outstanding (a closed loop: a
  standing queue of ``--flood - slots`` waiters), owner B sends Poisson arrivals at
  ``--trickle`` per second; everybody waits. Variants: strict FIFO (the default),
  ``fair_share=True``, and ``owner_limit=slots - 1``.

Times are taken with ``time.perf_counter()``: the request just before the call, the
start and end inside the called function (on the worker thread), the completion when
the awaiting task resumes. Each cell runs in a fresh event loop on a fresh manager
that has been warmed up (threads started, the ``retry_after`` estimator fed). One JSON
line per cell goes to ``benchmarks/results/admission-<time>.jsonl``; the markdown
report (medians over the repeats) to ``--out``. Standard library + leasepool (+ anyio,
uvloop when importable). Linux only (reads /proc).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import gc
import json
import math
import os
import platform
import random
import resource
import shlex
import statistics
import sys
import time
from bisect import bisect_right
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import leasepool
from leasepool import (
    LeaseAcquireTimeoutError,
    LeasedExecutorManager,
    LeaseQueueFullError,
    LeaseUnavailableError,
)

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
RESULTS = BENCH / "results"
DEFAULT_OUT = REPO / "docs" / "admission-benchmark.md"

OVERLOAD_VARIANTS = ("unbounded", "max_waiters", "fail_fast", "anyio")
NOISY_VARIANTS = ("fifo", "fair_share", "owner_limit")


def log(msg: str = "") -> None:
    print(msg, flush=True)


# ------------------------------------------------------------------------- the call


def service(seconds: float) -> tuple[float, float]:
    """The blocking call: its start and end as the worker thread sees them."""
    start = time.perf_counter()
    time.sleep(seconds)
    return start, time.perf_counter()


@dataclass
class Call:
    """One request and what became of it (perf_counter seconds)."""

    owner: str
    req: float
    outcome: str = "pending"  # ok | full | refused | timeout | error
    start: float = math.nan
    end: float = math.nan
    done: float = math.nan
    retry_after: float = math.nan


Submit = Callable[[Call], Awaitable[None]]


def leasepool_submit(
    manager: LeasedExecutorManager, seconds: float, *, wait: bool, timeout: float | None
) -> Submit:
    async def submit(call: Call) -> None:
        call.req = time.perf_counter()
        try:
            call.start, call.end = await manager.run(
                service, seconds, owner=call.owner, wait=wait, timeout=timeout
            )
            call.outcome = "ok"
        except LeaseQueueFullError as err:
            call.outcome, call.retry_after = "full", _hint(err.retry_after)
        except LeaseUnavailableError as err:
            call.outcome, call.retry_after = "refused", _hint(err.retry_after)
        except LeaseAcquireTimeoutError as err:
            call.outcome, call.retry_after = "timeout", _hint(err.retry_after)
        except Exception:  # counted, never hidden: the report shows the error count
            call.outcome = "error"
        call.done = time.perf_counter()

    return submit


def _hint(value: float | None) -> float:
    return math.nan if value is None else float(value)


def anyio_submit(limiter: Any, seconds: float, timeout: float) -> Submit:
    import anyio
    import anyio.to_thread

    async def submit(call: Call) -> None:
        call.req = time.perf_counter()
        result: tuple[float, float] | None = None
        try:
            # The deadline can only end the wait: once the thread runs, run_sync is
            # shielded (abandon_on_cancel=False), as leasepool's acquire timeout.
            with anyio.move_on_after(timeout):
                result = await anyio.to_thread.run_sync(service, seconds, limiter=limiter)
        except Exception:
            call.outcome = "error"
        else:
            if result is None:
                call.outcome = "timeout"
            else:
                call.start, call.end = result
                call.outcome = "ok"
        call.done = time.perf_counter()

    return submit


# ------------------------------------------------------------------------- drivers


def poisson_arrivals(rate: float, seconds: float, seed: int) -> list[float]:
    """Arrival offsets (s) of a Poisson process of ``rate``/s over ``seconds``."""
    rng = random.Random(seed)
    out: list[float] = []
    t = rng.expovariate(rate)
    while t < seconds:
        out.append(t)
        t += rng.expovariate(rate)
    return out


async def open_loop(
    arrivals: Sequence[float], t0: float, owner: str, submit: Submit, calls: list[Call]
) -> list[float]:
    """Starts one task per arrival at its time (late arrivals at once): open loop.

    Returns how late each arrival was issued (s), to show the generator kept up.
    """
    tasks: set[asyncio.Task[None]] = set()
    lags: list[float] = []
    for offset in arrivals:
        delay = t0 + offset - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        lags.append(max(0.0, time.perf_counter() - (t0 + offset)))
        call = Call(owner, math.nan)
        calls.append(call)
        task = asyncio.ensure_future(submit(call))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    if tasks:
        await asyncio.gather(*tasks)
    return lags


async def closed_loop(
    concurrency: int, until: float, owner: str, submit: Submit, calls: list[Call]
) -> None:
    """``concurrency`` callers, each issuing its next call when the last one ends."""

    async def caller() -> None:
        while time.perf_counter() < until:
            call = Call(owner, math.nan)
            calls.append(call)
            await submit(call)

    await asyncio.gather(*(caller() for _ in range(concurrency)))


async def warm_up(submit: Submit, count: int) -> None:
    """Starts every worker thread and feeds the hold-time estimator."""
    await asyncio.gather(*(submit(Call("warmup", math.nan)) for _ in range(count)))


# ------------------------------------------------------------------------- statistics


def pct(values: Sequence[float], q: float) -> float:
    """The q-quantile (0..1), nearest rank; NaN when empty."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(0, math.ceil(q * len(ordered)) - 1)
    return ordered[min(rank, len(ordered) - 1)]


def mean(values: Sequence[float]) -> float:
    return statistics.fmean(values) if values else math.nan


def capacity_freed_after(calls: Sequence[Call]) -> list[tuple[float, float]]:
    """For each shed call: (its retry_after, the time until capacity actually freed).

    "Actually freed" is measured as the engine's estimator means it: with Q callers
    waiting when the caller was refused, its turn would have come at the (Q+1)-th end
    of a call after the refusal. Q is rebuilt from the records: calls that had asked
    and neither started nor given up by then.
    """
    queued = [c for c in calls if c.outcome in ("ok", "timeout")]
    asked = sorted(c.req for c in queued)
    left = sorted(c.start if c.outcome == "ok" else c.done for c in queued)
    ends = sorted(c.end for c in calls if c.outcome == "ok")
    pairs: list[tuple[float, float]] = []
    for c in calls:
        if c.outcome not in ("full", "refused", "timeout") or math.isnan(c.retry_after):
            continue
        t = c.done
        waiting = bisect_right(asked, t) - bisect_right(left, t)
        if c.outcome == "timeout":
            waiting = max(0, waiting - 1)  # not itself: it just left
        k = bisect_right(ends, t) + max(0, waiting)
        if k < len(ends):
            pairs.append((c.retry_after, ends[k] - t))
    return pairs


def summarize(calls: Sequence[Call], t0: float, seconds: float) -> dict[str, float]:
    """The per-cell numbers for a set of calls (times in ms, rates per second)."""
    ok = [c for c in calls if c.outcome == "ok"]
    shed = [c for c in calls if c.outcome in ("full", "refused", "timeout")]
    in_window = [c for c in ok if t0 <= c.end <= t0 + seconds]
    waits = [(c.start - c.req) * 1e3 for c in ok]
    e2e = [(c.done - c.req) * 1e3 for c in ok]
    pairs = capacity_freed_after(calls)
    hinted = [c for c in shed if not math.isnan(c.retry_after)]
    n = len(calls)
    return {
        "arrivals": float(n),
        "ok": float(len(ok)),
        "shed": float(len(shed)),
        "errors": float(sum(c.outcome == "error" for c in calls)),
        "shed_pct": 100.0 * len(shed) / n if n else math.nan,
        "goodput": len(in_window) / seconds,
        "wait_p50_ms": pct(waits, 0.50),
        "wait_p99_ms": pct(waits, 0.99),
        "wait_max_ms": max(waits) if waits else math.nan,
        "e2e_p50_ms": pct(e2e, 0.50),
        "e2e_p99_ms": pct(e2e, 0.99),
        "shed_after_p50_ms": pct([(c.done - c.req) * 1e3 for c in shed], 0.50),
        # Every shed caller's hint, and the hint against what happened for the shed
        # callers whose turn can be measured (it came before the records end).
        "retry_after_all_ms": mean([c.retry_after * 1e3 for c in hinted]),
        "pair_retry_ms": mean([p[0] * 1e3 for p in pairs]),
        "pair_freed_ms": mean([p[1] * 1e3 for p in pairs]),
        "pair_pct": 100.0 * len(pairs) / len(hinted) if hinted else math.nan,
    }


class LoadMeter:
    """CPU used by other processes (share of the machine), as run.py measures it."""

    def __init__(self) -> None:
        self._tick = os.sysconf("SC_CLK_TCK")
        self._cpus = os.cpu_count() or 1
        self._start = self._sample()

    def _sample(self) -> tuple[float, float, float]:
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
        busy = (sum(fields[:8]) - fields[3] - fields[4]) / self._tick
        me = resource.getrusage(resource.RUSAGE_SELF)
        return busy, me.ru_utime + me.ru_stime, time.monotonic()

    def foreign_share(self) -> float:
        busy0, own0, t0 = self._start
        busy1, own1, t1 = self._sample()
        return max(0.0, (busy1 - busy0) - (own1 - own0)) / (max(t1 - t0, 1e-9) * self._cpus)

    def own_share(self) -> float:
        _, own0, t0 = self._start
        _, own1, t1 = self._sample()
        return (own1 - own0) / (max(t1 - t0, 1e-9) * self._cpus)


# ------------------------------------------------------------------------- cells


@dataclass(frozen=True)
class Config:
    seconds: float
    service: float
    slots: int
    load: float
    timeout: float
    flood: int
    trickle: float
    seed: int

    @property
    def capacity(self) -> float:
        return self.slots / self.service


def new_manager(**admission: Any) -> LeasedExecutorManager:
    # One pool of `slots` workers: manager.run holds one worker slot per call.
    return LeasedExecutorManager(
        max_pools=1,
        min_pools=1,
        workers_per_pool=admission.pop("slots"),
        default_lease_seconds=30.0,
        **admission,
    )


async def overload_cell(cfg: Config, variant: str, seed: int) -> dict[str, Any]:
    arrivals = poisson_arrivals(cfg.load * cfg.capacity, cfg.seconds, seed)
    manager: LeasedExecutorManager | None = None
    if variant == "anyio":
        import anyio

        submit = anyio_submit(anyio.CapacityLimiter(cfg.slots), cfg.service, cfg.timeout)
    else:
        max_waiters = 2 * cfg.slots if variant == "max_waiters" else None
        manager = new_manager(slots=cfg.slots, max_waiters=max_waiters)
        await manager.start()
        submit = leasepool_submit(
            manager,
            cfg.service,
            wait=variant != "fail_fast",
            timeout=cfg.timeout if variant == "unbounded" else None,
        )
    try:
        await warm_up(submit, 4 * cfg.slots)
        gc.collect()
        meter = LoadMeter()
        calls: list[Call] = []
        t0 = time.perf_counter()
        lags = await open_loop(arrivals, t0, "client", submit, calls)
        wall = time.perf_counter() - t0
        metrics = summarize(calls, t0, cfg.seconds)
        metrics["offered_per_s"] = len(arrivals) / cfg.seconds
        metrics["arrival_lag_p99_ms"] = pct(lags, 0.99) * 1e3
        metrics["wall_s"] = wall
        background, own = meter.foreign_share(), meter.own_share()
    finally:
        if manager is not None:
            await manager.stop()
    return {"metrics": metrics, "background": background, "own_cpu": own}


async def noisy_cell(cfg: Config, variant: str, seed: int) -> dict[str, Any]:
    admission: dict[str, Any] = {"slots": cfg.slots}
    if variant == "fair_share":
        admission["fair_share"] = True
    elif variant == "owner_limit":
        admission["owner_limit"] = cfg.slots - 1
    manager = new_manager(**admission)
    await manager.start()
    submit = leasepool_submit(manager, cfg.service, wait=True, timeout=None)
    try:
        await warm_up(submit, 4 * cfg.slots)
        gc.collect()
        meter = LoadMeter()
        a_calls: list[Call] = []
        b_calls: list[Call] = []
        t0 = time.perf_counter()
        flood = asyncio.ensure_future(
            closed_loop(cfg.flood, t0 + cfg.seconds, "A", submit, a_calls)
        )
        # B starts once A's standing queue has formed (one service time in).
        b_arrivals = poisson_arrivals(cfg.trickle, cfg.seconds - cfg.service, seed)
        await open_loop([cfg.service + x for x in b_arrivals], t0, "B", submit, b_calls)
        await flood
        wall = time.perf_counter() - t0
        a = summarize(a_calls, t0, cfg.seconds)
        b = summarize(b_calls, t0, cfg.seconds)
        metrics = {
            "b_calls": b["ok"],
            "b_wait_p50_ms": b["wait_p50_ms"],
            "b_wait_p99_ms": b["wait_p99_ms"],
            "b_wait_max_ms": b["wait_max_ms"],
            "a_goodput": a["goodput"],
            "a_wait_p50_ms": a["wait_p50_ms"],
            "goodput": a["goodput"] + b["goodput"],
            "errors": a["errors"] + b["errors"],
            "wall_s": wall,
        }
        background, own = meter.foreign_share(), meter.own_share()
    finally:
        await manager.stop()
    return {"metrics": metrics, "background": background, "own_cpu": own}


def run_cell(scenario: str, variant: str, loop_name: str, cfg: Config, seed: int) -> dict[str, Any]:
    cell = overload_cell if scenario == "overload" else noisy_cell
    coro: Coroutine[Any, Any, dict[str, Any]] = cell(cfg, variant, seed)
    if loop_name == "uvloop":
        import uvloop

        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            return runner.run(coro)
    with asyncio.Runner() as runner:
        return runner.run(coro)


# ------------------------------------------------------------------------- report


@dataclass
class Run:
    command: str
    started: str
    config: dict[str, Any]
    environment: dict[str, Any]
    cells: list[dict[str, Any]] = field(default_factory=list)


def environment() -> dict[str, Any]:
    versions: dict[str, str] = {}
    for dist in ("leasepool", "anyio", "uvloop"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = "missing"
    cpu = platform.processor() or "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {
        "python": f"{platform.python_version()} ({platform.python_implementation()})",
        "platform": platform.platform(),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "versions": versions,
        "leasepool_file": leasepool.__file__,
        "executable": sys.executable,
        "loadavg_before": Path("/proc/loadavg").read_text().split()[:3],
    }


def medians(cells: Sequence[dict[str, Any]], key: str) -> tuple[float, float, float]:
    """(median, min, max) of one metric over the repeats."""
    values = [c["metrics"][key] for c in cells if not math.isnan(c["metrics"][key])]
    if not values:
        return math.nan, math.nan, math.nan
    return statistics.median(values), min(values), max(values)


def fmt(value: float, digits: int = 3) -> str:
    if math.isnan(value):
        return "–"
    if value == 0:
        return "0"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.{digits}g}"


def background_text(cells: Sequence[dict[str, Any]]) -> str:
    parts = []
    for scenario in ("overload", "noisy"):
        shares = [100 * c["background"] for c in cells if c["scenario"] == scenario]
        if shares:
            median, top = statistics.median(shares), max(shares)
            parts.append(f"{scenario} cells median {median:.1f}%, max {top:.1f}%")
    return "; ".join(parts)


def share_text(cells: Sequence[dict[str, Any]], key: str) -> str:
    text = cell_text(cells, key)
    return text if text == "–" else text + "%"


def cell_text(cells: Sequence[dict[str, Any]], key: str, spread: bool = False) -> str:
    mid, lo, hi = medians(cells, key)
    text = fmt(mid)
    if spread and not math.isnan(mid) and len(cells) > 1:
        text += f" ({fmt(lo)}–{fmt(hi)})"
    return text


OVERLOAD_LABELS = {
    "unbounded": "unbounded wait (`max_waiters=None`, `timeout={timeout:g}`)",
    "max_waiters": "bounded queue (`max_waiters={bound}`)",
    "fail_fast": "fail fast (`wait=False`)",
    "anyio": "anyio `CapacityLimiter({slots})` + `to_thread.run_sync` "
    "(give up after {timeout:g} s)",
}
NOISY_LABELS = {
    "fifo": "strict FIFO (default)",
    "fair_share": "`fair_share=True`",
    "owner_limit": "FIFO + `owner_limit={limit}`",
}


def write_report(run: Run, out: Path, jsonls: Sequence[Path]) -> None:
    cfg = run.config
    env = run.environment
    loops = sorted({c["loop"] for c in run.cells}, key=("asyncio", "uvloop").index)
    by: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for c in run.cells:
        by.setdefault((c["scenario"], c["variant"], c["loop"]), []).append(c)
    repeats = max((len(v) for v in by.values()), default=0)
    slots = int(cfg["slots"])
    labels = {"timeout": cfg["timeout"], "bound": 2 * slots, "slots": slots, "limit": slots - 1}
    capacity = slots / cfg["service"]
    lines = [
        "# Admission control under load",
        "",
        "_Generated by `benchmarks/admission.py`; do not edit the numbers by hand, rerun "
        "the command below. What each column means is at the end._",
        "",
        f"- **Command** (from the repository root): `{run.command}`",
        f"- **Date**: {run.started}; {len(run.cells)} cells, {repeats} repeat(s) of each",
        f"- **Machine**: {env['cpu']}; {env['cores']} cores; {env['platform']}",
        f"- **Python**: {env['python']}; leasepool {env['versions']['leasepool']} "
        f"(`{env['leasepool_file']}`), anyio {env['versions']['anyio']}, uvloop "
        f"{env['versions']['uvloop']}",
        f"- **Background load** (CPU used by other processes during a cell, share of the "
        f"machine): {background_text(run.cells)}; load average before the run "
        f"{' '.join(env['loadavg_before'])}",
        f"- **Set-up**: each call is `time.sleep({cfg['service'] * 1e3:g} ms)` through "
        f"`manager.run(...)` on `LeasedExecutorManager(max_pools=1, min_pools=1, "
        f"workers_per_pool={slots})`: {slots} slots, capacity {capacity:,.0f} calls/s. "
        f"Cells of {cfg['seconds']:g} s; seeded Poisson arrivals (seed {cfg['seed']} + "
        f"repeat); medians over the repeats, (min–max) where shown.",
        f"- **Raw data**: {', '.join(f'`{shown_path(j)}`' for j in jsonls)} (git-ignored)",
        "",
    ]
    overload = [v for v in OVERLOAD_VARIANTS if any(k[:2] == ("overload", v) for k in by)]
    if overload:
        lines += [
            f"## Overload: {cfg['load']:g}× capacity ({cfg['load'] * capacity:,.0f} "
            "arrivals/s, open loop)",
            "",
            "| variant | loop | offered /s | goodput /s | shed | wait p50 (ms) | "
            "wait p99 (ms) | e2e p99 ok (ms) | refused after p50 (ms) | retry_after mean, "
            "all shed (ms) | paired: retry_after → capacity freed after, mean (ms) | paired |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for variant in overload:
            for loop in loops:
                cells = by.get(("overload", variant, loop), [])
                if not cells:
                    continue
                lines.append(
                    f"| {OVERLOAD_LABELS[variant].format(**labels)} | {loop} | "
                    f"{cell_text(cells, 'offered_per_s')} | {cell_text(cells, 'goodput')} | "
                    f"{share_text(cells, 'shed_pct')} | {cell_text(cells, 'wait_p50_ms')} | "
                    f"{cell_text(cells, 'wait_p99_ms', True)} | "
                    f"{cell_text(cells, 'e2e_p99_ms')} | "
                    f"{cell_text(cells, 'shed_after_p50_ms')} | "
                    f"{cell_text(cells, 'retry_after_all_ms')} | "
                    f"{cell_text(cells, 'pair_retry_ms')} → {cell_text(cells, 'pair_freed_ms')} | "
                    f"{share_text(cells, 'pair_pct')} |"
                )
        lines.append("")
    noisy = [v for v in NOISY_VARIANTS if any(k[:2] == ("noisy", v) for k in by)]
    if noisy:
        lines += [
            f"## Noisy neighbour: A keeps {cfg['flood']} calls outstanding, B sends "
            f"{cfg['trickle']:g}/s",
            "",
            "| mode | loop | B calls | B wait p50 (ms) | B wait p99 (ms) | B wait max (ms) | "
            "A wait p50 (ms) | A goodput /s | total goodput /s |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for variant in noisy:
            for loop in loops:
                cells = by.get(("noisy", variant, loop), [])
                if not cells:
                    continue
                lines.append(
                    f"| {NOISY_LABELS[variant].format(**labels)} | {loop} | "
                    f"{cell_text(cells, 'b_calls')} | {cell_text(cells, 'b_wait_p50_ms')} | "
                    f"{cell_text(cells, 'b_wait_p99_ms', True)} | "
                    f"{cell_text(cells, 'b_wait_max_ms')} | "
                    f"{cell_text(cells, 'a_wait_p50_ms')} | {cell_text(cells, 'a_goodput')} | "
                    f"{cell_text(cells, 'goodput')} |"
                )
        lines.append("")
    errors = sum(int(c["metrics"].get("errors", 0)) for c in run.cells)
    lags = [c["metrics"]["arrival_lag_p99_ms"] for c in run.cells if c["scenario"] == "overload"]
    lag = f"{fmt(max(lags))} ms" if lags else "–"
    lines += [
        "## Columns",
        "",
        "- **wait**: from the request (just before `manager.run`) to the call's start, "
        "read inside the called function on the worker thread; admitted calls only.",
        "- **goodput**: calls that completed inside the cell's window, per second of window.",
        "- **shed**: share of arrivals refused (`LeaseQueueFullError`, "
        "`LeaseUnavailableError` from `wait=False`) or given up on "
        "(`LeaseAcquireTimeoutError`; for anyio the deadline passing while waiting for the "
        "limiter). **refused after**: how long a shed caller waited for its answer.",
        "- **e2e p99 ok**: request to result, as the awaiting task sees it, for calls that ran.",
        "- **retry_after mean, all shed**: the mean `err.retry_after` the shed callers got. "
        "**paired**: the engine's hint against what happened, for the shed callers whose "
        "turn can be measured (*paired* is their share): with Q callers waiting at the "
        "refusal, the caller's turn would have come at the (Q+1)-th end of a call after "
        "it (Q rebuilt from the records). The estimator is `H × (Q + 1) / slots` with `H` "
        "a moving mean of hold times.",
        "- **B / A**: owner B's and owner A's calls in the noisy-neighbour cells; A is a "
        f"closed loop of {cfg['flood']} callers, so {cfg['flood'] - slots} of its calls "
        "wait at any time.",
        f"- Errors other than the expected refusals: {errors}.",
        "",
        "## Caveats",
        "",
        f"- A {env['cores']}-core VM: the event loop, the arrival generator and the worker "
        "threads share it (the background load above is what other processes used). The "
        f"generator issued arrivals at most {lag} late (p99, worst cell): the arrival "
        "process stayed open-loop.",
        "- The calls sleep, so they use no CPU: the numbers isolate queueing and admission. "
        "CPU-bound calls would also compete with the event loop for the GIL.",
        "- Goodput counts completions inside the window only. Without a bound the backlog "
        "keeps growing, so the unbounded rows still complete about `capacity` calls/s, "
        "but each admitted call first waited up to the give-up time, and the backlog "
        "left at the end (drained or timed out after the window) is not counted.",
        "- Fail fast serves less than capacity: a slot freed between two arrivals idles "
        "until the next one, since nobody waits for it.",
        "- *Capacity freed after* is rebuilt from the client's own records (Q = calls that "
        "had asked and neither started nor given up). For the unbounded rows the callers "
        "ahead may also give up, so the real turn can come sooner than the measure; for "
        "fail fast Q = 0 and the measure is the next end of a call. For the unbounded "
        "rows almost no pair can be measured: the callers ahead mostly give up too, so "
        "fewer than Q calls end before the records do; the hint there (Q of about two "
        "thousand, times `H / slots`) overstates the wait of a caller that retries, for "
        "the same reason.",
        "- Owner B sends few calls (rate × window per repeat), so B's p99 is close to B's "
        "maximum of each repeat; the table shows the median over repeats and the range.",
        "- Owner A is a closed loop (a constant standing queue) instead of a fixed rate "
        "above capacity: with a rate above capacity the FIFO queue, and B's FIFO wait, "
        "would grow with the length of the run.",
        "- anyio has no bound on waiters and no estimate: its row is the unbounded "
        "reference, with the same give-up deadline (`anyio.move_on_after`) on the wait "
        "(the thread call itself is shielded once it runs, as in leasepool).",
        "",
    ]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines))


def shown_path(path: Path) -> Path:
    return path.relative_to(REPO) if path.is_relative_to(REPO) else path


def load_runs(paths: Sequence[Path]) -> Run:
    """The runs saved in ``paths``, merged: a later file's scenarios replace earlier ones."""
    merged: Run | None = None
    for path in paths:
        with path.open() as f:
            run = Run(**json.loads(f.readline()))
            run.cells = [json.loads(line) for line in f if line.strip()]
        if merged is None:
            merged = run
            continue
        redone = {c["scenario"] for c in run.cells}
        kept = [c for c in merged.cells if c["scenario"] not in redone]
        merged.cells = kept + run.cells
        merged.command += f"`, then `{run.command}"
        merged.started += f", {run.started}"
    if merged is None:
        raise SystemExit("--report needs at least one file")
    return merged


# ------------------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--seconds", type=float, default=10.0, help="length of a cell (s)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--loops", default="asyncio,uvloop")
    p.add_argument("--scenarios", default="overload,noisy")
    p.add_argument("--variants", default="", help="comma-separated subset (default all)")
    p.add_argument("--service-ms", type=float, default=10.0, help="blocking time of a call")
    p.add_argument("--slots", type=int, default=4, help="workers of the one pool")
    p.add_argument("--load", type=float, default=2.0, help="overload arrivals / capacity")
    p.add_argument("--timeout", type=float, default=5.0, help="give-up time while waiting")
    p.add_argument("--flood", type=int, default=64, help="owner A's outstanding calls")
    p.add_argument("--trickle", type=float, default=5.0, help="owner B's arrivals per s")
    p.add_argument("--seed", type=int, default=12)
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    p.add_argument(
        "--report",
        type=Path,
        nargs="+",
        help="rebuild the report from saved jsonl files (a later file's scenarios replace "
        "an earlier one's)",
    )
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    out: Path = args.out.resolve()
    if args.report:
        paths = [p.resolve() for p in args.report]
        write_report(load_runs(paths), out, paths)
        log(f"wrote {out}")
        return 0
    cfg = Config(
        seconds=args.seconds,
        service=args.service_ms / 1e3,
        slots=args.slots,
        load=args.load,
        timeout=args.timeout,
        flood=args.flood,
        trickle=args.trickle,
        seed=args.seed,
    )
    loops = [x for x in args.loops.split(",") if x]
    wanted = {v for v in args.variants.split(",") if v}
    plan: list[tuple[str, str]] = []
    for scenario in [s for s in args.scenarios.split(",") if s]:
        variants = OVERLOAD_VARIANTS if scenario == "overload" else NOISY_VARIANTS
        plan += [(scenario, v) for v in variants if not wanted or v in wanted]
    shown = ["python", "benchmarks/admission.py", *(sys.argv[1:] if argv is None else argv)]
    run = Run(
        command=shlex.join(shown),
        started=dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        config=asdict(cfg),
        environment=environment(),
    )
    RESULTS.mkdir(parents=True, exist_ok=True)
    jsonl = RESULTS / f"admission-{dt.datetime.now():%Y%m%d-%H%M%S}.jsonl"
    head = {k: v for k, v in asdict(run).items() if k != "cells"}
    with jsonl.open("w") as f:
        f.write(json.dumps(head) + "\n")
    log(f"{len(plan) * len(loops) * args.repeats} cells of {cfg.seconds:g} s -> {jsonl}")
    for repeat in range(args.repeats):
        for loop_name in loops:
            # Rotate the order from repeat to repeat so drift spreads over the variants.
            shift = repeat % len(plan)
            for scenario, variant in plan[shift:] + plan[:shift]:
                result = run_cell(scenario, variant, loop_name, cfg, args.seed + repeat)
                cell = {"repeat": repeat, "scenario": scenario, "variant": variant}
                cell |= {"loop": loop_name, **result}
                run.cells.append(cell)
                with jsonl.open("a") as f:
                    f.write(json.dumps(cell) + "\n")
                m = result["metrics"]
                key = "goodput"
                extra = (
                    f"wait p99 {fmt(m['wait_p99_ms'])} ms, shed {fmt(m['shed_pct'])}%"
                    if scenario == "overload"
                    else f"B wait p99 {fmt(m['b_wait_p99_ms'])} ms"
                )
                log(
                    f"  [{repeat + 1}/{args.repeats}] {scenario:8} {variant:11} {loop_name:7} "
                    f"goodput {fmt(m[key])}/s, {extra}, background "
                    f"{100 * result['background']:.0f}%"
                )
    write_report(run, out, [jsonl])
    log(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
