"""Callables for the interpreter-backend tests.

They run inside sub-interpreters, which cannot import leasepool (a PyO3 extension):
this module must never import it. Sub-interpreters may not be able to import this
module either (pytest puts its directory on ``sys.path`` at run time, which they do
not see). CPython 3.14 then copies a plain function (no defaults, no closure) into
the sub-interpreter instead: keep them plain and import inside their bodies.
"""

from __future__ import annotations

from typing import Any


def add(a: int, b: int) -> int:
    return a + b


def fail(message: str) -> None:
    raise ValueError(message)


def interpreter_id() -> int:
    from concurrent import interpreters  # type: ignore[attr-defined]  # 3.14+

    return int(interpreters.get_current().id)


def sleep_then(seconds: float, value: Any) -> Any:
    import time

    time.sleep(seconds)
    return value


def wait_for_path(path: str, limit: float) -> bool:
    """Block until ``path`` exists (True) or ``limit`` seconds passed (False)."""
    import os
    import time

    deadline = time.monotonic() + limit
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True
