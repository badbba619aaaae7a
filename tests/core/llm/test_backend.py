"""LLMBackend against a scripted OpenAI-compatible server: the real ``openai`` client runs."""

from __future__ import annotations

import json
import logging
import time
from typing import Literal

import pytest
from pydantic import BaseModel, Field, ValidationError

from core.errors import CATALOGUE, LLMUnavailable
from core.llm import (
    CompletionStream,
    LLMBackend,
    LLMOutputError,
    StructuredOutputInvalid,
    Tool,
    ToolArgumentsInvalid,
    ToolCall,
    ToolCallDelta,
    system_message,
    user_message,
)
from core.settings import Settings
from tests.core.llm.conftest import MODEL
from tests.fakes.openai_server import ScriptedOpenAI, ScriptedToolCall

MESSAGES = [
    system_message("You are a SOC analyst."),
    user_message("Is 203.0.113.7 malicious?"),
]
LOOKUP = Tool(
    "lookup_ip",
    "Reputation of an IP address.",
    {"type": "object", "properties": {"ip": {"type": "string"}}, "required": ["ip"]},
)


class Verdict(BaseModel):
    severity: Literal["informational", "low", "medium", "high", "critical"]
    confidence: float = Field(ge=0, le=1)
    summary: str


async def drain(
    stream: CompletionStream, into: list[str | ToolCallDelta] | None = None
) -> list[str | ToolCallDelta]:
    """Read a stream to its end (closing it), collecting its pieces in ``into``."""
    received = into if into is not None else []
    async with stream:
        async for piece in stream:
            received.append(piece)
    return received


# -- plain completions ------------------------------------------------------------------------


async def test_completion_returns_text_usage_model_and_latency(
    fake: ScriptedOpenAI, backend: LLMBackend
) -> None:
    fake.reply_text("It is a known scanner.", usage=(120, 9))

    completion = await backend.complete(MESSAGES, max_tokens=64)

    assert completion.text == "It is a known scanner."
    assert completion.tool_calls == ()
    assert completion.parsed is None
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (120, 9)
    assert completion.usage.total_tokens == 129
    assert completion.model == MODEL
    assert completion.finish_reason == "stop"
    assert 0 < completion.latency_ms < 5000
    assert completion.as_message() == {"role": "assistant", "content": "It is a known scanner."}
    (request,) = fake.chat_requests
    assert request.model == MODEL
    assert request.messages == MESSAGES
    assert request.body["temperature"] == 0.0
    assert request.body["max_completion_tokens"] == 64
    assert "tools" not in request.body
    assert "response_format" not in request.body
    assert request.stream is False
    # No key configured: a placeholder, never whatever OPENAI_API_KEY holds.
    assert request.authorization == "Bearer EMPTY"


async def test_empty_messages_are_refused_before_sending(
    fake: ScriptedOpenAI, backend: LLMBackend
) -> None:
    with pytest.raises(ValueError, match="at least one message"):
        await backend.complete([])
    assert fake.requests == []


def test_from_settings_is_none_without_an_endpoint() -> None:
    assert LLMBackend.from_settings(Settings(llm_base_url=None)) is None
    assert LLMBackend.from_settings(Settings(llm_base_url="")) is None
    assert Settings(llm_base_url=None).llm_timeout_seconds == 30.0
    assert Settings(llm_base_url=None).llm_max_retries == 1
    assert Settings(llm_base_url=None).llm_temperature == 0.0


@pytest.mark.parametrize(
    "bad",
    [
        {"llm_timeout_seconds": 0},
        {"llm_max_retries": -1},
        {"llm_temperature": 2.5},
    ],
)
def test_llm_settings_are_bounded(bad: dict[str, float]) -> None:
    with pytest.raises(ValidationError):
        Settings(**bad)  # type: ignore[arg-type]


