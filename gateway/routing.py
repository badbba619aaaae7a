"""The route table: every route with the access it needs, in one place per domain.

Each domain's ``routes.py`` exports ``ROUTES``; :func:`gateway.app.create_app` registers them and
the auth middleware reads the access rule of the matched route from here.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum

from aiohttp import web

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
