"""Top-level functions for the process-backend tests (worker processes unpickle them).

Deliberately free of pytest and leasepool imports so spawned workers import it fast.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import threading
import time
from typing import Any

_initialized: tuple[Any, ...] | None = None


def add(a: int, b: int) -> int:
    return a + b


def echo(*args: Any, **kwargs: Any) -> tuple[tuple[Any, ...], dict[str, Any]]:
    return args, kwargs


def getpid() -> int:
    return os.getpid()


def fail(message: str) -> None:
    raise ValueError(message)


def return_unpicklable() -> object:
    return threading.Lock()


class NeedsTwoArgs(Exception):
    """Pickles fine in the worker, fails to unpickle in the parent (a classic)."""

    def __init__(self, a: str, b: str) -> None:
        super().__init__(f"{a}-{b}")


def raise_needs_two_args() -> None:
    raise NeedsTwoArgs("x", "y")


def burn(n: int) -> int:
    """CPU-bound pure-Python loop (holds the worker's GIL)."""
    total = 0
    for i in range(n):
        total += i * i % 7
    return total


def sleep_then(seconds: float, value: Any = None) -> Any:
    time.sleep(seconds)
    return value


def touch_after(seconds: float, path: str) -> None:
    time.sleep(seconds)
    with open(path, "w") as f:
        f.write("ran")


def crash_exit(code: int, delay: float = 0.0) -> None:
    time.sleep(delay)
    os._exit(code)


def crash_sigkill(delay: float = 0.0) -> None:
    time.sleep(delay)
    os.kill(os.getpid(), signal.SIGKILL)


def remember(*args: Any) -> None:
    """An initializer: records its arguments in the worker."""
    global _initialized
    _initialized = args


def initialized() -> tuple[Any, ...] | None:
    return _initialized


def failing_initializer() -> None:
    raise RuntimeError("initializer says no")


def process_kind() -> str:
    """`SpawnProcess`, `ForkProcess` or `ForkServerProcess`."""
    return type(multiprocessing.current_process()).__name__


def log(logger: str, level: int, message: str) -> int:
    logging.getLogger(logger).log(level, message)
    return os.getpid()


def log_in_initializer(logger: str, message: str) -> None:
    logging.getLogger(logger).warning(message)


def pid_after(seconds: float) -> int:
    time.sleep(seconds)
    return os.getpid()


def write_atomically(path: str, text: str) -> None:
    """Create ``path`` with ``text`` in one step (a temporary file renamed into place):
    a reader that sees the file exist also sees all of it, never an empty file."""
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def mark_then_sleep(path: str, seconds: float) -> str:
    write_atomically(path, str(os.getpid()))
    time.sleep(seconds)
    return "finished"


def rendezvous(barrier: Any, timeout: float) -> int:
    """Wait at ``barrier`` (a ``multiprocessing.Manager().Barrier`` proxy); return the pid.

    Only calls that run at the same time pass the barrier: a call with no partner
    fails with ``threading.BrokenBarrierError`` after ``timeout`` seconds.
    """
    barrier.wait(timeout)
    return os.getpid()


def started_then_wait(started: Any, release: Any, value: Any, timeout: float = 60.0) -> Any:
    """Set ``started`` (a ``multiprocessing.Manager().Event`` proxy), then block until
    ``release`` is set; return ``value``. Lets a test act while a call is surely running."""
    started.set()
    if not release.wait(timeout):
        raise TimeoutError("release was never set")
    return value


def raise_keyboard_interrupt() -> None:
    raise KeyboardInterrupt


def raise_system_exit() -> None:
    raise SystemExit(3)


def block_forever() -> None:
    """Never returns (until the process dies)."""
    threading.Event().wait()


def append_line(path: str, text: str) -> None:
    """Append one line to ``path`` (O_APPEND: whole lines even from several processes)."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{text}\n".encode())
    finally:
        os.close(fd)


# --- for the stress harness (tests/_stress.py) -----------------------------------


def record_token(path: str, token: str) -> str:
    """Append ``token`` as one line to ``path`` and return it.

    O_APPEND with a single write keeps lines whole even when several processes append,
    so the file tells how many times each call really ran.
    """
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{token}\n".encode())
    finally:
        os.close(fd)
    return token


def record_then_sleep(path: str, token: str, seconds: float) -> str:
    """:func:`record_token` (the call has started), then sleep; return the token."""
    record_token(path, token)
    time.sleep(seconds)
    return token


def process_gone(pid: int) -> bool:
    """True once ``pid`` no longer exists (or is a zombie nobody reaped yet).

    Not a worker function: the tests' check that no worker process outlived its pool.
    """
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] == "Z"
    except (FileNotFoundError, ProcessLookupError):
        return True


def inherited_executor_wakeups() -> int:
    """How many executors' exit-time wakeups this worker process holds."""
    import concurrent.futures.process

    return len(concurrent.futures.process._threads_wakeups)


_kept: list[bytearray] = []


def record_token_leaking(path: str, token: str, mib: int, pause: float = 0.0) -> str:
    """``record_token``, keeping ``mib`` MiB resident for good (a leaking worker), then
    ``pause`` seconds (still running when a neighbour's crash breaks the pool)."""
    if pause:
        time.sleep(pause)
    if mib:
        block = bytearray(mib << 20)
        for offset in range(0, len(block), 4096):
            block[offset] = 1
        _kept.append(block)
    return record_token(path, token)


def record_token_then_raise(path: str, token: str) -> None:
    """``record_token``, then raise: a call whose outcome is its exception."""
    record_token(path, token)
    raise ValueError(f"{token} raised")
