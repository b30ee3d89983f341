"""The metrics exporters (Prometheus collector, OpenTelemetry instruments) and the
snapshot helpers, on hand-built snapshots: fake sources stand in for managers and
grinders, so every exported value is known in advance."""

from __future__ import annotations

import math
import re
import subprocess
import sys
import textwrap
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.metrics import Meter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    Gauge,
    InMemoryMetricReader,
    Metric,
    NumberDataPoint,
    Sum,
)
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics_core import Metric as PromMetric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from leasepool.metrics import (
    GrinderMetrics,
    HistogramSnapshot,
    ManagerMetrics,
    OwnerMetrics,
    PrometheusCollector,
    register_otel_instruments,
)

DOCS = Path(__file__).resolve().parent.parent / "docs" / "observability.md"

BOUNDS = (0.001, 0.01, 0.1, 1.0)


def hist(
    counts: tuple[int, ...], total: float, bounds: tuple[float, ...] = BOUNDS
) -> HistogramSnapshot:
    return HistogramSnapshot(bounds=bounds, counts=counts, sum=total)


def manager_snapshot(
    name: str = "api", base: int = 0, owners: Mapping[str, OwnerMetrics] | None = None
) -> ManagerMetrics:
    """Every number distinct (``base`` added), so a value exported under the wrong name
    shows."""
    return ManagerMetrics(
        name=name,
        backend="thread",
        pools_total=5 + base,
        pools_available=2 + base,
        pools_leased=3 + base,
        pools_desired=4 + base,
        leases_live=6 + base,
        waiters=7 + base,
        pools_created=11 + base,
        pools_retired=12 + base,
        leases_granted=13 + base,
        leases_released=14 + base,
        leases_overdue=15 + base,
        leases_revoked=16 + base,
        leases_stopped=26 + base,
        acquire_timeouts=17 + base,
        rejected_unavailable=18 + base,
        rejected_queue_full=19 + base,
        rejected_draining=20 + base,
        calls_started=21 + base,
        calls_finished=22 + base,
        calls_failed=23 + base,
        calls_cancelled=24 + base,
        worker_crashes=25 + base,
        autoscale_resizes=27 + base,
        calls_offloaded=28 + base,
        route_changes=29 + base,
        workers_recycled=30 + base,
        calls_retried=31 + base,
        crash_breaker_opens=32 + base,
        rejected_crash_loop=33 + base,
        acquire_wait=hist((1, 2, 3, 4, 5 + base), 1.5),
        lease_hold=hist((0, 0, 0, 0, 1), 100.0),
        call_queue=hist((6, 0, 0, 0, 0), 0.002),
        call_run=hist((0, 1, 0, 1, 0), 1.25),
        owners=owners or {},
    )


def grinder_snapshot(name: str = "thumbs") -> GrinderMetrics:
    return GrinderMetrics(
        name=name,
        pending=3,
        batches_in_flight=2,
        items_submitted=50,
        items_finished=40,
        items_failed=4,
        items_cancelled=1,
        batches_dispatched=9,
        batches_completed=7,
        batch_size=hist((1, 2, 0, 4), 37.0, bounds=(1.0, 4.0, 16.0)),
        batch_latency=hist((0, 5, 2, 0, 0), 0.5),
    )


OWNERS = {
    "tenant-a": OwnerMetrics(
        leases_granted=31,
        leases_rejected=32,
        leases_held=33,
        acquire_wait_seconds=0.75,
        lease_hold_seconds=12.5,
    ),
    "__other__": OwnerMetrics(
        leases_granted=41,
        leases_rejected=42,
        leases_held=43,
        acquire_wait_seconds=1.25,
        lease_hold_seconds=2.0,
    ),
}


class FakeSource:
    """A manager or grinder stand-in: ``metrics()`` returns ``snapshot``, counted."""

    def __init__(self, snapshot: Any) -> None:
        self.snapshot = snapshot
        self.calls = 0

    def metrics(self) -> Any:
        self.calls += 1
        return self.snapshot


