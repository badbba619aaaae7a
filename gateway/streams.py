"""WebSocket streams fed by the event bus: bounded per client, with gap notices."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

from aiohttp import WSMsgType, web

from core.events import Event, Gap, Subscription


async def pump(
    request: web.Request,
    subscription: Subscription,
    render: Callable[[Event], dict[str, Any]],
) -> web.WebSocketResponse:
    """Send each event of ``subscription`` to the client until either side closes.

    A slow client never slows a producer: its queue is bounded, the oldest events go first,
    and it is told how many it missed (``{"type": "gap", "dropped": n}``).
    """
    ws = web.WebSocketResponse(heartbeat=30.0)
    await ws.prepare(request)

    async def client_gone() -> None:
        async for message in ws:
            if message.type in {WSMsgType.CLOSE, WSMsgType.ERROR}:
                break

    watcher = asyncio.create_task(client_gone())
    try:
        with subscription:
            while not ws.closed:
                getter = asyncio.ensure_future(subscription.get())
                done, _ = await asyncio.wait({getter, watcher}, return_when=asyncio.FIRST_COMPLETED)
                if watcher in done:
                    getter.cancel()
                    break
                item = getter.result()
                if isinstance(item, Gap):
                    await ws.send_json({"type": "gap", "dropped": item.dropped})
                else:
                    await ws.send_json(render(item))
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
        await ws.close()
    return ws
