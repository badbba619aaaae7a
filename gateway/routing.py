"""The route table: every route with the access it needs, in one place per domain.

Each domain's ``routes.py`` exports ``ROUTES``; :func:`gateway.app.create_app` registers them and
the auth middleware reads the access rule of the matched route from here.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from aiohttp import web
from pydantic import BaseModel

from core.errors import AuroraError
from core.security.permissions import Permission

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Access(StrEnum):
    """Access rules that are not a single permission."""

    PUBLIC = "public"
    AUTHENTICATED = "authenticated"


@dataclass(frozen=True, slots=True)
class Route:
    """One API route: ``method`` is an HTTP verb, or ``WS`` for a WebSocket upgrade."""

    method: str
    path: str
    handler: Handler
    access: Access | Permission
    max_body_bytes: int | None = None
    sunset: str | None = None
    """ISO 8601 removal date of a deprecated route; adds Deprecation and Sunset headers."""
    stream_permission: Permission | None = None
    """What a WebSocket stream's data needs to be read. Its ``access`` stays the contract's
    label; this is checked before the upgrade and again for as long as the socket is open."""

    # The contract of the route, published in the OpenAPI document (gateway.openapi).
    body: type[BaseModel] | None = None
    """The model of a JSON request body (``None``: no JSON body, see ``body_media``)."""
    body_media: str | None = None
    """A body that is not one JSON document: its media type (``multipart/form-data``,
    ``application/x-ndjson``, ``application/yaml``)."""
    query: type[BaseModel] | None = None
    """The model the query string is validated into."""
    response: Any = None
    """What a success answers: a pydantic model, or a type pydantic can describe
    (``list[AlertRead]``); ``None`` for no body."""
    status: int = 200
    """The status of a success (201 for a creation, 204 for no content)."""
    also: tuple[int, ...] = ()
    """Other success statuses with the same body (200 where a creation merged into an
    existing object)."""
    response_media: str | None = None
    """A success whose body is not JSON (``text/plain`` for metrics, ``text/event-stream``)."""
    errors: tuple[type[AuroraError], ...] = ()
    """The domain's errors this route answers besides those every route of its access rule
    and body can answer (authentication, permission, validation, size)."""
    summary: str = ""
    """One line for the document; by default the handler's docstring's first line."""
    published: bool = True
    """Whether the OpenAPI document lists it: false for what is not the API (the web
    console's files), which still goes through the same middleware and access rules."""

    @property
    def is_websocket(self) -> bool:
        return self.method == "WS"

    @property
    def http_method(self) -> str:
        return "GET" if self.is_websocket else self.method

    @property
    def permission(self) -> Permission | None:
        """The permission a caller must hold here: the route's own, or its stream's."""
        return self.access if isinstance(self.access, Permission) else self.stream_permission


def permission_label(access: Access | Permission) -> str:
    """How ``spec/API.md`` writes the access rule."""
    if access is Access.PUBLIC:
        return "Public"
    if access is Access.AUTHENTICATED:
        return "Authenticated"
    if access is Permission.ADMIN:
        return "Admin"
    return access.value
