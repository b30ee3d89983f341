"""What the metrics exporters export, shared by both of them.

One table of every exported metric: its Prometheus name, its OpenTelemetry name and
unit, its help text and how to read it from a snapshot. ``_prometheus`` and ``_otel``
only translate these entries into their library's objects, so the two exporters cannot
drift apart. Also the set of sources an exporter reads and the reading itself (one
snapshot per source, names checked). Imports no optional library.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Generic, Literal, TypeAlias, TypeVar

from .metrics import GrinderMetrics, HistogramSnapshot, ManagerMetrics, MetricsSource

S = TypeVar("S", ManagerMetrics, GrinderMetrics)

Series: TypeAlias = tuple[tuple[str, ...], float]
"""One value of a metric for one snapshot: the values of the entry's own labels (after
``manager``/``grinder``), and the value."""


@dataclass(frozen=True, slots=True)
class Scalar(Generic[S]):
    """A counter or a gauge."""

    prometheus: str
    """Name after the namespace, without the ``_total`` of a counter."""
    otel: str
    kind: Literal["counter", "updown", "gauge"]
    """``counter`` only grows; ``updown`` is a count of things that exist now (a
    Prometheus gauge, an OpenTelemetry up-down counter); ``gauge`` is any other level (a
    target)."""
    unit: str
    """OpenTelemetry's unit ("s", "{lease}"); "s" is "seconds" for Prometheus."""
    help: str
    labels: tuple[str, ...]
    read: Callable[[S], Iterable[Series]]


@dataclass(frozen=True, slots=True)
class Histogram(Generic[S]):
    """A histogram (for OpenTelemetry, two counters: ``<otel>.count``, ``<otel>.sum``)."""

    prometheus: str
    otel: str
    unit: str
    """Of the observations, hence of ``<otel>.sum``."""
    count_unit: str
    """Of ``<otel>.count``: what one observation is."""
    help: str
    read: Callable[[S], HistogramSnapshot]


@dataclass(frozen=True, slots=True)
class Group(Generic[S]):
    """The metrics of one kind of snapshot, told apart by the label ``label`` (the
    snapshot's ``name``)."""

    label: str
    scalars: tuple[Scalar[S], ...]
    histograms: tuple[Histogram[S], ...]


def _one(read: Callable[[S], float]) -> Callable[[S], Iterable[Series]]:
    return lambda snapshot: [((), read(snapshot))]


def _per_owner(
    read: Callable[[ManagerMetrics, str], float],
) -> Callable[[ManagerMetrics], Iterable[Series]]:
    return lambda m: [((owner,), read(m, owner)) for owner in m.owners]


_REJECTED = (
    "Requests refused: unavailable (wait=False, or an owner limit without waiting), "
    "queue_full (max_waiters callers already waiting), draining (the manager drains or "
    "stops)."
)

