"""stop() semantics for in-flight work, worker threads, and exiting without stop()."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest
from _support import ThreadSignal, blocked_until, prefix_threads_alive, unique_prefix

from leasepool import LeasedExecutorManager


async def test_stop_cancels_queued_work_and_finishes_running_work() -> None:
    """At stop(), calls still queued are cancelled; the call already running completes."""
    manager = LeasedExecutorManager(max_pools=1, workers_per_pool=1, name_prefix=unique_prefix())
    await manager.start()
    gate = threading.Event()
    ran: list[str] = []
    try:
        lease = await manager.acquire()
        started = ThreadSignal()
        running = asyncio.ensure_future(lease.run(blocked_until(gate, started)))
        await started.wait()
        queued = asyncio.ensure_future(lease.run(ran.append, "queued"))
        await asyncio.sleep(0)  # a coroutine-based run() submits on its first step
        stopper = asyncio.ensure_future(manager.stop())
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(queued, 5)
        gate.set()
        assert await asyncio.wait_for(running, 5) == "finished"
        await asyncio.wait_for(stopper, 5)
        assert ran == []
        assert manager.total_count == 0
    finally:
        gate.set()
        await manager.stop()


@pytest.mark.beyond_reference
async def test_stop_leaves_no_worker_threads() -> None:
    """After ``await manager.stop()`` no thread named after the name_prefix is alive."""
    prefix = unique_prefix("threads")
    manager = LeasedExecutorManager(
        max_pools=2, min_pools=2, workers_per_pool=3, name_prefix=prefix
    )
    await manager.start()
    try:
        leases = [await manager.acquire() for _ in range(2)]
        for lease in leases:
            barrier = threading.Barrier(3, timeout=5)
            await asyncio.gather(*(lease.run(barrier.wait) for _ in range(3)))
        assert len(prefix_threads_alive(prefix + "-")) == 6
        await leases[0].release()
    finally:
        await manager.stop()
    assert prefix_threads_alive(prefix + "-") == []


@pytest.mark.beyond_reference
async def test_stop_waits_for_running_call_then_threads_exit() -> None:
    """stop() while a call runs: the call finishes, then no worker thread remains."""
    prefix = unique_prefix("running")
    manager = LeasedExecutorManager(max_pools=1, workers_per_pool=2, name_prefix=prefix)
    await manager.start()
    gate = threading.Event()
    try:
        lease = await manager.acquire()
        started = ThreadSignal()
        running = asyncio.ensure_future(lease.run(blocked_until(gate, started)))
        await started.wait()
        stopper = asyncio.ensure_future(manager.stop())
        await asyncio.sleep(0)
        assert not running.done()
        gate.set()
        assert await asyncio.wait_for(running, 5) == "finished"
        await asyncio.wait_for(stopper, 5)
        assert prefix_threads_alive(prefix + "-") == []
    finally:
        gate.set()
        await manager.stop()


EXIT_SCRIPT = textwrap.dedent(
    """
    import asyncio
    import sys
    import time

    from leasepool import LeasedExecutorManager

    MODE, LOOP = sys.argv[1], sys.argv[2]


    async def main() -> None:
        manager = LeasedExecutorManager(max_pools=2, workers_per_pool=2, name_prefix="exit")
        await manager.start()
        lease = await manager.acquire(owner="script")
        assert await lease.run(sum, [1, 2]) == 3
        if MODE == "running":
            loop = asyncio.get_running_loop()
            started = asyncio.Event()

            def slow() -> str:
                loop.call_soon_threadsafe(started.set)
                time.sleep(0.3)
                return "slow done"

            global PENDING
            PENDING = asyncio.ensure_future(lease.run(slow))
            await started.wait()
        elif MODE == "released":
            await lease.release()
        print("leaving without stop", flush=True)


    if LOOP == "uvloop":
        import uvloop

        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(main())
    else:
        asyncio.run(main())
    print("main returned", flush=True)
    """
)


@pytest.mark.beyond_reference
@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
@pytest.mark.parametrize("mode", ["running", "held", "released"])
def test_exit_without_stop_is_clean(tmp_path: Path, mode: str, loop: str) -> None:
    """A program that never calls stop() exits 0, promptly, with nothing on stderr."""
    script = tmp_path / "exit_without_stop.py"
    script.write_text(EXIT_SCRIPT)
    try:
        proc = subprocess.run(
            [sys.executable, str(script), mode, loop],
            capture_output=True,
            text=True,
            timeout=10,
            cwd=tmp_path,
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"program did not exit within 10s; stderr={exc.stderr!r}")
    assert proc.stderr == ""
    assert proc.returncode == 0
    assert proc.stdout.splitlines() == ["leaving without stop", "main returned"]
