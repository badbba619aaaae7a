"""The route tables of detections and the SIEM declare each route's contract: what it takes,
what it answers (and with which status), the domain errors it can answer, a summary."""

from __future__ import annotations

import pytest

from core.errors import NotFound, SigmaValidationFailed
from gateway.detections.routes import ROUTES as DETECTIONS
from gateway.routing import Route
from gateway.siem.routes import ROUTES as SIEM

ROUTES = [*DETECTIONS, *SIEM]
TAKES_SIGMA = {
    ("POST", "/api/v1/detections/rules"),
    ("PATCH", "/api/v1/detections/rules/{rule_id}"),
    ("POST", "/api/v1/siem/hunts"),
    ("PATCH", "/api/v1/siem/hunts/{hunt_id}"),
    ("POST", "/api/v1/siem/logs/{log_id}/promote"),
}
CREATES = {
    ("POST", "/api/v1/detections/rules"),
    ("POST", "/api/v1/detections/rules/{rule_id}/suppressions"),
    ("POST", "/api/v1/detections/rules/{rule_id}/feedback"),
    ("POST", "/api/v1/siem/hunts"),
    ("POST", "/api/v1/siem/logs/{log_id}/promote"),
}


def test_the_tables_hold_every_route_once() -> None:
    assert len(DETECTIONS) == 10
    assert len(SIEM) == 9
    assert len({(r.method, r.path) for r in ROUTES}) == len(ROUTES)
    assert {(r.method, r.path) for r in ROUTES} >= TAKES_SIGMA | CREATES


@pytest.mark.parametrize("route", ROUTES, ids=lambda r: f"{r.method} {r.path}")
def test_each_route_declares_its_contract(route: Route) -> None:
    key = (route.method, route.path)
    assert route.summary
    assert route.response is not None
    assert route.status == (201 if key in CREATES else 200)
    if route.method in {"POST", "PATCH"}:
        assert (route.body is None) != (route.body_media is None)
    else:
        assert route.body is None
        assert route.body_media is None
    # A route naming a rule, hunt or event answers 404 when there is none.
    assert ("{" in route.path) == any(issubclass(e, NotFound) for e in route.errors)
    assert (key in TAKES_SIGMA) == (SigmaValidationFailed in route.errors)
