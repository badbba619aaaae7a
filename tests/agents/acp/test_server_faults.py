"""ACP server faults: auth, frames, params, metadata, limits, deadlines, idempotency, cancel."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError
from websockets.exceptions import ConnectionClosed, InvalidStatus

from agents.acp.protocol import Meta, new_traceparent
from core.security.tokens import TokenService
from core.settings import JwtAlgorithm
from tests.agents.acp.conftest import SECRET, Live, exchange, token_service
from tests.waiting import eventually


def call(method: str, params: Any = None, id_: Any = 1, **meta: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"jsonrpc": "2.0", "method": method, "id": id_}
    if params is not None or meta:
        body["params"] = dict(params or {})
        if meta:
            body["params"]["_meta"] = meta
    return body


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer not-a-token"},
        {"Authorization": "Basic dXNlcjpwYXNz"},
    ],
)
async def test_connections_without_a_platform_token_are_refused(
    live: Live, headers: dict[str, str]
) -> None:
    from websockets.asyncio.client import connect

    with pytest.raises(InvalidStatus) as refused:
        async with connect(live.url, additional_headers=headers):
            pass
    assert refused.value.response.status_code == 401
    assert json.loads(refused.value.response.body)["error"]["code"] == "AURORA-4010"


async def test_user_access_tokens_and_foreign_keys_are_refused(live: Live) -> None:
    access = token_service().issue("alice").token  # a user's token, not an agent token
    other = (
        TokenService(
            algorithm=JwtAlgorithm.HS256,
            signing_key="x" * 40,
            verifying_key="x" * 40,
            issuer="aurorasoc",
            audience="aurorasoc-api",
            default_ttl=900,
        )
        .issue("orchestrator", token_type="agent")
        .token
    )
    for token in (access, other):
        with pytest.raises(InvalidStatus) as refused:
            async with live.connect(token):
                pass
        assert refused.value.response.status_code == 401
    assert SECRET not in str(refused.value.response.body)


async def test_oversized_frame_closes_with_1009(live: Live) -> None:
    async with live.connect() as ws:
        await ws.send(json.dumps(call("sum", None) | {"params": [1] * 40_000}))
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 5)
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 1009


async def test_binary_and_garbage_frames(live: Live) -> None:
    async with live.connect() as ws:
        assert (await exchange(ws, b"\xff\xfe\x00", raw=True))["error"]["code"] == -32700
        assert (await exchange(ws, "null", raw=True))["error"]["code"] == -32600
        assert (await exchange(ws, {"jsonrpc": "1.0", "method": "x", "id": 1}))["error"] == {
            "code": -32600,
            "message": "Invalid Request",
        }
        assert (await exchange(ws, {"jsonrpc": "2.0", "method": "x", "id": [1]}))["id"] is None
        assert (await exchange(ws, {"jsonrpc": "2.0", "method": "x", "id": True}))["id"] is None
        reply = await exchange(ws, {"jsonrpc": "2.0", "method": "sum", "params": 5, "id": 7})
        assert (reply["error"]["code"], reply["id"]) == (-32600, 7)
        # the connection still works after all that
        assert (await exchange(ws, call("subtract", {"minuend": 3, "subtrahend": 1})))[
            "result"
        ] == 2


async def test_wrong_params_are_32602_with_field_errors(live: Live) -> None:
    async with live.connect() as ws:
        reply = await exchange(ws, call("subtract", {"minuend": "lots"}))
        errors = reply["error"]["data"]["errors"]
        assert reply["error"]["code"] == -32602
        assert {tuple(e["loc"]) for e in errors} == {("minuend",), ("subtrahend",)}
        assert "lots" not in json.dumps(reply)  # inputs are not echoed
        too_many = await exchange(
            ws, {"jsonrpc": "2.0", "method": "subtract", "params": [1, 2, 3], "id": 2}
        )
        assert too_many["error"]["code"] == -32602
        no_params = await exchange(ws, call("get_data", {"unexpected": 1}))
        assert no_params["error"]["code"] == -32602
        bad_meta = await exchange(
            ws, call("subtract", {"minuend": 1, "subtrahend": 1}, traceparent="zz", hop=-1)
        )
        locs = {tuple(e["loc"]) for e in bad_meta["error"]["data"]["errors"]}
        assert locs == {("_meta", "traceparent"), ("_meta", "hop")}
        wrong_target = await exchange(
            ws, call("subtract", {"minuend": 1, "subtrahend": 1}, target="malware")
        )
        assert wrong_target["error"]["code"] == -32602


async def test_metadata_reaches_the_method(live: Live) -> None:
    trace = new_traceparent()
    deadline = (datetime.now(UTC) + timedelta(seconds=30)).isoformat()
    async with live.connect() as ws:
        reply = await exchange(
            ws,
            call(
                "sleep",
                {"seconds": 0},
                traceparent=trace,
                investigation_id="INV-1",
                sender="orchestrator",
                target="spec-agent",
                hop=2,
                deadline=deadline,
                prompt_version="v1",
            ),
        )
    meta = reply["result"]["meta"]
    assert (
        meta["traceparent"],
        meta["investigation_id"],
        meta["sender"],
        meta["hop"],
        meta["prompt_version"],
    ) == (trace, "INV-1", "orchestrator", 2, "v1")


async def test_hop_limit_stops_loops(live: Live) -> None:
    async with live.connect() as ws:
        ok = await exchange(ws, call("subtract", {"minuend": 2, "subtrahend": 1}, hop=3))
        assert ok["result"] == 1
        reply = await exchange(ws, call("subtract", {"minuend": 2, "subtrahend": 1}, hop=4))
    assert reply["error"]["code"] == -32002
    assert reply["error"]["data"] == {"hop": 4, "limit": 3}


async def test_deadlines(live: Live) -> None:
    past = time.time() - 1
    soon = (datetime.now(UTC) + timedelta(milliseconds=200)).isoformat()
    async with live.connect() as ws:
        expired = await exchange(ws, call("sleep", {"seconds": 0, "label": "late"}, deadline=past))
        assert expired["error"]["code"] == -32001
        assert expired["error"]["data"] == {
            "deadline": datetime.fromtimestamp(past, UTC).isoformat()
        }
        started = time.monotonic()
        cut = await exchange(ws, call("sleep", {"seconds": 5, "label": "slow"}, deadline=soon))
        assert cut["error"]["code"] == -32001
        assert time.monotonic() - started < 2
    assert live.server.runs == ["slow"]  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("given", "seconds"),
    [
        (1_767_222_000, 1_767_222_000.0),
        (1_767_222_000.25, 1_767_222_000.25),
        ("2026-01-01T00:00:00+01:00", 1_767_222_000.0),
        ("2026-01-01T00:00:00Z", 1_767_225_600.0),
        (datetime(2026, 1, 1, tzinfo=UTC), 1_767_225_600.0),
        (None, None),
    ],
)
def test_a_deadline_is_seconds_since_the_epoch(given: Any, seconds: float | None) -> None:
    meta = Meta.model_validate({"deadline": given})
    assert meta.deadline == seconds
    assert Meta().seconds_left() is None


@pytest.mark.parametrize(
    "given",
    [
        1_767_222_000_000,  # milliseconds: not guessed from the size, out of range as seconds
        -2_208_988_801,  # before 1900
        "2300-01-01T00:00:00Z",
        "0001-01-01T00:00:00+14:00",
        "2026-01-01T00:00:00",  # no zone
        "tomorrow",
        True,
        float("nan"),
        float("inf"),
        10**30,
        [1_767_222_000],
    ],
)
def test_a_deadline_that_is_not_a_moment_in_range_is_refused(given: Any) -> None:
    with pytest.raises(ValidationError) as caught:
        Meta.model_validate({"deadline": given})
    assert [e["loc"] for e in caught.value.errors()] == [("deadline",)]


async def test_idempotency_key_runs_once(live: Live) -> None:
    async with live.connect() as ws:
        first = await exchange(
            ws, call("sleep", {"seconds": 0, "label": "a"}, 1, idempotency_key="k-1")
        )
        again = await exchange(
            ws, call("sleep", {"seconds": 0, "label": "a"}, 2, idempotency_key="k-1")
        )
        assert again["result"] == first["result"]
        assert again["id"] == 2
        # concurrent duplicates share the single run
        await ws.send(
            json.dumps(call("sleep", {"seconds": 0.2, "label": "b"}, 3, idempotency_key="k-2"))
        )
        await ws.send(
            json.dumps(call("sleep", {"seconds": 0.2, "label": "b"}, 4, idempotency_key="k-2"))
        )
        got: dict[Any, Any] = {}
        while len(got) < 2:
            frame = json.loads(await asyncio.wait_for(ws.recv(), 5))
            if "id" in frame:
                got[frame["id"]] = frame
        assert got[3]["result"] == got[4]["result"]
    assert live.server.runs == ["a", "b"]  # type: ignore[attr-defined]


async def test_in_flight_bound_answers_overloaded(live: Live) -> None:
    async with live.connect() as ws:
        for n in range(6):  # the fixture allows 4 in flight per connection
            await ws.send(json.dumps(call("sleep", {"seconds": 0.3}, n)))
        replies: dict[int, Any] = {}
        while len(replies) < 6:
            frame = json.loads(await asyncio.wait_for(ws.recv(), 5))
            if "id" in frame:
                replies[frame["id"]] = frame
    overloaded = [r for r in replies.values() if "error" in r]
    assert len(overloaded) == 2
    assert all(r["error"]["code"] == -32000 for r in overloaded)
    assert all(r["error"]["data"]["retry_after_ms"] > 0 for r in overloaded)
    assert sum("result" in r for r in replies.values()) == 4


async def test_cancel_notification_stops_the_work(live: Live) -> None:
    async with live.connect() as ws:
        await ws.send(json.dumps(call("sleep", {"seconds": 5, "label": "doomed"}, "job-1")))
        runs: list[str] = live.server.runs  # type: ignore[attr-defined]
        await eventually(lambda: "doomed" in runs, what="the call is running")
        await ws.send(
            json.dumps({"jsonrpc": "2.0", "method": "$/cancel", "params": {"id": "job-1"}})
        )
        frame: dict[str, Any] = {}
        while "id" not in frame:
            frame = json.loads(await asyncio.wait_for(ws.recv(), 2))
    assert frame["error"]["code"] == -32003


async def test_errors_carry_aurora_codes_and_never_tracebacks(live: Live) -> None:
    async with live.connect() as ws:
        aurora = await exchange(ws, call("fail", {"kind": "aurora"}))
        llm = await exchange(ws, call("fail", {"kind": "llm"}))
        crash = await exchange(ws, call("fail", {"kind": "crash"}))
    assert aurora["error"]["code"] == -32010
    assert aurora["error"]["data"]["aurora_code"] == "AURORA-4042"
    assert aurora["error"]["message"] == "Alert not found"
    assert llm["error"]["data"]["aurora_code"] == "AURORA-5031"
    assert crash["error"] == {"code": -32603, "message": "Internal error"}
    assert "hunter2" not in json.dumps(crash)


async def test_thought_and_tool_call_notifications_stream_to_the_caller(live: Live) -> None:
    async with live.connect() as ws:
        await ws.send(json.dumps(call("sleep", {"seconds": 0.01}, "r1", investigation_id="I-9")))
        frames = []
        while not frames or "id" not in frames[-1]:
            frames.append(json.loads(await asyncio.wait_for(ws.recv(), 5)))
    methods = [f.get("method") for f in frames[:-1]]
    assert methods == ["agent.thought", "agent.tool_call"]
    thought, tool = frames[0]["params"], frames[1]["params"]
    assert (thought["request_id"], thought["investigation_id"], thought["step"]) == (
        "r1",
        "I-9",
        "sleeping",
    )
    assert (tool["tool"], tool["arguments"], tool["result_summary"]) == (
        "clock",
        {"seconds": 0.01},
        "slept",
    )
    assert tool["duration_ms"] == pytest.approx(10.0)


async def test_card_and_health(live: Live) -> None:
    async with live.connect() as ws:
        card = (await exchange(ws, call("agent.card")))["result"]
        health = (await exchange(ws, call("agent.health")))["result"]
    assert (card["name"], card["version"]) == ("spec-agent", "1.0.0")
    methods = {m["name"]: m for m in card["methods"]}
    assert {"agent.card", "agent.health", "subtract", "sum"} <= set(methods)
    assert methods["subtract"]["params_schema"]["required"] == ["minuend", "subtrahend"]
    assert card["backend"] == {"kind": "builtin"}
    assert health["status"] == "ok"
    assert health["connections"] == 1


async def test_idempotent_errors_are_replayed_not_rerun(live: Live) -> None:
    async with live.connect() as ws:
        first = await exchange(ws, call("fail", {"kind": "aurora"}, 1, idempotency_key="e-1"))
        again = await exchange(ws, call("fail", {"kind": "aurora"}, 2, idempotency_key="e-1"))
    assert first["error"] == again["error"]
    assert again["error"]["data"]["aurora_code"] == "AURORA-4042"
