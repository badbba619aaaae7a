"""The published contract: the OpenAPI 3.1 document built from the route table, and its page."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from typing import Any

import jsonschema
import pytest
from aiohttp import web
from openapi_spec_validator import OpenAPIV31SpecValidator
from pydantic import BaseModel, Field

from core.errors import CaseNotFound, Conflict
from core.security.permissions import Permission
from core.settings import Settings
from gateway.app import ALL_ROUTES
from gateway.http import json_response
from gateway.index import INDEX_ROUTES
from gateway.openapi import (
    CSP,
    ENVELOPE,
    build_document,
    path_parameters,
    published,
    render_reference,
)
from gateway.routing import Access, Route
from gateway.sso.routes import METADATA_ROUTES
from tests.conftest import Gateway, start_gateway

ROUTES = (*ALL_ROUTES, *INDEX_ROUTES, *METADATA_ROUTES)
HTTP_ROUTES = [route for route in ROUTES if not route.is_websocket]
ENVELOPE_REF = {"$ref": f"#/components/schemas/{ENVELOPE}"}


class Widget(BaseModel):
    name: str = Field(max_length=20)
    size: int = 1


class WidgetQuery(BaseModel):
    colour: str | None = Field(default=None, description="Only widgets of this colour")
    limit: int = Field(default=10, ge=1, le=100)


async def widget(request: web.Request) -> web.Response:
    """Show a widget."""
    return json_response({})


EXAMPLE_ROUTES = (
    Route(
        "POST",
        "/api/v1/cases/{case_id}/widgets",
        widget,
        Permission.CASES_WRITE,
        body=Widget,
        response=Widget,
        status=201,
        errors=(CaseNotFound, Conflict),
        max_body_bytes=4096,
    ),
    Route("GET", "/api/v1/widgets", widget, Access.AUTHENTICATED, query=WidgetQuery),
    Route(
        "GET",
        "/api/v1/old-widgets",
        widget,
        Access.PUBLIC,
        response=list[Widget],
        sunset="2026-12-31T00:00:00Z",
    ),
    Route("DELETE", "/api/v1/widgets/{widget_id}", widget, Permission.ADMIN, status=204),
    Route("PUT", "/api/v1/widgets/{widget_id}", widget, Permission.ADMIN, body=Widget),
    Route("WS", "/api/v1/ws/widgets", widget, Access.AUTHENTICATED),
)


@pytest.fixture
def backend() -> str:
    return "sqlite"  # what is served does not depend on the database


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return build_document(ROUTES, version="test", max_body_bytes=1_000_000)


@pytest.fixture(scope="module")
def example() -> dict[str, Any]:
    return build_document(EXAMPLE_ROUTES, version="test", max_body_bytes=1_000_000)


def _operation(document: dict[str, Any], route: Route) -> dict[str, Any]:
    operation: dict[str, Any] = document["paths"][route.path][route.method.lower()]
    return operation


def test_the_document_is_valid_openapi_31(document: dict[str, Any]) -> None:
    assert document["openapi"] == "3.1.0"
    errors = [error.message for error in OpenAPIV31SpecValidator(document).iter_errors()]
    assert errors == []
    json.dumps(document)  # plain JSON all through


def test_a_broken_document_is_caught_by_the_validator(example: dict[str, Any]) -> None:
    # Guards the check above against a validator that accepts anything.
    broken = json.loads(json.dumps(example))
    del broken["paths"]["/api/v1/widgets"]["get"]["responses"]
    broken["paths"]["/api/v1/widgets"]["get"]["parameters"][0]["in"] = "body"
    assert list(OpenAPIV31SpecValidator(broken).iter_errors())


def test_every_route_is_in_the_document_with_its_method(document: dict[str, Any]) -> None:
    documented = {
        (method.upper(), path)
        for path, operations in document["paths"].items()
        for method in operations
    }
    assert documented == {(route.method, route.path) for route in HTTP_ROUTES}
    streams = {stream["path"] for stream in document["x-aurora-websockets"]}
    assert streams == {route.path for route in ROUTES if route.is_websocket}
    assert streams.isdisjoint(document["paths"])


def test_operation_ids_are_unique(document: dict[str, Any]) -> None:
    ids = [op["operationId"] for ops in document["paths"].values() for op in ops.values()]
    assert len(ids) == len(set(ids)) == len(HTTP_ROUTES)


def test_every_operation_has_a_success_response(document: dict[str, Any]) -> None:
    for route in HTTP_ROUTES:
        responses = _operation(document, route)["responses"]
        success = responses[str(route.status)]
        for redirect in (s for s in (route.status, *route.also) if 300 <= s < 400):
            # A sign-in's step: to the identity provider, or back to the caller's page.
            assert "content" not in responses[str(redirect)], route
            assert "Location" in responses[str(redirect)]["headers"], route
        if 300 <= route.status < 400:
            continue
        assert 200 <= route.status < 300, route
        if route.status == 204 or (route.response is None and route.response_media is None):
            assert "content" not in success, route
        else:
            (media,) = success["content"]
            assert media == (route.response_media or "application/json")
            assert success["content"][media]["schema"], route


def test_every_route_declares_what_a_success_carries() -> None:
    # A body model, or a medium of its own (text, a page), or no content (204, a redirect).
    undeclared = [
        f"{route.method} {route.path}"
        for route in HTTP_ROUTES
        if route.response is None
        and route.response_media is None
        and route.status != 204
        and not 300 <= route.status < 400
    ]
    assert undeclared == []


def test_access_rules_become_security_and_permission(document: dict[str, Any]) -> None:
    for route in HTTP_ROUTES:
        operation = _operation(document, route)
        if route.access is Access.PUBLIC:
            assert operation["security"] == [], route
            assert operation["x-aurora-permission"] == "public"
        else:
            assert operation["security"] == [{"bearer": []}, {"apiKey": []}], route
            needed = route.permission
            assert operation["x-aurora-permission"] == (
                needed.value if needed is not None else "authenticated"
            )


def _expected_errors(route: Route) -> set[int]:
    """400 for a request malformed below the API (any route), 401/403 where authenticated / a
    permission is needed, 408/413/422 with a body, 422 with a query or path parameters, and the
    route's own errors."""
    expected = {400, *(error.status for error in route.errors)}
    if route.access is not Access.PUBLIC:
        expected.add(401)
    if route.permission is not None:
        expected.add(403)
    if route.body is not None or route.body_media is not None:
        expected |= {408, 413, 422}
    if route.query is not None or path_parameters(route.path):
        expected.add(422)
    return expected


