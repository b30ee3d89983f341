"""WorkGrinder construction: keyword-only parameters, defaults and validation."""

from __future__ import annotations

import math
from typing import Any

import pytest

from leasepool import LeasedExecutorManager, WorkGrinder


@pytest.fixture
def manager() -> LeasedExecutorManager:
    """An unstarted manager (construction needs none started)."""
    return LeasedExecutorManager(max_pools=1)


def test_defaults_are_reported_by_stats(manager: LeasedExecutorManager) -> None:
    grinder = WorkGrinder(executor_manager=manager)
    assert grinder.stats() == {
        "started": False,
        "stopping": False,
        "pending": 0,
        "batch_size_threshold": 20,
        "max_wait_seconds": 10.0,
        "lease_seconds": 60.0,
        "oldest_wait_seconds": 0.0,
    }


def test_given_values_are_reported_and_normalised(manager: LeasedExecutorManager) -> None:
    """Integral seconds come back as floats, as in 0.1.1 (``float(...)``)."""
    grinder = WorkGrinder(
        executor_manager=manager,
        max_wait_seconds=2,
        batch_size_threshold=7,
        lease_seconds=3,
        owner_prefix="custom",
    )
    stats = grinder.stats()
    assert stats["batch_size_threshold"] == 7
    assert stats["max_wait_seconds"] == 2.0
    assert isinstance(stats["max_wait_seconds"], float)
    assert stats["lease_seconds"] == 3.0
    assert isinstance(stats["lease_seconds"], float)


def test_parameters_are_keyword_only(manager: LeasedExecutorManager) -> None:
    with pytest.raises(TypeError):
        WorkGrinder(manager)  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        WorkGrinder()  # type: ignore[call-arg]


def test_unknown_keyword_is_rejected(manager: LeasedExecutorManager) -> None:
    with pytest.raises(TypeError):
        WorkGrinder(executor_manager=manager, batch_size=3)  # type: ignore[call-arg]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_wait_seconds": 0}, "max_wait_seconds must be > 0"),
        ({"max_wait_seconds": -1.5}, "max_wait_seconds must be > 0"),
        ({"batch_size_threshold": 0}, "batch_size_threshold must be > 0"),
        ({"batch_size_threshold": -3}, "batch_size_threshold must be > 0"),
        ({"lease_seconds": 0.0}, "lease_seconds must be > 0"),
        ({"lease_seconds": -0.001}, "lease_seconds must be > 0"),
    ],
)
def test_invalid_values_raise_value_error(
    manager: LeasedExecutorManager, kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=f"^{message}$"):
        WorkGrinder(executor_manager=manager, **kwargs)


def test_validation_order_matches_reference(manager: LeasedExecutorManager) -> None:
    """With several bad values, max_wait_seconds is reported first, then the threshold."""
    with pytest.raises(ValueError, match="^max_wait_seconds must be > 0$"):
        WorkGrinder(
            executor_manager=manager,
            max_wait_seconds=0,
            batch_size_threshold=0,
            lease_seconds=0,
        )
    with pytest.raises(ValueError, match="^batch_size_threshold must be > 0$"):
        WorkGrinder(executor_manager=manager, batch_size_threshold=0, lease_seconds=0)


@pytest.mark.beyond_reference
@pytest.mark.parametrize("name", ["max_wait_seconds", "lease_seconds"])
def test_nan_durations_are_rejected(manager: LeasedExecutorManager, name: str) -> None:
    """0.1.1 accepted NaN (``nan <= 0`` is false) and then never flushed by time;
    0.1.3 rejects it with this message."""
    with pytest.raises(ValueError, match=f"^{name} must be a finite number > 0$"):
        kwargs: dict[str, Any] = {name: math.nan}
        WorkGrinder(executor_manager=manager, **kwargs)


@pytest.mark.beyond_reference
@pytest.mark.parametrize("value", [0, -1])
def test_invalid_max_pending_raises(manager: LeasedExecutorManager, value: int) -> None:
    with pytest.raises(ValueError, match="^max_pending must be > 0$"):
        WorkGrinder(executor_manager=manager, max_pending=value)


@pytest.mark.beyond_reference
def test_backpressure_options_are_accepted(manager: LeasedExecutorManager) -> None:
    """max_pending / wait / submit_timeout are keyword-only and optional."""
    WorkGrinder(executor_manager=manager, max_pending=None)
    grinder = WorkGrinder(executor_manager=manager, max_pending=5, wait=False, submit_timeout=0.5)
    assert grinder.stats()["pending"] == 0


def test_module_path_matches_reference_import_location(manager: LeasedExecutorManager) -> None:
    """The class is importable from leasepool.grinder (0.1.1's path) and is the same."""
    import leasepool.grinder

    assert leasepool.grinder.WorkGrinder is WorkGrinder
    assert isinstance(WorkGrinder(executor_manager=manager), leasepool.grinder.WorkGrinder)
