"""The engine's metrics as typed snapshots, and their exporters.

``manager.metrics()`` and ``grinder.metrics()`` return one of the frozen dataclasses
below: every counter and histogram the engine keeps, read without stopping it (each
value is read atomically; the snapshot as a whole is not a single instant). Counters
only grow for the life of the object; gauges are the state at the snapshot.

Exporters, for the monitoring libraries a service already runs (neither is needed by
the core package):

* :class:`PrometheusCollector` (extra ``leasepool[prometheus]``) for ``prometheus_client``;
* :func:`register_otel_instruments` (extra ``leasepool[otel]``) for an OpenTelemetry
  ``Meter``.

See ``docs/observability.md`` for every metric's meaning and exported name.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from ._otel import register_otel_instruments
    from ._prometheus import PrometheusCollector

__all__ = [
    "GrinderMetrics",
    "HistogramSnapshot",
    "LeaseInfo",
    "ManagerMetrics",
    "MetricsSource",
    "OwnerMetrics",
    "PrometheusCollector",
    "register_otel_instruments",
]


@dataclass(frozen=True, slots=True)
class HistogramSnapshot:
    """Observations counted in fixed buckets.

    ``counts[i]`` observations were ``<= bounds[i]`` and ``> bounds[i - 1]``; the last
    entry of ``counts`` (one more than ``bounds``) counts those above every bound.
    Durations are in seconds, batch sizes in items. The bounds never change for a
    given histogram, so snapshots can be subtracted.
    """

    bounds: tuple[float, ...]
    counts: tuple[int, ...]
    sum: float

    @property
    def count(self) -> int:
        """How many observations."""
        return sum(self.counts)

    def cumulative(self) -> tuple[int, ...]:
        """Observations ``<= bounds[i]`` for each bound, then the total (Prometheus's
        ``le`` buckets, ``+Inf`` last)."""
        running = 0
        out = []
        for n in self.counts:
            running += n
            out.append(running)
        return tuple(out)

    def quantile(self, q: float) -> float:
        """An upper bound on the ``q``-quantile: the bound of the bucket that holds it
        (``inf`` if it is above every bound, ``0.0`` with no observations)."""
        if not 0.0 <= q <= 1.0:
            raise ValueError("q must be between 0 and 1")
        total = self.count
        if total == 0:
            return 0.0
        rank = max(1, math.ceil(q * total))
        for bound, seen in zip(self.bounds, self.cumulative(), strict=False):
            if seen >= rank:
                return bound
        return math.inf


@dataclass(frozen=True, slots=True)
class OwnerMetrics:
    """One owner's share (``LeasedExecutorManager(metrics_owners=N)``); owners past the
    first ``N`` seen are summed under ``"__other__"``."""

    leases_granted: int
    leases_rejected: int
    """Refused (no wait, queue full, draining) or timed out while waiting."""
    leases_held: int
    """Held at the snapshot."""
    acquire_wait_seconds: float
    """Total time this owner's granted requests waited."""
    lease_hold_seconds: float
    """Total time this owner's ended leases were held."""


