"""Top-level functions the Dask workers of the dask-backend tests run.

Free of pytest imports: the workers unpickle them by reference, as any user function.
"""

from __future__ import annotations

import contextvars
import os
import time
from pathlib import Path


def add(a: int, b: int) -> int:
    return a + b


def echo(*args: object, **kwargs: object) -> tuple[tuple[object, ...], dict[str, object]]:
    return args, kwargs


def getpid() -> int:
    return os.getpid()


class CallError(Exception):
    """Raised by a call; must come back to the caller as itself."""


def fail(message: str) -> None:
    raise CallError(message)


def unpicklable_result() -> object:
    import threading

    return threading.Lock()


def worker_address() -> str:
    from distributed import get_worker

    return str(get_worker().address)


def mark_then_wait(marker: str, release: str, limit: float = 60.0) -> str:
    """Write this worker's address and pid to ``marker``, then wait (at most ``limit``
    seconds) until ``release`` exists. Stands for a long blocking call the test can end."""
    from distributed import get_worker

    with open(f"{marker}.runs", "a") as runs:  # one line per run: at most once?
        runs.write(f"{os.getpid()}\n")
    # Renamed into place: whoever sees the marker exist reads all of it.
    tmp = f"{marker}.{os.getpid()}.tmp"
    Path(tmp).write_text(f"{get_worker().address} {os.getpid()}")
    os.replace(tmp, marker)
    deadline = time.monotonic() + limit
    while not os.path.exists(release) and time.monotonic() < deadline:
        time.sleep(0.01)
    return "released"


request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id")


def read_request_id() -> str:
    return request_id.get("<unset>")