# --- Prometheus ----------------------------------------------------------------------

Key = tuple[str, tuple[tuple[str, str], ...]]


def scrape(registry: CollectorRegistry) -> dict[str, PromMetric]:
    """The registry's exposition, rendered and parsed back: family name -> family."""
    text = generate_latest(registry).decode()
    return {family.name: family for family in text_string_to_metric_families(text)}


def samples(families: Mapping[str, PromMetric]) -> dict[Key, float]:
    out: dict[Key, float] = {}
    for family in families.values():
        for sample in family.samples:
            assert isinstance(sample, Sample)
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def key(name: str, **labels: str) -> Key:
    return (name, tuple(sorted(labels.items())))


def expected_manager_samples(manager: str, base: int = 0) -> dict[Key, float]:
    """What ``manager_snapshot(manager, base)`` exports (without owners)."""
    m = {"manager": manager}
    out: dict[Key, float] = {
        key("leasepool_pools", **m, state="available"): 2 + base,
        key("leasepool_pools", **m, state="leased"): 3 + base,
        key("leasepool_pools_desired", **m): 4 + base,
        key("leasepool_leases_live", **m): 6 + base,
        key("leasepool_waiters", **m): 7 + base,
        key("leasepool_pools_created_total", **m): 11 + base,
        key("leasepool_pools_retired_total", **m): 12 + base,
        key("leasepool_leases_granted_total", **m): 13 + base,
        key("leasepool_leases_released_total", **m): 14 + base,
        key("leasepool_leases_overdue_total", **m): 15 + base,
        key("leasepool_leases_revoked_total", **m): 16 + base,
        key("leasepool_leases_stopped_total", **m): 26 + base,
        key("leasepool_acquire_timeouts_total", **m): 17 + base,
        key("leasepool_acquire_rejected_total", **m, reason="unavailable"): 18 + base,
        key("leasepool_acquire_rejected_total", **m, reason="queue_full"): 19 + base,
        key("leasepool_acquire_rejected_total", **m, reason="draining"): 20 + base,
        key("leasepool_calls_started_total", **m): 21 + base,
        key("leasepool_calls_completed_total", **m, outcome="finished"): 22 + base,
        key("leasepool_calls_completed_total", **m, outcome="failed"): 23 + base,
        key("leasepool_calls_completed_total", **m, outcome="cancelled"): 24 + base,
        key("leasepool_worker_crashes_total", **m): 25 + base,
        key("leasepool_autoscale_resizes_total", **m): 27 + base,
        key("leasepool_calls_offloaded_total", **m): 28 + base,
        key("leasepool_route_changes_total", **m): 29 + base,
        key("leasepool_workers_recycled_total", **m): 30 + base,
        key("leasepool_calls_retried_total", **m): 31 + base,
        key("leasepool_crash_breaker_opens_total", **m): 32 + base,
        key("leasepool_rejected_crash_loop_total", **m): 33 + base,
    }
    # Cumulative buckets; +Inf and _count are every observation.
    histograms = {
        "acquire_wait": ([1, 3, 6, 10, 15 + base], 1.5),
        "lease_hold": ([0, 0, 0, 0, 1], 100.0),
        "call_queue": ([6, 6, 6, 6, 6], 0.002),
        "call_run": ([0, 1, 1, 2, 2], 1.25),
    }
    for name, (cumulative, total) in histograms.items():
        family = f"leasepool_{name}_seconds"
        for le, seen in zip(["0.001", "0.01", "0.1", "1.0", "+Inf"], cumulative, strict=True):
            out[key(f"{family}_bucket", **m, le=le)] = seen
        out[key(f"{family}_count", **m)] = cumulative[-1]
        out[key(f"{family}_sum", **m)] = total
    return out


