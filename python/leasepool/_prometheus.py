"""The Prometheus exporter: a ``prometheus_client`` custom collector (extra
``leasepool[prometheus]``). Import it as ``leasepool.metrics.PrometheusCollector``."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

from ._export import GRINDER, MANAGER, Group, Histogram, S, Scalar, Sources, take_snapshots
from .metrics import GrinderMetrics, HistogramSnapshot, ManagerMetrics, MetricsSource

try:
    from prometheus_client import REGISTRY, CollectorRegistry
    from prometheus_client.core import (
        CounterMetricFamily,
        GaugeMetricFamily,
        HistogramMetricFamily,
        Metric,
    )
except ImportError as _missing:  # private name: no module attribute for stubtest
    raise ImportError(
        "leasepool.metrics.PrometheusCollector needs prometheus_client: "
        "pip install 'leasepool[prometheus]'",
        name="prometheus_client",
    ) from _missing

__all__ = ["PrometheusCollector"]


class PrometheusCollector:
    """Exports managers' and grinders' metrics to Prometheus.

    A ``prometheus_client`` custom collector: each scrape (``collect()``) calls every
    source's ``metrics()`` once and turns the snapshots into metric families, so the
    values are those of the scrape. Managers are told apart by the label ``manager``,
    grinders by ``grinder`` (their snapshot's ``name``: ``name_prefix``,
    ``owner_prefix``); two sources of one kind with the same name fail the scrape with
    ``ValueError``. A family without series (no grinder, no owner breakdown) is left out.

    ``registry``: registered there at once (``prometheus_client.REGISTRY`` by default),
    not at all with ``None``. Registering does not read the sources: ``describe()``
    returns the families' names without values. One collector per registry and
    namespace; ``add()`` the managers and grinders made later.

    ``docs/observability.md`` lists every metric.
    """

    def __init__(
        self,
        *sources: MetricsSource,
        namespace: str = "leasepool",
        registry: CollectorRegistry | None = REGISTRY,
    ) -> None:
        self._sources = Sources(sources)
        self._prefix = f"{namespace}_" if namespace else ""
        if registry is not None:
            registry.register(self)

    def add(self, source: MetricsSource) -> None:
        """Export ``source`` too (a ``ValueError`` if it already is)."""
        self._sources.add(source)

    def remove(self, source: MetricsSource) -> None:
        """Stop exporting ``source`` (a ``ValueError`` if it is not exported here)."""
        self._sources.remove(source)

    def describe(self) -> list[Metric]:
        """Every family this collector may export, without samples (for the registry's
        check of duplicate names; reads no source)."""
        return [*self._families(MANAGER, [], keep_empty=True)] + [
            *self._families(GRINDER, [], keep_empty=True)
        ]

    def collect(self) -> Iterator[Metric]:
        """The families of fresh snapshots: one ``metrics()`` call per source."""
        managers, grinders = take_snapshots(self._sources.current())
        yield from self._families(MANAGER, managers, keep_empty=False)
        yield from self._families(GRINDER, grinders, keep_empty=False)

    def _families(
        self,
        group: Group[S],
        snapshots: Sequence[S],
        *,
        keep_empty: bool,
    ) -> Iterator[Metric]:
        # Declared: mypy cannot infer them in a function checked once per constraint of S.
        values: tuple[str, ...]
        value: float
        for scalar in group.scalars:
            family = self._scalar_family(group.label, scalar)
            for snapshot in snapshots:
                for values, value in scalar.read(snapshot):
                    family.add_metric([snapshot.name, *values], value)
            if keep_empty or family.samples:
                yield family
        for histogram in group.histograms:
            hist_family = self._histogram_family(group.label, histogram)
            for snapshot in snapshots:
                observed = histogram.read(snapshot)
                hist_family.add_metric([snapshot.name], _buckets(observed), observed.sum)
            if keep_empty or hist_family.samples:
                yield hist_family

    def _scalar_family(
        self, label: str, scalar: Scalar[ManagerMetrics] | Scalar[GrinderMetrics]
    ) -> CounterMetricFamily | GaugeMetricFamily:
        name = self._prefix + scalar.prometheus
        labels = [label, *scalar.labels]
        unit = _unit(scalar.unit)
        if scalar.kind == "counter":
            return CounterMetricFamily(name, scalar.help, labels=labels, unit=unit)
        return GaugeMetricFamily(name, scalar.help, labels=labels, unit=unit)

    def _histogram_family(
        self, label: str, histogram: Histogram[ManagerMetrics] | Histogram[GrinderMetrics]
    ) -> HistogramMetricFamily:
        name = self._prefix + histogram.prometheus
        return HistogramMetricFamily(
            name, histogram.help, labels=[label], unit=_unit(histogram.unit)
        )


def _unit(otel_unit: str) -> str:
    # Prometheus units are base units spelled out; counts ("{lease}") have none.
    return "seconds" if otel_unit == "s" else ""


def _buckets(histogram: HistogramSnapshot) -> list[tuple[str, float]]:
    """Cumulative ``le`` buckets, ``+Inf`` (every observation) last."""
    buckets = [
        (_le(bound), float(seen))
        for bound, seen in zip(histogram.bounds, histogram.cumulative(), strict=False)
        if not math.isinf(bound)
    ]
    buckets.append(("+Inf", float(histogram.count)))
    return buckets


def _le(bound: float) -> str:
    # The shortest text that reads back as the same float ("0.005", "1e-05", "10.0").
    return repr(float(bound))
