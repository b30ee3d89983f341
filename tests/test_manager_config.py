"""LeasedExecutorManager construction: signature, validation, sizing before start."""

from __future__ import annotations

import inspect
import logging
import math
from typing import Any

import pytest
from _support import MANAGER_LOGGER, messages
from hypothesis import given
from hypothesis import strategies as st

from leasepool import ExecutorBackend, LeasedExecutorManager, ProcessLoggingConfig

REFERENCE_PARAMETERS: list[tuple[str, Any]] = [
    ("backend", "thread"),
    ("max_pools", inspect.Parameter.empty),
    ("min_pools", 1),
    ("units_per_pool", 10),
    ("size_provider", None),
    ("check_interval", 120.0),
    ("default_lease_seconds", 300.0),
    ("lease_grace_seconds", 15.0),
    ("workers_per_pool", 4),
    ("name_prefix", "leasepool"),
    ("logger", None),
    ("process_logging", None),
    ("forward_process_logs", False),
    ("process_log_level", logging.INFO),
    ("process_log_target_logger", None),
    ("clear_process_log_handlers", True),
]
# Parameters this package adds after 0.1.3's, each in docs/compatibility.md.
ADDED_PARAMETERS: list[tuple[str, Any]] = [
    ("idle_pool_seconds", 10.0),
    ("max_waiters", None),
    ("owner_limit", None),
    ("fair_share", False),
    ("reserved_pools", None),
    ("metrics", True),
    ("metrics_owners", 0),
    ("track_acquire_site", False),
    ("autoscale", None),
]


def test_constructor_signature_matches_reference() -> None:
    """All parameters are keyword-only with 0.1.1's names, order and defaults, then
    the documented additions."""
    params = list(inspect.signature(LeasedExecutorManager).parameters.values())
    *named, extra = params
    expected = REFERENCE_PARAMETERS + ADDED_PARAMETERS
    assert [p.name for p in named] == [name for name, _ in expected]
    for param, (_, default) in zip(named, expected, strict=True):
        assert param.kind is inspect.Parameter.KEYWORD_ONLY, param.name
        if default is inspect.Parameter.empty:
            assert param.default is inspect.Parameter.empty, param.name
        else:
            assert param.default == default, param.name
            assert type(param.default) in (type(default), ExecutorBackend), param.name
    assert extra.name == "executor_kwargs"
    assert extra.kind is inspect.Parameter.VAR_KEYWORD


def test_acquire_signature_matches_reference() -> None:
    """acquire() takes keyword-only lease_seconds, owner, wait, timeout, then the
    admission-control additions (docs/compatibility.md)."""
    params = inspect.signature(LeasedExecutorManager.acquire).parameters
    got = [(p.name, p.kind, p.default) for p in params.values() if p.name != "self"]
    kw = inspect.Parameter.KEYWORD_ONLY
    assert got == [
        ("lease_seconds", kw, None),
        ("owner", kw, None),
        ("wait", kw, True),
        ("timeout", kw, None),
        ("priority", kw, 0),
        ("reservation", kw, None),
    ]


def test_max_pools_is_required() -> None:
    """max_pools has no default."""
    with pytest.raises(TypeError):
        LeasedExecutorManager()  # type: ignore[call-arg]


def test_positional_arguments_are_rejected() -> None:
    """The constructor accepts no positional arguments."""
    with pytest.raises(TypeError):
        LeasedExecutorManager("thread", 1)  # type: ignore[call-arg]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_pools": 0}, "max_pools must be > 0"),
        ({"max_pools": -3, "min_pools": 0}, "max_pools must be > 0"),
        ({"max_pools": 1, "min_pools": 0}, "min_pools must be > 0"),
        ({"max_pools": 1, "units_per_pool": 0}, "units_per_pool must be > 0"),
        ({"max_pools": 1, "workers_per_pool": 0}, "workers_per_pool must be > 0"),
        ({"max_pools": 1, "workers_per_pool": -1}, "workers_per_pool must be > 0"),
        ({"max_pools": 2, "min_pools": 3}, "min_pools cannot be greater than max_pools"),
        (
            {"max_pools": 1, "forward_process_logs": True},
            "process log forwarding is only supported for process backend",
        ),
        (
            {
                "max_pools": 1,
                "backend": "process",
                "process_logging": ProcessLoggingConfig(enabled=True),
                "forward_process_logs": True,
            },
            "Pass either process_logging or the forward_process_logs/process_log_* "
            "arguments, not both.",
        ),
    ],
)
def test_invalid_configuration_messages(kwargs: dict[str, Any], message: str) -> None:
    """Invalid settings raise ValueError with 0.1.1's exact message."""
    with pytest.raises(ValueError) as info:
        LeasedExecutorManager(**kwargs)
    assert str(info.value) == message