MANAGER: Group[ManagerMetrics] = Group(
    label="manager",
    scalars=(
        # Gauges: the state at the snapshot.
        Scalar(
            "pools",
            "leasepool.pools.count",
            "updown",
            "{pool}",
            "Executor pools by state at the snapshot: available (free to lease) or leased.",
            ("state",),
            lambda m: [(("available",), m.pools_available), (("leased",), m.pools_leased)],
        ),
        Scalar(
            "pools_desired",
            "leasepool.pools.desired",
            "gauge",
            "{pool}",
            "Pools the manager's sizing asks for at the snapshot.",
            (),
            _one(lambda m: m.pools_desired),
        ),
        Scalar(
            "leases_live",
            "leasepool.leases.live",
            "updown",
            "{lease}",
            "Leases held at the snapshot (pool leases and manager.run() call slots).",
            (),
            _one(lambda m: m.leases_live),
        ),
        Scalar(
            "waiters",
            "leasepool.waiters",
            "updown",
            "{request}",
            "Requests waiting for a lease at the snapshot.",
            (),
            _one(lambda m: m.waiters),
        ),
        # Counters.
        Scalar(
            "pools_created",
            "leasepool.pools.created",
            "counter",
            "{pool}",
            "Executor pools created.",
            (),
            _one(lambda m: m.pools_created),
        ),
        Scalar(
            "pools_retired",
            "leasepool.pools.retired",
            "counter",
            "{pool}",
            "Executor pools retired.",
            (),
            _one(lambda m: m.pools_retired),
        ),
        Scalar(
            "leases_granted",
            "leasepool.leases.granted",
            "counter",
            "{lease}",
            "Leases granted (pool leases and manager.run() call slots).",
            (),
            _one(lambda m: m.leases_granted),
        ),
        Scalar(
            "leases_released",
            "leasepool.leases.released",
            "counter",
            "{lease}",
            "Leases released.",
            (),
            _one(lambda m: m.leases_released),
        ),
        Scalar(
            "leases_overdue",
            "leasepool.leases.overdue",
            "counter",
            "{lease}",
            "Leases still held at their soft expiry (each counted once).",
            (),
            _one(lambda m: m.leases_overdue),
        ),
        Scalar(
            "leases_revoked",
            "leasepool.leases.revoked",
            "counter",
            "{lease}",
            "Leases revoked at their hard expiry (soft expiry plus grace).",
            (),
            _one(lambda m: m.leases_revoked),
        ),
        Scalar(
            "leases_stopped",
            "leasepool.leases.stopped",
            "counter",
            "{lease}",
            "Leases still held when the manager stopped.",
            (),
            _one(lambda m: m.leases_stopped),
        ),
        Scalar(
            "acquire_timeouts",
            "leasepool.acquire.timeouts",
            "counter",
            "{request}",
            "Requests that timed out while waiting for a lease.",
            (),
            _one(lambda m: m.acquire_timeouts),
        ),
        Scalar(
            "acquire_rejected",
            "leasepool.acquire.rejected",
            "counter",
            "{request}",
            _REJECTED,
            ("reason",),
            lambda m: [
                (("unavailable",), m.rejected_unavailable),
                (("queue_full",), m.rejected_queue_full),
                (("draining",), m.rejected_draining),
            ],
        ),
        Scalar(
            "calls_started",
            "leasepool.calls.started",
            "counter",
            "{call}",
            "Calls started.",
            (),
            _one(lambda m: m.calls_started),
        ),
        Scalar(
            "calls_completed",
            "leasepool.calls.completed",
            "counter",
            "{call}",
            "Calls ended: finished (returned), failed (raised, or their worker died under "
            "them), cancelled (cancelled, or withdrawn before they ran).",
            ("outcome",),
            lambda m: [
                (("finished",), m.calls_finished),
                (("failed",), m.calls_failed),
                (("cancelled",), m.calls_cancelled),
            ],
        ),
        Scalar(
            "worker_crashes",
            "leasepool.worker.crashes",
            "counter",
            "{crash}",
            "Worker crashes: process (or interpreter) pools found broken, Dask workers lost.",
            (),
            _one(lambda m: m.worker_crashes),
        ),
        Scalar(
            "autoscale_resizes",
            "leasepool.autoscale.resizes",
            "counter",
            "{resize}",
            "Times the built-in adaptive sizing (autoscale=) moved the desired pool count.",
            (),
            _one(lambda m: m.autoscale_resizes),
        ),
        Scalar(
            "calls_offloaded",
            "leasepool.calls.offloaded",
            "counter",
            "{call}",
            'backend="auto": calls the engine routed to process workers.',
            (),
            _one(lambda m: m.calls_offloaded),
        ),
        Scalar(
            "route_changes",
            "leasepool.route.changes",
            "counter",
            "{change}",
            'backend="auto": times a callable moved between threads and processes.',
            (),
            _one(lambda m: m.route_changes),
        ),
        Scalar(
            "workers_recycled",
            "leasepool.workers.recycled",
            "counter",
            "{worker}",
            "Worker processes retired and replaced because their memory passed max_worker_memory.",
            (),
            _one(lambda m: m.workers_recycled),
        ),
        Scalar(
            "calls_retried",
            "leasepool.calls.retried",
            "counter",
            "{call}",
            "Runs of idempotent calls started again because their worker process died.",
            (),
            _one(lambda m: m.calls_retried),
        ),
        Scalar(
            "crash_breaker_opens",
            "leasepool.crash_breaker.opens",
            "counter",
            "{open}",
            "Times the crash breaker (crash_breaker=) opened.",
            (),
            _one(lambda m: m.crash_breaker_opens),
        ),
        Scalar(
            "rejected_crash_loop",
            "leasepool.calls.rejected_crash_loop",
            "counter",
            "{call}",
            "Calls refused with WorkerCrashLoopError while the crash breaker was open.",
            (),
            _one(lambda m: m.rejected_crash_loop),
        ),
        # Per owner (metrics_owners); no series without owners.
        Scalar(
            "owner_leases_granted",
            "leasepool.owner.leases.granted",
            "counter",
            "{lease}",
            "Leases granted to the owner (owners past the first metrics_owners seen are "
            "summed under __other__).",
            ("owner",),
            _per_owner(lambda m, owner: m.owners[owner].leases_granted),
        ),
        Scalar(
            "owner_leases_rejected",
            "leasepool.owner.leases.rejected",
            "counter",
            "{request}",
            "The owner's requests refused (no wait, queue full, draining) or timed out "
            "while waiting.",
            ("owner",),
            _per_owner(lambda m, owner: m.owners[owner].leases_rejected),
        ),
        Scalar(
            "owner_leases_held",
            "leasepool.owner.leases.held",
            "updown",
            "{lease}",
            "Leases the owner held at the snapshot.",
            ("owner",),
            _per_owner(lambda m, owner: m.owners[owner].leases_held),
        ),
        Scalar(
            "owner_acquire_wait_seconds",
            "leasepool.owner.acquire.wait",
            "counter",
            "s",
            "Total seconds the owner's granted requests waited.",
            ("owner",),
            _per_owner(lambda m, owner: m.owners[owner].acquire_wait_seconds),
        ),
        Scalar(
            "owner_lease_hold_seconds",
            "leasepool.owner.lease.hold",
            "counter",
            "s",
            "Total seconds the owner's ended leases were held.",
            ("owner",),
            _per_owner(lambda m, owner: m.owners[owner].lease_hold_seconds),
        ),
    ),
    histograms=(
        Histogram(
            "acquire_wait_seconds",
            "leasepool.acquire.wait",
            "s",
            "{lease}",
            "Seconds from a lease request to its grant (0 when granted at once).",
            lambda m: m.acquire_wait,
        ),
        Histogram(
            "lease_hold_seconds",
            "leasepool.lease.hold",
            "s",
            "{lease}",
            "Seconds from a lease's grant to its release or revocation.",
            lambda m: m.lease_hold,
        ),
        Histogram(
            "call_queue_seconds",
            "leasepool.call.queue",
            "s",
            "{call}",
            "Seconds from a call's submission to a pool until a worker started it.",
            lambda m: m.call_queue,
        ),
        Histogram(
            "call_run_seconds",
            "leasepool.call.run",
            "s",
            "{call}",
            "Seconds calls ran on their worker.",
            lambda m: m.call_run,
        ),
    ),
)

