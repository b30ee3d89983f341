"""Worker-side functions of tests/test_process_resilience.py (importable by every start
method: forkserver and spawn workers import this module by name)."""

from __future__ import annotations

import contextvars
import logging
import os
import signal
from pathlib import Path
from typing import Any

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id")
tenant: contextvars.ContextVar[Any] = contextvars.ContextVar("tenant")

_kept: list[bytearray] = []


def resident_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def leak(mib: int, tag: int) -> tuple[int, int, int]:
    """Keeps ``mib`` MiB for good (touched, so resident); returns the tag, this
    worker's pid and its resident bytes after the allocation."""
    block = bytearray(mib << 20)
    for offset in range(0, len(block), 4096):
        block[offset] = 1
    _kept.append(block)
    return tag, os.getpid(), resident_bytes()


def pid() -> int:
    return os.getpid()


def append_run(path: str, tag: str) -> None:
    with open(path, "a") as out:
        out.write(tag + "\n")


def die(path: str, how: str) -> None:
    """Records a run in ``path``, then dies (``exit``: ``os._exit(3)``, else SIGKILL)."""
    append_run(path, "run")
    if how == "exit":
        os._exit(3)
    os.kill(os.getpid(), signal.SIGKILL)


def die_first_time(path: str, how: str = "exit") -> str:
    """Dies on its first run (``path`` absent), returns on the next."""
    marker = Path(path)
    if not marker.exists():
        marker.write_text("died once")
        if how == "exit":
            os._exit(3)
        os.kill(os.getpid(), signal.SIGKILL)
    return "second run"


def raise_counted(path: str) -> None:
    append_run(path, "run")
    raise ValueError("a Python exception, not a death")


def context_values() -> tuple[str, Any]:
    return request_id.get("<unset>"), tenant.get("<unset>")


def set_and_read(value: str) -> str:
    """Sets the variable inside the call: must not leak into the next call."""
    seen = request_id.get("<unset>")
    request_id.set(value)
    return seen


def log_in_worker(message: str) -> int:
    logging.getLogger("resilience.worker").warning(message)
    return os.getpid()


def maybe_raise(path: str, tag: str, fail: bool) -> str:
    """Records a run; raises if ``fail``."""
    append_run(path, tag)
    if fail:
        raise ValueError(f"{tag} raised")
    return tag


def maybe_die(path: str, fail: bool) -> str:
    append_run(path, "die")
    if fail:
        os._exit(3)
    return "survived"


def sleep_then_pid(seconds: float) -> int:
    import time

    time.sleep(seconds)
    return os.getpid()


def _refuse_in_a_worker() -> Any:
    import multiprocessing

    if multiprocessing.parent_process() is not None:
        raise RuntimeError("this value cannot be rebuilt in a worker")
    return Unrebuildable()


class Unrebuildable:
    """Pickles in the parent; unpickling it in a worker process raises."""

    def __reduce__(self) -> tuple[Any, ...]:
        return (_refuse_in_a_worker, ())


def set_unpicklable_then_log(message: str) -> None:
    import threading

    request_id.set(threading.Lock())  # type: ignore[arg-type]
    logging.getLogger("resilience.worker").warning(message)


def wait_for(path: str, limit: float = 60.0) -> int:
    """Returns (this worker's pid) once ``path`` exists (the test's gate)."""
    import time

    deadline = time.monotonic() + limit
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} never appeared")
        time.sleep(0.005)
    return os.getpid()
