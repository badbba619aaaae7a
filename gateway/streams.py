"""WebSocket streams fed by the event bus: bounded per client, with gap notices."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from aiohttp import WSMsgType, web

from core.events import Event, Gap, Subscription

type Handler = Callable[[Any], Awaitable[dict[str, Any]]]
"""Answers one message a client sent (its parsed JSON) with the reply to send back."""

MAX_CLIENT_MESSAGE_BYTES = 64 * 1024


async def pump(
    request: web.Request,
    subscription: Subscription,
    render: Callable[[Event], dict[str, Any]],
    *,
    greeting: Callable[[], Awaitable[Sequence[dict[str, Any]]]] | None = None,
    on_message: Handler | None = None,
) -> web.WebSocketResponse:
    """Send each event of ``subscription`` to the client until either side closes.

    A slow client never slows a producer: its queue is bounded, the oldest events go first,
    and it is told how many it missed (``{"type": "gap", "dropped": n}``). ``greeting`` gives
    what to send first (after subscribing, so nothing falls between the two); ``on_message``
    answers what the client sends (text frames of JSON; anything else gets an AURORA-4220
    error message), one message at a time.
    """
    ws = web.WebSocketResponse(heartbeat=30.0, max_msg_size=MAX_CLIENT_MESSAGE_BYTES)
    await ws.prepare(request)
    sending = asyncio.Lock()

    async def send(payload: dict[str, Any]) -> None:
        async with sending:
            await ws.send_json(payload)

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
                parsed = json.loads(message.data)
            except ValueError:
                await send(_invalid("not JSON"))
                continue
            await send(await on_message(parsed))

    watcher: asyncio.Task[None] | None = None
    try:
        with subscription:
            if greeting is not None:
                # Subscribed already (the caller did): what is published meanwhile is queued.
                for payload in await greeting():
                    await send(payload)
            watcher = asyncio.create_task(client_gone())
            while not ws.closed:
                getter = asyncio.ensure_future(subscription.get())
                done, _ = await asyncio.wait({getter, watcher}, return_when=asyncio.FIRST_COMPLETED)
                if watcher in done:
                    getter.cancel()
                    break
                item = getter.result()
                if isinstance(item, Gap):
                    await send({"type": "gap", "dropped": item.dropped})
                else:
                    await send(render(item))
    finally:
        if watcher is not None:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
        await ws.close()
    return ws


def _invalid(reason: str) -> dict[str, Any]:
    return {
        "type": "error",
        "error": {"code": "AURORA-4220", "message": "Request validation failed", "detail": reason},
    }