@dataclass(frozen=True, slots=True)
class ManagerMetrics:
    """A snapshot of one ``LeasedExecutorManager``'s metrics.

    Leases here are both kinds: pool leases (``acquire()``) and the one-call leases of
    ``manager.run()``.
    """

    name: str
    """The manager's ``name_prefix`` (the label exporters use)."""
    backend: str
    # Gauges: the state at the snapshot.
    pools_total: int
    pools_available: int
    pools_leased: int
    pools_desired: int
    leases_live: int
    waiters: int
    # Counters.
    pools_created: int
    pools_retired: int
    leases_granted: int
    leases_released: int
    leases_overdue: int
    """Leases still held at their soft expiry (each counted once; logged, see
    ``docs/observability.md``)."""
    leases_revoked: int
    """Leases revoked at their hard expiry (soft expiry plus grace)."""
    leases_stopped: int
    """Leases still held when the manager stopped (``stop()``, or a drain's end):
    ``leases_granted == leases_released + leases_revoked + leases_stopped +
    leases_live``."""
    acquire_timeouts: int
    rejected_unavailable: int
    """Refused at once: ``wait=False`` (or an owner limit without waiting)."""
    rejected_queue_full: int
    """Refused because ``max_waiters`` callers were already waiting."""
    rejected_draining: int
    """Refused, or failed while waiting, because the manager drains or stops."""
    calls_started: int
    calls_finished: int
    """Calls that returned."""
    calls_failed: int
    """Calls that raised, or whose worker died under them."""
    calls_cancelled: int
    """Calls cancelled or withdrawn before they ran."""
    worker_crashes: int
    """Process (or interpreter) pools found broken: a worker died; with the dask
    backend, Dask workers that died with calls of this manager on them."""
    # Histograms, in seconds.
    acquire_wait: HistogramSnapshot
    """From the request to the grant (0 when granted at once)."""
    lease_hold: HistogramSnapshot
    """From the grant to the release or revocation."""
    call_queue: HistogramSnapshot
    """From the submission to a pool until a worker starts the call."""
    call_run: HistogramSnapshot
    """How long calls ran on their worker."""
    owners: Mapping[str, OwnerMetrics]
    """Per-owner breakdown; empty unless ``metrics_owners`` is set."""
    autoscale_resizes: int = 0
    """Times the built-in adaptive sizing (``autoscale=``) moved ``pools_desired``; 0
    without it."""
    calls_offloaded: int = 0
    """``backend="auto"``: calls the engine routed to process workers (the rest ran on
    threads); 0 with any other backend."""
    route_changes: int = 0
    """``backend="auto"``: times a callable's route changed (threads to processes or
    back), by measurement or because it could not be pickled."""
    workers_recycled: int = 0
    """Worker processes retired gracefully (and replaced) because their memory passed
    ``max_worker_memory``."""
    calls_retried: int = 0
    """Runs of :func:`~leasepool.resilience.idempotent` calls started again because the
    worker process running them died."""
    crash_breaker_opens: int = 0
    """Times the crash breaker (``crash_breaker=``) opened."""
    rejected_crash_loop: int = 0
    """Calls refused with ``WorkerCrashLoopError`` while the crash breaker was open."""


@dataclass(frozen=True, slots=True)
class GrinderMetrics:
    """A snapshot of one ``WorkGrinder``'s metrics."""

    name: str
    """The grinder's ``owner_prefix`` (the label exporters use)."""
    # Gauges.
    pending: int
    """Items accepted and not yet in a batch."""
    batches_in_flight: int
    # Counters.
    items_submitted: int
    items_finished: int
    items_failed: int
    items_cancelled: int
    batches_dispatched: int
    batches_completed: int
    # Histograms.
    batch_size: HistogramSnapshot
    """Items per dispatched batch."""
    batch_latency: HistogramSnapshot
    """Seconds from a batch's dispatch until its last item was done."""


class MetricsSource(Protocol):
    """What the exporters read: anything with a ``metrics()`` method returning one of the
    snapshots above (a ``LeasedExecutorManager``, a ``WorkGrinder``, or a stand-in)."""

    def metrics(self) -> ManagerMetrics | GrinderMetrics: ...


def __getattr__(name: str) -> Any:
    # The exporters import their optional libraries: only when asked for.
    if name == "PrometheusCollector":
        from ._prometheus import PrometheusCollector

        return PrometheusCollector
    if name == "register_otel_instruments":
        from ._otel import register_otel_instruments

        return register_otel_instruments
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@dataclass(frozen=True, slots=True)
class LeaseInfo:
    """One live lease, as ``manager.leases()`` lists it."""

    lease_id: str
    owner: object
    kind: str
    """``"pool"`` (``acquire()``) or ``"call"`` (the one-call lease of ``run()``)."""
    age_seconds: float
    """Since the grant."""
    seconds_until_soft_expiry: float
    """Negative once the lease is past its soft expiry (overdue)."""
    seconds_until_hard_expiry: float
    """Negative once past the hard expiry (it is revoked at the next check)."""
    overdue: bool
    """Reported as held past its soft expiry."""
    draining: bool
    """Released while calls still run; the pool returns when they end."""
    calls_in_flight: int
    acquire_site: str | None
    """``"file:line"`` of the ``acquire()`` / ``run()`` caller, with
    ``LeasedExecutorManager(track_acquire_site=True)``."""
