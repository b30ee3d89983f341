"""Regression tests for the reliability fixes: no hang, nothing lost, nothing run twice.

Each test names the failure it guards against. Subprocess tests use a deadline only as
a hang guard (a hang fails the test with the child's output); none asserts a duration.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import multiprocessing.process
import operator
import os
import signal
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import _proc_funcs as f
import pytest
import uvloop

from leasepool import LeasedExecutorManager, WorkGrinder

TESTS_DIR = Path(__file__).resolve().parent
LOOPS: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {
    "asyncio": asyncio.new_event_loop,
    "uvloop": uvloop.new_event_loop,
}


def run_script(body: str, deadline: float = 60.0) -> subprocess.CompletedProcess[str]:
    """Run ``body`` in a fresh interpreter that can import the test helpers."""
    script = f"import sys\nsys.path.insert(0, {str(TESTS_DIR)!r})\n" + textwrap.dedent(body)
    try:
        return subprocess.run(
            [sys.executable, "-X", "faulthandler", "-c", script],
            capture_output=True,
            text=True,
            timeout=deadline,
            check=False,
        )
    except subprocess.TimeoutExpired as hang:
        pytest.fail(f"child hung; stdout={hang.stdout!r} stderr={hang.stderr!r}")


# --- KeyboardInterrupt / SystemExit through a completion ---------------------------


def _raise_keyboard_interrupt(_: object) -> None:
    raise KeyboardInterrupt


@pytest.mark.parametrize("loop_name", sorted(LOOPS))
def test_keyboard_interrupt_from_a_done_callback_leaves_the_loop_and_loses_nothing(
    loop_name: str,
) -> None:
    """A callback's KeyboardInterrupt used to go to the exception handler (swallowed),
    so ``asyncio.run`` never saw it. It must leave ``run_until_complete`` as asyncio's
    own ``Handle`` lets it, and the completions after it in the drain must still arrive."""
    loop = LOOPS[loop_name]()
    manager = LeasedExecutorManager(max_pools=1, workers_per_pool=2)
    try:
        loop.run_until_complete(manager.start())
        lease = loop.run_until_complete(manager.acquire())

        futures: list[Any] = []

        async def submit_and_gather() -> list[int]:
            futures.extend(lease.run(operator.add, i, 1) for i in range(200))
            futures[0].add_done_callback(_raise_keyboard_interrupt)
            return list(await asyncio.gather(*futures))

        task = loop.create_task(submit_and_gather())
        with pytest.raises(KeyboardInterrupt):
            loop.run_until_complete(task)

        async def collect() -> list[int]:
            # The deadline only turns a lost completion into a failure instead of a hang.
            return await asyncio.wait_for(task, 60)

        assert loop.run_until_complete(collect()) == [i + 1 for i in range(200)]
        loop.run_until_complete(lease.release())
    finally:
        loop.run_until_complete(manager.stop())
        loop.close()


_ESCAPE_SCRIPT = """
import asyncio, uvloop
from leasepool import LeasedExecutorManager
import _proc_funcs as f

async def main():
    manager = LeasedExecutorManager(backend={backend!r}, max_pools=1, workers_per_pool=1)
    await manager.start()
    lease = await manager.acquire()
    await lease.run(f.{func})

try:
    {runner}(main())
except BaseException as exc:
    print("ESCAPED", type(exc).__name__, flush=True)
"""


@pytest.mark.parametrize("func", ["raise_keyboard_interrupt", "raise_system_exit"])
@pytest.mark.parametrize("runner", ["asyncio.run", "uvloop.run"])
@pytest.mark.parametrize("backend", ["thread", "process"])
def test_keyboard_interrupt_or_system_exit_from_a_call_ends_the_program(
    backend: str, runner: str, func: str
) -> None:
    """Raised by the called function, it reaches ``asyncio.run``'s caller and the
    interpreter exits (it used to hang at exit with the process backend)."""
    done = run_script(_ESCAPE_SCRIPT.format(backend=backend, runner=runner, func=func))
    expected = "KeyboardInterrupt" if func == "raise_keyboard_interrupt" else "SystemExit"
    assert f"ESCAPED {expected}" in done.stdout, done.stdout + done.stderr
    assert done.returncode == 0, done.stderr


# --- callbacks added to futures that finished before stop() -------------------------


async def _done(future: Any) -> None:
    finished = asyncio.Event()
    future.add_done_callback(lambda _: finished.set())
    await finished.wait()


async def test_gather_over_futures_settled_before_stop_completes() -> None:
    """``gather`` adds a done-callback to an already finished future; after ``stop()``
    closed the loop's doorbell that callback used to be queued where nobody drained it."""
    manager = LeasedExecutorManager(max_pools=2, workers_per_pool=1)
    await manager.start()
    grinder = WorkGrinder(executor_manager=manager, batch_size_threshold=1, max_wait_seconds=0.01)
    await grinder.start()
    lease = await manager.acquire()
    ran = lease.run(operator.mul, 6, 7)
    submitted = grinder.submit(operator.add, 2, 3)
    await _done(ran)
    await _done(submitted)
    released = lease.release()
    await _done(released)
    await grinder.stop()
    await manager.stop()
    results = await asyncio.wait_for(asyncio.gather(ran, submitted, released), 60)
    assert list(results) == [42, 5, None]