MANAGER_FAMILIES = {
    "leasepool_pools": "gauge",
    "leasepool_pools_desired": "gauge",
    "leasepool_leases_live": "gauge",
    "leasepool_waiters": "gauge",
    "leasepool_pools_created": "counter",
    "leasepool_pools_retired": "counter",
    "leasepool_leases_granted": "counter",
    "leasepool_leases_released": "counter",
    "leasepool_leases_overdue": "counter",
    "leasepool_leases_revoked": "counter",
    "leasepool_leases_stopped": "counter",
    "leasepool_acquire_timeouts": "counter",
    "leasepool_acquire_rejected": "counter",
    "leasepool_calls_started": "counter",
    "leasepool_calls_completed": "counter",
    "leasepool_worker_crashes": "counter",
    "leasepool_autoscale_resizes": "counter",
    "leasepool_calls_offloaded": "counter",
    "leasepool_route_changes": "counter",
    "leasepool_workers_recycled": "counter",
    "leasepool_calls_retried": "counter",
    "leasepool_crash_breaker_opens": "counter",
    "leasepool_rejected_crash_loop": "counter",
    "leasepool_acquire_wait_seconds": "histogram",
    "leasepool_lease_hold_seconds": "histogram",
    "leasepool_call_queue_seconds": "histogram",
    "leasepool_call_run_seconds": "histogram",
}


def test_a_scrape_exports_every_manager_metric_with_its_type_and_help() -> None:
    registry = CollectorRegistry()
    source = FakeSource(manager_snapshot("api"))
    PrometheusCollector(source, registry=registry)
    assert source.calls == 0  # registering reads no snapshot (describe())

    families = scrape(registry)
    assert {name: family.type for name, family in families.items()} == MANAGER_FAMILIES
    for family in families.values():
        assert family.documentation.strip(), family.name
    assert samples(families) == expected_manager_samples("api")
    assert source.calls == 1


def test_each_scrape_reads_fresh_snapshots_once_per_source() -> None:
    registry = CollectorRegistry()
    manager = FakeSource(manager_snapshot("api"))
    grinder = FakeSource(grinder_snapshot("thumbs"))
    PrometheusCollector(manager, grinder, registry=registry)
    first = samples(scrape(registry))
    manager.snapshot = manager_snapshot("api", base=1000)
    second = samples(scrape(registry))
    assert (manager.calls, grinder.calls) == (2, 2)
    granted = key("leasepool_leases_granted_total", manager="api")
    assert (first[granted], second[granted]) == (13, 1013)


def test_two_managers_are_told_apart_by_the_manager_label() -> None:
    registry = CollectorRegistry()
    PrometheusCollector(
        FakeSource(manager_snapshot("api")),
        FakeSource(manager_snapshot("batch", base=100)),
        registry=registry,
    )
    families = scrape(registry)
    assert samples(families) == expected_manager_samples("api") | expected_manager_samples(
        "batch", base=100
    )
    # One family per metric, with both managers' series in it.
    assert set(families) == set(MANAGER_FAMILIES)


def test_add_and_remove_sources_after_registration() -> None:
    registry = CollectorRegistry()
    collector = PrometheusCollector(registry=registry)
    assert scrape(registry) == {}  # no source: no family at all

    api = FakeSource(manager_snapshot("api"))
    batch = FakeSource(manager_snapshot("batch", base=100))
    collector.add(api)
    collector.add(batch)
    with pytest.raises(ValueError, match="already exported"):
        collector.add(api)
    collector.remove(api)
    assert samples(scrape(registry)) == expected_manager_samples("batch", base=100)
    with pytest.raises(ValueError, match="not exported"):
        collector.remove(api)
    collector.remove(batch)
    assert scrape(registry) == {}
    assert api.calls == 0