def test_properties_before_start() -> None:
    """Before start() nothing exists: zero counts, empty leases, desired == min_pools."""
    manager = LeasedExecutorManager(backend="THREAD", max_pools=5, min_pools=2)
    assert manager.backend is ExecutorBackend.THREAD
    assert manager.available_count == 0
    assert manager.leased_count == 0
    assert manager.total_count == 0
    assert manager.desired_executor_count() == 2
    stats = manager.stats()
    assert (stats["available"], stats["leased"], stats["total"]) == (0, 0, 0)
    assert stats["leases"] == []


def test_backend_is_normalized() -> None:
    """The backend property is the enum member even when a string was passed."""
    manager = LeasedExecutorManager(backend="Process", max_pools=1)
    assert manager.backend is ExecutorBackend.PROCESS


@given(
    units=st.integers(min_value=-5, max_value=500),
    units_per_pool=st.integers(min_value=1, max_value=40),
    min_pools=st.integers(min_value=1, max_value=6),
    extra=st.integers(min_value=0, max_value=8),
)
def test_desired_count_formula(units: int, units_per_pool: int, min_pools: int, extra: int) -> None:
    """desired = min(max, max(min, ceil(units / units_per_pool))); negatives count as 0."""
    max_pools = min_pools + extra
    manager = LeasedExecutorManager(
        max_pools=max_pools,
        min_pools=min_pools,
        units_per_pool=units_per_pool,
        size_provider=lambda: units,
    )
    expected = min(max_pools, max(min_pools, math.ceil(max(0, units) / units_per_pool)))
    assert manager.desired_executor_count() == expected


def test_desired_without_size_provider_is_min_pools() -> None:
    """Without a size_provider the target is min_pools."""
    manager = LeasedExecutorManager(max_pools=8, min_pools=3)
    assert manager.desired_executor_count() == 3


def test_size_provider_is_read_on_each_call() -> None:
    """The size signal is re-read each time (no caching)."""
    units = [0]
    manager = LeasedExecutorManager(max_pools=10, units_per_pool=10, size_provider=lambda: units[0])
    assert manager.desired_executor_count() == 1
    units[0] = 31
    assert manager.desired_executor_count() == 4
    units[0] = 1000
    assert manager.desired_executor_count() == 10


def test_raising_size_provider_counts_as_zero(caplog: pytest.LogCaptureFixture) -> None:
    """A size_provider that raises counts as 0 units and is logged at DEBUG."""

    def broken() -> int:
        raise RuntimeError("sensor offline")

    manager = LeasedExecutorManager(max_pools=4, min_pools=2, size_provider=broken)
    with caplog.at_level(logging.DEBUG, logger=MANAGER_LOGGER):
        assert manager.desired_executor_count() == 2
    assert "Could not read size_provider" in messages(caplog, logging.DEBUG)


def test_raising_size_provider_logs_on_custom_logger(caplog: pytest.LogCaptureFixture) -> None:
    """The size_provider failure goes to the logger passed to the manager."""
    custom = logging.getLogger("tests.custom.sizing")

    def broken() -> int:
        raise ValueError("nope")

    manager = LeasedExecutorManager(max_pools=2, size_provider=broken, logger=custom)
    with caplog.at_level(logging.DEBUG, logger=custom.name):
        assert manager.desired_executor_count() == 1
    assert "Could not read size_provider" in messages(caplog, logging.DEBUG, custom.name)