# --- stop() never blocks the event loop -------------------------------------------


def test_stop_does_not_block_the_loop_on_a_frozen_worker_and_still_ends() -> None:
    """A worker process frozen with SIGSTOP used to make ``stop()`` join on the loop
    thread, stalling every other task (and swallowing a Ctrl-C raised in the join)."""

    async def main() -> int:
        manager = LeasedExecutorManager(backend="process", max_pools=1, workers_per_pool=1)
        await manager.start()
        async with await manager.acquire() as lease:
            pid = await lease.run(f.getpid)
        os.kill(pid, signal.SIGSTOP)
        stopping = asyncio.ensure_future(manager.stop())
        observed: list[bool] = []

        async def other_task() -> None:
            observed.append(stopping.done())

        await asyncio.sleep(0)  # stop() starts and reaches its wait
        await asyncio.create_task(other_task())
        assert observed == [False], "the loop ran nothing else until stop() had finished"
        await stopping  # the frozen worker is killed after a grace period
        return pid

    pid = asyncio.run(main())
    assert f.process_gone(pid)


# --- calls queued inside the executor do not run after stop() / at exit -------------


def test_calls_handed_to_the_executor_do_not_run_at_exit_without_stop(tmp_path: Path) -> None:
    """With 2 chunks in flight per worker, the call queued behind a running one used to
    run during interpreter exit although the docs say queued work is cancelled."""
    marker = tmp_path / "ran"
    done = run_script(
        f"""
        import asyncio, multiprocessing
        from leasepool import LeasedExecutorManager
        import _proc_funcs as f

        async def main(sync):
            started, release = sync.Event(), sync.Event()
            manager = LeasedExecutorManager(backend="process", max_pools=1, workers_per_pool=1)
            await manager.start()
            lease = await manager.acquire()
            running = lease.run(f.started_then_wait, started, release, "done")
            queued = lease.run(f.touch_after, 0, {str(marker)!r})
            assert await asyncio.to_thread(started.wait, 60)
            # Leave without stop(): the exit hook cancels what has not started; the
            # running call is let go so the interpreter can join its worker.
            release.set()

        if __name__ == "__main__":
            with multiprocessing.get_context("spawn").Manager() as sync:
                asyncio.run(main(sync))
            print("EXITED", flush=True)
        """
    )
    assert "EXITED" in done.stdout, done.stdout + done.stderr
    assert done.returncode == 0, done.stderr
    assert not marker.exists(), "a call that had not started ran during exit"


# --- worker processes never outlive their parent ------------------------------------


def test_workers_exit_when_the_parent_is_killed() -> None:
    """A parent killed with SIGKILL used to leave its workers (some stuck in a call
    forever) as orphans."""
    done = run_script(
        """
        import asyncio, multiprocessing, os, signal
        from leasepool import LeasedExecutorManager
        import _proc_funcs as f

        async def main():
            manager = LeasedExecutorManager(backend="process", max_pools=1, workers_per_pool=2)
            await manager.start()
            lease = await manager.acquire()
            await lease.run(f.getpid)  # the pool's workers are all started by now
            stuck = lease.run(f.block_forever)   # one worker never comes back
            pids = [p.pid for p in multiprocessing.active_children()]
            print("PIDS", *sorted(pids), flush=True)
            os.kill(os.getpid(), signal.SIGKILL)

        asyncio.run(main())
        """
    )
    assert done.returncode == -signal.SIGKILL, done.stderr
    line = next(ln for ln in done.stdout.splitlines() if ln.startswith("PIDS"))
    pids = [int(p) for p in line.split()[1:]]
    assert len(pids) == 2
    # The workers notice the parent's death on their own (no polling on their side);
    # the test waits for them, bounded.
    waiter = threading.Event()
    for _ in range(600):
        if all(f.process_gone(pid) for pid in pids):
            break
        waiter.wait(0.05)
    assert [pid for pid in pids if not f.process_gone(pid)] == []


