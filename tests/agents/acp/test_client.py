"""HandoffClient and HandoffTool against live ACP servers: multiplexing, deadlines, cancel,
retries, the circuit breaker, reconnection."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from agents.acp.client import CallOptions, HandoffClient, RetryPolicy
from agents.acp.protocol import RpcError
from agents.acp.registry import AgentRegistry
from agents.acp.tool import handoff_tools, tool_name
from core.errors import AgentNotFound, AlertNotFound, ServiceUnavailable
from tests.agents.acp.conftest import LIMITS, Live, agent_token, example_server
from tests.ports import free_port
from tests.waiting import eventually


def client_for(url: str, **kwargs: Any) -> HandoffClient:
    kwargs.setdefault("retry", RetryPolicy(attempts=3, base_delay=0.01, max_delay=0.05))
    return HandoffClient(
        registry=AgentRegistry({"spec-agent": (url,)}),
        sender="orchestrator",
        token=agent_token,
        **kwargs,
    )


async def test_calls_are_multiplexed_on_one_connection(live: Live) -> None:
    client = client_for(live.url, max_in_flight=4)
    try:
        results = await asyncio.gather(
            *(
                client.call("spec-agent", "subtract", {"minuend": n, "subtrahend": 1})
                for n in range(50)
            )
        )
        assert results == [n - 1 for n in range(50)]
        health = await client.call("spec-agent", "agent.health")
        assert health["connections"] == 1
    finally:
        await client.close()


async def test_metadata_and_notifications(live: Live) -> None:
    seen: list[tuple[str, str]] = []
    client = client_for(live.url, on_notification=lambda a, m: seen.append((a, m["method"])))
    mine: list[str] = []
    try:
        result = await client.call(
            "spec-agent",
            "sleep",
            {"seconds": 0.01},
            CallOptions(investigation_id="INV-7", hop=1, prompt_version="v2"),
            listener=lambda _a, m: mine.append(
                m["params"]["step"] if "step" in m["params"] else m["params"]["tool"]
            ),
        )
    finally:
        await client.close()
    meta = result["meta"]
    assert (
        meta["sender"],
        meta["target"],
        meta["hop"],
        meta["investigation_id"],
        meta["prompt_version"],
    ) == ("orchestrator", "spec-agent", 1, "INV-7", "v2")
    assert meta["traceparent"].startswith("00-")
    assert meta["idempotency_key"]
    assert meta["deadline"] is not None
    assert seen == [("spec-agent", "agent.thought"), ("spec-agent", "agent.tool_call")]
    assert mine == ["sleeping", "clock"]


async def test_platform_errors_are_rebuilt_and_not_retried(live: Live) -> None:
    client = client_for(live.url)
    try:
        with pytest.raises(AlertNotFound) as caught:
            await client.call("spec-agent", "fail", {"kind": "aurora"})
        assert caught.value.detail == {"alert_id": "ALRT-1"}
        with pytest.raises(RpcError) as invalid:
            await client.call("spec-agent", "subtract", {"minuend": "x"})
        assert invalid.value.code == -32602
        with pytest.raises(AgentNotFound):
            await client.call("nobody", "agent.card")
    finally:
        await client.close()
    assert client.breaker_state("spec-agent") == "closed"


async def test_retryable_platform_error_is_retried_then_raised(live: Live) -> None:
    client = client_for(live.url)
    try:
        from core.errors import LLMUnavailable

        with pytest.raises(LLMUnavailable):
            await client.call("spec-agent", "fail", {"kind": "llm"})
    finally:
        await client.close()


async def test_overloaded_is_retried_with_backoff(live: Live) -> None:
    client = client_for(live.url, retry=RetryPolicy(attempts=10, base_delay=0.02, max_delay=0.1))
    try:
        results = await asyncio.gather(
            *(
                client.call("spec-agent", "sleep", {"seconds": 0.1, "label": f"job{n}"})
                for n in range(LIMITS.max_in_flight + 4)
            )
        )
    finally:
        await client.close()
    assert sorted(r["label"] for r in results) == sorted(f"job{n}" for n in range(8))
    # each job ran once: the overloaded ones were refused before running, then retried
    assert sorted(live.server.runs) == sorted(f"job{n}" for n in range(8))  # type: ignore[attr-defined]


async def test_deadline_cancels_the_remote_work(live: Live) -> None:
    client = client_for(live.url)
    try:
        with pytest.raises(RpcError) as caught:
            await client.call(
                "spec-agent", "sleep", {"seconds": 5, "label": "long"}, CallOptions(timeout=0.3)
            )
        assert caught.value.code == -32001
        cancelled: list[str] = live.server.cancelled  # type: ignore[attr-defined]
        await eventually(lambda: cancelled, what="the remote work was cancelled")
        assert cancelled == ["long"]
    finally:
        await client.close()


async def test_caller_giving_up_sends_cancel(live: Live) -> None:
    client = client_for(live.url)
    try:
        task = asyncio.create_task(
            client.call("spec-agent", "sleep", {"seconds": 5, "label": "abandoned"})
        )
        runs: list[str] = live.server.runs  # type: ignore[attr-defined]
        cancelled: list[str] = live.server.cancelled  # type: ignore[attr-defined]
        await eventually(lambda: runs, what="the call is running")
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await eventually(lambda: cancelled, what="the remote work was cancelled")
        assert cancelled == ["abandoned"]
    finally:
        await client.close()


async def test_unreachable_agent_opens_the_circuit_then_recovers() -> None:
    port = free_port()
    client = client_for(
        f"ws://127.0.0.1:{port}",
        breaker_threshold=3,
        breaker_reset_after=0.3,
        retry=RetryPolicy(attempts=1),
        startup_grace=0,  # refusing at all is refusing for longer than the grace: dead
    )
    try:
        for _ in range(3):
            with pytest.raises(ServiceUnavailable) as down:
                await client.call("spec-agent", "agent.health")
            assert down.value.detail["reason"] == "agent unreachable"
        assert client.breaker_state("spec-agent") == "open"
        with pytest.raises(ServiceUnavailable) as fast:
            await client.call("spec-agent", "agent.health")
        assert fast.value.detail["reason"] == "circuit open"

        server = example_server(LIMITS)
        listener = await server.start("127.0.0.1", port)
        try:
            await eventually(lambda: client.breaker_state("spec-agent") == "half_open")
            assert (await client.call("spec-agent", "agent.health"))["status"] == "ok"
            assert client.breaker_state("spec-agent") == "closed"
        finally:
            listener.close()
            await listener.wait_closed()
    finally:
        await client.close()


async def test_reconnects_after_the_agent_restarts() -> None:
    port = free_port()
    client = client_for(f"ws://127.0.0.1:{port}", retry=RetryPolicy(attempts=5, base_delay=0.05))
    try:
        first = await example_server(LIMITS).start("127.0.0.1", port)
        assert await client.call("spec-agent", "subtract", {"minuend": 5, "subtrahend": 3}) == 2
        first.close()
        await first.wait_closed()
        second = await example_server(LIMITS).start("127.0.0.1", port)
        try:
            assert await client.call("spec-agent", "subtract", {"minuend": 9, "subtrahend": 3}) == 6
        finally:
            second.close()
            await second.wait_closed()
    finally:
        await client.close()


async def test_refused_token_is_not_retried(live: Live) -> None:
    client = HandoffClient(
        registry=AgentRegistry({"spec-agent": (live.url,)}), sender="x", token=lambda: "forged"
    )
    try:
        with pytest.raises(ServiceUnavailable) as refused:
            await client.call("spec-agent", "agent.card")
        assert refused.value.detail["reason"] == "the agent refused our token"
    finally:
        await client.close()


async def test_handoff_tool_from_the_card(live: Live) -> None:
    client = client_for(live.url)
    try:
        tools = {t.name: t for t in await handoff_tools(client, "spec-agent")}
        assert tool_name("spec-agent", "subtract") in tools
        assert "spec-agent__agent_card" not in tools
        subtract = tools[tool_name("spec-agent", "subtract")]
        assert subtract.args == {
            "minuend": {"title": "Minuend", "type": "integer"},
            "subtrahend": {"title": "Subtrahend", "type": "integer"},
        }
        assert await subtract.ainvoke({"minuend": 10, "subtrahend": 4}) == 6
        scoped = subtract.with_options(CallOptions(investigation_id="INV-3"))
        assert scoped.options.investigation_id == "INV-3"
    finally:
        await client.close()


async def test_health_checks_steer_calls_away_from_a_down_replica(live: Live) -> None:
    down = f"ws://127.0.0.1:{free_port()}"
    client = HandoffClient(
        registry=AgentRegistry({"spec-agent": (down, live.url)}),
        sender="orchestrator",
        token=agent_token,
        retry=RetryPolicy(attempts=1),
    )
    try:
        report = {r.url: r for r in await client.check_health(wait_seconds=1)}
        assert report[down].healthy is False
        assert report[down].detail == "unreachable"
        assert report[live.url].healthy is True
        assert report[live.url].latency_ms is not None
        # with one attempt and no retries, every call must land on the live replica
        results = [
            await client.call("spec-agent", "subtract", {"minuend": n, "subtrahend": 0})
            for n in range(6)
        ]
        assert results == list(range(6))
    finally:
        await client.close()


async def test_a_call_waits_for_an_agent_that_is_starting() -> None:
    port = free_port()
    client = client_for(
        f"ws://127.0.0.1:{port}",
        breaker_threshold=2,
        retry=RetryPolicy(attempts=2, base_delay=0.01, max_delay=0.05),
    )
    listener = None
    try:
        call = asyncio.create_task(
            client.call("spec-agent", "subtract", {"minuend": 7, "subtrahend": 2})
        )
        # The agent is not listening yet: the call keeps trying, well past its attempts and
        # the breaker's threshold, and the circuit stays closed.
        state = client._agent("spec-agent")
        await eventually(lambda: state.failures >= 5)
        assert not call.done()
        assert client.breaker_state("spec-agent") == "closed"
        listener = await example_server(LIMITS).start("127.0.0.1", port)
        assert await asyncio.wait_for(call, 10) == 5
        assert client.breaker_state("spec-agent") == "closed"
    finally:
        if listener is not None:
            listener.close()
            await listener.wait_closed()
        await client.close()


async def test_waiting_for_a_starting_agent_ends_at_the_deadline() -> None:
    client = client_for(f"ws://127.0.0.1:{free_port()}", breaker_threshold=2)
    try:
        with pytest.raises(ServiceUnavailable) as late:
            await client.call("spec-agent", "agent.health", options=CallOptions(timeout=0.5))
        assert late.value.detail == {
            "agent": "spec-agent",
            "reason": "agent not up within the deadline",
        }
        assert client._agent("spec-agent").failures > 2  # it kept trying until the deadline
        assert client.breaker_state("spec-agent") == "closed"
    finally:
        await client.close()


async def test_an_agent_refusing_past_the_grace_is_dead() -> None:
    client = client_for(
        f"ws://127.0.0.1:{free_port()}",
        breaker_threshold=2,
        retry=RetryPolicy(attempts=1),
        startup_grace=0.2,
    )
    try:
        # Starting: the call waits until its deadline (sooner than the grace ends).
        with pytest.raises(ServiceUnavailable) as starting:
            await client.call("spec-agent", "agent.health", options=CallOptions(timeout=0.1))
        assert starting.value.detail["reason"] == "agent not up within the deadline"
        # Refusing for longer than the grace (the next call waits until then): dead, so calls
        # fail after their attempts and the circuit opens.
        for _ in range(2):
            with pytest.raises(ServiceUnavailable) as dead:
                await client.call("spec-agent", "agent.health", options=CallOptions(timeout=30))
            assert dead.value.detail["reason"] == "agent unreachable"
        assert client.breaker_state("spec-agent") == "open"
        with pytest.raises(ServiceUnavailable) as fast:
            await client.call("spec-agent", "agent.health", options=CallOptions(timeout=30))
        assert fast.value.detail["reason"] == "circuit open"
    finally:
        await client.close()


async def test_a_restarting_agent_is_waited_for_even_with_the_circuit_open() -> None:
    port = free_port()
    client = client_for(
        f"ws://127.0.0.1:{port}",
        breaker_threshold=1,
        breaker_reset_after=0.05,
        retry=RetryPolicy(attempts=1, base_delay=0.01, max_delay=0.05),
    )
    first = await example_server(LIMITS).start("127.0.0.1", port)
    second = None
    try:
        assert await client.call("spec-agent", "subtract", {"minuend": 5, "subtrahend": 3}) == 2
        # A call that times out opens the circuit (threshold 1) while the agent is up.
        with pytest.raises(RpcError):
            await client.call("spec-agent", "sleep", {"seconds": 5}, CallOptions(timeout=0.1))
        assert client.breaker_state("spec-agent") == "open"
        first.close()
        await first.wait_closed()
        await eventually(lambda: client.breaker_state("spec-agent") == "half_open")
        # The trial call finds it restarting: it waits for it instead of reopening the circuit.
        call = asyncio.create_task(
            client.call("spec-agent", "subtract", {"minuend": 9, "subtrahend": 3})
        )
        state = client._agent("spec-agent")
        refused = state.failures
        await eventually(lambda: state.failures >= refused + 2 or call.done())
        assert not call.done()
        assert client.breaker_state("spec-agent") == "closed"
        second = await example_server(LIMITS).start("127.0.0.1", port)
        assert await asyncio.wait_for(call, 10) == 6
    finally:
        for listener in (first, second):
            if listener is not None:
                listener.close()
                await listener.wait_closed()
        await client.close()
