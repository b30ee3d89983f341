"""Work the engine must do off the event loop, on threads that ``threading`` created.

Why Python: a thread the engine created itself would have to *attach* to the
interpreter to touch Python objects, and attaching a new thread takes CPython's
internal ``HEAD_LOCK`` before it takes the GIL. A ``fork()`` on another thread
(``ProcessPoolExecutor`` starting a worker) inside that window leaves the child stuck
forever in ``PyOS_AfterFork_Child`` (CPython gh-112275, present in 3.11). A
``threading.Thread`` gets its thread state while its creator holds the GIL, so it can
never be inside that window when another thread forks. Hence the rule: no thread
created outside ``threading`` attaches to the interpreter.

Each function here starts one short-lived daemon thread; none of them blocks its
caller.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["kill_after", "reap", "release", "run"]


def _start(name: str, target: Callable[..., None], *args: Any) -> bool:
    thread = threading.Thread(target=target, args=args, name=name, daemon=True)
    try:
        thread.start()
    except RuntimeError:  # interpreter shutdown: no new threads
        return False
    return True


def _drop(box: list[object]) -> None:
    box.clear()


def release(obj: object) -> bool:
    """Drop the last reference to ``obj`` on a thread of its own.

    The engine lets go of a ``ProcessPoolExecutor`` this way: its last reference may
    go inside one of its own done-callbacks, on its management thread, where
    finalising it would deadlock on its ``shutdown_lock`` (CPython 3.13+). Returns
    ``False`` (and keeps nothing) when no thread can be started any more.
    """
    return _start("leasepool-release", _drop, [obj])


def _kill(delay: float, processes: Sequence[Any]) -> None:
    gate = threading.Event()
    gate.wait(delay)  # the grace a terminated process gets before SIGKILL
    for process in processes:
        with contextlib.suppress(OSError, ValueError):  # already reaped or closed
            process.kill()  # signals only a process that was not reaped yet


def kill_after(delay: float, processes: Sequence[Any]) -> bool:
    """``kill()`` each of ``processes`` after ``delay`` seconds (they were terminated)."""
    return _start("leasepool-revoke", _kill, delay, list(processes))


def _reap(
    threads: Sequence[threading.Thread],
    processes: Sequence[Any],
    grace: float,
    done: Callable[[], object],
) -> None:
    try:
        for thread in threads:
            thread.join(grace)
        if any(thread.is_alive() for thread in threads):
            # Something the pool's threads wait for never ends (a worker process that
            # was stopped or hangs outside any call): the calls are over, so end it.
            for process in processes:
                with contextlib.suppress(OSError, ValueError):  # already reaped or closed
                    if process.is_alive():
                        process.kill()
            for thread in threads:
                thread.join(grace)
    finally:
        done()


def reap(
    threads: Sequence[threading.Thread],
    processes: Sequence[Any],
    grace: float,
    done: Callable[[], object],
) -> None:
    """Join ``threads`` on a thread of its own, then call ``done()`` there.

    ``stop()`` uses this so the event loop never blocks on a join. If the threads are
    still alive after ``grace`` seconds, the ``processes`` they wait for are killed
    (their calls already finished) and the threads get another ``grace``.
    """
    if not _start("leasepool-reap", _reap, list(threads), list(processes), grace, done):
        done()


def run(name: str, target: Callable[[], object]) -> bool:
    """Call ``target()`` on a new daemon thread called ``name``; ``False`` if none can start."""
    return _start(name, _call, target)


def _call(target: Callable[[], object]) -> None:
    target()
