"""Model-based test of admission control: random policies and random acquire / release /
cancel sequences, checked step by step against a reference model.

The model is a second, independent implementation of the rules docs/admission.md
states (owner limits, reserved pools, priorities with bounded overtaking, fair share
with round robin, bounded waiting); after every step the engine must have granted
exactly the requests the model granted, refused exactly the ones it refused, and lost
no pool. Acquire futures are kept un-awaited: ``acquire()`` takes its place in the
queue when called, and a grant settles the future before the releasing call returns,
so ``done()`` is checked without waiting on time.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import pytest
from _support import unique_prefix
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from leasepool import (
    ExecutorLease,
    LeasedExecutorManager,
    LeaseQueueFullError,
    LeaseUnavailableError,
)

pytestmark = pytest.mark.beyond_reference

T = TypeVar("T")
MAX_POOLS = 3
OWNERS = ["a", "b", "c"]
OVERTAKE_LIMIT = 8
STEP_TIMEOUT = 10.0
# Enough examples that dropping any one rule from the model (round robin, quotas,
# priority, forgetting idle owners) fails this test: each was checked by mutation.
SETTINGS = settings(max_examples=300, stateful_step_count=50, deadline=None)


@dataclass
class Policy:
    max_waiters: int | None
    owner_limit: int | None
    fair_share: bool
    reserved: int  # pools reserved for the class "r" (0: none)

    def kwargs(self) -> dict[str, Any]:
        return {
            "max_waiters": self.max_waiters,
            "owner_limit": self.owner_limit,
            "fair_share": self.fair_share,
            "reserved_pools": {"r": self.reserved} if self.reserved else None,
        }

    @property
    def tracks_owners(self) -> bool:
        return self.owner_limit is not None or self.fair_share


@dataclass
class Request:
    ticket: int
    owner: str
    priority: int
    reserved: bool


@dataclass
class Model:
    """The reference: who holds what, who waits, in which order they are served."""

    policy: Policy
    available: int = MAX_POOLS
    held: dict[int, tuple[str, str]] = field(default_factory=dict)  # ticket -> owner, charge
    queue: list[Request] = field(default_factory=list)
    general_used: int = 0
    reserved_used: int = 0
    overtakes: int = 0
    grants: int = 0
    last_served: dict[str, int] = field(default_factory=dict)

    def held_by(self, owner: str) -> int:
        return sum(1 for who, _ in self.held.values() if who == owner)

    def verdict(self, request: Request) -> str:
        limit = self.policy.owner_limit
        if limit is not None and self.held_by(request.owner) >= limit:
            return "skip"
        if self.available == 0:
            return "block"
        general_capacity = MAX_POOLS - self.policy.reserved
        quota = self.general_used < general_capacity or (
            request.reserved and self.reserved_used < self.policy.reserved
        )
        return "serve" if quota else "skip"

    def heads(self) -> list[Request]:
        """Each group's oldest request (a group: priority, owner if counted, class)."""
        seen: dict[tuple[Any, ...], Request] = {}
        for request in self.queue:
            owner = request.owner if self.policy.tracks_owners else None
            seen.setdefault((request.priority, owner, request.reserved), request)
        return list(seen.values())

    def plain(self) -> bool:
        return not self.policy.tracks_owners and not self.policy.reserved

    def someone_eligible_waits(self) -> bool:
        if not self.queue:
            return False
        return self.plain() or any(self.verdict(r) != "skip" for r in self.heads())

    def rank(self, request: Request) -> tuple[int, int, int, int]:
        held, last = 0, 0
        if self.policy.fair_share:
            held = self.held_by(request.owner)
            last = self.last_served.get(request.owner, 0)
        return (-request.priority, held, last, request.ticket)

    def next_request(self) -> Request | None:
        eligible = [r for r in self.heads() if self.verdict(r) != "skip"]
        if not eligible:
            return None
        best = min(eligible, key=self.rank)
        oldest = min(eligible, key=lambda r: r.ticket)
        overtaking = oldest.priority < best.priority
        chosen = oldest if overtaking and self.overtakes >= OVERTAKE_LIMIT else best
        if self.verdict(chosen) != "serve":
            return None
        if chosen is oldest:
            self.overtakes = 0
        elif overtaking:
            self.overtakes += 1
        return chosen

    def grant(self, request: Request) -> None:
        self.available -= 1
        reserved_left = request.reserved and self.reserved_used < self.policy.reserved
        if reserved_left:
            self.reserved_used += 1
        else:
            self.general_used += 1
        self.held[request.ticket] = (request.owner, "reserved" if reserved_left else "general")
        if self.policy.fair_share:
            self.grants += 1
            self.last_served[request.owner] = self.grants

    def forget_if_idle(self, owner: str) -> None:
        waits = any(r.owner == owner for r in self.queue)
        if self.policy.fair_share and not waits and self.held_by(owner) == 0:
            self.last_served.pop(owner, None)

    def serve(self) -> list[int]:
        served = []
        while (request := self.next_request()) is not None:
            self.queue.remove(request)
            self.grant(request)
            served.append(request.ticket)
        return served

    def acquire(self, request: Request, wait: bool) -> str:
        """ "granted", "queued", "unavailable" or "full"."""
        if not self.someone_eligible_waits() and self.verdict(request) == "serve":
            self.grant(request)
            return "granted"
        if not wait:
            return "unavailable"
        if self.policy.max_waiters is not None and len(self.queue) >= self.policy.max_waiters:
            return "full"
        self.queue.append(request)
        return "queued"

    def release(self, ticket: int) -> list[int]:
        owner, charge = self.held.pop(ticket)
        if charge == "reserved":
            self.reserved_used -= 1
        else:
            self.general_used -= 1
        self.available += 1
        self.forget_if_idle(owner)
        return self.serve()

    def cancel(self, ticket: int) -> list[int]:
        (request,) = [r for r in self.queue if r.ticket == ticket]
        self.queue.remove(request)
        self.forget_if_idle(request.owner)
        return self.serve()