async def test_from_settings_uses_every_llm_setting() -> None:
    async with ScriptedOpenAI(models=("served",), api_key="sk-local-123") as fake:
        settings = Settings(
            llm_base_url=fake.base_url,
            llm_api_key="sk-local-123",
            llm_model="served",
            llm_timeout_seconds=7,
            llm_max_retries=0,
            llm_temperature=0.4,
        )
        backend = LLMBackend.from_settings(settings)
        assert backend is not None
        async with backend:
            fake.reply_text("ok")
            completion = await backend.complete(MESSAGES)
        assert completion.text == "ok"
        assert backend.timeout_seconds == 7
        (request,) = fake.chat_requests
        assert request.authorization == "Bearer sk-local-123"
        assert request.model == "served"
        assert request.body["temperature"] == 0.4


async def test_model_defaults_to_the_first_one_the_endpoint_lists() -> None:
    async with ScriptedOpenAI(models=("qwen-local", "other")) as fake:
        async with LLMBackend(base_url=fake.base_url, max_retries=0) as backend:
            assert backend.model is None
            fake.reply_text("one")
            fake.reply_text("two")
            await backend.complete(MESSAGES)
            await backend.complete(MESSAGES)
            assert backend.model == "qwen-local"
        assert [request.model for request in fake.chat_requests] == ["qwen-local", "qwen-local"]
        assert [request.path for request in fake.requests].count("/v1/models") == 1


async def test_a_model_the_endpoint_does_not_serve_is_unavailable(fake: ScriptedOpenAI) -> None:
    async with LLMBackend(base_url=fake.base_url, model="gpt-nope", max_retries=0) as backend:
        with pytest.raises(LLMUnavailable) as caught:
            await backend.complete(MESSAGES)
    assert caught.value.detail == "the LLM endpoint does not serve this model or route (HTTP 404)"
    assert fake.chat_requests[0].status == 404


# -- tool calls -------------------------------------------------------------------------------


async def test_tool_calls_come_back_with_parsed_arguments(
    fake: ScriptedOpenAI, backend: LLMBackend
) -> None:
    fake.reply_tool_calls(
        [
            ScriptedToolCall("lookup_ip", {"ip": "203.0.113.7"}, id="call_a"),
            ScriptedToolCall("lookup_ip", {"ip": "198.51.100.9", "deep": True}, id="call_b"),
        ],
        usage=(50, 20),
    )

    completion = await backend.complete(MESSAGES, tools=[LOOKUP], tool_choice="lookup_ip")

    assert completion.finish_reason == "tool_calls"
    assert [call.id for call in completion.tool_calls] == ["call_a", "call_b"]
    assert [call.name for call in completion.tool_calls] == ["lookup_ip", "lookup_ip"]
    assert completion.tool_calls[0].arguments == {"ip": "203.0.113.7"}
    assert completion.tool_calls[1].arguments == {"ip": "198.51.100.9", "deep": True}
    assert completion.tool_calls[0].arguments_error is None
    # The assistant message keeps the model's own argument text, for the transcript.
    assert completion.as_message()["tool_calls"][1] == {
        "id": "call_b",
        "type": "function",
        "function": {"name": "lookup_ip", "arguments": '{"ip": "198.51.100.9", "deep": true}'},
    }
    (request,) = fake.chat_requests
    assert request.tools == [LOOKUP.to_openai()]
    assert request.tools[0]["function"]["parameters"]["required"] == ["ip"]
    assert request.tool_choice == {"type": "function", "function": {"name": "lookup_ip"}}


async def test_tool_call_arguments_that_are_not_a_json_object_raise_a_typed_error(
    fake: ScriptedOpenAI, backend: LLMBackend
) -> None:
    fake.reply_tool_calls(
        [
            ("lookup_ip", '{"ip": "203.0.113.7"'),  # cut short
            ("lookup_ip", '["203.0.113.7"]'),  # JSON, but not an object
            ("lookup_ip", ""),  # no arguments at all: an empty object
        ]
    )

    completion = await backend.complete(MESSAGES, tools=[LOOKUP])

    broken, listed, empty = completion.tool_calls
    assert broken.arguments_error is not None
    assert "not valid JSON" in broken.arguments_error
    with pytest.raises(ToolArgumentsInvalid) as caught:
        _ = broken.arguments
    assert caught.value.code == "AURORA-5031"
    assert isinstance(caught.value, LLMOutputError)
    assert caught.value.tool_call_id == broken.id
    assert caught.value.tool_name == "lookup_ip"
    assert caught.value.raw_arguments == '{"ip": "203.0.113.7"'
    assert listed.arguments_error == "a JSON list, not an object"
    with pytest.raises(ToolArgumentsInvalid):
        _ = listed.arguments
    assert empty.arguments == {}