def test_other_success_statuses_share_the_body(document: dict[str, Any]) -> None:
    """A creation that may merge (201, or 200 when merged) declares both, with one body."""
    merging = [route for route in HTTP_ROUTES if route.also]
    assert {(route.method, route.path) for route in merging} >= {
        ("POST", "/api/v1/alerts"),
        ("POST", "/api/v1/cases/{case_id}/observables"),
    }
    for route in merging:
        responses = _operation(document, route)["responses"]
        for status in (s for s in route.also if not 300 <= s < 400):  # redirects have none
            assert responses[str(status)]["content"] == responses[str(route.status)]["content"]


def test_errors_reference_the_envelope(document: dict[str, Any]) -> None:
    for route in HTTP_ROUTES:
        responses = _operation(document, route)["responses"]
        errors = {int(status) for status in responses} - {route.status, *route.also}
        assert errors == _expected_errors(route), route
        for error in route.errors:
            assert error.code in responses[str(error.status)]["description"], route
        for status, response in responses.items():
            if int(status) >= 400:
                assert response["content"] == {"application/json": {"schema": ENVELOPE_REF}}


def test_a_routes_contract_in_full(example: dict[str, Any]) -> None:
    operation = example["paths"]["/api/v1/cases/{case_id}/widgets"]["post"]
    # One handler for several routes: the id comes from the method and path.
    assert operation["operationId"] == "post_api_v1_cases_case_id_widgets"
    assert operation["summary"] == "Show a widget."
    assert operation["tags"] == ["cases"]
    assert operation["x-aurora-permission"] == "cases:write"
    assert operation["parameters"] == [
        {"name": "case_id", "in": "path", "required": True, "schema": {"type": "string"}}
    ]
    body = operation["requestBody"]
    assert body["required"] is True
    assert body["x-aurora-max-body-bytes"] == 4096
    assert body["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Widget"}
    responses = operation["responses"]
    assert sorted(responses) == ["201", "400", "401", "403", "404", "408", "409", "413", "422"]
    assert responses["201"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Widget"
    }
    assert responses["404"]["description"] == "AURORA-4041: Case not found"
    assert "AURORA-4010" in responses["401"]["description"]
    assert "AURORA-4011" in responses["401"]["description"]
    widget_schema = example["components"]["schemas"]["Widget"]
    assert widget_schema["properties"]["name"]["maxLength"] == 20


def test_query_models_become_parameters(example: dict[str, Any]) -> None:
    operation = example["paths"]["/api/v1/widgets"]["get"]
    parameters = {p["name"]: p for p in operation["parameters"]}
    assert parameters["colour"] == {
        "name": "colour",
        "in": "query",
        "required": False,
        "schema": {
            "type": "string",
            "title": "Colour",
            "description": "Only widgets of this colour",
        },
        "description": "Only widgets of this colour",
    }
    assert parameters["limit"]["schema"] == {
        "default": 10,
        "maximum": 100,
        "minimum": 1,
        "title": "Limit",
        "type": "integer",
    }
    # Inlined as parameters, the query model is not left behind as a schema.
    assert "WidgetQuery" not in example["components"]["schemas"]


