"""``/`` and ``/api/v1``: what a new user (or a script) finds at the gateway's address.

Not part of the API contract: a short, public index (JSON) that says what serves here, where to
sign in, where the documentation is, and which routes exist with the permission each needs (for
a stream, what its data needs), read from the route table. A browser at ``/`` gets the web
console instead (gateway.console).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import BaseModel

from gateway.console.routes import console_page
from gateway.http import json_response
from gateway.keys import ROUTE_TABLE
from gateway.middleware import API_VERSION
from gateway.openapi import service_version, show_openapi, show_reference
from gateway.routing import Access, Route, permission_label

API_BASE = "/api/v1"
OPENAPI = f"{API_BASE}/openapi.json"
REFERENCE = f"{API_BASE}/docs"
DOCS = (
    "README.md of the AuroraSOC repository: 'Quick start' to run it, 'Using the API' for "
    "tokens, API keys, headers and errors"
)


class ApiInfo(BaseModel):
    base: str
    version: str


class AuthInfo(BaseModel):
    providers: str
    """Where the sign-in methods are listed."""
    token: str
    """Where a username and password are exchanged for a token."""
    how: str


class RouteInfo(BaseModel):
    method: str
    path: str
    permission: str
    """What a caller needs (for a stream, what its data needs)."""


class Index(BaseModel):
    """The index document: the service, how to authenticate, the docs, the routes."""

    service: str
    version: str
    api: ApiInfo
    auth: AuthInfo
    docs: str
    openapi: str
    """The OpenAPI 3.1 document of every route, for clients and SDK generators."""
    reference: str
    """The same, as a page to read."""
    metrics: str
    routes: list[RouteInfo]


def describe(app: web.Application) -> Index:
    """The index of the gateway ``app`` serves, read from its route table."""
    routes = sorted(
        {
            (r.method, r.path, permission_label(r.permission or r.access))
            for r in app[ROUTE_TABLE].values()
        },
        key=lambda route: (route[1], route[0]),
    )
    return Index(
        service="AuroraSOC",
        version=service_version(),
        api=ApiInfo(base=API_BASE, version=API_VERSION),
        auth=AuthInfo(
            providers=f"{API_BASE}/auth/providers",
            token=f"{API_BASE}/auth/token",
            how="POST username and password to the token route; send the access token as "
            "'Authorization: Bearer <token>', or an API key as 'X-API-Key'",
        ),
        docs=DOCS,
        openapi=OPENAPI,
        reference=REFERENCE,
        metrics="/metrics",
        routes=[
            RouteInfo(method=method, path=path, permission=permission)
            for method, path, permission in routes
            if path.startswith((API_BASE + "/", "/metrics"))
        ],
    )


async def show_index(request: web.Request) -> web.StreamResponse:
    """The index as JSON; at ``/``, the web console for a browser (``Accept: text/html``) where
    the gateway has its files."""
    if request.path != "/":
        return json_response(describe(request.app))
    page = console_page(request) if "text/html" in request.headers.get("Accept", "") else None
    response = json_response(describe(request.app)) if page is None else page
    vary = response.headers.get("Vary")
    response.headers["Vary"] = f"{vary}, Accept" if vary else "Accept"
    return response


INDEX_ROUTES = (
    Route(
        "GET",
        "/",
        show_index,
        Access.PUBLIC,
        response=Index,
        summary="What serves here (JSON; the web console for a browser)",
    ),
    Route("GET", API_BASE, show_index, Access.PUBLIC, response=Index, summary="The API's index"),
    Route(
        "GET",
        OPENAPI,
        show_openapi,
        Access.PUBLIC,
        response=dict[str, Any],
        summary="The OpenAPI 3.1 document of this API",
    ),
    Route(
        "GET",
        REFERENCE,
        show_reference,
        Access.PUBLIC,
        response_media="text/html",
        summary="The API reference, as a page",
    ),
)
"""Outside the contract's table: registered beside it, never part of ``ALL_ROUTES``."""