def test_parsed_arguments_cannot_be_changed_through_the_returned_dict() -> None:
    call = ToolCall.parse(id="c1", name="t", raw_arguments='{"hosts": ["a"]}')
    call.arguments["hosts"].append("b")
    assert call.arguments == {"hosts": ["a"]}


async def test_tool_choice_must_name_an_offered_tool(
    fake: ScriptedOpenAI, backend: LLMBackend
) -> None:
    with pytest.raises(ValueError, match="names no offered tool"):
        await backend.complete(MESSAGES, tools=[LOOKUP], tool_choice="delete_everything")
    with pytest.raises(ValueError, match="duplicate tool names"):
        await backend.complete(MESSAGES, tools=[LOOKUP, LOOKUP])
    assert fake.requests == []


async def test_a_tool_result_without_its_call_is_rejected_by_the_server(
    fake: ScriptedOpenAI, backend: LLMBackend
) -> None:
    fake.reply_text("never used")
    unpaired = [*MESSAGES, {"role": "tool", "tool_call_id": "call_x", "content": "{}"}]

    with pytest.raises(LLMUnavailable) as caught:
        await backend.complete(unpaired)

    assert caught.value.detail == "the LLM endpoint rejected the request (HTTP 400)"
    assert fake.chat_requests[0].status == 400
    assert fake.pending == 1
    fake.reply_text("drain")  # keeps the fixture's check for unused replies honest
    assert (await backend.complete(MESSAGES)).text == "never used"


# -- structured output ------------------------------------------------------------------------


async def test_structured_output_is_requested_with_the_schema_and_validated(
    fake: ScriptedOpenAI, backend: LLMBackend
) -> None:
    fake.reply_json({"severity": "high", "confidence": 0.82, "summary": "C2 beacon"})

    completion = await backend.complete(MESSAGES, response_model=Verdict)

    assert completion.parsed == Verdict(severity="high", confidence=0.82, summary="C2 beacon")
    response_format = fake.chat_requests[0].response_format
    assert response_format == {
        "type": "json_schema",
        "json_schema": {
            "name": "Verdict",
            "schema": Verdict.model_json_schema(),
            "strict": False,
        },
    }
    fake.reply_text('```json\n{"severity": "low", "confidence": 0.1, "summary": "benign"}\n```')
    fenced = await backend.complete(MESSAGES, response_model=Verdict)
    assert fenced.parsed.severity == "low"


async def test_structured_output_that_is_not_json_raises_a_typed_error(
    fake: ScriptedOpenAI, backend: LLMBackend
) -> None:
    fake.reply_text("The severity is high, I am fairly sure.")

    with pytest.raises(StructuredOutputInvalid) as caught:
        await backend.complete(MESSAGES, response_model=Verdict)

    error = caught.value
    assert error.failure == "invalid_json"
    assert error.schema_name == "Verdict"
    assert error.raw == "The severity is high, I am fairly sure."
    assert isinstance(error, LLMUnavailable)
    assert error.code == "AURORA-5031"
    # The model's text stays out of what a caller may be shown.
    assert "fairly sure" not in str(error.detail)


async def test_structured_output_that_violates_the_schema_lists_the_violations(
    fake: ScriptedOpenAI, backend: LLMBackend
) -> None:
    fake.reply_json({"severity": "apocalyptic", "confidence": 1.7})

    with pytest.raises(StructuredOutputInvalid) as caught:
        await backend.complete(MESSAGES, response_model=Verdict)

    error = caught.value
    assert error.failure == "schema_violation"
    assert sorted(tuple(e["loc"]) for e in error.errors) == [
        ("confidence",),
        ("severity",),
        ("summary",),
    ]
    assert "3 schema error(s)" in error.detail
    assert "apocalyptic" not in error.detail


