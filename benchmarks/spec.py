"""What the harness runs: implementations, event loops, workloads, metrics and goals.

Standard library only: imported by the orchestrator (``run.py``), which must run before
any third-party package is installed.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

# Implementation name -> column label. "ours" and "ref" run the same code
# (workloads/leasepool_api.py); the others are baselines (workloads/baselines.py).
IMPLS: dict[str, str] = {
    "ours": "ours",
    "ref": "0.1.3",
    "executor": "run_in_executor",
    "to_thread": "to_thread",
    "anyio": "anyio",
}
LEASEPOOL_IMPLS = ("ours", "ref")
BASELINE_IMPLS = ("executor", "to_thread", "anyio")
LOOPS = ("asyncio", "uvloop")

# ---------------------------------------------------------------- variants of "ours"
# `run.py --ours-variants NAME=KEY=VALUE[,KEY=VALUE...] ...` runs "ours" once more per
# variant, as the implementation "ours:NAME", with those LeasedExecutorManager keyword
# arguments added to every manager the workloads build (they win over the workload's
# own). Plain "ours" keeps the package defaults.

# What a variant's keyword argument may be: a Python literal that survives JSON.
ManagerValue = bool | int | float | str | None
ManagerKwargs = dict[str, ManagerValue]
VARIANT_SEP = ":"
_VARIANT_NAME = re.compile(r"[A-Za-z0-9_.-]+")
# Set by workloads/leasepool_api.py itself: a variant cannot change them.
_RESERVED_KWARGS = ("backend", "name_prefix")


@dataclass(frozen=True)
class OursVariant:
    name: str
    kwargs: ManagerKwargs

    @property
    def impl(self) -> str:
        return f"ours{VARIANT_SEP}{self.name}"


def parse_variant(text: str) -> OursVariant:
    """``NAME=KEY=VALUE[,KEY=VALUE...]``, e.g. ``metrics-off=metrics=False``.

    VALUE is a Python literal: ``True``, ``False``, ``None``, a number or a quoted
    string. Raises ValueError with the reason.
    """
    name, sep, rest = text.partition("=")
    if not sep or not _VARIANT_NAME.fullmatch(name):
        raise ValueError(
            f"{text!r}: expected NAME=KEY=VALUE[,KEY=VALUE...], NAME in [A-Za-z0-9_.-]"
        )
    kwargs: ManagerKwargs = {}
    for item in rest.split(","):
        key, sep, raw = (part.strip() for part in item.partition("="))
        if not sep or not key.isidentifier():
            raise ValueError(f"{text!r}: {item!r} is not KEY=VALUE")
        if key in _RESERVED_KWARGS:
            raise ValueError(f"{text!r}: {key} is set by the workloads")
        if key in kwargs:
            raise ValueError(f"{text!r}: {key} given twice")
        try:
            value = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            raise ValueError(f"{text!r}: {raw!r} is not a Python literal (quote strings)") from None
        if value is not None and not isinstance(value, bool | int | float | str):
            raise ValueError(f"{text!r}: {key}={raw} must be a bool, number, string or None")
        kwargs[key] = value
    return OursVariant(name, kwargs)


def base_impl(impl: str) -> str:
    """The implementation a variant runs: "ours:metrics-off" -> "ours"."""
    return impl.partition(VARIANT_SEP)[0]


def impl_label(impl: str) -> str:
    """Column label: IMPLS' for the implementations, "ours:NAME" for a variant."""
    base, _, variant = impl.partition(VARIANT_SEP)
    return f"{IMPLS[base]}{VARIANT_SEP}{variant}" if variant else IMPLS[base]


@dataclass(frozen=True)
class Metric:
    """One number a workload reports. Lower is better for every metric."""

    key: str
    label: str
    unit: str
    # Goal on the ratio ours / 0.1.3 (pass when ratio <= goal) ...
    goal_ratio: Fraction | None = None
    # ... or an absolute goal on ours' own value (pass when value <= goal).
    goal_abs: float | None = None
    # Shown in the chart (metrics with a goal are always shown).
    chart: bool = False
    # The implementation goal_ratio compares ours with (0.1.3 unless named).
    baseline: str = "ref"

    @property
    def has_goal(self) -> bool:
        return self.goal_ratio is not None or self.goal_abs is not None


