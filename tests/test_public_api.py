"""Public surface kept from 0.1.1: names, modules, exception tree, backend helpers."""

from __future__ import annotations

import importlib
import logging
import sys
import threading
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor

import pytest

import leasepool
from leasepool import (
    ExecutorBackend,
    LeasedExecutorManager,
    LeaseExpiredError,
    LeasePoolError,
    LeasePoolNotStartedError,
    LeaseUnavailableError,
    UnsupportedBackendError,
)
from leasepool.backends import build_executor, normalize_backend, resolve_executor_cls

REFERENCE_ALL = [
    "ExecutorBackend",
    "ExecutorLease",
    "LeasedExecutorManager",
    "LeaseExpiredError",
    "LeasePoolError",
    "LeasePoolNotStartedError",
    "LeaseUnavailableError",
    "UnsupportedBackendError",
    "WorkGrinder",
    "ProcessLoggingConfig",
]

INTERPRETER_MESSAGE = "InterpreterPoolExecutor is available only on Python 3.14+."
needs_pre_314 = pytest.mark.skipif(
    sys.version_info >= (3, 14), reason="InterpreterPoolExecutor exists on 3.14+"
)


# Names this package adds, each listed in docs/compatibility.md.
ADDED_NAMES = [
    "LeaseAcquireTimeoutError",
    "LeaseQueueFullError",
    "LeasePoolDrainingError",
    "WorkerCrashLoopError",
]


def test_all_is_the_reference_list_then_the_documented_additions() -> None:
    """``leasepool.__all__`` starts with 0.1.1's list in its order; then only the
    additions docs/compatibility.md lists; every name resolves."""
    assert leasepool.__all__ == REFERENCE_ALL + ADDED_NAMES
    for name in leasepool.__all__:
        assert getattr(leasepool, name) is not None


@pytest.mark.parametrize(
    ("module", "names"),
    [
        (
            "leasepool.exceptions",
            [
                "LeasePoolError",
                "LeasePoolNotStartedError",
                "LeaseUnavailableError",
                "LeaseExpiredError",
                "UnsupportedBackendError",
            ],
        ),
        (
            "leasepool.backends",
            ["ExecutorBackend", "normalize_backend", "resolve_executor_cls", "build_executor"],
        ),
        ("leasepool.manager", ["LeasedExecutorManager", "ExecutorLease"]),
        ("leasepool.grinder", ["WorkGrinder"]),
        ("leasepool.types", ["SyncCallable", "SizeProvider"]),
    ],
)
def test_submodules_keep_their_names(module: str, names: list[str]) -> None:
    """0.1.1 import paths still work and re-exported names are the same objects."""
    mod = importlib.import_module(module)
    for name in names:
        obj = getattr(mod, name)
        if name in REFERENCE_ALL:
            assert obj is getattr(leasepool, name)


def test_package_logger_has_null_handler() -> None:
    """Like 0.1.1, the ``leasepool`` logger carries a NullHandler (library hygiene)."""
    handlers = logging.getLogger("leasepool").handlers
    assert any(isinstance(h, logging.NullHandler) for h in handlers)


@pytest.mark.parametrize(
    "exc",
    [LeasePoolNotStartedError, LeaseUnavailableError, LeaseExpiredError, UnsupportedBackendError],
)
def test_exception_hierarchy(exc: type[Exception]) -> None:
    """Every leasepool error derives from LeasePoolError, which is an Exception."""
    assert issubclass(exc, LeasePoolError)
    assert issubclass(LeasePoolError, Exception)
    err = exc("boom")
    assert str(err) == "boom"
    with pytest.raises(LeasePoolError):
        raise err


def test_exceptions_can_be_subclassed() -> None:
    """Users subclass the errors; the subclass is caught by the base class."""

    class MyError(LeaseUnavailableError):
        pass

    with pytest.raises(LeasePoolError, match="mine"):
        raise MyError("mine")


def test_executor_backend_values() -> None:
    """ExecutorBackend is a str enum with 0.1.1's three members in order, then the
    dask backend (a deliberate addition, docs/compatibility.md)."""
    assert [m.value for m in ExecutorBackend] == [
        "thread",
        "process",
        "interpreter",
        "dask",
        "auto",
    ]
    thread: str = ExecutorBackend.THREAD
    assert thread == "thread"
    assert isinstance(ExecutorBackend.PROCESS, str)
    assert str(ExecutorBackend.INTERPRETER) == "interpreter"
    assert ExecutorBackend("process") is ExecutorBackend.PROCESS


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("thread", ExecutorBackend.THREAD),
        ("THREAD", ExecutorBackend.THREAD),
        ("Process", ExecutorBackend.PROCESS),
        ("InTerPreter", ExecutorBackend.INTERPRETER),
        (ExecutorBackend.PROCESS, ExecutorBackend.PROCESS),
    ],
)
def test_normalize_backend_is_case_insensitive(
    raw: ExecutorBackend | str, expected: ExecutorBackend
) -> None:
    """Strings normalize case-insensitively to the enum member."""
    assert normalize_backend(raw) is expected


def test_unknown_backend_message() -> None:
    """Unknown names raise ValueError listing the supported names."""
    msg = "Unsupported backend 'gpu'. Supported: thread, process, interpreter, dask, auto"
    with pytest.raises(ValueError) as info:
        normalize_backend("gpu")
    assert str(info.value) == msg
    with pytest.raises(ValueError) as info:
        resolve_executor_cls("gpu")
    assert str(info.value) == msg
    with pytest.raises(ValueError) as info:
        LeasedExecutorManager(backend="gpu", max_pools=1)
    assert str(info.value) == msg


def test_resolve_executor_cls_returns_stdlib_classes() -> None:
    """Thread and process backends resolve to the standard library executors."""
    assert resolve_executor_cls("thread") is ThreadPoolExecutor
    assert resolve_executor_cls(ExecutorBackend.THREAD) is ThreadPoolExecutor
    assert resolve_executor_cls("PROCESS") is ProcessPoolExecutor


def test_build_executor_names_threads() -> None:
    """build_executor makes a stdlib thread pool named ``{name_prefix}-{seq}_{i}``."""
    executor = build_executor(
        backend="thread",
        max_workers=2,
        name_prefix="built",
        executor_seq=7,
        executor_kwargs={},
    )
    try:
        assert isinstance(executor, ThreadPoolExecutor)
        name = executor.submit(lambda: threading.current_thread().name).result(5)
        assert name.startswith("built-7_")
    finally:
        executor.shutdown(wait=True)


@needs_pre_314
def test_interpreter_backend_unsupported_in_resolve() -> None:
    """Before 3.14 the interpreter backend raises UnsupportedBackendError."""
    with pytest.raises(UnsupportedBackendError) as info:
        resolve_executor_cls("interpreter")
    assert str(info.value) == INTERPRETER_MESSAGE


@needs_pre_314
async def test_interpreter_backend_unsupported_in_manager() -> None:
    """A manager with backend="interpreter" fails at construction or at start().

    Whichever it is, the error is UnsupportedBackendError with 0.1.1's message and a
    manager whose start failed is not started (acquire refuses, stop is safe).
    """
    manager: LeasedExecutorManager | None = None
    with pytest.raises(UnsupportedBackendError) as info:
        manager = LeasedExecutorManager(backend="interpreter", max_pools=1)
        await manager.start()
    assert str(info.value) == INTERPRETER_MESSAGE
    if manager is not None:
        assert manager.total_count == 0
        with pytest.raises(LeasePoolNotStartedError):
            await manager.acquire()
        await manager.stop()