@pytest.mark.parametrize(
    ("reply", "finish_reason", "failure"),
    [
        ("", "stop", "empty"),
        ("   ", "stop", "empty"),
        ('{"severity": "high", "confid', "length", "truncated"),
        ("[1, 2]", "stop", "schema_violation"),
    ],
)
async def test_structured_output_failure_kinds(
    fake: ScriptedOpenAI, backend: LLMBackend, reply: str, finish_reason: str, failure: str
) -> None:
    fake.reply_text(reply, finish_reason=finish_reason)
    with pytest.raises(StructuredOutputInvalid) as caught:
        await backend.complete(MESSAGES, response_model=Verdict)
    assert caught.value.failure == failure


# -- streaming --------------------------------------------------------------------------------


async def test_streaming_yields_text_deltas_then_holds_the_whole_reply(
    fake: ScriptedOpenAI, backend: LLMBackend
) -> None:
    fake.reply_text("Beaconing every 60 s to a fresh domain.", usage=(40, 11))

    pieces: list[str | ToolCallDelta] = []
    async with backend.stream(MESSAGES) as stream:
        async for piece in stream:
            pieces.append(piece)

    assert all(isinstance(piece, str) for piece in pieces)
    assert len(pieces) == 8
    assert "".join(str(piece) for piece in pieces) == "Beaconing every 60 s to a fresh domain."
    assert stream.done
    assert stream.text == "Beaconing every 60 s to a fresh domain."
    assert stream.usage is not None
    assert (stream.usage.prompt_tokens, stream.usage.completion_tokens) == (40, 11)
    assert stream.finish_reason == "stop"
    assert stream.model == MODEL
    assert stream.latency_ms is not None
    assert stream.latency_ms > 0
    (request,) = fake.chat_requests
    assert request.stream is True
    assert request.body["stream_options"] == {"include_usage": True}


async def test_streamed_tool_calls_arrive_as_deltas_and_are_assembled(
    fake: ScriptedOpenAI, backend: LLMBackend
) -> None:
    fake.reply_tool_calls(
        [
            ScriptedToolCall("lookup_ip", {"ip": "203.0.113.7"}, id="call_1"),
            ScriptedToolCall("lookup_ip", '{"ip": ', id="call_2"),
        ],
        text="Checking both.",
    )

    async with backend.stream(MESSAGES, tools=[LOOKUP]) as stream:
        pieces = [piece async for piece in stream]

    deltas = [piece for piece in pieces if isinstance(piece, ToolCallDelta)]
    assert [piece for piece in pieces if isinstance(piece, str)] == ["Checking ", "both."]
    assert [(d.index, d.id, d.name) for d in deltas if d.id] == [
        (0, "call_1", "lookup_ip"),
        (1, "call_2", "lookup_ip"),
    ]
    assert "".join(d.arguments for d in deltas if d.index == 0) == '{"ip": "203.0.113.7"}'
    assert len([d for d in deltas if d.index == 0]) == 4  # the head, then three fragments
    first, second = stream.tool_calls
    assert (first.id, first.arguments) == ("call_1", {"ip": "203.0.113.7"})
    assert second.arguments_error is not None
    assert stream.finish_reason == "tool_calls"
    assert stream.text == "Checking both."


async def test_a_stream_cut_off_mid_reply_is_unavailable(
    fake: ScriptedOpenAI, backend: LLMBackend
) -> None:
    fake.reply_text("one two three four", disconnect_after=3)

    received: list[str | ToolCallDelta] = []
    stream = backend.stream(MESSAGES)
    with pytest.raises(LLMUnavailable) as caught:
        await drain(stream, received)

    assert received == ["one ", "two "]
    assert caught.value.code == "AURORA-5031"
    assert "connection was lost" in caught.value.detail
    assert not stream.done


