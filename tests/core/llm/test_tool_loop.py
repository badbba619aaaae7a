"""run_tool_loop: tools run, every call is paired with its result, budgets and schemas hold."""

from __future__ import annotations

import asyncio
import json
from typing import Any, Literal

import pytest
from pydantic import BaseModel, Field

from core.errors import AlertNotFound
from core.llm import (
    LLMBackend,
    LLMOutputError,
    StructuredOutputInvalid,
    Tool,
    run_tool_loop,
    system_message,
    user_message,
)
from core.llm.fence import unfence
from tests.fakes.openai_server import ScriptedOpenAI, ScriptedToolCall

MESSAGES = [system_message("You triage alerts."), user_message("Look at alert A-17.")]
REPUTATION = {"203.0.113.7": {"verdict": "malicious", "reports": 41}}


class IpArgs(BaseModel):
    ip: str = Field(pattern=r"^\d{1,3}(\.\d{1,3}){3}$")


async def lookup_ip(arguments: dict[str, Any]) -> dict[str, Any]:
    ip = IpArgs.model_validate(arguments).ip
    return {"ip": ip, **REPUTATION.get(ip, {"verdict": "unknown", "reports": 0})}


async def get_alert(arguments: dict[str, Any]) -> dict[str, Any]:
    if arguments.get("alert_id") != "A-17":
        raise AlertNotFound(f"no alert {arguments.get('alert_id')!r}")
    return {"id": "A-17", "src_ip": "203.0.113.7", "rule": "Outbound beacon"}


TOOLS = [
    Tool(
        "lookup_ip",
        "Reputation of an IPv4 address.",
        {"type": "object", "properties": {"ip": {"type": "string"}}, "required": ["ip"]},
        lookup_ip,
    ),
    Tool(
        "get_alert",
        "One alert by id.",
        {"type": "object", "properties": {"alert_id": {"type": "string"}}},
        get_alert,
    ),
]


class Verdict(BaseModel):
    severity: Literal["informational", "low", "medium", "high", "critical"]
    summary: str


def shown(message: dict[str, Any], source: str | None = None) -> str:
    """A tool message's content as the model reads it: one fence, its payload decoded."""
    [fenced] = unfence(message["content"])
    if source is not None:
        assert fenced.source == source
    return fenced.text


def roles(transcript: list[dict[str, Any]]) -> list[str]:
    return [message["role"] for message in transcript]


async def test_each_tool_call_is_run_and_paired_with_its_result(
    fake: ScriptedOpenAI, backend: LLMBackend
) -> None:
    fake.reply_tool_call("get_alert", {"alert_id": "A-17"}, call_id="call_alert", usage=(100, 10))
    fake.reply_tool_call("lookup_ip", {"ip": "203.0.113.7"}, call_id="call_ip", usage=(150, 12))
    fake.reply_text("A-17 beacons to a known-malicious address.", usage=(200, 20))

    result = await run_tool_loop(backend, MESSAGES, TOOLS, max_steps=4)

    assert result.final.text == "A-17 beacons to a known-malicious address."
    assert result.model_calls == 3
    assert (result.usage.prompt_tokens, result.usage.completion_tokens) == (450, 42)
    assert result.usage.total_tokens == 492
    assert roles(result.transcript) == [
        "system",
        "user",
        "assistant",
        "tool",
        "assistant",
        "tool",
        "assistant",
    ]
    assert result.transcript[2]["tool_calls"][0]["id"] == "call_alert"
    assert result.transcript[3]["tool_call_id"] == "call_alert"
    assert json.loads(shown(result.transcript[3]))["src_ip"] == "203.0.113.7"
    assert result.transcript[5]["tool_call_id"] == "call_ip"
    assert shown(result.transcript[5], "tool lookup_ip") == json.dumps(
        {"ip": "203.0.113.7", "verdict": "malicious", "reports": 41}
    )
    assert [(e.call.name, e.ok) for e in result.executions] == [
        ("get_alert", True),
        ("lookup_ip", True),
    ]
    # What the model saw on each turn is exactly the transcript so far.
    sent = [request.messages for request in fake.chat_requests]
    assert sent[0] == MESSAGES
    assert sent[1] == result.transcript[:4]
    assert sent[2] == result.transcript[:6]
    assert all(request.tool_names == ["lookup_ip", "get_alert"] for request in fake.chat_requests)
    # The caller's list is left as it was.
    assert len(MESSAGES) == 2


