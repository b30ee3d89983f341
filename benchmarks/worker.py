#!/usr/bin/env python3
"""Run one workload of one implementation on one event loop; print one JSON line.

    python benchmarks/worker.py --impl ours --workload gathered_run --loop uvloop \
        --params '{"n": 20000, "warmup": 2000}'
    python benchmarks/worker.py --impl ours --workload acquire_release --loop asyncio \
        --params '{"n": 50000, "warmup": 2000}' --manager-kwargs '{"metrics": false}'
    python benchmarks/worker.py --probe    # what would be imported, as JSON

Launched by run.py with the interpreter of the implementation: the current one for
"ours" and the baselines, the 0.1.3 virtualenv's for "ref". Standard library only at
import time: this file is re-imported as ``__mp_main__`` by spawned worker processes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
import time
import traceback
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
# Make `workloads` importable here and in worker processes. Spawned children get this
# sys.path from multiprocessing's preparation data; run.py also exports PYTHONPATH
# for anything that starts Python some other way (forkserver, a custom spawner).
if HERE not in sys.path:
    sys.path.insert(0, HERE)


def _version(dist: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def probe() -> dict[str, Any]:
    info: dict[str, Any] = {
        "python": platform.python_version(),
        "executable": sys.executable,
        "implementation": platform.python_implementation(),
    }
    for dist in ("leasepool", "uvloop", "anyio"):
        info[f"{dist}_version"] = _version(dist)
    try:
        import leasepool

        info["leasepool_file"] = leasepool.__file__
    except Exception as exc:  # report, do not crash: the orchestrator decides
        info["leasepool_error"] = f"{type(exc).__name__}: {exc}"
    return info


def run_on_loop(
    make_coro: Callable[[], Coroutine[Any, Any, dict[str, float]]], loop: str
) -> dict[str, float]:
    if loop == "uvloop":
        import uvloop

        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            return runner.run(make_coro())
    if loop == "asyncio":
        return asyncio.run(make_coro())
    raise ValueError(f"unknown loop {loop!r}")


def resolve(impl: str, workload: str) -> Callable[[dict[str, Any]], Awaitable[dict[str, float]]]:
    if impl in ("ours", "ref"):
        from workloads import leasepool_api

        return leasepool_api.WORKLOADS[workload]
    from workloads import baselines

    fn = baselines.WORKLOADS[workload]

    def bound(params: dict[str, Any]) -> Awaitable[dict[str, float]]:
        return fn(impl, params)

    return bound


def configure_managers(impl: str, kwargs: dict[str, Any]) -> None:
    """Adds ``kwargs`` to every LeasedExecutorManager the leasepool workloads build."""
    if not kwargs:
        return
    if impl != "ours":
        raise ValueError(f"--manager-kwargs is for --impl ours, not {impl!r}")
    from workloads import leasepool_api

    leasepool_api.MANAGER_KWARGS.update(kwargs)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--impl")
    parser.add_argument("--workload")
    parser.add_argument("--loop", default="asyncio")
    parser.add_argument("--params", default="{}", help="workload parameters as JSON")
    parser.add_argument(
        "--manager-kwargs",
        default="{}",
        help="JSON object: LeasedExecutorManager keyword arguments added to every manager "
        "(--impl ours only; run.py's --ours-variants)",
    )
    parser.add_argument("--probe", action="store_true", help="print versions and paths")
    args = parser.parse_args(argv)

    if args.probe:
        print(json.dumps(probe()), flush=True)
        return 0
    if not args.impl or not args.workload:
        parser.error("--impl and --workload are required")

    params: dict[str, Any] = json.loads(args.params)
    manager_kwargs: dict[str, Any] = json.loads(args.manager_kwargs)
    record: dict[str, Any] = {"impl": args.impl, "workload": args.workload, "loop": args.loop}
    if manager_kwargs:
        record["manager_kwargs"] = manager_kwargs
    t0 = time.perf_counter()
    try:
        configure_managers(args.impl, manager_kwargs)
        workload = resolve(args.impl, args.workload)

        async def entry() -> dict[str, float]:
            return await workload(params)

        record["metrics"] = run_on_loop(entry, args.loop)
        if manager_kwargs:
            from workloads import leasepool_api

            # A variant whose arguments reached no manager measured plain "ours".
            if leasepool_api.MANAGERS_BUILT == 0:
                raise RuntimeError("--manager-kwargs given but the workload built no manager")
            record["managers_built"] = leasepool_api.MANAGERS_BUILT
        record["ok"] = True
    except BaseException as exc:
        record["ok"] = False
        record["error"] = f"{type(exc).__name__}: {exc}"
        traceback.print_exc()
    record["wall_s"] = time.perf_counter() - t0
    print(json.dumps(record), flush=True)
    return 0 if record["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