async def test_a_stream_that_ends_without_a_finish_reason_is_unavailable(
    fake: ScriptedOpenAI, backend: LLMBackend
) -> None:
    chunk = json.dumps(
        {
            "id": "c",
            "object": "chat.completion.chunk",
            "created": 1,
            "model": MODEL,
            "choices": [{"index": 0, "delta": {"content": "half"}, "finish_reason": None}],
        }
    )
    fake.reply_raw(f"data: {chunk}\n\ndata: [DONE]\n\n", content_type="text/event-stream")

    received: list[str | ToolCallDelta] = []
    with pytest.raises(LLMUnavailable) as caught:
        await drain(backend.stream(MESSAGES), received)
    assert received == ["half"]
    assert caught.value.detail == "the LLM endpoint ended the stream before the reply was complete"


async def test_a_stream_stalling_between_chunks_times_out(fake: ScriptedOpenAI) -> None:
    fake.reply_text("slow and steady", chunk_delay=5)
    async with LLMBackend(
        base_url=fake.base_url, model=MODEL, max_retries=0, timeout_seconds=0.3
    ) as backend:
        started = time.perf_counter()
        with pytest.raises(LLMUnavailable) as caught:
            await drain(backend.stream(MESSAGES))
    assert time.perf_counter() - started < 3
    assert caught.value.detail == "the LLM endpoint did not answer within 0.3 s"


async def test_leaving_a_stream_early_closes_it(fake: ScriptedOpenAI, backend: LLMBackend) -> None:
    fake.reply_text("a b c d e f g h")
    async with backend.stream(MESSAGES) as stream:
        async for piece in stream:
            assert piece == "a "
            break
    assert not stream.done
    fake.reply_text("next")
    assert (await backend.complete(MESSAGES)).text == "next"


# -- failures ---------------------------------------------------------------------------------


async def test_a_timeout_is_aurora_5031(fake: ScriptedOpenAI) -> None:
    fake.reply_text("too late", delay=5)
    async with LLMBackend(
        base_url=fake.base_url, model=MODEL, max_retries=0, timeout_seconds=0.3
    ) as backend:
        started = time.perf_counter()
        with pytest.raises(LLMUnavailable) as caught:
            await backend.complete(MESSAGES)
    assert time.perf_counter() - started < 3
    assert caught.value.code == "AURORA-5031"
    assert caught.value.status == 503
    assert caught.value.detail == "the LLM endpoint did not answer within 0.3 s"


async def test_a_refused_connection_is_aurora_5031(closed_port: int) -> None:
    async with LLMBackend(
        base_url=f"http://127.0.0.1:{closed_port}/v1", model=MODEL, max_retries=0
    ) as backend:
        with pytest.raises(LLMUnavailable) as caught:
            await backend.complete(MESSAGES)
        with pytest.raises(LLMUnavailable):
            await drain(backend.stream(MESSAGES))
    assert caught.value.code == "AURORA-5031"
    assert caught.value.detail == (
        "could not connect to the LLM endpoint, or the connection was lost"
    )
    assert str(closed_port) not in caught.value.detail


@pytest.mark.parametrize(
    ("status", "detail"),
    [
        (500, "the LLM endpoint failed (HTTP 500)"),
        (503, "the LLM endpoint failed (HTTP 503)"),
        (429, "the LLM endpoint is rate limiting requests (HTTP 429)"),
        (400, "the LLM endpoint rejected the request (HTTP 400)"),
        (403, "the LLM endpoint refused the credentials (HTTP 403)"),
    ],
)
async def test_http_errors_are_aurora_5031(
    fake: ScriptedOpenAI, backend: LLMBackend, status: int, detail: str
) -> None:
    fake.fail(status, message="internal stack: /srv/vllm/engine.py line 42")
    with pytest.raises(LLMUnavailable) as caught:
        await backend.complete(MESSAGES)
    assert caught.value.code == "AURORA-5031"
    assert caught.value.detail == detail
    assert "engine.py" not in str(caught.value)


async def test_retries_a_server_error_then_succeeds(fake: ScriptedOpenAI) -> None:
    fake.fail(500, headers={"retry-after-ms": "1"})
    fake.reply_text("second time lucky")
    async with LLMBackend(base_url=fake.base_url, model=MODEL, max_retries=1) as backend:
        completion = await backend.complete(MESSAGES)
    assert completion.text == "second time lucky"
    assert [request.status for request in fake.chat_requests] == [500, 200]