async def test_calls_of_one_reply_run_concurrently_and_keep_their_order(
    fake: ScriptedOpenAI, backend: LLMBackend
) -> None:
    second_started = asyncio.Event()

    async def first(arguments: dict[str, Any]) -> str:
        # Finishes only once the second call has started: deadlocks if calls ran one by one.
        await asyncio.wait_for(second_started.wait(), 2)
        return "first done"

    async def second(arguments: dict[str, Any]) -> str:
        second_started.set()
        return "second done"

    tools = [Tool("first", "waits", handler=first), Tool("second", "signals", handler=second)]
    fake.reply_tool_calls([("first", {}), ("second", {})])
    fake.reply_text("both done")

    result = await run_tool_loop(backend, MESSAGES, tools)

    assert [(m["tool_call_id"], shown(m)) for m in result.transcript[3:5]] == [
        (result.transcript[2]["tool_calls"][0]["id"], "first done"),
        (result.transcript[2]["tool_calls"][1]["id"], "second done"),
    ]


async def test_mistakes_the_model_can_fix_are_reported_back_to_it(
    fake: ScriptedOpenAI, backend: LLMBackend
) -> None:
    fake.reply_tool_calls(
        [
            ScriptedToolCall("lookup_ip", '{"ip": "203.0.113.7"', id="bad_json"),
            ScriptedToolCall("lookup_ip", {"ip": "not-an-ip"}, id="bad_value"),
            ScriptedToolCall("whois", {"domain": "example.com"}, id="unknown"),
            ScriptedToolCall("get_alert", {"alert_id": "A-99"}, id="missing"),
        ]
    )
    fake.reply_tool_call("lookup_ip", {"ip": "203.0.113.7"}, call_id="fixed")
    fake.reply_text("Fixed my calls.")

    result = await run_tool_loop(backend, MESSAGES, TOOLS)

    outputs = {
        message["tool_call_id"]: json.loads(shown(message))
        for message in result.transcript
        if message["role"] == "tool"
    }
    assert outputs["bad_json"]["error"]["message"].startswith("invalid arguments: not valid JSON")
    assert outputs["bad_value"]["error"]["message"] == "invalid arguments"
    assert outputs["bad_value"]["error"]["details"][0]["loc"] == ["ip"]
    assert "not-an-ip" not in json.dumps(outputs["bad_value"])
    assert outputs["unknown"]["error"]["message"] == (
        "unknown tool 'whois'; available: ['get_alert', 'lookup_ip']"
    )
    assert outputs["missing"]["error"]["code"] == "AURORA-4042"
    assert outputs["missing"]["error"]["detail"] == "no alert 'A-99'"
    assert outputs["fixed"]["verdict"] == "malicious"
    assert [e.ok for e in result.executions] == [False, False, False, False, True]
    assert result.final.text == "Fixed my calls."


async def test_an_exhausted_budget_forces_a_final_answer_with_every_call_paired(
    fake: ScriptedOpenAI, backend: LLMBackend
) -> None:
    for n in range(2):
        fake.reply_tool_call("lookup_ip", {"ip": f"198.51.100.{n}"})
    fake.reply_text("Out of lookups; nothing conclusive.")

    result = await run_tool_loop(backend, MESSAGES, TOOLS, max_steps=2)

    assert result.model_calls == 3
    assert result.final.text == "Out of lookups; nothing conclusive."
    last = fake.chat_requests[-1]
    assert last.tool_choice == "none"
    assert roles(last.messages) == ["system", "user", "assistant", "tool", "assistant", "tool"]
    # The strict fake accepted every request: no tool call was left without its result.
    assert [request.status for request in fake.chat_requests] == [200, 200, 200]


