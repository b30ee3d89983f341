"""Model-based test: random acquire / wait / cancel / release / resize sequences.

A Hypothesis state machine drives one manager (``max_pools=2``) on a private event
loop and keeps a model of who holds a lease and who is waiting. After every step:
``leased + available == total <= max_pools``, the leased set equals the model, and
waiters only exist while every pool is leased. The FIFO variant additionally checks
that each release is handed to the oldest waiter, and that stop() leaves no thread.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any, TypeVar

import pytest
from _support import eventually, prefix_threads_alive, unique_prefix
from hypothesis import event, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from leasepool import ExecutorLease, LeasedExecutorManager, LeaseUnavailableError

T = TypeVar("T")
MAX_POOLS = 2
STEP_TIMEOUT = 10.0
SETTINGS = settings(max_examples=40, stateful_step_count=25, deadline=None)


async def _await(awaitable: Awaitable[T]) -> T:
    # Bounded, so a hang fails one step instead of stalling Hypothesis' shrinking.
    return await asyncio.wait_for(_inner(awaitable), STEP_TIMEOUT)


async def _inner(awaitable: Awaitable[T]) -> T:
    return await awaitable


class LeaseModel(RuleBasedStateMachine):
    check_fifo = False

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.units = 0
        self.prefix = unique_prefix("model")
        self.manager = LeasedExecutorManager(
            max_pools=MAX_POOLS,
            min_pools=1,
            units_per_pool=1,
            size_provider=self.read_units,
            check_interval=120.0,
            name_prefix=self.prefix,
            idle_pool_seconds=0.0,  # the model shrinks at once, as 0.1.3 does
        )
        self.held: dict[str, ExecutorLease] = {}
        # Checks run on the loop and read size_provider first: counting the reads lets
        # a step wait for "the check it asked for has run" instead of sleeping.
        self.unit_reads = 0
        self.waiters: list[asyncio.Task[ExecutorLease]] = []
        self.counter = 0
        self.run(self.manager.start())

    def run(self, awaitable: Awaitable[T]) -> T:
        return self.loop.run_until_complete(_await(awaitable))

    def read_units(self) -> int:
        self.unit_reads += 1
        return self.units

    def owner(self) -> str:
        self.counter += 1
        return f"o{self.counter}"

    @rule()
    def acquire_no_wait(self) -> None:
        """wait=False succeeds iff a pool is not leased in the model."""
        owner = self.owner()
        if len(self.held) < MAX_POOLS:
            lease = self.run(self.manager.acquire(owner=owner, wait=False))
            assert lease.owner == owner
            assert lease.lease_id not in self.held
            self.held[lease.lease_id] = lease
        else:
            with pytest.raises(LeaseUnavailableError):
                self.run(self.manager.acquire(owner=owner, wait=False))

    @precondition(lambda self: len(self.held) == MAX_POOLS)
    @rule()
    def add_waiter(self) -> None:
        """A waiting acquire while every pool is leased stays pending."""
        owner = self.owner()

        async def spawn() -> asyncio.Task[ExecutorLease]:
            task = asyncio.create_task(self.manager.acquire(owner=owner, timeout=30))
            await asyncio.sleep(0)  # let the task register before the next step
            return task

        task = self.run(spawn())
        assert not task.done()
        self.waiters.append(task)

    @precondition(lambda self: bool(self.waiters))
    @rule(data=st.data())
    def cancel_waiter(self, data: st.DataObject) -> None:
        """Cancelling a pending waiter ends it with CancelledError."""
        index = data.draw(st.integers(0, len(self.waiters) - 1), label="waiter")
        task = self.waiters.pop(index)
        task.cancel()
        (outcome,) = self.run(asyncio.gather(task, return_exceptions=True))
        assert isinstance(outcome, asyncio.CancelledError)

    @precondition(lambda self: bool(self.held))
    @rule(data=st.data())
    def release(self, data: st.DataObject) -> None:
        """A release frees a pool, or hands it to exactly one waiter (the oldest if FIFO)."""
        lease_id = data.draw(st.sampled_from(sorted(self.held)), label="lease")
        lease = self.held.pop(lease_id)
        self.run(lease.release())
        if not self.waiters:
            return
        event(f"release handed over with {len(self.waiters)} waiter(s) queued")

        async def first_served() -> set[asyncio.Task[ExecutorLease]]:
            done, _ = await asyncio.wait(
                self.waiters, timeout=5, return_when=asyncio.FIRST_COMPLETED
            )
            await asyncio.sleep(0)
            return {t for t in self.waiters if t.done()} | done

        done = self.run(first_served())
        assert len(done) == 1, "one released pool must serve exactly one waiter"
        (task,) = done
        if self.check_fifo:
            assert task is self.waiters[0], "pool not handed to the oldest waiter"
        self.waiters.remove(task)
        granted = task.result()
        self.held[granted.lease_id] = granted

    @rule(units=st.integers(min_value=0, max_value=3))
    def resize(self, units: int) -> None:
        """After notify, the pool count converges to max(desired, leased)."""
        self.units = units
        reads = self.unit_reads
        self.manager.notify_scale_changed()
        # Wait for the check itself, even when the count is already right.
        self.run(eventually(lambda: self.unit_reads > reads, what="the notified check"))
        desired = min(MAX_POOLS, max(1, units))
        assert self.manager.desired_executor_count() == desired
        expected = max(desired, len(self.held))
        self.run(
            eventually(lambda: self.manager.total_count == expected, what="resize convergence")
        )

    @invariant()
    def counts_add_up(self) -> None:
        stats: dict[str, Any] = self.manager.stats()
        assert stats["leased"] + stats["available"] == stats["total"] <= MAX_POOLS
        assert stats["leased"] == len(self.held)
        assert {entry["lease_id"] for entry in stats["leases"]} == set(self.held)
        if self.waiters:
            assert stats["leased"] == MAX_POOLS

    def teardown(self) -> None:
        try:
            for task in self.waiters:
                task.cancel()
            if self.waiters:
                self.run(asyncio.gather(*self.waiters, return_exceptions=True))
            for lease in self.held.values():
                self.run(lease.release())
            assert self.manager.leased_count == 0
            assert self.manager.available_count == self.manager.total_count >= 1
            self.run(self.manager.stop())
            assert self.manager.total_count == 0
            if self.check_fifo:
                assert prefix_threads_alive(self.prefix + "-") == []
        finally:
            self.loop.close()


class FifoLeaseModel(LeaseModel):
    check_fifo = True


def test_lease_model() -> None:
    """Counts and lease ownership follow the model under random operation sequences."""
    run_state_machine_as_test(LeaseModel, settings=SETTINGS)


@pytest.mark.beyond_reference
def test_lease_model_fifo() -> None:
    """As above, and every release goes to the oldest waiter; stop() leaves no threads."""
    run_state_machine_as_test(FifoLeaseModel, settings=SETTINGS)
