"""FrameWriter: the frames of one event-loop turn leave in one write, in order; a closed
connection refuses them as ``Connection.send`` does."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from agents.acp.protocol import FrameWriter


@pytest.fixture
async def pair() -> AsyncIterator[tuple[ClientConnection, asyncio.Queue[str]]]:
    """A client connection to a loopback server that queues every message it receives."""
    received: asyncio.Queue[str] = asyncio.Queue()

    async def collect(socket: ServerConnection) -> None:
        async for message in socket:
            assert isinstance(message, str)
            received.put_nowait(message)

    async with serve(collect, "127.0.0.1", 0, compression=None) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        async with connect(f"ws://127.0.0.1:{port}", compression=None) as client:
            yield client, received


def count_writes(socket: ClientConnection) -> list[bytes]:
    writes: list[bytes] = []
    transport: Any = socket.transport
    write = transport.write

    def counted(data: bytes) -> None:
        writes.append(data)
        write(data)

    transport.write = counted
    return writes


async def test_frames_of_one_turn_leave_in_one_write_in_order(
    pair: tuple[ClientConnection, asyncio.Queue[str]],
) -> None:
    client, received = pair
    writer = FrameWriter(client)
    writes = count_writes(client)
    await asyncio.gather(*(writer.send(f'{{"n":{n}}}'.encode()) for n in range(50)))
    got = [await asyncio.wait_for(received.get(), 5) for _ in range(50)]
    assert got == [f'{{"n":{n}}}' for n in range(50)]
    assert len(writes) == 1

    await writer.send(b'{"n":"next turn"}')
    assert await asyncio.wait_for(received.get(), 5) == '{"n":"next turn"}'
    assert len(writes) == 2


async def test_a_closed_connection_refuses_frames(
    pair: tuple[ClientConnection, asyncio.Queue[str]],
) -> None:
    client, received = pair
    writer = FrameWriter(client)
    await client.close()
    with pytest.raises(ConnectionClosed):
        await writer.send(b'{"n":1}')
    assert received.empty()


async def test_flush_before_close_delivers_and_a_close_drops_what_is_queued(
    pair: tuple[ClientConnection, asyncio.Queue[str]],
) -> None:
    client, received = pair
    writer = FrameWriter(client)
    await writer.send(b'{"n":1}')
    writer.flush()
    await writer.send(b'{"n":2}')  # still queued when the close goes out: never sent
    await client.close()
    await asyncio.sleep(0.05)
    assert received.get_nowait() == '{"n":1}'
    assert received.empty()