@dataclass(frozen=True)
class Workload:
    name: str
    title: str
    impls: tuple[str, ...]
    metrics: tuple[Metric, ...]
    full: dict[str, Any]
    quick: dict[str, Any]
    loops: tuple[str, ...] = LOOPS
    # Launch all jobs of one repeat at once (only for workloads that sit idle).
    parallel: bool = False
    # Rerun a sample taken while other processes loaded the machine (timing workloads).
    retry_on_load: bool = True
    description: str = ""
    extra_timeout: float = 0.0
    tags: tuple[str, ...] = field(default_factory=tuple)

    def params(self, quick: bool) -> dict[str, Any]:
        return dict(self.quick if quick else self.full)


US = "µs"
ALL = LEASEPOOL_IMPLS + BASELINE_IMPLS

WORKLOADS: tuple[Workload, ...] = (
    Workload(
        name="acquire_release",
        title="1. acquire + release, free pool",
        impls=LEASEPOOL_IMPLS,
        metrics=(Metric("us_per_op", "per acquire + release", US, goal_ratio=Fraction(1, 8)),),
        full={"n": 50_000, "warmup": 2_000},
        quick={"n": 10_000, "warmup": 1_000},
        description="`lease = await manager.acquire(); await lease.release()` in a loop on a "
        "started manager whose only pool is free (max_pools=1, min_pools=1).",
    ),
    Workload(
        name="sequential_run",
        title="2. sequential run",
        impls=ALL,
        metrics=(Metric("us_per_op", "per call", US, goal_ratio=Fraction(1, 2)),),
        full={"n": 10_000, "warmup": 1_000},
        quick={"n": 3_000, "warmup": 300},
        description="`await lease.run(add, i, 1)` one after the other on one lease "
        "(4 worker threads). Baselines: `await loop.run_in_executor(ThreadPoolExecutor(4), "
        "...)`, `await asyncio.to_thread(...)`, `await anyio.to_thread.run_sync(..., "
        "limiter=CapacityLimiter(4))`.",
    ),
    Workload(
        name="gathered_run",
        title="3. 20k gathered run",
        impls=ALL,
        metrics=(Metric("us_per_op", "per call", US, goal_ratio=Fraction(1, 20)),),
        full={"n": 20_000, "warmup": 2_000},
        quick={"n": 20_000, "warmup": 1_000},
        description="`await asyncio.gather(*(lease.run(add, i, 1) for i in range(20_000)))`; "
        "the baselines gather the same number of their own awaitables.",
    ),
    Workload(
        name="executor_submit",
        title="4. executor.submit + result",
        impls=("ours", "ref", "executor"),
        metrics=(Metric("us_per_op", "per call", US, goal_ratio=Fraction(1, 4)),),
        full={"n": 20_000, "warmup": 2_000},
        quick={"n": 10_000, "warmup": 1_000},
        description="`futs = [lease.executor.submit(add, i, 1) for i in range(20_000)]`, then "
        "`f.result()` for each (submit all, then wait all). Baseline: the same on a plain "
        "`ThreadPoolExecutor(4)`.",
    ),
    Workload(
        name="contended",
        title="5. contended, 200 tasks on 2 pools",
        impls=LEASEPOOL_IMPLS,
        metrics=(
            Metric("us_per_op", "per acquire → run → release", US, goal_ratio=Fraction(1, 5)),
            Metric("wait_p50_ms", "acquire wait p50", "ms"),
            Metric("wait_p99_ms", "acquire wait p99", "ms", chart=True),
            Metric("wait_max_ms", "acquire wait max", "ms", goal_ratio=Fraction(1, 20)),
        ),
        full={"tasks": 200, "rounds": 50, "warmup_rounds": 1},
        quick={"tasks": 200, "rounds": 10, "warmup_rounds": 1},
        description="200 tasks, each doing `rounds` × (acquire → `await lease.run(add, i, 1)` → "
        "release) on a manager with max_pools=2 (min_pools=2). µs/op is wall time / "
        "(tasks × rounds); the acquire wait is measured around each `await acquire()`.",
    ),
    Workload(
        name="one_call",
        title="5b. one call per request, 32 callers on 16 workers",
        impls=("ours", "ref", "executor", "anyio"),
        metrics=(
            Metric("us_per_op", "per call", US, goal_ratio=Fraction(1, 2)),
            Metric(
                "cpu_us_per_op",
                "CPU per call (all threads)",
                US,
                goal_ratio=Fraction(1),
                baseline="executor",
            ),
            Metric("p99_ms", "call latency p99", "ms", goal_ratio=Fraction(1), baseline="anyio"),
        ),
        full={"tasks": 32, "rounds": 500, "warmup": 20, "capacity": 16},
        quick={"tasks": 32, "rounds": 150, "warmup": 10, "capacity": 16},
        description="A request-serving app's offload: 32 concurrent callers each awaiting "
        "`add(i, 1)` `rounds` times with a capacity of 16 threads. Ours: `await "
        "manager.run(add, i, 1)` (max_pools=4, workers_per_pool=4; each call holds one "
        "worker). 0.1.3 has no one-call path: acquire → `lease.run` → release per call "
        "(max_pools=16, min_pools=4, workers_per_pool=1). Baselines: "
        "`loop.run_in_executor(ThreadPoolExecutor(16), ...)`, `anyio.to_thread.run_sync(..., "
        "limiter=CapacityLimiter(16))`. CPU is the process's (every thread) over the timed "
        "part; p99 is the latency of one call.",
    ),
    Workload(
        name="grinder",
        title="6. WorkGrinder, tiny calls",
        impls=LEASEPOOL_IMPLS,
        metrics=(Metric("us_per_op", "per submit", US, goal_ratio=Fraction(1, 15)),),
        full={"n": 20_000, "warmup": 1_000},
        quick={"n": 10_000, "warmup": 500},
        description="`await asyncio.gather(*(grinder.submit(add, i, 1) for i in range(20_000)))` "
        "with batch_size_threshold=100, max_wait_seconds=0.05 on a thread manager "
        "(max_pools=2).",
    ),
    Workload(
        name="process_run",
        title="7a. process backend, gathered run",
        impls=LEASEPOOL_IMPLS,
        metrics=(Metric("us_per_op", "per call", US, goal_ratio=Fraction(1, 3)),),
        full={"n": 2_000, "warmup": 200},
        quick={"n": 2_000, "warmup": 200},
        description="Process backend (max_pools=1, 4 worker processes, started and warmed up "
        "before timing): `await asyncio.gather(*(lease.run(add, i, 1) for i in range(2_000)))`.",
    ),
    Workload(
        name="process_grinder",
        title="7b. process WorkGrinder",
        impls=LEASEPOOL_IMPLS,
        metrics=(Metric("us_per_op", "per submit", US, goal_ratio=Fraction(1, 10)),),
        full={"n": 20_000, "warmup": 1_000},
        quick={"n": 5_000, "warmup": 500},
        description="WorkGrinder (batch_size_threshold=100, max_wait_seconds=0.05) on the "
        "process backend: gathered `grinder.submit(add, i, 1)`.",
    ),
    Workload(
        name="idle_cpu",
        title="idle started manager",
        impls=LEASEPOOL_IMPLS,
        metrics=(
            Metric("cpu_ms_per_s", "CPU time per idle second", "ms/s", goal_abs=1.0),
            Metric("wakeups_per_s", "context switches per idle second", "/s"),
        ),
        full={"seconds": 10.0},
        quick={"seconds": 2.0},
        parallel=True,
        retry_on_load=False,
        description="A started thread manager that has run one call sits idle in "
        "`asyncio.sleep`; CPU time of the whole process (all threads) and the number of "
        "context switches of all its threads over the idle period. Goal: ~0 (≤ 1 ms/s).",
    ),
    Workload(
        name="memory_pools",
        title="memory: idle pool, lease",
        impls=LEASEPOOL_IMPLS,
        loops=("asyncio",),
        retry_on_load=False,
        metrics=(
            Metric("bytes_per_pool", "RSS per idle pool", "B"),
            Metric("bytes_per_lease", "RSS per held lease", "B"),
        ),
        full={"n": 1_000},
        quick={"n": 200},
        description="RSS delta (/proc/self/statm) of starting a manager with n idle pools "
        "(min_pools=max_pools=n), then of acquiring and holding n leases, divided by n.",
    ),
    Workload(
        name="memory_queued",
        title="memory: queued call",
        impls=LEASEPOOL_IMPLS,
        loops=("asyncio",),
        retry_on_load=False,
        metrics=(Metric("bytes_per_call", "RSS per queued call", "B"),),
        full={"n": 20_000},
        quick={"n": 20_000},
        description="RSS delta of 20,000 `lease.run(add, i, 1)` calls gathered and queued "
        "behind the single worker of a pool (workers_per_pool=1) that is blocked, divided "
        "by 20,000.",
    ),
)

WORKLOADS_BY_NAME: dict[str, Workload] = {w.name: w for w in WORKLOADS}


def format_goal(metric: Metric) -> str:
    if metric.goal_ratio is not None:
        g = metric.goal_ratio
        text = f"≤ 1/{g.denominator}" if g.numerator == 1 and g.denominator > 1 else f"≤ {g}"
        return text if metric.baseline == "ref" else f"{text} × {IMPLS[metric.baseline]}"
    if metric.goal_abs is not None:
        return f"≤ {metric.goal_abs:g} {metric.unit} (abs)"
    return "–"