def test_owner_families_only_for_managers_with_owners() -> None:
    registry = CollectorRegistry()
    PrometheusCollector(
        FakeSource(manager_snapshot("api", owners=OWNERS)),
        FakeSource(manager_snapshot("batch", base=100)),
        registry=registry,
    )
    families = scrape(registry)
    owner_types = {
        "leasepool_owner_leases_granted": "counter",
        "leasepool_owner_leases_rejected": "counter",
        "leasepool_owner_leases_held": "gauge",
        "leasepool_owner_acquire_wait_seconds": "counter",
        "leasepool_owner_lease_hold_seconds": "counter",
    }
    assert {name: families[name].type for name in owner_types} == owner_types
    owner_samples = {
        k: v for k, v in samples(families).items() if k[0].startswith("leasepool_owner_")
    }
    expected: dict[Key, float] = {}
    for owner, base in [("tenant-a", 30), ("__other__", 40)]:
        labels = {"manager": "api", "owner": owner}
        expected |= {
            key("leasepool_owner_leases_granted_total", **labels): base + 1,
            key("leasepool_owner_leases_rejected_total", **labels): base + 2,
            key("leasepool_owner_leases_held", **labels): base + 3,
        }
    expected |= {
        key("leasepool_owner_acquire_wait_seconds_total", manager="api", owner="tenant-a"): 0.75,
        key("leasepool_owner_lease_hold_seconds_total", manager="api", owner="tenant-a"): 12.5,
        key("leasepool_owner_acquire_wait_seconds_total", manager="api", owner="__other__"): 1.25,
        key("leasepool_owner_lease_hold_seconds_total", manager="api", owner="__other__"): 2.0,
    }
    assert owner_samples == expected  # nothing for "batch", which has no owners

    alone = CollectorRegistry()
    PrometheusCollector(FakeSource(manager_snapshot("batch")), registry=alone)
    assert not any(name.startswith("leasepool_owner_") for name in scrape(alone))


def test_grinder_families_with_the_grinder_label() -> None:
    registry = CollectorRegistry()
    PrometheusCollector(FakeSource(grinder_snapshot("thumbs")), registry=registry)
    families = scrape(registry)
    assert {name: family.type for name, family in families.items()} == {
        "leasepool_grinder_pending": "gauge",
        "leasepool_grinder_batches_in_flight": "gauge",
        "leasepool_grinder_items_submitted": "counter",
        "leasepool_grinder_items_completed": "counter",
        "leasepool_grinder_batches_dispatched": "counter",
        "leasepool_grinder_batches_completed": "counter",
        "leasepool_grinder_batch_size": "histogram",
        "leasepool_grinder_batch_latency_seconds": "histogram",
    }
    g = {"grinder": "thumbs"}
    expected = {
        key("leasepool_grinder_pending", **g): 3,
        key("leasepool_grinder_batches_in_flight", **g): 2,
        key("leasepool_grinder_items_submitted_total", **g): 50,
        key("leasepool_grinder_items_completed_total", **g, outcome="finished"): 40,
        key("leasepool_grinder_items_completed_total", **g, outcome="failed"): 4,
        key("leasepool_grinder_items_completed_total", **g, outcome="cancelled"): 1,
        key("leasepool_grinder_batches_dispatched_total", **g): 9,
        key("leasepool_grinder_batches_completed_total", **g): 7,
        key("leasepool_grinder_batch_size_bucket", **g, le="1.0"): 1,
        key("leasepool_grinder_batch_size_bucket", **g, le="4.0"): 3,
        key("leasepool_grinder_batch_size_bucket", **g, le="16.0"): 3,
        key("leasepool_grinder_batch_size_bucket", **g, le="+Inf"): 7,
        key("leasepool_grinder_batch_size_count", **g): 7,
        key("leasepool_grinder_batch_size_sum", **g): 37.0,
    }
    for le, seen in zip(["0.001", "0.01", "0.1", "1.0", "+Inf"], [0, 5, 7, 7, 7], strict=True):
        expected[key("leasepool_grinder_batch_latency_seconds_bucket", **g, le=le)] = seen
    expected[key("leasepool_grinder_batch_latency_seconds_count", **g)] = 7
    expected[key("leasepool_grinder_batch_latency_seconds_sum", **g)] = 0.5
    assert samples(families) == expected


