"""What the system routes answer is what their route table entries declare (the published
contract a fuzzer checks), and the helper the other domains' contract tests share."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from aiohttp import ClientResponse
from pydantic import TypeAdapter

from core.security.permissions import Role
from gateway.routing import Route
from gateway.system.routes import ROUTES
from tests.conftest import Gateway


def declared(routes: Iterable[Route], method: str, path: str) -> Route:
    return next(r for r in routes if (r.method, r.path) == (method, path))


async def conforms(
    routes: Iterable[Route], method: str, path: str, response: ClientResponse
) -> Any:
    """The JSON body of ``response`` after checking it against the route's declared status
    and response model: it validates, and the model writes it back unchanged (no field
    missing, none extra)."""
    route = declared(routes, method, path)
    text = await response.text()
    assert response.status == route.status, text
    assert response.content_type == "application/json"
    adapter: TypeAdapter[Any] = TypeAdapter(route.response)
    parsed = adapter.validate_json(text)
    body = await response.json()
    assert adapter.dump_python(parsed, mode="json") == body
    return body


async def test_runtime_settings_answer_as_declared(gateway: Gateway) -> None:
    operator = await gateway.user(Role.OPERATOR, "oper")
    path = "/api/v1/settings/runtime"
    await conforms(ROUTES, "GET", path, await gateway.client.get(path, headers=operator))
    changed = await gateway.client.patch(path, headers=operator, json={"mode": "monitor"})
    body = await conforms(ROUTES, "PATCH", path, changed)
    assert body["history"][0]["changes"] == {"mode": {"old": "dry_run", "new": "monitor"}}


async def test_metrics_answer_in_the_declared_media_type(gateway: Gateway) -> None:
    viewer = await gateway.user(Role.VIEWER)
    response = await gateway.client.get("/metrics", headers=viewer)
    route = declared(ROUTES, "GET", "/metrics")
    assert response.status == route.status == 200
    assert response.headers["Content-Type"] == route.response_media
    assert "aurora_http_requests" in await response.text()