# --- worker processes start off the event loop --------------------------------------


def test_worker_processes_are_started_off_the_event_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    """The first ``lease.run`` used to fork every worker on the event-loop thread (1,000
    workers blocked the loop for seconds)."""
    starters: list[str] = []
    original_start = multiprocessing.process.BaseProcess.start

    def recording_start(self: multiprocessing.process.BaseProcess) -> None:
        starters.append(threading.current_thread().name)
        original_start(self)

    monkeypatch.setattr(multiprocessing.process.BaseProcess, "start", recording_start)

    async def main() -> set[int]:
        manager = LeasedExecutorManager(backend="process", max_pools=1, workers_per_pool=3)
        await manager.start()
        try:
            async with await manager.acquire() as lease:
                return set(await asyncio.gather(*(lease.run(f.getpid) for _ in range(6))))
        finally:
            await manager.stop()

    pids = asyncio.run(main())
    assert pids
    assert starters == ["leasepool-spawn"] * 3


# --- size_provider failures are visible ---------------------------------------------


async def test_size_provider_errors_are_logged_at_warning_once_per_distinct_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """They used to be logged at DEBUG only, so a broken provider silently meant 0."""
    failures = iter(
        [ValueError("down"), ValueError("down"), KeyError("gone"), None, ValueError("down")]
    )

    def provider() -> int:
        failure = next(failures)
        if failure is not None:
            raise failure
        return 5

    caplog.set_level(logging.DEBUG, logger="leasepool.manager")
    manager = LeasedExecutorManager(max_pools=3, size_provider=provider)
    # Each desired_executor_count() reads the provider once.
    counts = [manager.desired_executor_count() for _ in range(5)]
    assert counts == [1, 1, 1, 1, 1]
    warnings = [
        r for r in caplog.records if r.name == "leasepool.manager" and r.levelno == logging.WARNING
    ]
    # "down" once, "gone" once, then (after a success) "down" again.
    assert [str(r.exc_info[1]) if r.exc_info else None for r in warnings] == [
        "down",
        "'gone'",
        "down",
    ]
    debug = [
        r
        for r in caplog.records
        if r.levelno == logging.DEBUG and r.getMessage() == "Could not read size_provider"
    ]
    assert len(debug) == 4  # 0.1.x's record, kept on every failure


# --- chunks reach the executor in queue order ---------------------------------------


@pytest.mark.parametrize("round_", range(3))
def test_calls_on_one_worker_start_in_submission_order(tmp_path: Path, round_: int) -> None:
    """Several threads dispatch (the loop, the process spawner, the executor's
    management thread); two of them once submitted chunks concurrently, so a later
    call could start before an earlier one (and escape cancellation at stop())."""
    log = tmp_path / "order"

    async def main() -> None:
        manager = LeasedExecutorManager(backend="process", max_pools=1, workers_per_pool=1)
        await manager.start()
        try:
            async with await manager.acquire() as lease:
                await asyncio.gather(
                    *(lease.run(f.append_line, str(log), str(i)) for i in range(40))
                )
        finally:
            await manager.stop()

    asyncio.run(main())
    assert log.read_text().split() == [str(i) for i in range(40)]


# --- a KeyboardInterrupt inside engine-run Python code is never dropped --------------


class _InterruptingHandler(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        raise KeyboardInterrupt


def test_keyboard_interrupt_raised_in_a_log_handler_is_re_raised_not_dropped() -> None:
    """Python code the engine runs for nobody who awaits it (here: the log record of
    ``start()``) used to have its errors reported as unraisable, a Ctrl-C included. Now
    the interrupt is re-armed: the process's SIGINT handler runs at the next check,
    exactly as if Ctrl-C had been pressed a moment later."""
    logger = logging.getLogger("lp.test.interrupting")
    handler = _InterruptingHandler()
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    interrupts: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: interrupts.append(signum))
    loop = asyncio.new_event_loop()
    manager = LeasedExecutorManager(max_pools=1, logger=logger)
    try:
        loop.run_until_complete(manager.start())
        logger.removeHandler(handler)
        # Any Python-level call checks for pending signals (the interrupt is handled on
        # this, the main thread, before the call returns).
        (lambda: None)()
        # One per interrupted record (start() logs more than one).
        assert interrupts and set(interrupts) == {signal.SIGINT}
    finally:
        signal.signal(signal.SIGINT, previous)
        logger.removeHandler(handler)
        loop.run_until_complete(manager.stop())
        loop.close()