def test_the_exposition_text_itself() -> None:
    """HELP and TYPE lines, label order, ``le`` text: what a Prometheus server reads."""
    registry = CollectorRegistry()
    PrometheusCollector(FakeSource(manager_snapshot("api")), registry=registry)
    text = generate_latest(registry).decode()
    assert "# HELP leasepool_leases_granted_total Leases granted" in text
    assert "# TYPE leasepool_leases_granted_total counter\n" in text
    assert 'leasepool_leases_granted_total{manager="api"} 13.0\n' in text
    assert "# TYPE leasepool_acquire_wait_seconds histogram\n" in text
    assert 'leasepool_acquire_wait_seconds_bucket{le="0.001",manager="api"} 1.0\n' in text
    assert 'leasepool_acquire_wait_seconds_bucket{le="+Inf",manager="api"} 15.0\n' in text
    assert 'leasepool_pools{manager="api",state="available"} 2.0\n' in text


def test_namespace_and_registration_rules() -> None:
    registry = CollectorRegistry()
    PrometheusCollector(FakeSource(manager_snapshot("api")), registry=registry)
    # describe() names every family: a second collector of the same namespace is a
    # duplicate, as prometheus_client reports for its own metrics.
    with pytest.raises(ValueError, match="Duplicated timeseries"):
        PrometheusCollector(registry=registry)
    PrometheusCollector(FakeSource(manager_snapshot("api")), namespace="svc", registry=registry)
    names = set(scrape(registry))
    assert "svc_leases_granted" in names and "leasepool_leases_granted" in names

    unregistered = PrometheusCollector(FakeSource(manager_snapshot("api")), registry=None)
    assert [family.name for family in unregistered.collect()][:2] == [
        "leasepool_pools",
        "leasepool_pools_desired",
    ]
    assert set(scrape(registry)) == names


def test_describe_lists_every_family_without_samples() -> None:
    collector = PrometheusCollector(registry=None)
    described = collector.describe()
    assert all(family.samples == [] for family in described)
    names = {family.name for family in described}
    assert set(MANAGER_FAMILIES) <= names
    assert {"leasepool_owner_leases_held", "leasepool_grinder_batch_size"} <= names


def test_same_named_sources_fail_the_scrape_loudly() -> None:
    registry = CollectorRegistry()
    PrometheusCollector(
        FakeSource(manager_snapshot("api")), FakeSource(manager_snapshot("api")), registry=registry
    )
    with pytest.raises(ValueError, match="name_prefix"):
        generate_latest(registry)
    # A manager and a grinder may share a name: different labels, different families.
    other = CollectorRegistry()
    PrometheusCollector(
        FakeSource(manager_snapshot("api")), FakeSource(grinder_snapshot("api")), registry=other
    )
    assert key("leasepool_grinder_pending", grinder="api") in samples(scrape(other))


def test_sources_must_have_metrics_and_return_snapshots() -> None:
    with pytest.raises(TypeError, match="no metrics"):
        PrometheusCollector(object(), registry=None)  # type: ignore[arg-type]
    registry = CollectorRegistry()
    PrometheusCollector(FakeSource({"leases": 3}), registry=registry)
    with pytest.raises(TypeError, match="returned dict"):
        generate_latest(registry)


# --- OpenTelemetry -------------------------------------------------------------------

Point = tuple[str, tuple[tuple[str, Any], ...]]


@pytest.fixture
def otel() -> Iterator[tuple[Meter, InMemoryMetricReader]]:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader], shutdown_on_exit=False)
    yield provider.get_meter("leasepool-tests"), reader
    provider.shutdown()


def collect(reader: InMemoryMetricReader) -> dict[str, Metric]:
    """One collection: instrument name -> its metric (instruments with data only)."""
    data = reader.get_metrics_data()
    if data is None:
        return {}
    return {
        metric.name: metric
        for resource in data.resource_metrics
        for scope in resource.scope_metrics
        for metric in scope.metrics
        if metric.data.data_points
    }


