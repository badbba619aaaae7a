"""WebSocket streams fed by the event bus: bounded per client, with gap notices, open only for
as long as the caller's credential holds."""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from aiohttp import WSMsgType, web
from pydantic import BaseModel, ConfigDict

from core import jsontext
from core.errors import AuroraError, PermissionDenied, ValidationFailed
from core.events import Event, Gap, Subscription
from core.security.permissions import Permission
from core.tasks import cancel_and_wait
from core.validation import load_json
from gateway.auth.service import Principal
from gateway.http import principal
from gateway.keys import AUTHENTICATOR, ROUTE
from gateway.routing import Access, Route
from gateway.routing import Handler as RouteHandler

type Handler = Callable[[Any, Principal], Awaitable[dict[str, Any]]]
"""Answers one message a client sent (its parsed JSON), on behalf of its sender as the
database has it at that moment, with the reply to send back."""

MAX_CLIENT_MESSAGE_BYTES = 64 * 1024
CLOSE_UNAUTHENTICATED = 4401
"""Close code of a stream whose credential expired or was revoked, or whose account is gone."""
CLOSE_FORBIDDEN = 4403
"""Close code of a stream whose caller no longer holds the permission to read it."""


class StreamQuery(BaseModel):
    """The query string of a stream: the credential of a browser (which cannot set headers on
    a WebSocket upgrade), then each stream's own filters. Parameters it does not know are
    ignored."""

    model_config = ConfigDict(extra="ignore")

    access_token: str | None = None
    """A bearer token, for a client that cannot send an ``Authorization`` header."""


def stream_route(
    path: str,
    handler: RouteHandler,
    permission: Permission,
    *,
    query: type[StreamQuery] = StreamQuery,
    summary: str = "",
) -> Route:
    """``WS path``: a stream any authenticated caller may open (the contract's label) whose
    data needs ``permission``, checked before the upgrade and for as long as it is open."""
    return Route(
        "WS",
        path,
        handler,
        Access.AUTHENTICATED,
        stream_permission=permission,
        query=query,
        summary=summary,
    )


def matching(**wanted: str | None) -> Callable[[Event], bool]:
    """Events whose payload holds each value given (a ``None`` value matches any)."""
    required = {key: value for key, value in wanted.items() if value is not None}

    def matches(event: Event) -> bool:
        return all(event.payload.get(key) == value for key, value in required.items())

    return matches


@functools.cache
def spread(kind: str | Callable[[Event], str]) -> Callable[[Event], dict[str, Any]]:
    """Events sent as ``{"type": kind, "at": ..., **payload}`` (``kind``: a type, or the
    event's type read from it); one render a kind, so that its text is shared (see
    :func:`pump`)."""

    def render(event: Event) -> dict[str, Any]:
        return {"type": kind(event) if callable(kind) else kind, "at": event.at, **event.payload}

    return render


def error_message(err: AuroraError, **context: Any) -> dict[str, Any]:
    """An AURORA error as a stream sends it: ``{"type": "error", ..., "error": {...}}``."""
    error: dict[str, Any] = {"code": err.code, "message": err.message}
    if err.detail is not None:
        error["detail"] = err.detail
    return {"type": "error", **context, "error": error}


def _closing(reason: AuroraError) -> tuple[int, bytes]:
    """The close code and reason (at most 123 bytes) for a stream ended by ``reason``."""
    if isinstance(reason, PermissionDenied):
        required = reason.detail.get("required") if isinstance(reason.detail, dict) else None
        return CLOSE_FORBIDDEN, f"{required or 'permission'} no longer granted".encode()[:123]
    text = reason.detail if isinstance(reason.detail, str) else reason.message
    return CLOSE_UNAUTHENTICATED, text.encode()[:123]


