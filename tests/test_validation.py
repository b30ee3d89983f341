"""Validation at the boundary, as leasepool 0.1.3: every bad value is a ``ValueError``
with 0.1.3's message, at construction (or at the ``acquire()`` await), never a
``TypeError`` from a conversion, a silent truncation, or a failure at first use."""

from __future__ import annotations

import math
from typing import Any

import pytest

from leasepool import LeasedExecutorManager, WorkGrinder

COUNTS = ["max_pools", "min_pools", "units_per_pool", "workers_per_pool"]
NOT_INTEGERS: list[Any] = [True, False, 2.5, 2.0, "3", None, object()]
DURATIONS = ["check_interval", "default_lease_seconds"]
NOT_FINITE: list[Any] = [math.nan, math.inf, -math.inf, True, False, "soon", None, object()]


def manager_kwargs(**overrides: Any) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"max_pools": 2}
    kwargs.update(overrides)
    return kwargs


@pytest.mark.parametrize(
    ("name", "value"),
    # None means "the default" for the optional counts; max_pools has none.
    [(n, v) for n in COUNTS for v in NOT_INTEGERS if v is not None or n == "max_pools"],
    ids=repr,
)
def test_counts_must_be_real_integers(name: str, value: Any) -> None:
    with pytest.raises(ValueError) as info:
        LeasedExecutorManager(**manager_kwargs(**{name: value}))
    assert str(info.value) == f"{name} must be an integer > 0"


@pytest.mark.parametrize("value", [0, -1, -(2**70)])
@pytest.mark.parametrize("name", COUNTS)
def test_counts_must_be_positive(name: str, value: int) -> None:
    with pytest.raises(ValueError) as info:
        LeasedExecutorManager(**manager_kwargs(**{name: value}))
    assert str(info.value) == f"{name} must be > 0"


def test_integer_like_counts_are_accepted() -> None:
    class Three:
        def __index__(self) -> int:
            return 3

    manager = LeasedExecutorManager(max_pools=Three(), workers_per_pool=2**80)  # type: ignore[arg-type]
    assert manager.stats()["max_pools"] == 3


@pytest.mark.parametrize("value", [v for v in NOT_FINITE if v is not None], ids=repr)
@pytest.mark.parametrize("name", DURATIONS)
def test_positive_durations_must_be_finite_numbers(name: str, value: Any) -> None:
    with pytest.raises(ValueError) as info:
        LeasedExecutorManager(**manager_kwargs(**{name: value}))
    assert str(info.value) == f"{name} must be a finite number > 0"


@pytest.mark.parametrize("value", [0, 0.0, -1.5])
@pytest.mark.parametrize("name", DURATIONS)
def test_positive_durations_must_be_above_zero(name: str, value: float) -> None:
    """``check_interval=0`` used to make the checker spin at 100% CPU."""
    with pytest.raises(ValueError) as info:
        LeasedExecutorManager(**manager_kwargs(**{name: value}))
    assert str(info.value) == f"{name} must be > 0"


ZERO_ALLOWED = ["lease_grace_seconds", "idle_pool_seconds"]


@pytest.mark.parametrize("value", [v for v in NOT_FINITE if v is not None], ids=repr)
@pytest.mark.parametrize("name", ZERO_ALLOWED)
def test_grace_and_idle_time_must_be_finite_numbers(name: str, value: Any) -> None:
    """``lease_grace_seconds=nan`` used to make leases never expire."""
    with pytest.raises(ValueError) as info:
        LeasedExecutorManager(**manager_kwargs(**{name: value}))
    assert str(info.value) == f"{name} must be a finite number >= 0"


@pytest.mark.parametrize("name", ZERO_ALLOWED)
def test_negative_grace_and_idle_time_are_rejected_and_zero_is_allowed(name: str) -> None:
    """A negative grace used to revoke leases at once."""
    with pytest.raises(ValueError) as info:
        LeasedExecutorManager(**manager_kwargs(**{name: -0.1}))
    assert str(info.value) == f"{name} must be >= 0"
    LeasedExecutorManager(**manager_kwargs(**{name: 0}))


def test_numeric_strings_are_accepted_as_durations_like_0_1_3() -> None:
    """0.1.3 converts durations with ``float()``: a config value read from the
    environment as ``"30"`` keeps working."""
    manager = LeasedExecutorManager(**manager_kwargs(default_lease_seconds="30"))
    assert manager.stats()["max_pools"] == 2


def test_first_invalid_option_in_0_1_3_order_is_reported() -> None:
    """Counts first, then durations, then ``min_pools <= max_pools``."""
    with pytest.raises(ValueError, match="^workers_per_pool must be > 0$"):
        LeasedExecutorManager(max_pools=1, workers_per_pool=0, check_interval=math.nan)
    with pytest.raises(ValueError, match="^check_interval must be a finite number > 0$"):
        LeasedExecutorManager(max_pools=1, min_pools=2, check_interval=math.nan)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (math.nan, "lease_seconds must be a finite number > 0"),
        (math.inf, "lease_seconds must be a finite number > 0"),
        (True, "lease_seconds must be a finite number > 0"),
        ("later", "lease_seconds must be a finite number > 0"),
        (0, "lease_seconds must be > 0"),
        (-5.0, "lease_seconds must be > 0"),
    ],
    ids=repr,
)
async def test_acquire_lease_seconds_is_validated(value: Any, message: str) -> None:
    manager = LeasedExecutorManager(max_pools=1)
    await manager.start()
    try:
        with pytest.raises(ValueError) as info:
            await manager.acquire(lease_seconds=value)
        assert str(info.value) == message
        assert manager.leased_count == 0
        # Nothing was taken: a valid acquire still gets the only pool.
        lease = await manager.acquire(lease_seconds=5, wait=False)
        await lease.release()
    finally:
        await manager.stop()


async def test_acquire_lease_seconds_is_validated_before_the_started_check() -> None:
    """As in 0.1.3: a bad value is reported even on a manager that is not running."""
    manager = LeasedExecutorManager(max_pools=1)
    with pytest.raises(ValueError, match="^lease_seconds must be a finite number > 0$"):
        await manager.acquire(lease_seconds=math.nan)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"batch_size_threshold": True}, "batch_size_threshold must be an integer > 0"),
        ({"batch_size_threshold": 2.5}, "batch_size_threshold must be an integer > 0"),
        ({"batch_size_threshold": "3"}, "batch_size_threshold must be an integer > 0"),
        ({"batch_size_threshold": 0}, "batch_size_threshold must be > 0"),
        ({"max_wait_seconds": math.inf}, "max_wait_seconds must be a finite number > 0"),
        ({"max_wait_seconds": False}, "max_wait_seconds must be a finite number > 0"),
        ({"max_wait_seconds": 0}, "max_wait_seconds must be > 0"),
        ({"lease_seconds": "x"}, "lease_seconds must be a finite number > 0"),
        ({"lease_seconds": -1}, "lease_seconds must be > 0"),
    ],
    ids=repr,
)
def test_grinder_options_are_validated(kwargs: dict[str, Any], message: str) -> None:
    manager = LeasedExecutorManager(max_pools=1)
    with pytest.raises(ValueError) as info:
        WorkGrinder(executor_manager=manager, **kwargs)
    assert str(info.value) == message