def points(metrics: Mapping[str, Metric]) -> dict[Point, float]:
    out: dict[Point, float] = {}
    for metric in metrics.values():
        for point in metric.data.data_points:
            assert isinstance(point, NumberDataPoint)  # no histogram instruments
            attributes = tuple(sorted((point.attributes or {}).items()))
            out[(metric.name, attributes)] = point.value
    return out


def pt(name: str, **attributes: str) -> Point:
    return (name, tuple(sorted(attributes.items())))


def test_otel_instruments_report_every_value_with_attributes(
    otel: tuple[Meter, InMemoryMetricReader],
) -> None:
    meter, reader = otel
    register_otel_instruments(
        meter,
        FakeSource(manager_snapshot("api", owners=OWNERS)),
        FakeSource(grinder_snapshot("thumbs")),
    )
    metrics = collect(reader)
    got = points(metrics)
    m = {"manager": "api"}
    assert got[pt("leasepool.pools.count", **m, state="available")] == 2
    assert got[pt("leasepool.pools.count", **m, state="leased")] == 3
    assert got[pt("leasepool.pools.desired", **m)] == 4
    assert got[pt("leasepool.leases.live", **m)] == 6
    assert got[pt("leasepool.waiters", **m)] == 7
    assert got[pt("leasepool.leases.granted", **m)] == 13
    assert got[pt("leasepool.acquire.rejected", **m, reason="queue_full")] == 19
    assert got[pt("leasepool.calls.completed", **m, outcome="cancelled")] == 24
    assert got[pt("leasepool.worker.crashes", **m)] == 25
    assert got[pt("leasepool.acquire.wait.count", **m)] == 15
    assert got[pt("leasepool.acquire.wait.sum", **m)] == 1.5
    assert got[pt("leasepool.call.run.count", **m)] == 2
    assert got[pt("leasepool.owner.leases.held", **m, owner="tenant-a")] == 33
    assert got[pt("leasepool.owner.lease.hold", **m, owner="__other__")] == 2.0
    g = {"grinder": "thumbs"}
    assert got[pt("leasepool.grinder.pending", **g)] == 3
    assert got[pt("leasepool.grinder.items.completed", **g, outcome="failed")] == 4
    assert got[pt("leasepool.grinder.batch.size.count", **g)] == 7
    assert got[pt("leasepool.grinder.batch.size.sum", **g)] == 37.0
    assert got[pt("leasepool.grinder.batch.latency.sum", **g)] == 0.5
    assert got[pt("leasepool.leases.stopped", **m)] == 26
    # Manager: 28 counter and gauge points, 2 per histogram; 5 per owner; grinder: 8, 2
    # per histogram.
    assert len(got) == (28 + 2 * 4) + 5 * 2 + (8 + 2 * 2)

    # Counters are monotonic sums, levels up-down sums, the desired size a gauge.
    def kind(name: str) -> str:
        data = metrics[name].data
        if isinstance(data, Sum):
            return "counter" if data.is_monotonic else "updown"
        assert isinstance(data, Gauge)
        return "gauge"

    assert kind("leasepool.leases.granted") == "counter"
    assert kind("leasepool.acquire.wait.sum") == "counter"
    assert kind("leasepool.pools.count") == "updown"
    assert kind("leasepool.owner.leases.held") == "updown"
    assert kind("leasepool.grinder.pending") == "updown"
    assert kind("leasepool.pools.desired") == "gauge"
    units = {name: metric.unit for name, metric in metrics.items()}
    assert units["leasepool.acquire.wait.sum"] == "s"
    assert units["leasepool.acquire.wait.count"] == "{lease}"
    assert units["leasepool.calls.started"] == "{call}"
    assert units["leasepool.owner.acquire.wait"] == "s"
    assert units["leasepool.grinder.batch.size.sum"] == "{item}"
    assert all(metric.description for metric in metrics.values())


