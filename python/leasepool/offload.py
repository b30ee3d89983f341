"""Hints for ``backend="auto"``: where a callable's calls run, stated instead of measured.

A manager with ``backend="auto"`` routes each callable by measurement (see
``docs/offloading.md``): calls start on thread workers, and a callable whose calls keep
the GIL busy (thread CPU time close to wall time) moves to process workers. These
decorators fix the route from the first call on::

    @cpu_bound
    def render(page): ...        # always on a worker process

    @io_bound
    def fetch(url): ...          # always on a worker thread

A hint is read the first time the manager sees the callable. ``cpu_bound`` on a
callable that cannot be pickled is overruled: it stays on threads (logged once). Other
backends ignore hints.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, Literal, TypeVar

__all__ = ["cpu_bound", "io_bound", "route_hint"]

F = TypeVar("F", bound=Callable[..., Any])

_ATTRIBUTE = "__leasepool_route__"


class _Hinted:
    """A callable that takes no attributes (a builtin), carrying a hint. Picklable
    whenever the callable it wraps is."""

    __wrapped__: Callable[..., Any]
    __leasepool_route__: str

    def __init__(self, fn: Callable[..., Any], route: str) -> None:
        functools.update_wrapper(self, fn)
        self.__leasepool_route__ = route

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.__wrapped__(*args, **kwargs)

    def __reduce__(self) -> tuple[Any, ...]:
        return (_Hinted, (self.__wrapped__, self.__leasepool_route__))


def _hint(fn: F, route: str) -> F:
    if not callable(fn):
        raise TypeError(f"expected a callable, got {type(fn).__name__}")
    try:
        setattr(fn, _ATTRIBUTE, route)
    except (AttributeError, TypeError):
        hinted: Any = _Hinted(fn, route)
        return hinted  # type: ignore[no-any-return]
    return fn


def cpu_bound(fn: F) -> F:
    """Mark ``fn`` CPU-bound: with ``backend="auto"`` its calls run on worker processes."""
    return _hint(fn, "cpu")


def io_bound(fn: F) -> F:
    """Mark ``fn`` I/O-bound: with ``backend="auto"`` its calls run on worker threads."""
    return _hint(fn, "io")


def route_hint(fn: Callable[..., Any]) -> Literal["cpu", "io"] | None:
    """The hint ``cpu_bound``/``io_bound`` left on ``fn``, if any."""
    hint = getattr(fn, _ATTRIBUTE, None)
    return hint if hint in ("cpu", "io") else None