GRINDER: Group[GrinderMetrics] = Group(
    label="grinder",
    scalars=(
        Scalar(
            "grinder_pending",
            "leasepool.grinder.pending",
            "updown",
            "{item}",
            "Items accepted and not yet in a batch.",
            (),
            _one(lambda g: g.pending),
        ),
        Scalar(
            "grinder_batches_in_flight",
            "leasepool.grinder.batches.in_flight",
            "updown",
            "{batch}",
            "Batches dispatched and not yet completed.",
            (),
            _one(lambda g: g.batches_in_flight),
        ),
        Scalar(
            "grinder_items_submitted",
            "leasepool.grinder.items.submitted",
            "counter",
            "{item}",
            "Items submitted.",
            (),
            _one(lambda g: g.items_submitted),
        ),
        Scalar(
            "grinder_items_completed",
            "leasepool.grinder.items.completed",
            "counter",
            "{item}",
            "Items done: finished (returned), failed (raised), cancelled.",
            ("outcome",),
            lambda g: [
                (("finished",), g.items_finished),
                (("failed",), g.items_failed),
                (("cancelled",), g.items_cancelled),
            ],
        ),
        Scalar(
            "grinder_batches_dispatched",
            "leasepool.grinder.batches.dispatched",
            "counter",
            "{batch}",
            "Batches dispatched.",
            (),
            _one(lambda g: g.batches_dispatched),
        ),
        Scalar(
            "grinder_batches_completed",
            "leasepool.grinder.batches.completed",
            "counter",
            "{batch}",
            "Batches completed.",
            (),
            _one(lambda g: g.batches_completed),
        ),
    ),
    histograms=(
        Histogram(
            "grinder_batch_size",
            "leasepool.grinder.batch.size",
            "{item}",
            "{batch}",
            "Items per dispatched batch.",
            lambda g: g.batch_size,
        ),
        Histogram(
            "grinder_batch_latency_seconds",
            "leasepool.grinder.batch.latency",
            "s",
            "{batch}",
            "Seconds from a batch's dispatch until its last item was done.",
            lambda g: g.batch_latency,
        ),
    ),
)


