"""The route table against the spec: same methods, paths and permissions, nothing twice."""

from __future__ import annotations

from collections import Counter

from gateway.app import ALL_ROUTES, registered_routes
from gateway.console.routes import CONSOLE_ROUTES
from gateway.index import INDEX_ROUTES
from gateway.routing import Access, permission_label
from gateway.sso.routes import METADATA_ROUTES
from tests.conftest import Gateway
from tests.contract.spec import Spec, parse_spec

SAMPLE = """
## Things

| Method | Path | Description | Permission |
|---|---|---|---|
| GET | /api/v1/things | List things | `things:read` |
| WS | /api/v1/ws/things | Stream | Authenticated |
Prose right after a table ends it.

| Code | HTTP Status | Message |
|---|---|---|
| AURORA-4040 | 404 | Resource not found |

| Header | Value | Description |
|---|---|---|
| X-Mode | `a` \\| `b` | mode |
"""


def test_parser_reads_route_and_error_tables() -> None:
    parsed = parse_spec(SAMPLE)
    assert [(r.method, r.path, r.permission) for r in parsed.routes] == [
        ("GET", "/api/v1/things", "things:read"),
        ("WS", "/api/v1/ws/things", "Authenticated"),
    ]
    assert list(parsed.errors) == ["AURORA-4040"]
    assert parsed.errors["AURORA-4040"].status == 404
    assert parsed.errors["AURORA-4040"].message == "Resource not found"


def test_spec_is_parsed(spec: Spec) -> None:
    # Guards the checks below against passing on an empty parse.
    assert spec.route("POST", "/api/v1/auth/token") is not None
    assert spec.route("GET", "/metrics") is not None
    assert any(r.method == "WS" for r in spec.routes)
    assert spec.errors["AURORA-5000"].status == 500


def test_spec_has_no_duplicate_routes(spec: Spec) -> None:
    counts = Counter((r.method, r.path) for r in spec.routes)
    assert [key for key, n in counts.items() if n > 1] == []


def test_every_registered_route_is_in_the_spec(spec: Spec) -> None:
    mismatches = []
    for route in ALL_ROUTES:
        documented = spec.route(route.method, route.path)
        label = permission_label(route.access)
        if documented is None:
            mismatches.append(f"{route.method} {route.path}: not in spec")
        elif documented.permission != label:
            mismatches.append(
                f"{route.method} {route.path}: code says {label!r}, "
                f"spec says {documented.permission!r}"
            )
    assert mismatches == []


def test_websocket_routes_are_written_ws(spec: Spec) -> None:
    for route in ALL_ROUTES:
        assert route.method in {"GET", "POST", "PUT", "PATCH", "DELETE", "WS"}, route
        if route.is_websocket:
            assert spec.route("WS", route.path) is not None, route.path
            assert spec.route("GET", route.path) is None, route.path


def test_no_duplicate_routes() -> None:
    counts = Counter((r.method, r.path) for r in ALL_ROUTES)
    assert [key for key, n in counts.items() if n > 1] == []
    # A WS route and a GET route on one path would collide in aiohttp's router.
    http = Counter((r.http_method, r.path) for r in ALL_ROUTES)
    assert [key for key, n in http.items() if n > 1] == []


async def test_app_registers_exactly_the_route_table(gateway: Gateway) -> None:
    # The contract's routes, and beside them only the public index at / and /api/v1, the
    # published contract (its OpenAPI document and reference page), the SAML service
    # provider's metadata and the web console's files (not in the document).
    assert registered_routes(gateway.app) == [
        *ALL_ROUTES,
        *INDEX_ROUTES,
        *METADATA_ROUTES,
        *CONSOLE_ROUTES,
    ]
    assert [(r.method, r.path, r.access, r.published) for r in CONSOLE_ROUTES] == [
        ("GET", "/console", Access.PUBLIC, False),
        ("GET", "/console/{path:.+}", Access.PUBLIC, False),
        ("HEAD", "/console/{path:.+}", Access.PUBLIC, False),
    ]
    assert all(route.published for route in (*ALL_ROUTES, *INDEX_ROUTES, *METADATA_ROUTES))
    assert [(r.method, r.path, r.access) for r in METADATA_ROUTES] == [
        ("GET", "/api/v1/auth/saml/metadata", Access.PUBLIC)
    ]
    assert [(r.method, r.path, r.access) for r in INDEX_ROUTES] == [
        ("GET", "/", Access.PUBLIC),
        ("GET", "/api/v1", Access.PUBLIC),
        ("GET", "/api/v1/openapi.json", Access.PUBLIC),
        ("GET", "/api/v1/docs", Access.PUBLIC),
    ]
