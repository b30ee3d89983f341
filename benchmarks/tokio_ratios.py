#!/usr/bin/env python3
"""The Rust crate against what a tokio user already has, as ratios.

    python benchmarks/tokio_ratios.py                  # 3 runs of the criterion bench
    python benchmarks/tokio_ratios.py --runs 5 --measurement-time 5
    python benchmarks/tokio_ratios.py --no-run         # report the last run's estimates

Runs ``cargo bench -p leasepool --features tokio --bench tokio_lease`` (see
``crates/leasepool/benches/tokio_lease.rs``: ``leasepool::tokio::LeaseManager``,
``tokio::sync::Semaphore`` and ``deadpool::unmanaged::Pool``, uncontended and 200 tasks on
2 pools, current-thread and multi-thread runtimes) ``--runs`` times. Each run gives, per
cell, criterion's median time per acquire + release; the report is the median over the
runs and, per ratio, the range over the runs. The three implementations run in the same
process, one after the other, in every run. Goals (issue 17): at most 2x the semaphore
uncontended, at most 1.5x contended. Standard library only.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CRITERION = ROOT / "target" / "criterion"
IMPLEMENTATIONS = ("leasepool", "semaphore", "deadpool")
SHAPES = ("uncontended", "contended")
RUNTIMES = ("current_thread", "multi_thread")
GOALS = {"uncontended": 2.0, "contended": 1.5}


def run_bench(measurement_time: float) -> None:
    """One run of the criterion bench (writes target/criterion/*/new/estimates.json)."""
    subprocess.run(
        [
            "cargo",
            "bench",
            "-q",
            "-p",
            "leasepool",
            "--features",
            "tokio",
            "--bench",
            "tokio_lease",
            "--",
            "--warm-up-time",
            "1",
            "--measurement-time",
            str(measurement_time),
            "--noplot",
        ],
        cwd=ROOT,
        check=True,
        stdout=subprocess.DEVNULL,
    )


def read_estimates() -> dict[tuple[str, str, str], float]:
    """Criterion's median (ns per acquire + release) of every cell of the last run."""
    cells: dict[tuple[str, str, str], float] = {}
    for shape in SHAPES:
        for runtime in RUNTIMES:
            for name in IMPLEMENTATIONS:
                path = CRITERION / f"{shape}_{runtime}" / name / "new" / "estimates.json"
                estimates = json.loads(path.read_text())
                cells[(shape, runtime, name)] = float(estimates["median"]["point_estimate"])
    return cells


def report(runs: list[dict[tuple[str, str, str], float]]) -> str:
    """The markdown table: medians over the runs, ratios and their range."""
    lines = [
        "| shape | runtime | leasepool (ns) | Semaphore (ns) | deadpool (ns) "
        "| leasepool / Semaphore | range | goal | leasepool / deadpool |",
        "|---|---|---:|---:|---:|---:|---|---|---:|",
    ]
    for shape in SHAPES:
        for runtime in RUNTIMES:
            median = {
                name: statistics.median(run[(shape, runtime, name)] for run in runs)
                for name in IMPLEMENTATIONS
            }
            ratios = [
                run[(shape, runtime, "leasepool")] / run[(shape, runtime, "semaphore")]
                for run in runs
            ]
            ratio = median["leasepool"] / median["semaphore"]
            goal = GOALS[shape]
            verdict = "met" if ratio <= goal else "not met"
            lines.append(
                f"| {shape} | {runtime} | {median['leasepool']:.1f} | {median['semaphore']:.1f} "
                f"| {median['deadpool']:.1f} | {ratio:.2f}x | {min(ratios):.2f}-{max(ratios):.2f}x "
                f"| <= {goal}x: {verdict} | {median['leasepool'] / median['deadpool']:.2f}x |"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=3, help="bench runs (default 3)")
    parser.add_argument(
        "--measurement-time", type=float, default=3.0, help="criterion seconds per cell"
    )
    parser.add_argument("--no-run", action="store_true", help="report the last run only")
    args = parser.parse_args(argv)
    runs: list[dict[tuple[str, str, str], float]] = []
    if args.no_run:
        runs.append(read_estimates())
    else:
        for index in range(args.runs):
            print(f"run {index + 1} of {args.runs}", file=sys.stderr)
            run_bench(args.measurement_time)
            runs.append(read_estimates())
    print(f"Median of {len(runs)} run(s), criterion's median per run; ns per acquire + release.\n")
    print(report(runs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