def test_otel_reads_each_source_once_per_collection(
    otel: tuple[Meter, InMemoryMetricReader],
) -> None:
    meter, reader = otel
    manager = FakeSource(manager_snapshot("api", owners=OWNERS))
    grinder = FakeSource(grinder_snapshot("thumbs"))
    register_otel_instruments(meter, manager, grinder)
    assert (manager.calls, grinder.calls) == (0, 0)
    collect(reader)
    assert (manager.calls, grinder.calls) == (1, 1)
    manager.snapshot = manager_snapshot("api", base=1000)
    got = points(collect(reader))
    assert (manager.calls, grinder.calls) == (2, 2)
    # The second collection saw the new snapshot in every instrument, not a cached one.
    assert got[pt("leasepool.leases.granted", manager="api")] == 1013
    assert got[pt("leasepool.pools.count", manager="api", state="leased")] == 1003
    assert got[pt("leasepool.acquire.wait.count", manager="api")] == 1015
    collect(reader)
    assert (manager.calls, grinder.calls) == (3, 3)


def test_otel_two_readers_each_get_their_own_snapshots() -> None:
    first, second = InMemoryMetricReader(), InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[first, second], shutdown_on_exit=False)
    try:
        source = FakeSource(manager_snapshot("api"))
        register_otel_instruments(provider.get_meter("leasepool-tests"), source)
        collect(first)
        source.snapshot = manager_snapshot("api", base=1)
        got = points(collect(second))
        assert source.calls == 2
        assert got[pt("leasepool.leases.granted", manager="api")] == 14
    finally:
        provider.shutdown()


def test_otel_add_and_remove(otel: tuple[Meter, InMemoryMetricReader]) -> None:
    meter, reader = otel
    registration = register_otel_instruments(meter)
    assert points(collect(reader)) == {}
    api = FakeSource(manager_snapshot("api"))
    batch = FakeSource(manager_snapshot("batch", base=100))
    registration.add(api)
    registration.add(batch)
    with pytest.raises(ValueError, match="already exported"):
        registration.add(batch)
    got = points(collect(reader))
    assert got[pt("leasepool.leases.granted", manager="api")] == 13
    assert got[pt("leasepool.leases.granted", manager="batch")] == 113
    registration.remove(api)
    got = points(collect(reader))
    assert {dict(attributes)["manager"] for _, attributes in got} == {"batch"}
    assert (api.calls, batch.calls) == (1, 2)
    with pytest.raises(ValueError, match="not exported"):
        registration.remove(api)


def test_otel_same_named_managers_are_refused(
    otel: tuple[Meter, InMemoryMetricReader], caplog: pytest.LogCaptureFixture
) -> None:
    meter, reader = otel
    registration = register_otel_instruments(meter, FakeSource(manager_snapshot("api")))
    registration.add(FakeSource(manager_snapshot("api")))
    # The SDK logs each failing callback and reports no point for it.
    assert points(collect(reader)) == {}
    assert "give each manager its own name_prefix" in caplog.text


# --- Without the optional libraries --------------------------------------------------

WITHOUT_EXTRAS = textwrap.dedent(
    """
    import sys

    class Blocked:
        # As if prometheus_client and opentelemetry were not installed.
        def find_spec(self, name, path=None, target=None):
            if name.partition(".")[0] in ("prometheus_client", "opentelemetry"):
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
            return None

    sys.meta_path.insert(0, Blocked())
    import leasepool
    import leasepool.metrics

    for name in ("PrometheusCollector", "register_otel_instruments"):
        try:
            getattr(leasepool.metrics, name)
        except ImportError as exc:
            print(name, exc)
        else:
            print(name, "imported")
    print(leasepool.metrics.HistogramSnapshot((1.0,), (1, 0), 0.5).quantile(1.0))
    """
)


def test_the_package_imports_without_the_exporters_libraries() -> None:
    done = subprocess.run(
        [sys.executable, "-c", WITHOUT_EXTRAS],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "PrometheusCollector leasepool.metrics.PrometheusCollector needs prometheus_client: "
        "pip install 'leasepool[prometheus]'",
        "register_otel_instruments leasepool.metrics.register_otel_instruments needs "
        "opentelemetry-api: pip install 'leasepool[otel]'",
        "1.0",
    ]


