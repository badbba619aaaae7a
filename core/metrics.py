"""The Prometheus registry of one process and the platform's HTTP metrics."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


@dataclass(frozen=True, slots=True)
class Metrics:
    """A registry of its own (never the global one) and the collectors the gateway records."""

    registry: CollectorRegistry
    http_requests: Counter
    http_latency: Histogram
    http_in_flight: Gauge
    auth_failures: Counter
    soar_executions: Counter
    soar_step_duration: Histogram
    response_actions: Counter
    automation_firings: Counter
    automation_events_lost: Counter
    network_detector_runs: Counter
    network_detector_duration: Histogram
    network_attacks: Counter
    _served: dict[tuple[str, str, str], tuple[Any, Any]] = field(default_factory=dict)
    """The request counter's and latency histogram's children per label set, looked up once:
    ``labels()`` validates and locks on every call, a fifth of the metrics' cost a request."""

    def request_served(self, method: str, route: str, status: str, seconds: float) -> None:
        """Count one request served and observe its latency."""
        key = (method, route, status)
        children = self._served.get(key)
        if children is None:
            children = self._served[key] = (
                self.http_requests.labels(*key),
                self.http_latency.labels(*key),
            )
        children[0].inc()
        children[1].observe(seconds)

    def exposition(self) -> tuple[bytes, str]:
        """The text exposition format and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


def create_metrics() -> Metrics:
    """A fresh registry with the platform's collectors registered."""
    registry = CollectorRegistry(auto_describe=True)
    return Metrics(
        registry=registry,
        http_requests=Counter(
            "aurora_http_requests",
            "HTTP requests served, by method, route template and status.",
            ["method", "route", "status"],
            registry=registry,
        ),
        http_latency=Histogram(
            "aurora_http_request_duration_seconds",
            "HTTP request latency, by method, route template and status.",
            ["method", "route", "status"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        ),
        http_in_flight=Gauge(
            "aurora_http_requests_in_flight", "HTTP requests being served.", registry=registry
        ),
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
