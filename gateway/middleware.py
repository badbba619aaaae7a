"""Middleware: request ids, error envelopes, metrics, authentication and authorisation.

``context_middleware`` is the gateway's one middleware: whatever happens inside becomes the
spec's envelope. Inside it, :func:`authorise` reads the access rule of the matched route from the
route table (called directly rather than as a second middleware: each aiohttp middleware layer
costs a wrapper call and a handler lookup on every request).
"""

from __future__ import annotations

import itertools
import logging
import re
import secrets
import time
from typing import Final

from aiohttp import hdrs, web
from aiohttp.web_urldispatcher import MatchInfoError
from multidict import istr

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
    incoming = request.headers.get(X_REQUEST_ID)
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
    """A new request id in the format of a random (version 4) UUID, unique within the process
    by a counter and across processes by a random prefix (74 bits, fixed for the process):
    request ids need the format and uniqueness, not a UUID object, nor the kernel's randomness
    (a system call each, slow in some VMs). They are no secret, and a counter formats in
    two fifths of the time 128 random bits do."""
    return f"{_ID_PREFIX}{next(_ID_COUNTER) & _ID_COUNTER_MASK:012x}"


def _id_prefix() -> str:
    h = secrets.token_hex(9)  # 72 random bits, and 2 in the variant's digit
    return f"{h[:8]}-{h[8:12]}-4{h[12:15]}-{0x8 | secrets.randbits(2):x}{h[15:]}-"


_ID_PREFIX: Final = _id_prefix()
"""The process's random part: version 4 and variant RFC 4122 (``10``) in their places."""
_ID_COUNTER: Final = itertools.count(secrets.randbits(48))
_ID_COUNTER_MASK: Final = (1 << 48) - 1
"""The counter fills the last 12 hex digits, wrapping after 2**48 requests."""


# The standard headers' names, made case-insensitive once (set on every response).
X_API_VERSION: Final = istr("X-API-Version")
X_REQUEST_ID: Final = istr("X-Request-ID")
X_MODE: Final = istr("X-AuroraSOC-Mode")
X_CONTENT_TYPE_OPTIONS: Final = istr("X-Content-Type-Options")


def _credentials(request: web.Request, websocket: bool) -> tuple[str | None, str | None]:
    bearer: str | None = None
    header = request.headers.get(hdrs.AUTHORIZATION)
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
        X_API_VERSION: API_VERSION,
        X_REQUEST_ID: request_id,
        X_MODE: app[RUNTIME].mode.value,
        X_CONTENT_TYPE_OPTIONS: "nosniff",
    }


async def add_standard_headers(request: web.Request, response: web.StreamResponse) -> None:
    """The standard headers on every response, and a deprecated route's ``Deprecation`` and
    ``Sunset``."""
    headers = response.headers
    # Set one by one rather than from standard_headers(): a quarter of an update's cost.
    headers[X_API_VERSION] = API_VERSION
    headers[X_REQUEST_ID] = request.get(REQUEST_ID) or new_request_id()
    headers[X_MODE] = request.app[RUNTIME].mode.value
    headers[X_CONTENT_TYPE_OPTIONS] = "nosniff"
    route = request.get(ROUTE)
    if route is None:
        # Refused before authentication looked at it (a malformed query): still that route.
        info = request.match_info
        if not isinstance(info, MatchInfoError):
            route = request.app[ROUTE_TABLE].get(info.route)
    if route is not None and route.sunset is not None:
        headers["Deprecation"] = "true"
        headers["Sunset"] = route.sunset
