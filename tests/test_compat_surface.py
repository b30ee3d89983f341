"""The import surface and signatures leasepool 0.1.3 users rely on."""

from __future__ import annotations

import importlib
import inspect
import logging
import queue
from typing import Any

import pytest

import leasepool
from leasepool import ExecutorLease, LeasedExecutorManager, WorkGrinder

# Names 0.1.3 made importable from each module (its own classes and functions, and what
# it re-exported; not the stdlib modules it happened to import).
IMPORTABLE = {
    "leasepool.manager": [
        "BrokenExecutor",
        "Executor",
        "ExecutorBackend",
        "ExecutorLease",
        "Future",
        "FutureCancelledError",
        "LeaseExpiredError",
        "LeasePoolNotStartedError",
        "LeaseUnavailableError",
        "LeasedExecutorManager",
        "ProcessLoggingConfig",
        "SizeProvider",
        "build_executor",
        "build_queue_listener",
        "coerce_log_level",
        "logger",
        "normalize_backend",
        "process_worker_initializer",
    ],
    "leasepool.grinder": ["ConcurrentFuture", "LeasedExecutorManager", "WorkGrinder", "logger"],
    "leasepool.backends": [
        "ExecutorBackend",
        "build_executor",
        "normalize_backend",
        "resolve_executor_cls",
    ],
    "leasepool.types": ["SizeProvider", "SyncCallable"],
    "leasepool._process_logging": [
        "LoggerForwardingHandler",
        "ProcessLoggingConfig",
        "build_queue_listener",
        "coerce_log_level",
        "configure_process_worker_logging",
        "process_worker_initializer",
    ],
}


@pytest.mark.parametrize(
    ("module", "name"), [(m, n) for m, names in IMPORTABLE.items() for n in names]
)
def test_name_is_importable_where_0_1_3_had_it(module: str, name: str) -> None:
    assert hasattr(importlib.import_module(module), name)


def test_types_submodule_is_an_attribute_of_the_package() -> None:
    assert leasepool.types.SizeProvider is importlib.import_module("leasepool.types").SizeProvider


def _params(func: Any) -> list[tuple[str, Any]]:
    """Names and defaults (annotations aside: extension methods carry none)."""
    sig = inspect.signature(func)
    return [(p.name, p.default) for p in sig.parameters.values() if p.name != "self"]


EMPTY = inspect.Parameter.empty


@pytest.mark.parametrize(
    ("func", "expected"),
    [
        (
            WorkGrinder,
            [
                ("executor_manager", EMPTY),
                ("max_wait_seconds", 10.0),
                ("batch_size_threshold", 20),
                ("lease_seconds", 60.0),
                ("owner_prefix", "work-grinder"),
                ("logger", None),
                # Beyond 0.1.3 (backpressure), keyword-only, after its parameters.
                ("max_pending", None),
                ("wait", True),
                ("submit_timeout", None),
            ],
        ),
        (WorkGrinder.submit, [("fn", EMPTY), ("args", EMPTY), ("owner", None), ("kwargs", EMPTY)]),
        (
            WorkGrinder.enqueue,
            [("fn", EMPTY), ("args", EMPTY), ("owner", None), ("kwargs", EMPTY)],
        ),
        (
            WorkGrinder.submit_from_thread,
            [("fn", EMPTY), ("args", EMPTY), ("owner", None), ("kwargs", EMPTY)],
        ),
        (WorkGrinder.stop, [("cancel_pending", False)]),
        (WorkGrinder.stats_from_thread, [("timeout", None)]),
        (ExecutorLease.run, [("fn", EMPTY), ("args", EMPTY), ("kwargs", EMPTY)]),
        (
            LeasedExecutorManager.acquire,
            [
                ("lease_seconds", None),
                ("owner", None),
                ("wait", True),
                ("timeout", None),
                # Beyond 0.1.3 (admission control), keyword-only, after its parameters.
                ("priority", 0),
                ("reservation", None),
            ],
        ),
        (LeasedExecutorManager.release, [("lease_id", EMPTY)]),
    ],
    ids=lambda v: getattr(v, "__qualname__", "") if callable(v) else "",
)
def test_signature_shows_0_1_3_names_and_defaults(func: Any, expected: list[Any]) -> None:
    assert _params(func) == expected


def test_manager_constructor_signature_shows_real_defaults() -> None:
    params = dict(_params(LeasedExecutorManager))
    assert params["min_pools"] == 1
    assert params["check_interval"] == 120.0
    assert params["lease_grace_seconds"] == 15.0
    assert params["workers_per_pool"] == 4
    assert params["max_pools"] is EMPTY


def test_worker_logging_helpers_forward_records_like_0_1_3() -> None:
    """``process_worker_initializer`` and ``build_queue_listener`` work in-process too."""
    from leasepool.manager import build_queue_listener, process_worker_initializer

    records: queue.Queue[Any] = queue.Queue()
    target = logging.getLogger("lp.test.compat.target")
    target.setLevel(logging.INFO)
    seen: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record.getMessage())

    collector = Collect()
    target.addHandler(collector)
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    called: list[tuple[Any, ...]] = []
    try:
        process_worker_initializer(records, "INFO", False, lambda *a: called.append(a), (1, 2))
        assert called == [(1, 2)]
        logging.getLogger("lp.test.compat.worker").info("hello %s", "parent")
        logging.getLogger("lp.test.compat.worker").debug("filtered by the worker level")
    finally:
        root.handlers[:] = saved_handlers
        root.setLevel(saved_level)
    listener = build_queue_listener(log_queue=records, target_logger=target)
    listener.start()
    listener.stop()  # handles everything queued before returning
    target.removeHandler(collector)
    assert seen == ["hello parent"]