async def test_a_model_that_ignores_the_budget_is_an_output_error(
    fake: ScriptedOpenAI, backend: LLMBackend
) -> None:
    fake.reply_tool_call("lookup_ip", {"ip": "198.51.100.1"})
    fake.reply_tool_call("lookup_ip", {"ip": "198.51.100.2"})
    with pytest.raises(LLMOutputError, match=r"AURORA-5031"):
        await run_tool_loop(backend, MESSAGES, TOOLS, max_steps=1)


async def test_a_final_answer_that_fits_the_schema_is_parsed_without_another_call(
    fake: ScriptedOpenAI, backend: LLMBackend
) -> None:
    fake.reply_tool_call("lookup_ip", {"ip": "203.0.113.7"})
    fake.reply_json({"severity": "high", "summary": "Known C2."})

    result = await run_tool_loop(backend, MESSAGES, TOOLS, response_model=Verdict)

    assert result.final.parsed == Verdict(severity="high", summary="Known C2.")
    assert result.model_calls == 2
    assert all(request.response_format is None for request in fake.chat_requests)


async def test_a_free_text_final_answer_is_asked_again_with_the_schema_enforced(
    fake: ScriptedOpenAI, backend: LLMBackend
) -> None:
    fake.reply_tool_call("lookup_ip", {"ip": "203.0.113.7"})
    fake.reply_text("I think this is quite bad.")
    fake.reply_json({"severity": "critical", "summary": "Active C2."})

    result = await run_tool_loop(backend, MESSAGES, TOOLS, response_model=Verdict)

    assert result.final.parsed.severity == "critical"
    assert result.model_calls == 3
    retry = fake.chat_requests[-1]
    assert retry.response_format is not None
    assert retry.response_format["json_schema"]["name"] == "Verdict"
    assert retry.tool_choice == "none"
    # The free-text answer was replaced, not kept beside the structured one.
    assert roles(retry.messages) == ["system", "user", "assistant", "tool"]
    assert all("quite bad" not in str(message) for message in result.transcript)
    assert result.transcript[-1]["content"] == json.dumps(
        {"severity": "critical", "summary": "Active C2."}
    )


async def test_a_structured_answer_that_fails_twice_raises(
    fake: ScriptedOpenAI, backend: LLMBackend
) -> None:
    fake.reply_text("no json here")
    fake.reply_json({"severity": "sort of high"})
    with pytest.raises(StructuredOutputInvalid) as caught:
        await run_tool_loop(backend, MESSAGES, TOOLS, response_model=Verdict)
    assert caught.value.failure == "schema_violation"


async def test_long_tool_output_is_cut(fake: ScriptedOpenAI, backend: LLMBackend) -> None:
    async def dump(arguments: dict[str, Any]) -> str:
        return "x" * 5000

    fake.reply_tool_call("dump", {})
    fake.reply_text("done")
    result = await run_tool_loop(
        backend, MESSAGES, [Tool("dump", "big", handler=dump)], max_output_chars=100
    )
    content = shown(result.transcript[3])
    assert content.startswith("x" * 100)
    assert content.endswith("[... cut: 5000 characters in all]")
    assert len(content) < 200


async def test_an_unexpected_handler_failure_propagates(
    fake: ScriptedOpenAI, backend: LLMBackend
) -> None:
    async def broken(arguments: dict[str, Any]) -> str:
        raise RuntimeError("bug in the tool")

    fake.reply_tool_call("broken", {})
    with pytest.raises(RuntimeError, match="bug in the tool"):
        await run_tool_loop(backend, MESSAGES, [Tool("broken", "bug", handler=broken)])


async def test_bad_loop_arguments_are_refused_before_any_request(
    fake: ScriptedOpenAI, backend: LLMBackend
) -> None:
    with pytest.raises(ValueError, match="max_steps"):
        await run_tool_loop(backend, MESSAGES, TOOLS, max_steps=0)
    with pytest.raises(ValueError, match="without a handler"):
        await run_tool_loop(backend, MESSAGES, [Tool("bare", "no handler")])
    with pytest.raises(ValueError, match="unique"):
        await run_tool_loop(backend, MESSAGES, [TOOLS[0], TOOLS[0]])
    assert fake.requests == []
