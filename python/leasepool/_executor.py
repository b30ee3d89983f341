"""``lease.executor``: a real :class:`concurrent.futures.Executor` bound to one lease.

It is Python because it must *be* an ``Executor`` subclass (``isinstance`` checks,
the inherited ``map``); its ``submit`` is the engine's bound method, so submitting
runs no Python frame of ours.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Executor, Future
from typing import Any, ParamSpec, TypeVar

__all__ = ["LeasedExecutor"]

_P = ParamSpec("_P")
_T = TypeVar("_T")


class LeasedExecutor(Executor):
    """Submits through a lease; refuses to be shut down (release the lease instead)."""

    def __init__(self, submit: Callable[..., Future[Any]]) -> None:
        self.submit = submit  # type: ignore[method-assign]

    def submit(self, fn: Callable[_P, _T], /, *args: _P.args, **kwargs: _P.kwargs) -> Future[_T]:
        raise NotImplementedError  # replaced per instance in __init__

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        raise RuntimeError(
            "Do not shut down a leased executor directly. "
            "Return the lease with `await lease.release()`."
        )
