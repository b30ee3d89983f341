"""Process workers that run for months: a crash circuit breaker and safe retries.

``LeasedExecutorManager(backend="process", crash_breaker=CrashBreaker(...))`` stops
starting worker after worker when they keep dying: after ``max_crashes`` crashes within
``window_seconds``, calls fail fast with :class:`~leasepool.exceptions.WorkerCrashLoopError`
(its ``retry_after`` says when the cool-down ends); after ``cooldown_seconds`` calls are let
through on trial: the first that completes closes the breaker, the first crash re-opens
it.

:func:`idempotent` marks a callable whose calls may run again when the worker process
running them dies (never when they raise): ``retries`` more runs at most. Calls stay
at-most-once by default.

The other options of long-running process workers (``max_worker_memory=``,
``context_vars=``) are keyword arguments of the manager; see ``docs/process-backend.md``.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar, overload

__all__ = ["CrashBreaker", "idempotent", "retry_budget"]

F = TypeVar("F", bound=Callable[..., Any])

_RETRIES = "__leasepool_retries__"
#: The most retries ``idempotent`` accepts (a crash loop is the breaker's business).
MAX_RETRIES = 100


#: The longest window or cool-down accepted (about 31 years; any longer is a mistake).
MAX_SECONDS = 1e9


def _seconds(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number of seconds, not {type(value).__name__}")
    seconds = float(value)
    if not math.isfinite(seconds) or not 0 < seconds <= MAX_SECONDS:
        raise ValueError(
            f"{name} must be a finite number of seconds > 0 and <= {MAX_SECONDS:g}, got {value!r}"
        )
    return seconds


@dataclass(frozen=True, slots=True)
class CrashBreaker:
    """When a manager's worker processes keep dying, refuse calls for a while.

    ``max_crashes`` worker crashes within ``window_seconds`` open the breaker for
    ``cooldown_seconds``. A crash is a worker process that died under the manager (a
    signal, ``os._exit``, a segfault); not a call that raised, not a worker recycled by
    ``max_worker_memory``/``max_tasks_per_child``, not one terminated by a revoked
    lease or ``stop()``.
    """

    max_crashes: int = 5
    window_seconds: float = 60.0
    cooldown_seconds: float = 30.0

    def __post_init__(self) -> None:
        crashes = self.max_crashes
        if isinstance(crashes, bool) or not isinstance(crashes, int):
            raise TypeError(f"max_crashes must be an int, not {type(crashes).__name__}")
        if not 1 <= crashes <= 2**32 - 1:
            raise ValueError(f"max_crashes must be between 1 and {2**32 - 1}, got {crashes!r}")
        window = _seconds("window_seconds", self.window_seconds)
        cooldown = _seconds("cooldown_seconds", self.cooldown_seconds)
        object.__setattr__(self, "window_seconds", window)
        object.__setattr__(self, "cooldown_seconds", cooldown)


class _Retrying:
    """A callable that takes no attributes (a builtin), carrying a retry budget.
    Picklable whenever the callable it wraps is."""

    __wrapped__: Callable[..., Any]
    __leasepool_retries__: int

    def __init__(self, fn: Callable[..., Any], retries: int) -> None:
        self.__wrapped__ = fn
        self.__leasepool_retries__ = retries
        for name in ("__module__", "__name__", "__qualname__", "__doc__"):
            with contextlib.suppress(AttributeError):
                object.__setattr__(self, name, getattr(fn, name))

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.__wrapped__(*args, **kwargs)

    def __reduce__(self) -> tuple[Any, ...]:
        return (_Retrying, (self.__wrapped__, self.__leasepool_retries__))


def _mark(fn: F, retries: int) -> F:
    if not callable(fn):
        raise TypeError(f"expected a callable, got {type(fn).__name__}")
    if isinstance(retries, bool) or not isinstance(retries, int):
        raise TypeError(f"retries must be an int, not {type(retries).__name__}")
    if not 0 <= retries <= MAX_RETRIES:
        raise ValueError(f"retries must be between 0 and {MAX_RETRIES}, got {retries!r}")
    try:
        setattr(fn, _RETRIES, retries)
    except (AttributeError, TypeError):
        marked: Any = _Retrying(fn, retries)
        return marked  # type: ignore[no-any-return]
    return fn


@overload
def idempotent(fn: F, /, *, retries: int = 1) -> F: ...
@overload
def idempotent(fn: None = None, /, *, retries: int = 1) -> Callable[[F], F]: ...
def idempotent(fn: Any = None, /, *, retries: int = 1) -> Any:
    """Mark ``fn`` safe to run again when its worker process dies under it.

    With the process backend (and the process half of ``backend="auto"``), a call of
    ``fn`` whose worker died while running it (or after it finished, its result lost
    with the process) runs again on a fresh worker, ``retries`` more times at most; the
    error of the last attempt says how many there were (``attempts``). A call that
    raises is never run again, nor one whose worker could not be stopped. Use as
    ``@idempotent``, ``@idempotent(retries=3)`` or ``idempotent(fn, retries=3)``.
    """
    if fn is None:
        return lambda f: _mark(f, retries)
    return _mark(fn, retries)


def retry_budget(fn: object) -> int:
    """The retries :func:`idempotent` granted ``fn`` (also through a
    ``functools.partial``), 0 if none."""
    for candidate in (fn, getattr(fn, "func", None)):
        budget = getattr(candidate, _RETRIES, None)
        if isinstance(budget, int) and not isinstance(budget, bool) and budget > 0:
            return min(budget, MAX_RETRIES)
    return 0
