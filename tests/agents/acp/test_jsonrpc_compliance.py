"""Every example of section 7 of the JSON-RPC 2.0 specification, against a live server."""

from __future__ import annotations

from typing import Any

import pytest

from tests.agents.acp.conftest import Live, exchange, silence


def by_id(replies: list[dict[str, Any]]) -> dict[Any, dict[str, Any]]:
    return {r["id"]: r for r in replies if r.get("id") is not None}


@pytest.mark.parametrize(
    ("request_", "expected"),
    [
        (
            {"jsonrpc": "2.0", "method": "subtract", "params": [42, 23], "id": 1},
            {"jsonrpc": "2.0", "result": 19, "id": 1},
        ),
        (
            {"jsonrpc": "2.0", "method": "subtract", "params": [23, 42], "id": 2},
            {"jsonrpc": "2.0", "result": -19, "id": 2},
        ),
        (
            {
                "jsonrpc": "2.0",
                "method": "subtract",
                "params": {"subtrahend": 23, "minuend": 42},
                "id": 3,
            },
            {"jsonrpc": "2.0", "result": 19, "id": 3},
        ),
        (
            {
                "jsonrpc": "2.0",
                "method": "subtract",
                "params": {"minuend": 42, "subtrahend": 23},
                "id": 4,
            },
            {"jsonrpc": "2.0", "result": 19, "id": 4},
        ),
        (
            {"jsonrpc": "2.0", "method": "foobar", "id": "1"},
            {"jsonrpc": "2.0", "error": {"code": -32601, "message": "Method not found"}, "id": "1"},
        ),
        (
            {"jsonrpc": "2.0", "method": 1, "params": "bar"},
            {"jsonrpc": "2.0", "error": {"code": -32600, "message": "Invalid Request"}, "id": None},
        ),
    ],
)
async def test_single_requests(live: Live, request_: Any, expected: dict[str, Any]) -> None:
    async with live.connect() as ws:
        reply = await exchange(ws, request_)
    if "error" in expected:
        reply["error"].pop("data", None)
    assert reply == expected


async def test_notifications_get_no_reply(live: Live) -> None:
    async with live.connect() as ws:
        await ws.send('{"jsonrpc": "2.0", "method": "update", "params": [1,2,3,4,5]}')
        await ws.send('{"jsonrpc": "2.0", "method": "foobar"}')
        assert await silence(ws)
        await ws.send('{"jsonrpc": "2.0", "method": "notify_hello", "params": [7]}')
        assert await silence(ws)
    assert live.server.hellos == [7]  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "frame",
    [
        '{"jsonrpc": "2.0", "method": "foobar, "params": "bar", "baz]',
        '[\n  {"jsonrpc": "2.0", "method": "sum", "params": [1,2,4], "id": "1"},\n'
        '  {"jsonrpc": "2.0", "method"\n]',
    ],
)
async def test_invalid_json_is_parse_error(live: Live, frame: str) -> None:
    async with live.connect() as ws:
        reply = await exchange(ws, frame, raw=True)
    assert reply == {
        "jsonrpc": "2.0",
        "error": {"code": -32700, "message": "Parse error"},
        "id": None,
    }


async def test_empty_batch(live: Live) -> None:
    async with live.connect() as ws:
        reply = await exchange(ws, [])
    assert reply == {
        "jsonrpc": "2.0",
        "error": {"code": -32600, "message": "Invalid Request"},
        "id": None,
    }


@pytest.mark.parametrize("batch", [[1], [1, 2, 3]])
async def test_invalid_batches_answer_each_item(live: Live, batch: list[int]) -> None:
    async with live.connect() as ws:
        reply = await exchange(ws, batch)
    invalid = {
        "jsonrpc": "2.0",
        "error": {"code": -32600, "message": "Invalid Request"},
        "id": None,
    }
    assert reply == [invalid] * len(batch)


async def test_mixed_batch(live: Live) -> None:
    batch = [
        {"jsonrpc": "2.0", "method": "sum", "params": [1, 2, 4], "id": "1"},
        {"jsonrpc": "2.0", "method": "notify_hello", "params": [7]},
        {"jsonrpc": "2.0", "method": "subtract", "params": [42, 23], "id": "2"},
        {"foo": "boo"},
        {"jsonrpc": "2.0", "method": "foo.get", "params": {"name": "myself"}, "id": "5"},
        {"jsonrpc": "2.0", "method": "get_data", "id": "9"},
    ]
    async with live.connect() as ws:
        reply = await exchange(ws, batch)
    assert isinstance(reply, list)
    assert len(reply) == 5
    answered = by_id(reply)
    assert answered["1"] == {"jsonrpc": "2.0", "result": 7, "id": "1"}
    assert answered["2"] == {"jsonrpc": "2.0", "result": 19, "id": "2"}
    assert answered["5"]["error"]["code"] == -32601
    assert answered["9"] == {"jsonrpc": "2.0", "result": ["hello", 5], "id": "9"}
    nulls = [r for r in reply if r["id"] is None]
    assert [r["error"] for r in nulls] == [{"code": -32600, "message": "Invalid Request"}]


async def test_batch_of_notifications_returns_nothing(live: Live) -> None:
    async with live.connect() as ws:
        await ws.send(
            '[{"jsonrpc": "2.0", "method": "notify_sum", "params": [1,2,4]},'
            ' {"jsonrpc": "2.0", "method": "notify_hello", "params": [7]}]'
        )
        assert await silence(ws)
