"""Hostile ACP frames: nesting past any parser, nesting past the frame depth limit, deadlines
outside the years the platform accepts. Each gets a JSON-RPC error reply (never silence, never
a dead connection), on the server and on the HandoffClient side alike."""

from __future__ import annotations

import json
from typing import Any

import pytest
from websockets.asyncio.server import ServerConnection, serve

from agents.acp.client import HandoffClient, RetryPolicy
from agents.acp.protocol import MAX_FRAME_DEPTH
from agents.acp.registry import AgentRegistry
from tests.agents.acp.conftest import Live, agent_token, exchange


def nested(depth: int, leaf: Any = 1) -> Any:
    """``leaf`` inside ``depth`` arrays."""
    value = leaf
    for _ in range(depth):
        value = [value]
    return value


def subtract(minuend: Any, id_: Any = 1, **meta: Any) -> dict[str, Any]:
    params: dict[str, Any] = {"minuend": minuend, "subtrahend": 1}
    if meta:
        params["_meta"] = meta
    return {"jsonrpc": "2.0", "method": "subtract", "params": params, "id": id_}


async def test_a_frame_nested_past_any_parser_is_a_parse_error(live: Live) -> None:
    frame = '{"jsonrpc": "2.0", "method": "subtract", "id": 9, "params": ' + (
        "[" * 10_000 + "]" * 10_000 + "}"
    )
    async with live.connect() as ws:
        reply = await exchange(ws, frame, raw=True)
        assert reply == {
            "jsonrpc": "2.0",
            "error": {"code": -32700, "message": "Parse error"},
            "id": None,
        }
        # the connection still serves
        assert (await exchange(ws, subtract(3)))["result"] == 2


async def test_a_frame_nested_past_the_limit_is_refused_to_its_id(live: Live) -> None:
    # the frame's object, params' object, then the arrays of minuend
    at_limit = subtract(nested(MAX_FRAME_DEPTH - 2), id_="at")
    past = subtract(nested(MAX_FRAME_DEPTH - 1), id_="past")
    async with live.connect() as ws:
        reply = await exchange(ws, at_limit)
        # within the limit: the method's own validation answers
        assert (reply["id"], reply["error"]["code"]) == ("at", -32602)
        reply = await exchange(ws, past)
        assert reply == {
            "jsonrpc": "2.0",
            "error": {
                "code": -32600,
                "message": "Invalid Request",
                "data": {"reason": f"nested more than {MAX_FRAME_DEPTH} levels deep"},
            },
            "id": "past",
        }
        batch = [subtract(2, id_=1), subtract(nested(200), id_=2)]
        reply = await exchange(ws, batch)
        assert (reply["id"], reply["error"]["code"]) == (None, -32600)
        assert (await exchange(ws, subtract(5)))["result"] == 4


@pytest.mark.parametrize("deadline", ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00"])
async def test_a_deadline_outside_the_accepted_years_is_invalid_params(
    live: Live, deadline: str
) -> None:
    async with live.connect() as ws:
        reply = await exchange(ws, subtract(3, deadline=deadline))
        assert (reply["id"], reply["error"]["code"]) == (1, -32602)
        assert [e["loc"] for e in reply["error"]["data"]["errors"]] == [["_meta", "deadline"]]
        assert (await exchange(ws, subtract(3)))["result"] == 2
    assert live.server.served == 1


async def test_the_client_survives_a_peer_that_sends_deep_frames() -> None:
    """A peer answering with frames nested past any parser and past the limit, then with the
    real reply: the client drops the deep ones and still gets its answer."""

    async def peer(socket: ServerConnection) -> None:
        async for frame in socket:
            request = json.loads(frame)
            if "id" not in request:
                continue  # the client's notifications
            await socket.send("[" * 10_000 + "]" * 10_000)
            deep = {"jsonrpc": "2.0", "result": nested(200), "id": request["id"]}
            await socket.send(json.dumps(deep))
            await socket.send(json.dumps({"jsonrpc": "2.0", "result": 41, "id": request["id"]}))

    async with serve(peer, "127.0.0.1", 0) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        client = HandoffClient(
            registry=AgentRegistry({"spec-agent": (f"ws://127.0.0.1:{port}",)}),
            sender="orchestrator",
            token=agent_token,
            retry=RetryPolicy(attempts=1),
        )
        try:
            assert await client.call("spec-agent", "anything", {}) == 41
            assert await client.call("spec-agent", "again", {}) == 41
        finally:
            await client.close()