async def pump(
    request: web.Request,
    subscription: Subscription,
    render: Callable[[Event], dict[str, Any]],
    *,
    greeting: Callable[[], Awaitable[Sequence[dict[str, Any]]]] | None = None,
    on_message: Handler | None = None,
) -> web.WebSocketResponse:
    """Send each event of ``subscription`` to the client until either side closes, or the
    caller's credential stops holding.

    ``render`` depends on the event alone (the same function for every subscriber of a
    stream): the text it gives is made once per event and sent to each subscriber as it is.

    A slow client never slows a producer: its queue is bounded, the oldest events go first,
    and it is told how many it missed (``{"type": "gap", "dropped": n}``). ``greeting`` gives
    what to send first (after subscribing, so nothing falls between the two); ``on_message``
    answers what the client sends (text frames of JSON; anything else gets an AURORA-4220
    error message), one message at a time, each after its sender's credential and the
    stream's permission are checked again against the database.

    The stream ends when the credential expires, is revoked, its account is deleted or
    disabled, or it loses the route's permission (at once when that happens through this
    gateway, within a refresh interval when through another): the client gets a last
    ``{"type": "error"}`` message naming the AURORA error, then a close with code 4401 (no
    longer authenticated) or 4403 (no longer permitted) and a reason.
    """
    authenticator = request.app[AUTHENTICATOR]
    with subscription, authenticator.watch(principal(request), request[ROUTE].permission) as live:
        if live.ended.done():  # lapsed since the middleware looked: refuse the upgrade
            raise live.ended.result()
        ws = web.WebSocketResponse(heartbeat=30.0, max_msg_size=MAX_CLIENT_MESSAGE_BYTES)
        await ws.prepare(request)
        sending = asyncio.Lock()

        async def send(payload: dict[str, Any]) -> None:
            await send_text(jsontext.dumps(payload))

        async def send_text(text: str) -> None:
            async with sending:
                await ws.send_str(text)

        async def client_gone() -> None:
            async for message in ws:
                if message.type in {WSMsgType.CLOSE, WSMsgType.ERROR}:
                    break
                if on_message is None:
                    continue
                if message.type is not WSMsgType.TEXT:
                    await send(_invalid("send JSON text frames"))
                    continue
                try:
                    parsed = load_json(message.data, where="message")
                except ValidationFailed as err:  # not JSON, too deep, a NUL: said, not fatal
                    await send(error_message(err))
                    continue
                try:
                    sender = await authenticator.recheck(live)
                except AuroraError:
                    return  # the session has ended: the pump says why and closes
                await send(await on_message(parsed, sender))

        watcher: asyncio.Task[None] | None = None
        try:
            if greeting is not None:
                # Subscribed already (the caller did): what is published meanwhile is queued.
                for payload in await greeting():
                    await send(payload)
            watcher = asyncio.create_task(client_gone())
            while not ws.closed:
                getter = asyncio.ensure_future(subscription.get())
                waiting: set[asyncio.Future[Any]] = {getter, watcher, live.ended}
                done, _ = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
                if live.ended.done():
                    getter.cancel()
                    await _end(ws, send, live.ended.result())
                    break
                if watcher in done:
                    getter.cancel()
                    break
                item = getter.result()
                if isinstance(item, Gap):
                    await send({"type": "gap", "dropped": item.dropped})
                else:
                    text = item.encoded.get(render)
                    if text is None:
                        text = item.encoded[render] = jsontext.dumps(render(item))
                    await send_text(text)
        finally:
            await cancel_and_wait(watcher)
            await ws.close()
    return ws


async def _end(
    ws: web.WebSocketResponse,
    send: Callable[[dict[str, Any]], Awaitable[None]],
    reason: AuroraError,
) -> None:
    """Tell the client why its stream ends, then close it with the matching code."""
    with contextlib.suppress(ConnectionError, RuntimeError):
        await send(error_message(reason))
    code, text = _closing(reason)
    await ws.close(code=code, message=text)


def _invalid(reason: str) -> dict[str, Any]:
    return error_message(ValidationFailed(reason, message="Request validation failed"))
