"""The OpenTelemetry exporter: observable instruments on a ``Meter`` of
``opentelemetry-api`` (extra ``leasepool[otel]``). Import it as
``leasepool.metrics.register_otel_instruments``."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Sequence

from ._export import (
    GRINDER,
    MANAGER,
    Group,
    S,
    Series,
    Snapshots,
    Sources,
    take_snapshots,
)
from .metrics import HistogramSnapshot, MetricsSource

try:
    from opentelemetry.metrics import CallbackOptions, Meter, Observation
except ImportError as _missing:  # private name: no module attribute for stubtest
    raise ImportError(
        "leasepool.metrics.register_otel_instruments needs opentelemetry-api: "
        "pip install 'leasepool[otel]'",
        name="opentelemetry",
    ) from _missing

__all__ = ["OtelRegistration", "register_otel_instruments"]

Callback = Callable[[CallbackOptions], Iterable[Observation]]


class OtelRegistration:
    """The sources behind the instruments of one :func:`register_otel_instruments`.

    Every instrument's callback reads the same snapshots during one collection: the
    first callback of a collection calls each source's ``metrics()`` once, the others
    reuse what it took. A collection is told from the next without a clock: the SDK
    calls each instrument's callback once per collection, so a callback that has
    already read the current snapshots starts a new collection. (After ``add()`` or
    ``remove()`` the next callback reads afresh, so a collection running at that moment
    may call ``metrics()`` twice; a source whose ``metrics()`` raises makes the next
    callback try again.)
    """

    def __init__(self, sources: Iterable[MetricsSource]) -> None:
        self._sources = Sources(sources)
        self._lock = threading.Lock()
        self._snapshots: Snapshots | None = None
        self._served: set[int] = set()
        self._callbacks = 0

    def add(self, source: MetricsSource) -> None:
        """Export ``source`` too (a ``ValueError`` if it already is)."""
        self._sources.add(source)
        self._forget()

    def remove(self, source: MetricsSource) -> None:
        """Stop exporting ``source`` (a ``ValueError`` if it is not exported here)."""
        self._sources.remove(source)
        self._forget()

    def _forget(self) -> None:
        with self._lock:
            self._snapshots = None

    def _new_callback_id(self) -> int:
        self._callbacks += 1
        return self._callbacks

    def _read(self, callback_id: int) -> Snapshots:
        """The current collection's snapshots, for the callback ``callback_id``."""
        with self._lock:
            if self._snapshots is None or callback_id in self._served:
                self._snapshots = None
                self._served.clear()
                self._snapshots = take_snapshots(self._sources.current())
            self._served.add(callback_id)
            return self._snapshots

    def _register(
        self, meter: Meter, group: Group[S], select: Callable[[Snapshots], Sequence[S]]
    ) -> None:
        """Creates the instruments of ``group``; ``select`` picks its snapshots."""
        for scalar in group.scalars:
            observe = self._callback(group.label, scalar.labels, scalar.read, select)
            options = {"unit": scalar.unit, "description": scalar.help}
            if scalar.kind == "counter":
                meter.create_observable_counter(scalar.otel, [observe], **options)
            elif scalar.kind == "updown":
                meter.create_observable_up_down_counter(scalar.otel, [observe], **options)
            else:
                meter.create_observable_gauge(scalar.otel, [observe], **options)
        for histogram in group.histograms:
            count = self._callback(group.label, (), _histogram_count(histogram.read), select)
            total = self._callback(group.label, (), _histogram_sum(histogram.read), select)
            meter.create_observable_counter(
                f"{histogram.otel}.count",
                [count],
                unit=histogram.count_unit,
                description=f"How many observations of: {histogram.help}",
            )
            meter.create_observable_counter(
                f"{histogram.otel}.sum",
                [total],
                unit=histogram.unit,
                description=f"The sum of the observations of: {histogram.help}",
            )

    def _callback(
        self,
        label: str,
        label_names: tuple[str, ...],
        read: Callable[[S], Iterable[Series]],
        select: Callable[[Snapshots], Sequence[S]],
    ) -> Callback:
        callback_id = self._new_callback_id()

        def observe(options: CallbackOptions) -> Iterable[Observation]:
            observations = []
            for snapshot in select(self._read(callback_id)):
                for values, value in read(snapshot):
                    attributes = {
                        label: snapshot.name,
                        **dict(zip(label_names, values, strict=True)),
                    }
                    observations.append(Observation(value, attributes))
            return observations

        return observe


def _histogram_count(read: Callable[[S], HistogramSnapshot]) -> Callable[[S], list[Series]]:
    return lambda snapshot: [((), read(snapshot).count)]


def _histogram_sum(read: Callable[[S], HistogramSnapshot]) -> Callable[[S], list[Series]]:
    return lambda snapshot: [((), read(snapshot).sum)]


def register_otel_instruments(meter: Meter, *sources: MetricsSource) -> OtelRegistration:
    """Creates observable instruments on ``meter`` that report the sources' metrics.

    Counters become observable counters; counts of things that exist now (pools,
    leases, waiters) observable up-down counters; ``leasepool.pools.desired`` an
    observable gauge. OpenTelemetry has no observable histogram: each histogram is two
    observable counters, ``<name>.count`` (observations) and ``<name>.sum`` (their
    total, in seconds for durations). Attributes: ``manager`` or ``grinder`` (the
    snapshot's name), and ``state``, ``reason``, ``outcome``, ``owner`` where they
    apply. Every instrument is created at once, even with no source yet; add managers
    and grinders made later with the returned registration's ``add()``. Call this once
    per meter: the instruments' names are fixed.

    ``docs/observability.md`` lists every instrument.
    """
    registration = OtelRegistration(sources)
    registration._register(meter, MANAGER, lambda snapshots: snapshots[0])
    registration._register(meter, GRINDER, lambda snapshots: snapshots[1])
    return registration
