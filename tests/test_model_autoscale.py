"""Model-based test of autoscaling: random acquire / release / window sequences.

A Hypothesis state machine drives one manager (``max_pools=4``, ``min_pools=1``,
``autoscale`` with 5 s windows and 2 surplus windows per step down, pools above the
target retired as soon as they are free) on a private event loop, moving the engine's
clock a window at a time through its test seam. After every step: the target stays in
``[min_pools, max_pools]`` and covers every held lease, no pool exists above it that is
not leased, and a check leaves exactly ``target`` pools; after the load has stayed put
long enough, the target has come down to exactly what is held (or ``min_pools``)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from leasepool import ExecutorLease, LeasedExecutorManager
from leasepool._engine import _set_clock_skew_for_tests
from leasepool.autoscale import AutoScale

T = TypeVar("T")
MAX_POOLS = 4
WINDOW = 5.0
SETTINGS = settings(max_examples=30, stateful_step_count=25, deadline=None)


class AutoScaleModel(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.skew = 0.0
        self.checked = asyncio.Event()
        self.manager = LeasedExecutorManager(
            max_pools=MAX_POOLS,
            min_pools=1,
            idle_pool_seconds=0.0,
            default_lease_seconds=10.0**7,  # the model moves the clock by hours
            size_provider=self.count_check,
            autoscale=AutoScale(window_seconds=WINDOW, scale_down_windows=2),
        )
        self.held: list[ExecutorLease] = []
        self.run(self.manager.start())
        self.run_check()

    def run(self, awaitable: Awaitable[T]) -> T:
        return self.loop.run_until_complete(asyncio.wait_for(_inner(awaitable), 10.0))

    def count_check(self) -> int:
        # Checks run on the loop thread and read size_provider first.
        self.checked.set()
        return 0

    def run_check(self) -> None:
        """Ask for a check and return once it has run."""

        async def checked() -> None:
            self.checked.clear()
            self.manager.notify_scale_changed()
            await self.checked.wait()

        self.run(checked())

    def desired(self) -> int:
        return int(self.manager.stats()["autoscale"]["target"])

    @precondition(lambda self: len(self.held) < MAX_POOLS)
    @rule()
    def acquire(self) -> None:
        self.held.append(self.run(self.manager.acquire(wait=False)))

    @precondition(lambda self: bool(self.held))
    @rule(index=st.integers(min_value=0))
    def release(self, index: int) -> None:
        self.run(self.held.pop(index % len(self.held)).release())

    @rule(windows=st.integers(min_value=1, max_value=3))
    def windows_pass(self, windows: int) -> None:
        for _ in range(windows):
            self.skew += WINDOW
            _set_clock_skew_for_tests(self.skew)
            self.run_check()
        assert self.manager.total_count == max(self.desired(), len(self.held))

    @rule()
    def load_stays_put(self) -> None:
        # Enough windows for every step down: 2 surplus windows per step.
        self.windows_pass(2 * MAX_POOLS + 2)
        assert self.desired() == max(1, len(self.held))

    @invariant()
    def target_covers_what_is_held(self) -> None:
        desired = self.desired()
        assert 1 <= desired <= MAX_POOLS
        assert desired >= len(self.held)
        assert self.manager.desired_executor_count() == desired
        assert self.manager.leased_count == len(self.held)
        assert self.manager.total_count <= desired

    def teardown(self) -> None:
        try:
            for lease in self.held:
                self.run(lease.release())
            self.run(self.manager.stop())
        finally:
            _set_clock_skew_for_tests(0.0)
            self.loop.close()


async def _inner(awaitable: Awaitable[T]) -> T:
    return await awaitable


def test_autoscale_model() -> None:
    run_state_machine_as_test(AutoScaleModel, settings=SETTINGS)
