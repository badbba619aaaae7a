"""Middleware: request ids, error envelopes, metrics, authentication and authorisation.

``context_middleware`` is the gateway's one middleware: whatever happens inside becomes the
spec's envelope. Inside it, :func:`authorise` reads the access rule of the matched route from the
route table (called directly rather than as a second middleware: each aiohttp middleware layer
costs a wrapper call and a handler lookup on every request).
"""

from __future__ import annotations

import logging
import random
import re
import time

from aiohttp import web
from aiohttp.web_urldispatcher import MatchInfoError

from core.errors import (
    AuroraError,
    AuthenticationRequired,
    InternalError,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    PermissionDenied,
    ValidationFailed,
)
from core.validation import field_error
from gateway.http import body_limit, error_response
from gateway.keys import (
    AUTHENTICATOR,
    METRICS,
    PRINCIPAL,
    REQUEST_ID,
    ROUTE,
    ROUTE_TABLE,
    RUNTIME,
)
from gateway.routing import Access, Handler

log = logging.getLogger("aurora.gateway")

REQUEST_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{7,127}$")
API_VERSION = "1.0"
KNOWN_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})


def _http_error(exc: web.HTTPException) -> AuroraError:
    if isinstance(exc, web.HTTPNotFound):
        return NotFound({"reason": "no such route"})
    if isinstance(exc, web.HTTPMethodNotAllowed):
        allowed = sorted(exc.allowed_methods)
        return MethodNotAllowed({"allowed": allowed}, headers={"Allow": ", ".join(allowed)})
    if isinstance(exc, web.HTTPRequestEntityTooLarge):
        return PayloadTooLarge()
    if 400 <= exc.status < 500:
        return ValidationFailed({"reason": exc.reason})
    return InternalError()


def _route_label(request: web.Request) -> str:
    info = request.match_info
    if isinstance(info, MatchInfoError):
        return "unmatched"
    resource = info.route.resource
    return resource.canonical if resource is not None else "unmatched"


@web.middleware
async def context_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Request id, envelope for every error, and the request metrics."""
    incoming = request.headers.get("X-Request-ID")
    rid = incoming if incoming and REQUEST_ID_PATTERN.match(incoming) else new_request_id()
    request[REQUEST_ID] = rid
    metrics = request.app[METRICS].requests
    started = time.perf_counter()
    metrics.in_flight += 1
    response: web.StreamResponse
    try:
        response = await authorise(request, handler)
    except AuroraError as err:
        response = error_response(err, rid)
    except web.HTTPException as exc:
        if exc.status < 400:  # redirects and the like pass through untouched
            raise
        response = error_response(_http_error(exc), rid)
    except Exception:
        log.exception(
            "unhandled error serving %s %s (request %s)", request.method, _route_label(request), rid
        )
        response = error_response(InternalError(), rid)
    finally:
        metrics.in_flight -= 1
    method = request.method if request.method in KNOWN_METHODS else "OTHER"
    metrics.served(
        method, _route_label(request), str(response.status), time.perf_counter() - started
    )
    return response


def new_request_id() -> str:
    """A random (version 4) UUID as text, a sixth of ``str(uuid.uuid4())``'s cost: request ids
    need the format and uniqueness, not a UUID object, nor the kernel's randomness (a system
    call each, slow in some VMs): they are no secret, and the generator is seeded from it."""
    h = (_bits(128) & _V4_KEEP | _V4_SET).to_bytes(16).hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


_bits = random.Random().getrandbits  # noqa: S311 (an identifier, not a secret)
_V4_KEEP = ~(0xF << 76 | 0x3 << 62)
"""Every bit but the version's four and the variant's two."""
_V4_SET = 0x4 << 76 | 0x2 << 62
"""Version 4, variant RFC 4122 (``10``)."""


def _credentials(request: web.Request, websocket: bool) -> tuple[str | None, str | None]:
    bearer: str | None = None
    header = request.headers.get("Authorization")
    if header:
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise AuthenticationRequired("the Authorization header must be 'Bearer <token>'")
        bearer = value.strip()
    elif websocket:
        # Browsers cannot set headers on a WebSocket upgrade; only there is a query token taken.
        bearer = request.query.get("access_token") or None
    return bearer, request.headers.get("X-API-Key") or None


def _refuse_nul(request: web.Request) -> None:
    """A NUL in a path parameter or the query is AURORA-4220: no store holds one in text
    (PostgreSQL refuses it outright), and no identifier or filter needs it. Only a ``%00`` in
    the request's target decodes to one (aiohttp's parsers refuse a raw NUL; it is checked
    for all the same)."""
    target = request.raw_path
    if "%00" not in target and "\x00" not in target:
        return
    for name, value in request.match_info.items():
        if "\x00" in value:
            raise field_error(["path", name], "NUL characters are not accepted", "string_nul")
    for name, value in request.query.items():
        if "\x00" in name or "\x00" in value:
            where = name if "\x00" not in name else "?"
            raise field_error(["query", where], "NUL characters are not accepted", "string_nul")


async def authorise(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Authenticate the caller, check the matched route's permission, and call ``handler``."""
    info = request.match_info
    if isinstance(info, MatchInfoError):
        return await handler(request)
    route = request.app[ROUTE_TABLE].get(info.route)
    if route is None:  # not from the route table (e.g. a test's own route): deny
        raise NotFound({"reason": "no such route"})
    request[ROUTE] = route
    _refuse_nul(request)
    if request.content_length is not None and request.content_length > body_limit(request):
        raise PayloadTooLarge({"limit_bytes": body_limit(request)})
    if route.access is Access.PUBLIC:
        return await handler(request)
    bearer, api_key = _credentials(request, route.is_websocket)
    try:
        caller = await request.app[AUTHENTICATOR].authenticate(bearer=bearer, api_key=api_key)
    except AuroraError as err:
        request.app[METRICS].auth_failures.labels(err.code).inc()
        raise
    needed = route.permission
    if needed is not None and not caller.can(needed):
        raise PermissionDenied({"required": needed.value})
    request[PRINCIPAL] = caller
    return await handler(request)


def standard_headers(app: web.Application, request_id: str) -> dict[str, str]:
    """What every response carries: ``X-API-Version``, ``X-Request-ID``,
    ``X-AuroraSOC-Mode`` and ``X-Content-Type-Options: nosniff``."""
    return {
        "X-API-Version": API_VERSION,
        "X-Request-ID": request_id,
        "X-AuroraSOC-Mode": app[RUNTIME].mode.value,
        "X-Content-Type-Options": "nosniff",
    }


async def add_standard_headers(request: web.Request, response: web.StreamResponse) -> None:
    """The standard headers on every response, and a deprecated route's ``Deprecation`` and
    ``Sunset``."""
    headers = response.headers
    headers.update(standard_headers(request.app, request.get(REQUEST_ID) or new_request_id()))
    route = request.get(ROUTE)
    if route is None:
        # Refused before authentication looked at it (a malformed query): still that route.
        info = request.match_info
        if not isinstance(info, MatchInfoError):
            route = request.app[ROUTE_TABLE].get(info.route)
    if route is not None and route.sunset is not None:
        headers["Deprecation"] = "true"
        headers["Sunset"] = route.sunset
