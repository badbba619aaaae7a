"""The Prometheus registry of one process and the platform's HTTP metrics."""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import cast

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

_le = cast(Callable[[float], str], floatToGoString)
"""A bucket bound as Prometheus writes it (``0.005``, ``1.0``, ``+Inf``)."""

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
REQUEST_LABELS = ["method", "route", "status"]


class RequestMetrics(Collector):
    """The HTTP request counter, latency histogram and in-flight gauge, kept as plain numbers
    by the event loop that serves the requests and turned into Prometheus families when
    scraped. prometheus_client's own collectors take a lock for each increment, five a request
    (a fifth of the gateway's own cost of a small GET); these are only ever changed on the
    loop's thread, and a scrape reads each route's numbers as one copy."""

    def __init__(self, buckets: tuple[float, ...] = LATENCY_BUCKETS) -> None:
        self._bounds = buckets
        self._les = [_le(b) for b in buckets] + ["+Inf"]
        self._routes: dict[tuple[str, str, str], list[float]] = {}
        """Per (method, route, status): requests, seconds in all, then one count per bucket
        (the last +Inf), not cumulative."""
        self.in_flight = 0
        """Requests being served now."""

    def served(self, method: str, route: str, status: str, seconds: float) -> None:
        """Count one request served and observe its latency."""
        key = (method, route, status)
        cell = self._routes.get(key)
        if cell is None:
            cell = self._routes[key] = [0.0] * (len(self._bounds) + 3)
        cell[0] += 1
        cell[1] += seconds
        cell[2 + bisect_left(self._bounds, seconds)] += 1

    def collect(self) -> Iterator[Metric]:
        requests = CounterMetricFamily(
            "aurora_http_requests",
            "HTTP requests served, by method, route template and status.",
            labels=REQUEST_LABELS,
        )
        latency = HistogramMetricFamily(
            "aurora_http_request_duration_seconds",
            "HTTP request latency, by method, route template and status.",
            labels=REQUEST_LABELS,
        )
        for key, cell in [(k, c[:]) for k, c in list(self._routes.items())]:
            requests.add_metric(list(key), cell[0])
            running, buckets = 0.0, []
            for le, count in zip(self._les, cell[2:], strict=True):
                running += count
                buckets.append((le, running))
            latency.add_metric(list(key), buckets, sum_value=cell[1])
        yield requests
        yield latency
        yield GaugeMetricFamily(
            "aurora_http_requests_in_flight", "HTTP requests being served.", value=self.in_flight
        )


@dataclass(frozen=True, slots=True)
class Metrics:
    """A registry of its own (never the global one) and the collectors the gateway records."""

    registry: CollectorRegistry
    requests: RequestMetrics
    auth_failures: Counter
    soar_executions: Counter
    soar_step_duration: Histogram
    response_actions: Counter
    automation_firings: Counter
    automation_events_lost: Counter
    network_detector_runs: Counter
    network_detector_duration: Histogram
    network_attacks: Counter

    def exposition(self) -> tuple[bytes, str]:
        """The text exposition format and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


def create_metrics() -> Metrics:
    """A fresh registry with the platform's collectors registered."""
    registry = CollectorRegistry(auto_describe=True)
    requests = RequestMetrics()
    registry.register(requests)
    return Metrics(
        registry=registry,
        requests=requests,
        auth_failures=Counter(
            "aurora_auth_failures",
            "Refused authentications, by AURORA code.",
            ["code"],
            registry=registry,
        ),
        soar_executions=Counter(
            "aurora_soar_executions",
            "Playbook executions finished, by status.",
            ["status"],
            registry=registry,
        ),
        soar_step_duration=Histogram(
            "aurora_soar_step_duration_seconds",
            "Playbook step durations, by step kind and status.",
            ["uses", "status"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        ),
        response_actions=Counter(
            "aurora_response_actions",
            "Response actions by where they came from (playbook, edr, investigation), action "
            "and outcome (executed, recorded, proposed, denied, expired, failed, unknown).",
            ["source", "action", "outcome"],
            registry=registry,
        ),
        automation_firings=Counter(
            "aurora_automation_firings",
            "Automation rule matches, by trigger and outcome (fired, loop_guard, rate_limited, "
            "failed).",
            ["trigger", "outcome"],
            registry=registry,
        ),
        automation_events_lost=Counter(
            "aurora_automation_events_lost",
            "Events automation fell too far behind to see (the bus dropped them).",
            registry=registry,
        ),
        network_detector_runs=Counter(
            "aurora_network_detector_runs",
            "Network detector runs, by detector and outcome (succeeded, failed).",
            ["detector", "outcome"],
            registry=registry,
        ),
        network_detector_duration=Histogram(
            "aurora_network_detector_duration_seconds",
            "How long one network detector run took, by detector.",
            ["detector"],
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
            registry=registry,
        ),
        network_attacks=Counter(
            "aurora_network_attacks",
            "Network attacks opened or updated by the detectors, by detector and change "
            "(opened, updated).",
            ["detector", "change"],
            registry=registry,
        ),
    )