async def test_a_rejected_api_key_never_appears_in_the_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    secret = "sk-live-5d41402abc4b2a76b9719d911017c592"
    async with ScriptedOpenAI(models=(MODEL,), api_key="sk-the-right-one") as fake:
        async with LLMBackend(
            base_url=fake.base_url, model=MODEL, api_key=secret, max_retries=0
        ) as backend:
            with (
                caplog.at_level(logging.DEBUG, logger="aurora.llm"),
                pytest.raises(LLMUnavailable) as caught,
            ):
                await backend.complete(MESSAGES)
        # The server did quote the key back, as real providers do.
        assert fake.chat_requests[0].status == 401
        assert fake.chat_requests[0].authorization == f"Bearer {secret}"
    error = caught.value
    assert secret in str(error.__cause__)  # the SDK's own message quotes what the server said
    assert error.code == "AURORA-5031"
    assert error.detail == "the LLM endpoint refused the credentials (HTTP 401)"
    shown = f"{error} {error.message} {error.detail} {error.args}"
    assert secret not in shown
    assert secret[:12] not in shown
    assert caplog.records, "the failure is logged"
    assert all(secret not in record.getMessage() for record in caplog.records)


@pytest.mark.parametrize(
    "body",
    [
        "<html>502 Bad Gateway</html>",
        '{"object": "chat.completion"}',
        '{"object": "chat.completion", "model": "m", "choices": []}',
    ],
)
async def test_a_malformed_reply_is_aurora_5031(
    fake: ScriptedOpenAI, backend: LLMBackend, body: str
) -> None:
    fake.reply_raw(body)
    with pytest.raises(LLMUnavailable) as caught:
        await backend.complete(MESSAGES)
    assert caught.value.code == "AURORA-5031"
    assert "not JSON" in caught.value.detail or "malformed" in caught.value.detail


def test_output_errors_stay_out_of_the_wire_catalogue() -> None:
    assert CATALOGUE["AURORA-5031"] is LLMUnavailable
    assert StructuredOutputInvalid not in CATALOGUE.values()
    assert issubclass(StructuredOutputInvalid, LLMUnavailable)


# -- health -----------------------------------------------------------------------------------


async def test_health_lists_the_models_and_whether_ours_is_served(
    fake: ScriptedOpenAI, backend: LLMBackend
) -> None:
    report = await backend.health()
    assert report.reachable is True
    assert report.models == (MODEL,)
    assert report.model == MODEL
    assert report.model_served is True
    assert report.detail is None
    assert 0 < report.latency_ms < 5000

    fake.reply_models(["some-other-model"])
    moved = await backend.health()
    assert moved.reachable is True
    assert moved.models == ("some-other-model",)
    assert moved.model_served is False
    assert fake.requests[-1].path == "/v1/models"


async def test_health_reports_an_unreachable_endpoint(closed_port: int) -> None:
    async with LLMBackend(
        base_url=f"http://127.0.0.1:{closed_port}/v1", model=MODEL, max_retries=0
    ) as backend:
        report = await backend.health()
    assert report.reachable is False
    assert report.models == ()
    assert report.model_served is False
    assert report.detail == "could not connect to the LLM endpoint, or the connection was lost"


async def test_health_reports_refused_credentials_without_the_key() -> None:
    async with (
        ScriptedOpenAI(models=(MODEL,), api_key="sk-right") as fake,
        LLMBackend(
            base_url=fake.base_url, model=MODEL, api_key="sk-wrong-key-0123", max_retries=0
        ) as backend,
    ):
        report = await backend.health()
    assert report.reachable is False
    assert report.detail == "the LLM endpoint refused the credentials (HTTP 401)"
    assert "sk-wrong" not in repr(report)


async def test_health_times_out(fake: ScriptedOpenAI) -> None:
    fake.reply_models(delay=5)
    async with LLMBackend(
        base_url=fake.base_url, model=MODEL, max_retries=0, timeout_seconds=0.3
    ) as backend:
        report = await backend.health()
    assert report.reachable is False
    assert report.detail == "the LLM endpoint did not answer within 0.3 s"
    assert report.latency_ms < 3000
