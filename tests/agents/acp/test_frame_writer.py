"""FrameWriter: each frame is written to the transport in the call, in order; a closed
connection refuses frames as ``Connection.send`` does."""

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

    async with serve(collect, "127.0.0.1", 0, compression=None, max_size=2**24) as server:
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


async def test_frames_are_written_in_the_call_and_arrive_in_order(
    pair: tuple[ClientConnection, asyncio.Queue[str]],
) -> None:
    client, received = pair
    writer = FrameWriter(client)
    writes = count_writes(client)
    sending = writer.send(b'{"n":"first"}')
    assert writes == []  # nothing happens until the coroutine runs
    await sending
    assert len(writes) == 1  # written before send returned: no turn of the loop in between
    await asyncio.gather(*(writer.send(f'{{"n":{n}}}'.encode()) for n in range(50)))
    assert len(writes) == 51
    got = [await asyncio.wait_for(received.get(), 5) for _ in range(51)]
    assert got == ['{"n":"first"}', *(f'{{"n":{n}}}' for n in range(50))]


async def test_a_large_frame_waits_for_the_connection_to_drain(
    pair: tuple[ClientConnection, asyncio.Queue[str]],
) -> None:
    client, received = pair
    writer = FrameWriter(client)
    big = b'"' + b"x" * 8_000_000 + b'"'
    await asyncio.wait_for(writer.send(big), 10)
    assert len(await asyncio.wait_for(received.get(), 10)) == len(big)


async def test_a_closed_connection_refuses_frames(
    pair: tuple[ClientConnection, asyncio.Queue[str]],
) -> None:
    client, received = pair
    writer = FrameWriter(client)
    await client.close()
    with pytest.raises(ConnectionClosed):
        await writer.send(b'{"n":1}')
    assert received.empty()