def test_importing_leasepool_loads_neither_library() -> None:
    code = (
        "import sys, leasepool, leasepool.metrics; "
        "print(sorted({m.partition('.')[0] for m in sys.modules} "
        "& {'prometheus_client', 'opentelemetry'}))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert (done.returncode, done.stdout) == (0, "[]\n"), done.stderr


# --- HistogramSnapshot ---------------------------------------------------------------


def test_histogram_cumulative_and_count() -> None:
    h = HistogramSnapshot(bounds=(1.0, 2.0, 3.0, 4.0), counts=(0, 2, 0, 1, 1), sum=9.5)
    assert h.count == 4
    assert h.cumulative() == (0, 2, 2, 3, 4)
    assert HistogramSnapshot(bounds=(1.0,), counts=(0, 0), sum=0.0).cumulative() == (0, 0)
    assert HistogramSnapshot(bounds=(), counts=(3,), sum=3.0).cumulative() == (3,)


@pytest.mark.parametrize(
    ("q", "expected"),
    [
        (0.0, 2.0),  # the smallest observation's bucket, not the first bound
        (0.25, 2.0),
        (0.5, 2.0),  # rank 2 of 4: the second observation, at the boundary
        (0.51, 4.0),  # rank 3
        (0.75, 4.0),
        (0.99, math.inf),  # rank 4: above every bound
        (1.0, math.inf),
    ],
)
def test_histogram_quantile_is_the_bound_of_the_bucket_holding_it(
    q: float, expected: float
) -> None:
    h = HistogramSnapshot(bounds=(1.0, 2.0, 3.0, 4.0), counts=(0, 2, 0, 1, 1), sum=9.5)
    assert h.quantile(q) == expected


def test_histogram_quantile_edges() -> None:
    empty = HistogramSnapshot(bounds=(1.0, 2.0), counts=(0, 0, 0), sum=0.0)
    assert empty.count == 0
    assert [empty.quantile(q) for q in (0.0, 0.5, 1.0)] == [0.0, 0.0, 0.0]
    overflow = HistogramSnapshot(bounds=(1.0, 2.0), counts=(0, 0, 5), sum=50.0)
    assert overflow.quantile(0.0) == math.inf
    no_bounds = HistogramSnapshot(bounds=(), counts=(2,), sum=1.0)
    assert no_bounds.quantile(0.5) == math.inf
    one = HistogramSnapshot(bounds=(0.5,), counts=(1, 0), sum=0.25)
    assert [one.quantile(q) for q in (0.0, 1.0)] == [0.5, 0.5]
    for bad in (-0.01, 1.01, math.nan):
        with pytest.raises(ValueError, match="between 0 and 1"):
            one.quantile(bad)


# --- The documentation ---------------------------------------------------------------


@pytest.mark.skipif(not DOCS.is_file(), reason="needs the source tree")
def test_every_exported_name_is_documented(otel: tuple[Meter, InMemoryMetricReader]) -> None:
    sources = [
        FakeSource(manager_snapshot("api", owners=OWNERS)),
        FakeSource(grinder_snapshot("thumbs")),
    ]
    registry = CollectorRegistry()
    PrometheusCollector(*sources, registry=registry)
    # As a query names them: counters with their _total, histograms by their base name.
    prometheus = {
        family.name + ("_total" if family.type == "counter" else "")
        for family in scrape(registry).values()
    }
    meter, reader = otel
    register_otel_instruments(meter, *sources)
    otel_names = set(collect(reader))
    assert len(prometheus) == 27 + 5 + 8 and len(otel_names) == 23 + 2 * 4 + 5 + 6 + 2 * 2
    documented = set(re.findall(r"`([a-z_.]+)", DOCS.read_text()))
    assert prometheus - documented == set()
    assert otel_names - documented == set()