def test_deprecated_routes_are_marked(document: dict[str, Any], example: dict[str, Any]) -> None:
    old = example["paths"]["/api/v1/old-widgets"]["get"]
    assert old["deprecated"] is True
    assert old["x-aurora-sunset"] == "2026-12-31T00:00:00Z"
    assert {"Deprecation", "Sunset"} <= set(old["responses"]["200"]["headers"])
    assert old["responses"]["200"]["content"]["application/json"]["schema"] == {
        "type": "array",
        "items": {"$ref": "#/components/schemas/Widget"},
    }
    assert "deprecated" not in example["paths"]["/api/v1/widgets"]["get"]
    for route in HTTP_ROUTES:
        assert _operation(document, route).get("deprecated", False) is (route.sunset is not None)


def test_no_content_and_streams(example: dict[str, Any]) -> None:
    deleted = example["paths"]["/api/v1/widgets/{widget_id}"]["delete"]
    assert deleted["responses"]["204"] == {
        "description": "No Content",
        "headers": {
            name: {"$ref": f"#/components/headers/{name}"}
            for name in ("X-API-Version", "X-Request-ID", "X-AuroraSOC-Mode")
        },
    }
    assert deleted["x-aurora-permission"] == "admin"
    assert example["x-aurora-websockets"] == [
        {
            "path": "/api/v1/ws/widgets",
            "summary": "Show a widget.",
            "x-aurora-permission": "authenticated",
            "parameters": [],
        }
    ]


def test_the_page_lists_every_operation(document: dict[str, Any]) -> None:
    page = render_reference(document)
    assert "<script" not in page
    for route in ROUTES:
        assert f"<code>{route.path}</code>" in page, route.path
    style = re.search(r"<style>(.*?)</style>", page, re.S)
    assert style is not None
    digest = base64.b64encode(hashlib.sha256(style.group(1).encode()).digest()).decode()
    assert f"style-src 'sha256-{digest}'" in CSP


def test_the_page_escapes_what_it_shows(example: dict[str, Any]) -> None:
    hostile = json.loads(json.dumps(example))
    hostile["paths"]["/api/v1/widgets"]["get"]["summary"] = "<img src=x onerror=alert(1)>"
    page = render_reference(hostile)
    assert "<img" not in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page


async def test_the_gateway_serves_its_document(settings: Settings) -> None:
    client = await start_gateway(settings, EXAMPLE_ROUTES)
    try:
        response = await client.get("/api/v1/openapi.json")
        assert response.status == 200
        assert response.content_type == "application/json"
        served = await response.json()
        assert published(client.app) is published(client.app)  # built once
        assert served == json.loads(published(client.app).document)
    finally:
        await client.close()
    assert {(m.upper(), p) for p, ops in served["paths"].items() for m in ops} == {
        (route.method, route.path)
        for route in (*HTTP_ROUTES, *EXAMPLE_ROUTES)
        if not route.is_websocket
    }
    widgets = served["paths"]["/api/v1/widgets/{widget_id}"]["put"]["requestBody"]
    assert widgets["x-aurora-max-body-bytes"] == settings.max_body_bytes
    own = served["paths"]["/api/v1/cases/{case_id}/widgets"]["post"]["requestBody"]
    assert own["x-aurora-max-body-bytes"] == 4096


async def test_the_gateway_serves_its_reference(gateway: Gateway) -> None:
    response = await gateway.client.get("/api/v1/docs")
    assert response.status == 200
    assert response.content_type == "text/html"
    assert response.headers["Content-Security-Policy"] == CSP
    page = await response.text()
    assert "<code>/api/v1/alerts/{alert_id}</code>" in page
    assert 'href="openapi.json"' in page


async def test_the_index_links_the_contract(gateway: Gateway) -> None:
    response = await gateway.client.get("/api/v1")
    index = await response.json()
    assert index["openapi"] == "/api/v1/openapi.json"
    assert index["reference"] == "/api/v1/docs"


async def test_errors_match_the_envelope_schema(gateway: Gateway) -> None:
    document = json.loads(published(gateway.app).document)
    schemas = document["components"]["schemas"]
    schema = {**schemas[ENVELOPE], "$defs": schemas}
    resolver = json.loads(json.dumps(schema).replace("#/components/schemas/", "#/$defs/"))
    response = await gateway.client.get("/api/v1/alerts")
    assert response.status == 401
    jsonschema.validate(await response.json(), resolver)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"error": {"code": "E1", "message": "x"}}, resolver)
