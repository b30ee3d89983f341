"""Making a :class:`~leasepool.LeasedExecutorManager` the one limit of a service.

* :func:`install_as_default_executor` (also ``manager.install_as_default_executor()``):
  ``asyncio.to_thread`` and ``loop.run_in_executor(None, ...)`` run on the manager.
* :mod:`leasepool.integrations.anyio` (needs anyio): ``anyio.to_thread.run_sync``, so
  Starlette's ``run_in_threadpool`` and FastAPI's sync endpoints, run on the manager.
* :func:`retry_after_seconds`: the ``Retry-After`` value for a shed request (HTTP 503).

These names live here, not in ``leasepool.__all__``, which stays 0.1.3's list
(docs/compatibility.md).
"""

from __future__ import annotations

import math
from numbers import Real

from .._default_executor import (
    DEFAULT_EXECUTOR_OWNER,
    LeasedDefaultExecutor,
    install_as_default_executor,
)

__all__ = [
    "DEFAULT_EXECUTOR_OWNER",
    "LeasedDefaultExecutor",
    "install_as_default_executor",
    "retry_after_seconds",
]


def retry_after_seconds(exc: BaseException, default: float = 1.0) -> int:
    """Whole seconds for an HTTP ``Retry-After`` header answering ``exc``.

    Reads the error's ``retry_after`` estimate (seconds, a float) when it has a usable
    one (finite, not negative), else ``default``; rounds up, because RFC 9110 makes
    delay-seconds a non-negative integer and retrying early only meets the same
    refusal; and answers at least 1.
    """
    value = getattr(exc, "retry_after", None)
    if not isinstance(value, Real) or isinstance(value, bool):
        value = default
    seconds = float(value)
    if not math.isfinite(seconds) or seconds < 0:
        seconds = float(default)
    if not math.isfinite(seconds):
        seconds = 1.0
    return max(1, math.ceil(seconds))