class Sources:
    """The sources an exporter reads, in the order added; safe to change while another
    thread collects."""

    def __init__(self, sources: Iterable[MetricsSource]) -> None:
        self._lock = threading.Lock()
        self._sources: list[MetricsSource] = []
        for source in sources:
            self.add(source)

    def add(self, source: MetricsSource) -> None:
        if not callable(getattr(source, "metrics", None)):
            raise TypeError(f"{source!r} has no metrics() method: not a metrics source")
        with self._lock:
            if any(known is source for known in self._sources):
                raise ValueError(f"{source!r} is already exported")
            self._sources.append(source)

    def remove(self, source: MetricsSource) -> None:
        with self._lock:
            for i, known in enumerate(self._sources):
                if known is source:
                    del self._sources[i]
                    return
        raise ValueError(f"{source!r} is not exported here")

    def current(self) -> tuple[MetricsSource, ...]:
        with self._lock:
            return tuple(self._sources)


Snapshots: TypeAlias = tuple[list[ManagerMetrics], list[GrinderMetrics]]


def take_snapshots(sources: Iterable[MetricsSource]) -> Snapshots:
    """Calls each source's ``metrics()`` once; the managers' and the grinders' snapshots.

    Two sources of one kind with the same name would export the same series: that is a
    ``ValueError`` (give each manager its own ``name_prefix``, each grinder its own
    ``owner_prefix``), not a silently wrong total.
    """
    managers: list[ManagerMetrics] = []
    grinders: list[GrinderMetrics] = []
    for source in sources:
        snapshot = source.metrics()
        if isinstance(snapshot, ManagerMetrics):
            managers.append(snapshot)
        elif isinstance(snapshot, GrinderMetrics):
            grinders.append(snapshot)
        else:
            raise TypeError(
                f"{source!r}.metrics() returned {type(snapshot).__name__}, "
                "not ManagerMetrics or GrinderMetrics"
            )
    _check_unique(managers, "manager", "name_prefix")
    _check_unique(grinders, "grinder", "owner_prefix")
    return managers, grinders


def _check_unique(
    snapshots: Sequence[ManagerMetrics] | Sequence[GrinderMetrics], kind: str, setting: str
) -> None:
    seen: set[str] = set()
    for snapshot in snapshots:
        if snapshot.name in seen:
            raise ValueError(
                f"two exported {kind}s are named {snapshot.name!r}: their series would "
                f"collide; give each {kind} its own {setting}"
            )
        seen.add(snapshot.name)
