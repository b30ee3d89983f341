"""Model-based test of the one-call path mixed with whole-pool leases.

A Hypothesis state machine drives one manager (2 pools of 3 workers) with random
``run()`` calls (fail-fast or waiting), ``acquire()``s (fail-fast or waiting), call
completions, lease releases and cancellations of queued requests. The model keeps the
FIFO queue and, for every running call, the pool it runs on (read from its worker
thread's name). It predicts every fail-fast outcome and, after each step that frees
capacity, exactly which queued requests are served, in arrival order. After every step:
``leased + available == total <= max_pools``, no pool runs more calls than it has
workers, and the manager's list of leases is the model's.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import pytest
from _support import unique_prefix
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
WORKERS = 3  # >= 3, so packing onto the fullest pool is observable
STEP_TIMEOUT = 10.0
SETTINGS = settings(max_examples=60, stateful_step_count=30, deadline=None)


@dataclass
class Call:
    """A ``run()`` whose function reports its thread and blocks until released."""

    future: Any
    started: threading.Event = field(default_factory=threading.Event)
    finish: threading.Event = field(default_factory=threading.Event)
    thread: str = ""
    pool: str = ""  # the pool's sequence number, from the worker thread's name


@dataclass
class Waiting:
    kind: str  # "pool" or "call"
    future: Any
    call: Call | None = None


def blocking_call(call: Call) -> str:
    call.thread = threading.current_thread().name
    call.started.set()
    if not call.finish.wait(STEP_TIMEOUT * 3):
        raise AssertionError("the model never finished this call")
    return call.thread


class SlotModel(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.prefix = unique_prefix("slots")
        self.manager = LeasedExecutorManager(
            max_pools=MAX_POOLS,
            min_pools=1,
            workers_per_pool=WORKERS,
            name_prefix=self.prefix,
            idle_pool_seconds=0.0,
        )
        self.running: list[Call] = []
        self.held: dict[str, ExecutorLease] = {}
        self.queue: list[Waiting] = []
        self.run_loop(self.manager.start())

    # ------------------------------------------------------------------ helpers

    def run_loop(self, awaitable: Awaitable[T]) -> T:
        async def bounded() -> T:
            return await asyncio.wait_for(_inner(awaitable), STEP_TIMEOUT)

        return self.loop.run_until_complete(bounded())

    def shared_pools(self) -> dict[str, int]:
        """Pool -> calls running on it (every pool hosting calls)."""
        pools: dict[str, int] = {}
        for call in self.running:
            pools[call.pool] = pools.get(call.pool, 0) + 1
        return pools

    def pool_obtainable(self) -> bool:
        return len(self.held) + len(self.shared_pools()) < MAX_POOLS

    def slot_obtainable(self) -> bool:
        room = any(n < WORKERS for n in self.shared_pools().values())
        return room or self.pool_obtainable()

    def start_call(self, call: Call) -> None:
        """Wait until a granted call runs, and check where it landed."""
        with_room = {p: n for p, n in self.shared_pools().items() if n < WORKERS}
        assert self.run_loop(asyncio.to_thread(call.started.wait, STEP_TIMEOUT))
        call.pool = call.thread.removeprefix(self.prefix + "-").split("_")[0]
        if with_room:
            fullest = max(with_room.values())
            assert with_room.get(call.pool) == fullest, (call.pool, with_room)
        self.running.append(call)

    def new_call(self, wait: bool) -> Call:
        call = Call(future=None)
        call.future = self.manager.run(blocking_call, call, wait=wait, timeout=None)
        return call

    def serve_queue(self) -> None:
        """Capacity was freed: exactly the servable heads of the queue are served."""
        while self.queue:
            head = self.queue[0]
            if head.kind == "pool" and not self.pool_obtainable():
                break
            if head.kind == "call" and not self.slot_obtainable():
                break
            self.queue.pop(0)
            event(f"served a queued {head.kind} request")
            if head.kind == "pool":
                lease = self.run_loop(head.future)
                self.held[lease.lease_id] = lease
            else:
                assert head.call is not None
                self.start_call(head.call)
        for waiting in self.queue:
            assert not waiting.future.done(), "served out of turn"

    # -------------------------------------------------------------------- rules

    @rule()
    def run_fail_fast(self) -> None:
        if not self.queue and self.slot_obtainable():
            self.start_call(self.new_call(wait=False))
        else:
            call = self.new_call(wait=False)
            with pytest.raises(LeaseUnavailableError):
                self.run_loop(call.future)

    @rule()
    def run_waiting(self) -> None:
        call = self.new_call(wait=True)
        if not self.queue and self.slot_obtainable():
            self.start_call(call)
        else:
            self.queue.append(Waiting("call", call.future, call))

    @rule()
    def acquire_fail_fast(self) -> None:
        if not self.queue and self.pool_obtainable():
            lease = self.run_loop(self.manager.acquire(wait=False))
            self.held[lease.lease_id] = lease
        else:
            with pytest.raises(LeaseUnavailableError):
                self.run_loop(self.manager.acquire(wait=False))

    @rule()
    def acquire_waiting(self) -> None:
        future = self.manager.acquire(timeout=60)
        if not self.queue and self.pool_obtainable():
            lease = self.run_loop(future)
            self.held[lease.lease_id] = lease
        else:
            self.queue.append(Waiting("pool", future))

    @precondition(lambda self: bool(self.running))
    @rule(data=st.data())
    def finish_call(self, data: st.DataObject) -> None:
        call = data.draw(st.sampled_from(self.running), label="call")
        self.running.remove(call)
        call.finish.set()
        assert self.run_loop(call.future) == call.thread
        self.serve_queue()

    @precondition(lambda self: bool(self.held))
    @rule(data=st.data())
    def release_lease(self, data: st.DataObject) -> None:
        lease_id = data.draw(st.sampled_from(sorted(self.held)), label="lease")
        self.run_loop(self.held.pop(lease_id).release())
        self.serve_queue()

    @precondition(lambda self: bool(self.queue))
    @rule(data=st.data())
    def cancel_queued(self, data: st.DataObject) -> None:
        index = data.draw(st.integers(0, len(self.queue) - 1), label="queued")
        waiting = self.queue.pop(index)
        event(f"cancelled a queued {waiting.kind} request at position {index}")
        assert waiting.future.cancel()
        self.serve_queue()

    # --------------------------------------------------------------- invariants

    @invariant()
    def counts_add_up(self) -> None:
        stats: dict[str, Any] = self.manager.stats()
        assert stats["leased"] + stats["available"] == stats["total"] <= MAX_POOLS
        assert stats["leased"] == len(self.held) + len(self.shared_pools())
        assert all(n <= WORKERS for n in self.shared_pools().values())
        assert len(stats["leases"]) == len(self.held) + len(self.running)
        assert set(self.held) <= {entry["lease_id"] for entry in stats["leases"]}

    def teardown(self) -> None:
        try:
            # Newest first: withdrawing the tail never lets anyone behind it be served.
            for waiting in reversed(self.queue):
                waiting.future.cancel()
            for call in self.running:
                call.finish.set()
                self.run_loop(call.future)
            for lease in self.held.values():
                self.run_loop(lease.release())
            stats = self.manager.stats()
            assert (stats["leased"], stats["leases"]) == (0, [])
            self.run_loop(self.manager.stop())
        finally:
            self.loop.close()


async def _inner(awaitable: Awaitable[T]) -> T:
    return await awaitable


@pytest.mark.beyond_reference
def test_slot_model() -> None:
    """Calls and pool leases follow the model: fail-fast outcomes, FIFO service, packing."""
    run_state_machine_as_test(SlotModel, settings=SETTINGS)
