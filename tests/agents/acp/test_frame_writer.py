"""FrameWriter: each frame is written to the transport in the call, in order, or, while held,
in one write at the flush; a closed connection refuses frames as ``Connection.send`` does. An
AgentServer answers the requests that arrived together in as few writes."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from agents.acp import server as acp_server
from agents.acp.protocol import HOLD_CHUNKS, FrameWriter
from agents.acp.server import HOLD_BELOW_SECONDS, CallContext
from tests.agents.acp.conftest import Live, Numbers, example_server


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


async def send_held(client: ClientConnection, count: int) -> tuple[FrameWriter, list[bytes]]:
    """A holding writer on ``client`` that has sent frames ``{"n": 0..count-1}``, and the
    writes its transport has seen."""
    writer = FrameWriter(client)
    writes = count_writes(client)
    writer.hold()
    for n in range(count):
        await writer.send(f'{{"n":{n}}}'.encode())
    return writer, writes


async def test_held_frames_go_out_in_one_write_at_the_flush(
    pair: tuple[ClientConnection, asyncio.Queue[str]],
) -> None:
    client, received = pair
    writer, writes = await send_held(client, 5)
    assert writes == []
    writer.flush()
    assert len(writes) == 1
    writer.flush()  # nothing held: nothing written
    await writer.send(b'{"n":"after"}')  # no longer holding: written at once
    assert len(writes) == 2
    got = [await asyncio.wait_for(received.get(), 5) for _ in range(6)]
    assert got == [*(f'{{"n":{n}}}' for n in range(5)), '{"n":"after"}']


async def test_a_long_hold_is_written_in_pieces(
    pair: tuple[ClientConnection, asyncio.Queue[str]],
) -> None:
    """The first frames of a long burst do not wait for the last."""
    client, received = pair
    count = HOLD_CHUNKS * 2
    writer, writes = await send_held(client, count)
    assert 1 <= len(writes) <= count // 2
    writer.flush()
    got = [await asyncio.wait_for(received.get(), 5) for _ in range(count)]
    assert got == [f'{{"n":{n}}}' for n in range(count)]


def record_writers(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The ``id`` of the FrameWriter behind each write any of them makes from now on."""
    written: list[int] = []
    original = FrameWriter._write

    def counted(self: FrameWriter, data: bytes) -> None:
        written.append(id(self))
        original(self, data)

    monkeypatch.setattr(FrameWriter, "_write", counted)
    return written


async def test_requests_that_arrive_together_are_answered_in_few_writes(
    live: Live, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ten requests in one write, one of them slow: the quick ones are answered together
    (fewer writes than replies, and fewer pieces than a long hold writes early), the slow one
    after its wait, and every reply arrives."""
    written = record_writers(monkeypatch)
    # Quick answers count as quick however loaded the machine is (a parallel run can make a
    # subtraction take longer than the limit): this test is about holding, not the limit.
    monkeypatch.setattr(acp_server, "HOLD_BELOW_SECONDS", 1.0)
    async with live.connect() as ws:
        ours = FrameWriter(ws)
        ours.hold()
        for n in range(10):
            if n == 5:
                request = {"label": "slow", "seconds": 0.05}
                frame = {"jsonrpc": "2.0", "method": "sleep", "params": request, "id": n}
            else:
                params = {"minuend": n, "subtrahend": 1}
                frame = {"jsonrpc": "2.0", "method": "subtract", "params": params, "id": n}
            await ours.send(json.dumps(frame).encode())
        ours.flush()
        answers: dict[int, object] = {}
        while len(answers) < 10:
            reply = json.loads(await asyncio.wait_for(ws.recv(), 5))
            if "id" in reply:
                answers[reply["id"]] = reply["result"]
    assert answers[5]["label"] == "slow"  # type: ignore[index]
    assert {n: answers[n] for n in answers if n != 5} == {n: n - 1 for n in range(10) if n != 5}
    server_writes = [writer for writer in written if writer != id(ours)]
    assert len(server_writes) < 6  # 9 quick replies, a slow one and its two notifications


def test_without_a_visible_receive_queue_nothing_is_held() -> None:
    """A websockets release that keeps its read frames elsewhere: the server writes each reply
    at once, as before, instead of holding replies it would never flush."""
    from agents.acp.server import _buffered_frames

    class Bare:
        pass

    assert _buffered_frames(Bare())() == 0  # type: ignore[arg-type]


async def test_replies_are_not_held_behind_answers_that_compute(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A method that computes before its first wait: once the connection has seen that, each
    reply is written as soon as it is ready instead of waiting for the next answer."""
    server = example_server()

    async def busy(p: Numbers, _ctx: CallContext) -> int:
        until = time.perf_counter() + HOLD_BELOW_SECONDS * 4
        while time.perf_counter() < until:
            pass
        return sum(p.root)

    server.add_method("busy", busy, params=Numbers)
    written = record_writers(monkeypatch)
    listener = await server.start("127.0.0.1", 0)
    port = next(iter(listener.sockets)).getsockname()[1]
    try:
        live = Live(server, f"ws://127.0.0.1:{port}")
        async with live.connect() as ws:
            ours = FrameWriter(ws)
            ours.hold()
            for n in range(12):
                frame = {"jsonrpc": "2.0", "method": "busy", "params": [n, 1], "id": n}
                await ours.send(json.dumps(frame).encode())
            ours.flush()
            answers = [json.loads(await asyncio.wait_for(ws.recv(), 5)) for _ in range(12)]
    finally:
        listener.close()
        await listener.wait_closed()
    assert sorted(a["result"] for a in answers) == [n + 1 for n in range(12)]
    server_writes = [w for w in written if w != id(ours)]
    assert len(server_writes) >= 9  # a few held while the connection learns, then one each
