"""The options of long-running process workers, read at the manager's construction.

``max_worker_memory``, ``crash_breaker`` and ``context_vars`` reach the manager as
keyword arguments beside the executor's own (``max_tasks_per_child``, ``mp_context``,
...), which it otherwise hands to the executor at ``start()``. These three are checked
here, when the manager is built, so a typo fails at once with a typed error, and taken
out of what the executor gets: ``max_worker_memory`` is normalised to bytes (the worker
initializer reads it, ``_process_backend``), the breaker becomes the engine's policy,
and each context variable is located (its module and attribute) so a worker can find
its own copy of it.
"""

from __future__ import annotations

import contextvars
import logging
import sys
from collections.abc import Mapping
from typing import Any, NamedTuple

from ._engine import parse_memory_size
from ._process_worker import dumps
from .resilience import CrashBreaker

__all__ = ["WorkerOptions", "context_payload", "split_worker_options"]

#: Backends whose worker processes are this package's own.
_OWN_PROCESSES = ("process", "auto")


class WorkerOptions(NamedTuple):
    """What ``split_worker_options`` took out of the executor arguments."""

    #: The executor arguments left (``max_worker_memory`` in bytes, if given).
    kwargs: dict[str, Any]
    #: ``(max_crashes, window_seconds, cooldown_seconds)``, or ``None``.
    breaker: tuple[int, float, float] | None
    #: ``((module, attribute, var), ...)`` for each variable of ``context_vars``.
    context: tuple[tuple[str, str, contextvars.ContextVar[Any]], ...]


def split_worker_options(backend: str, executor_kwargs: Mapping[str, Any]) -> WorkerOptions:
    """Checks and takes out the worker options.

    Raises:
        TypeError: an option the backend has no use for, or a value of the wrong type.
        ValueError: a value out of range, or a context variable that cannot be located.
    """
    kwargs = dict(executor_kwargs)
    memory = kwargs.pop("max_worker_memory", None)
    breaker = kwargs.pop("crash_breaker", None)
    context = kwargs.pop("context_vars", None)
    own = backend in _OWN_PROCESSES
    for name, value in (("max_worker_memory", memory), ("crash_breaker", breaker)):
        if value is not None and value is not False and not own:
            raise TypeError(
                f"{name} applies to the worker processes of backend='process' or "
                f"backend='auto', not backend={backend!r}"
            )
    if memory is not None:
        kwargs["max_worker_memory"] = _memory_bytes(memory)
    located: tuple[tuple[str, str, contextvars.ContextVar[Any]], ...] = ()
    if context is not None:
        if backend == "interpreter":
            raise TypeError(
                "context_vars is not supported by backend='interpreter' (nothing that runs "
                "in a sub-interpreter may import leasepool to set them)"
            )
        located = tuple(_locate(item) for item in _as_list(context))
        if backend == "thread":
            located = ()  # a worker thread runs in a copy of the caller's whole context
    return WorkerOptions(kwargs, _breaker_policy(breaker), located)


def _memory_bytes(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise TypeError(
            "max_worker_memory must be a number of bytes or a size such as '512MiB', "
            f"not {type(value).__name__}"
        )
    if isinstance(value, int):
        if value < 1:
            raise ValueError(f"max_worker_memory must be at least 1 byte, got {value}")
        return value
    return parse_memory_size(value)


def _breaker_policy(value: object) -> tuple[int, float, float] | None:
    if value is None or value is False:
        return None
    if value is True:
        value = CrashBreaker()
    if not isinstance(value, CrashBreaker):
        raise TypeError(
            "crash_breaker must be a leasepool.resilience.CrashBreaker, True or None, "
            f"not {type(value).__name__}"
        )
    return (value.max_crashes, value.window_seconds, value.cooldown_seconds)


def _as_list(value: object) -> list[object]:
    if isinstance(value, (str, contextvars.ContextVar)):
        return [value]
    try:
        items: list[object] = list(value)  # type: ignore[call-overload]
    except TypeError:
        raise TypeError(
            "context_vars must be a list of contextvars.ContextVar objects or "
            f"'module:attribute' strings, not {type(value).__name__}"
        ) from None
    return items


def _locate(item: object) -> tuple[str, str, contextvars.ContextVar[Any]]:
    """Where a worker finds its own copy of a context variable: a module attribute."""
    if isinstance(item, str):
        module, sep, attribute = item.partition(":")
        if not sep or not module or not attribute:
            raise ValueError(f"context_vars entry {item!r} must read 'module:attribute'")
        var = resolve(module, attribute)
        return (module, attribute, var)
    if not isinstance(item, contextvars.ContextVar):
        raise TypeError(
            "context_vars entries must be contextvars.ContextVar objects or "
            f"'module:attribute' strings, not {type(item).__name__}"
        )
    # A worker imports the variable's module to find it: look for the module attribute
    # holding this very object. Prefer a module a worker can import by name (not one
    # loaded from a file path), and the main script last: it is re-imported in a
    # worker only where the start method is not fork, and then without what its
    # `if __name__ == "__main__":` block defines.
    found: list[tuple[int, str, str]] = []
    for module_name, loaded in list(sys.modules.items()):
        namespace = getattr(loaded, "__dict__", None)
        if not isinstance(namespace, dict):
            continue
        for attribute, value in list(namespace.items()):
            if value is item:
                name = "__main__" if module_name == "__mp_main__" else module_name
                rank = 2 if name == "__main__" else 0 if _importable(name) else 1
                found.append((rank, name, attribute))
    if not found:
        raise ValueError(
            f"context variable {item.name!r} is not a module attribute, so a worker "
            "process cannot find it: define it at module level, or pass "
            "'module:attribute'"
        )
    _, name, attribute = min(found)
    return (name, attribute, item)


def _importable(module: str) -> bool:
    """Whether ``import module`` would find it (as a worker that starts fresh would)."""
    import importlib.util

    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def resolve(module: str, attribute: str) -> contextvars.ContextVar[Any]:
    """The context variable at ``module:attribute`` (importing the module)."""
    import importlib

    try:
        found: Any = importlib.import_module(module)
        for part in attribute.split("."):
            found = getattr(found, part)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"cannot find context variable {module}:{attribute}: {exc}") from None
    if not isinstance(found, contextvars.ContextVar):
        raise TypeError(f"{module}:{attribute} is a {type(found).__name__}, not a ContextVar")
    return found


_MISSING = object()
_unpicklable_warned: set[str] = set()
_logger = logging.getLogger("leasepool.manager")


def context_payload(
    context: contextvars.Context,
    specs: tuple[tuple[str, str, contextvars.ContextVar[Any]], ...],
) -> tuple[tuple[str, str, bytes], ...]:
    """The values of ``specs`` set in ``context`` (a call's captured context), each
    pickled on its own (empty if none is set: the worker still gives the call a context
    of its own). A value that cannot be pickled is left out (the worker sees the
    variable unset), with one WARNING per variable."""
    payload = []
    for module, attribute, var in specs:
        value = context.get(var, _MISSING)
        if value is _MISSING:
            continue
        try:
            payload.append((module, attribute, dumps(value)))
        except Exception as exc:
            key = f"{module}:{attribute}"
            if key not in _unpicklable_warned:
                _unpicklable_warned.add(key)
                _logger.warning(
                    "Context variable %s not copied into worker processes: its value "
                    "cannot be pickled (%r)",
                    key,
                    exc,
                )
    return tuple(payload)
