"""The scripted OpenAI-compatible server itself: its raw wire format and its guard rails."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import pytest

from tests.fakes.openai_server import ScriptedOpenAI

BODY = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}


async def post(fake: ScriptedOpenAI, body: dict[str, Any]) -> tuple[int, str]:
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{fake.base_url}/chat/completions", json=body) as response,
    ):
        return response.status, await response.text()


async def test_a_streamed_reply_is_server_sent_events_ending_in_done() -> None:
    async with ScriptedOpenAI(models=("m",)) as fake:
        fake.reply_text("hello there", usage=(3, 2))
        status, text = await post(
            fake, {**BODY, "stream": True, "stream_options": {"include_usage": True}}
        )
    assert status == 200
    events = [block for block in text.split("\n\n") if block]
    assert all(event.startswith("data: ") for event in events)
    assert events[-1] == "data: [DONE]"
    chunks = [json.loads(event.removeprefix("data: ")) for event in events[:-1]]
    assert {chunk["object"] for chunk in chunks} == {"chat.completion.chunk"}
    assert len({chunk["id"] for chunk in chunks}) == 1
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    content = [c["choices"][0]["delta"].get("content") for c in chunks[1:-2]]
    assert content == ["hello ", "there"]
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"] == {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}


async def test_a_plain_reply_is_a_chat_completion_object() -> None:
    async with ScriptedOpenAI(models=("m",)) as fake:
        fake.reply_tool_call("t", {"a": 1}, call_id="call_9")
        status, text = await post(fake, BODY)
    body = json.loads(text)
    assert status == 200
    assert body["object"] == "chat.completion"
    assert body["model"] == "m"
    choice = body["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["tool_calls"] == [
        {"id": "call_9", "type": "function", "function": {"name": "t", "arguments": '{"a": 1}'}}
    ]
    assert body["usage"]["total_tokens"] == (
        body["usage"]["prompt_tokens"] + body["usage"]["completion_tokens"]
    )


@pytest.mark.parametrize(
    ("change", "status", "phrase"),
    [
        ({"model": "other"}, 404, "does not exist"),
        ({"messages": []}, 400, "non-empty"),
        ({"stream_options": {"include_usage": True}}, 400, "only allowed when 'stream'"),
        ({"tool_choice": "auto"}, 400, "only allowed when 'tools'"),
        (
            {"response_format": {"type": "json_schema", "json_schema": {"name": "a b"}}},
            400,
            "json_schema",
        ),
        (
            {
                "messages": [
                    {"role": "user", "content": "hi"},
                    {
                        "role": "assistant",
                        "content": None,
                        "tool_calls": [
                            {
                                "id": "c1",
                                "type": "function",
                                "function": {"name": "t", "arguments": "{}"},
                            }
                        ],
                    },
                    {"role": "user", "content": "and?"},
                ]
            },
            400,
            "c1",
        ),
    ],
)
async def test_malformed_requests_are_refused_without_using_a_reply(
    change: dict[str, Any], status: int, phrase: str
) -> None:
    async with ScriptedOpenAI(models=("m",)) as fake:
        fake.reply_text("kept")
        got, text = await post(fake, {**BODY, **change})
        assert got == status
        assert phrase in json.loads(text)["error"]["message"]
        assert fake.pending == 1
        assert fake.chat_requests[0].status == status
        assert (await post(fake, BODY))[0] == 200


async def test_an_unscripted_request_fails_the_test_on_exit() -> None:
    fake = ScriptedOpenAI(models=("m",))
    statuses: list[int] = []

    async def unscripted_request() -> None:
        async with fake:
            statuses.append((await post(fake, BODY))[0])

    with pytest.raises(AssertionError, match="found no scripted reply"):
        await unscripted_request()
    assert statuses == [500]
    assert len(fake.unexpected) == 1


def test_chunks_must_spell_the_text() -> None:
    with pytest.raises(ValueError, match="join"):
        ScriptedOpenAI().reply_text("abc", chunks=["a", "b"])
