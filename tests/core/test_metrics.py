"""The HTTP request metrics: plain numbers on the loop, Prometheus families when scraped."""

import pytest
from prometheus_client import CollectorRegistry, Histogram

from core.metrics import LATENCY_BUCKETS, create_metrics


def test_requests_are_exposed_as_prometheus_own_collectors_would() -> None:
    metrics = create_metrics()
    # The same observations through prometheus_client's own histogram, for comparison.
    reference_registry = CollectorRegistry()
    reference = Histogram(
        "aurora_http_request_duration_seconds",
        "reference",
        ["method", "route", "status"],
        buckets=LATENCY_BUCKETS,
        registry=reference_registry,
    )
    observed = [0.0004, 0.001, 0.0011, 0.003, 0.3, 7.0, 12.0]
    for seconds in observed:
        metrics.requests.served("GET", "/api/v1/users/me", "200", seconds)
        reference.labels("GET", "/api/v1/users/me", "200").observe(seconds)
    metrics.requests.served("POST", "/api/v1/alerts", "422", 0.002)
    metrics.requests.in_flight += 2

    labels = {"method": "GET", "route": "/api/v1/users/me", "status": "200"}
    sample = metrics.registry.get_sample_value
    assert sample("aurora_http_requests_total", labels) == len(observed)
    for le in [*(str(b) for b in LATENCY_BUCKETS), "+Inf"]:
        name = "aurora_http_request_duration_seconds_bucket"
        assert sample(name, {**labels, "le": le}) == reference_registry.get_sample_value(
            name, {**labels, "le": le}
        ), le
    assert sample("aurora_http_request_duration_seconds_count", labels) == len(observed)
    assert sample("aurora_http_request_duration_seconds_sum", labels) == pytest.approx(
        sum(observed)
    )
    assert (
        sample(
            "aurora_http_requests_total",
            {"method": "POST", "route": "/api/v1/alerts", "status": "422"},
        )
        == 1
    )
    assert sample("aurora_http_requests_in_flight") == 2

    text = metrics.exposition()[0].decode()
    assert "# TYPE aurora_http_requests_total counter" in text
    assert "# TYPE aurora_http_request_duration_seconds histogram" in text
    assert (
        'aurora_http_request_duration_seconds_bucket{le="0.001",method="GET",'
        'route="/api/v1/users/me",status="200"} 2.0' in text
    )
