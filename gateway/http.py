"""Request parsing and response helpers shared by every domain's routes."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from pydantic import BaseModel

from core.errors import AuroraError, BadRequest, PayloadTooLarge, RequestTimeout
from core.validation import field_error, load_json, validate
from gateway.auth.service import Principal as Principal  # the caller, for domains' handlers
from gateway.keys import PRINCIPAL, ROUTE, SETTINGS

JSON_TYPE = "application/json"


def iso_millis(moment: datetime | None = None) -> str:
    """ISO 8601 UTC with milliseconds and ``Z``: ``2026-06-14T12:00:00.000Z``."""
    moment = (moment or datetime.now(UTC)).astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def error_body(err: AuroraError, request_id: str) -> bytes:
    envelope = {
        "error": {
            "code": err.code,
            "message": err.message,
            "detail": err.detail,
            "timestamp": iso_millis(),
            "request_id": request_id,
        }
    }
    return json.dumps(envelope, default=str).encode()


def error_response(err: AuroraError, request_id: str) -> web.Response:
    """The spec's error envelope for ``err``, with its status and headers."""
    response = web.Response(
        body=error_body(err, request_id), status=err.status, content_type=JSON_TYPE
    )
    response.headers.update(err.headers)
    return response


def body_limit(request: web.Request) -> int:
    """The largest body the matched route accepts."""
    route = request.get(ROUTE)
    if route is not None and route.max_body_bytes is not None:
        return int(route.max_body_bytes)
    return request.app[SETTINGS].max_body_bytes


async def iter_body(request: web.Request, *, limit: int | None = None) -> AsyncIterator[bytes]:
    """The body as it arrives, in chunks of at most what the connection buffers (about
    128 KiB). Past ``limit`` (default: the route's) it stops with AURORA-4130 without reading
    further, whatever ``Content-Length`` said (chunked bodies have none); a body that stalls
    longer than the body read timeout is AURORA-4081; one cut short or badly framed is
    AURORA-4000."""
    limit = body_limit(request) if limit is None else limit
    if request.content_length is not None and request.content_length > limit:
        raise PayloadTooLarge({"limit_bytes": limit})
    idle = request.app[SETTINGS].body_read_timeout_seconds
    received = 0
    while True:
        try:
            async with asyncio.timeout(idle):
                chunk = await request.content.readany()
        except TimeoutError as err:
            raise RequestTimeout({"reason": f"no body data for {idle:g} s"}) from err
        except (HttpProcessingError, ConnectionError) as err:
            raise BadRequest({"reason": "incomplete or malformed body"}) from err
        if not chunk:
            return
        received += len(chunk)
        if received > limit:
            raise PayloadTooLarge({"limit_bytes": limit})
        yield chunk


async def read_body(request: web.Request, *, limit: int | None = None) -> bytes:
    """The whole body, read with the limits of :func:`iter_body`."""
    body = bytearray()
    async for chunk in iter_body(request, limit=limit):
        body += chunk
    return bytes(body)


async def read_json(request: web.Request) -> Any:
    """The JSON body; malformed JSON, nesting past the limit or a wrong content type is
    AURORA-4220."""
    if request.content_type != JSON_TYPE:
        raise field_error(["body"], "Content-Type must be application/json", "content_type")
    return load_json(await read_body(request))


async def parse_json[M: BaseModel](request: web.Request, model: type[M]) -> M:
    """Read and validate a JSON body."""
    return validate(model, await read_json(request))


async def parse_json_or_form[M: BaseModel](request: web.Request, model: type[M]) -> M:
    """Validate a JSON body, or an urlencoded / multipart form (for OAuth2-style clients)."""
    if request.content_type == "application/x-www-form-urlencoded":
        body = await read_body(request)
        try:
            pairs = parse_qsl(
                body.decode(), keep_blank_values=True, strict_parsing=False, max_num_fields=64
            )
        except (UnicodeDecodeError, ValueError) as err:
            raise field_error(["body"], "Malformed form body", "form_invalid") from err
        return validate(model, dict(pairs))
    if request.content_type == "multipart/form-data":
        limit = body_limit(request)
        if request.content_length is not None and request.content_length > limit:
            raise PayloadTooLarge({"limit_bytes": limit})
        bounded = request.clone(client_max_size=limit)  # aiohttp checks it while reading
        try:
            async with asyncio.timeout(request.app[SETTINGS].body_read_timeout_seconds):
                form = await bounded.post()
        except TimeoutError as err:
            raise RequestTimeout({"reason": "form body not received in time"}) from err
        except web.HTTPRequestEntityTooLarge as err:
            raise PayloadTooLarge({"limit_bytes": limit}) from err
        except (HttpProcessingError, ValueError) as err:
            raise field_error(["body"], "Malformed form body", "form_invalid") from err
        return validate(model, {k: v for k, v in form.items() if isinstance(v, str)})
    return await parse_json(request, model)


def parse_query[M: BaseModel](request: web.Request, model: type[M]) -> M:
    """Validate the query string (first value of each key) into ``model``."""
    return validate(model, dict(request.query), where="query")


def json_response(
    payload: BaseModel | dict[str, Any] | list[Any], *, status: int = 200
) -> web.Response:
    """Serialise a pydantic model (or plain JSON data) as the response body."""
    if isinstance(payload, BaseModel):
        body = payload.model_dump_json().encode()
    else:
        body = json.dumps(payload, default=str).encode()
    return web.Response(body=body, status=status, content_type=JSON_TYPE)


def no_content() -> web.Response:
    return web.Response(status=204)


def principal(request: web.Request) -> Principal:
    """The authenticated caller (set by the auth middleware)."""
    return request[PRINCIPAL]