async def _bounded(awaitable: Awaitable[T]) -> T:
    return await asyncio.wait_for(_inner(awaitable), STEP_TIMEOUT)


async def _inner(awaitable: Awaitable[T]) -> T:
    return await awaitable


class AdmissionMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.manager: LeasedExecutorManager | None = None
        self.model: Model | None = None
        self.tickets = 0
        self.futures: dict[int, Any] = {}  # ticket -> LeaseFuture of a queued request
        self.leases: dict[int, ExecutorLease] = {}

    def on_loop(self, step: Callable[[], T]) -> T:
        """Runs ``step`` on the running loop (acquire needs one) and returns its result."""

        async def call() -> T:
            return step()

        return self.loop.run_until_complete(_bounded(call()))

    def run(self, awaitable: Awaitable[T]) -> T:
        return self.loop.run_until_complete(_bounded(awaitable))

    @initialize(
        max_waiters=st.sampled_from([None, None, 0, 2, 5]),
        owner_limit=st.sampled_from([None, 1, 2]),
        fair_share=st.sampled_from([True, True, False]),
        reserved=st.sampled_from([0, 1]),
    )
    def start(
        self, max_waiters: int | None, owner_limit: int | None, fair_share: bool, reserved: int
    ) -> None:
        policy = Policy(max_waiters, owner_limit, fair_share, reserved)
        self.model = Model(policy)
        self.manager = LeasedExecutorManager(
            max_pools=MAX_POOLS,
            min_pools=MAX_POOLS,
            name_prefix=unique_prefix("admission-model"),
            idle_pool_seconds=0.0,
            **policy.kwargs(),
        )
        self.run(self.manager.start())

    def check_granted(self, tickets: list[int]) -> None:
        """Exactly ``tickets`` (the model's grants) of the queued futures are done."""
        done = {t for t, fut in self.futures.items() if fut.done()}
        assert done == set(tickets), f"engine granted {sorted(done)}, model {tickets}"
        for ticket in tickets:
            self.leases[ticket] = self.futures.pop(ticket).result()

    @rule(
        owner=st.sampled_from(OWNERS),
        priority=st.sampled_from([0, 0, 1]),
        reserved=st.booleans(),
        # Mostly waiting callers: the interesting states have a queue.
        wait=st.sampled_from([True, True, True, False]),
    )
    def acquire(self, owner: str, priority: int, reserved: bool, wait: bool) -> None:
        assert self.manager is not None and self.model is not None
        manager = self.manager
        if reserved and not self.model.policy.reserved:
            reserved = False
        self.tickets += 1
        request = Request(self.tickets, owner, priority, reserved)
        expected = self.model.acquire(request, wait)
        future = self.on_loop(
            lambda: manager.acquire(
                owner=owner,
                priority=priority,
                reservation="r" if reserved else None,
                wait=wait,
            )
        )
        if expected == "queued":
            assert not future.done(), "the model queues this request"
            self.futures[request.ticket] = future
            return
        assert future.done(), f"the model says {expected}"
        if expected == "granted":
            self.leases[request.ticket] = future.result()
        else:
            with pytest.raises(
                LeaseQueueFullError if expected == "full" else LeaseUnavailableError
            ):
                future.result()

    @precondition(lambda self: self.leases)
    @rule(data=st.data())
    def release(self, data: st.DataObject) -> None:
        assert self.model is not None
        ticket = data.draw(st.sampled_from(sorted(self.leases)))
        granted = self.model.release(ticket)
        self.run(self.leases.pop(ticket).release())
        self.check_granted(granted)

    @precondition(lambda self: self.futures)
    @rule(data=st.data())
    def cancel(self, data: st.DataObject) -> None:
        assert self.model is not None
        ticket = data.draw(st.sampled_from(sorted(self.futures)))
        granted = self.model.cancel(ticket)
        assert self.futures.pop(ticket).cancel()
        self.check_granted(granted)

    @invariant()
    def no_pool_is_lost(self) -> None:
        if self.manager is None or self.model is None:
            return
        assert self.manager.total_count == MAX_POOLS
        assert self.manager.leased_count == len(self.leases) == len(self.model.held)
        assert self.manager.available_count == self.model.available
        limit = self.model.policy.owner_limit
        if limit is not None:
            assert all(self.model.held_by(owner) <= limit for owner in OWNERS)

    def teardown(self) -> None:
        try:
            if self.manager is not None:
                self.run(self.manager.stop())
        finally:
            self.loop.close()


def test_admission_matches_the_reference_model() -> None:
    run_state_machine_as_test(AdmissionMachine, settings=SETTINGS)
