"""The metrics example over real HTTP: a FastAPI app on uvicorn (127.0.0.1) serves
``/metrics``; the exposition is parsed with prometheus_client's own parser and must
agree with what the requests did."""

from __future__ import annotations

from _support import load_example
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

example = load_example("05_metrics_fastapi.py", "metrics_fastapi_example")


def test_metrics_endpoint_reports_the_requests() -> None:
    app = example.create_app(example.service_manager(), CollectorRegistry())
    with example.serving(app) as port:
        for rounds in (1, 10, 100):
            example.get(port, f"/work/{rounds}")
        text = example.get(port, "/metrics")
    families = {family.name: family for family in text_string_to_metric_families(text)}
    assert all(family.documentation for family in families.values()), "every family has HELP"

    def value(name: str, **labels: str) -> float:
        base = name.removesuffix("_total")
        for suffix in ("_bucket", "_count", "_sum"):
            base = base.removesuffix(suffix)
        family = families[base]
        want = {"manager": "api", **labels}
        (sample,) = [s for s in family.samples if s.name == name and s.labels == want]
        return sample.value

    assert families["leasepool_leases_granted"].type == "counter"
    assert value("leasepool_leases_granted_total") == 3
    assert value("leasepool_calls_started_total") == 3
    assert value("leasepool_calls_completed_total", outcome="finished") == 3
    assert value("leasepool_calls_completed_total", outcome="failed") == 0
    assert value("leasepool_owner_leases_granted_total", owner="work") == 3
    # Three calls timed: the +Inf bucket and _count agree, _sum is positive.
    assert value("leasepool_call_run_seconds_bucket", le="+Inf") == 3
    assert value("leasepool_call_run_seconds_count") == 3
    assert value("leasepool_call_run_seconds_sum") > 0
    assert value("leasepool_pools", state="leased") + value(
        "leasepool_pools", state="available"
    ) == value("leasepool_pools_created_total") - value("leasepool_pools_retired_total")
