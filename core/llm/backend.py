"""The LLM backend: any OpenAI-compatible chat completions endpoint, through the official SDK.

vLLM's OpenAI-compatible server locally, or a hosted API. Every failure to get an answer
(timeout, refused connection, HTTP error, a stream cut short) becomes
:class:`~core.errors.LLMUnavailable` (AURORA-5031) whose ``detail`` names the kind of failure
and never the API key, the endpoint's own error text or a traceback; a reply that arrives but
cannot be used raises one of the subclasses in :mod:`core.llm.errors`.

The SDK is imported when a backend is made, not with this module: a process without an LLM
(every agent and the gateway by default) never loads it.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import re
import time
from collections.abc import AsyncGenerator, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, Self, overload

from pydantic import BaseModel, ValidationError

from core.errors import LLMUnavailable
from core.llm.errors import StructuredFailure, StructuredOutputInvalid
from core.llm.types import (
    Completion,
    HealthReport,
    Message,
    Tool,
    ToolCall,
    ToolCallDelta,
    Usage,
)
from core.settings import Settings

if TYPE_CHECKING:
    import openai
    from openai.types.chat import (
        ChatCompletion,
        ChatCompletionChunk,
        ChatCompletionMessageToolCallUnion,
    )

logger = logging.getLogger("aurora.llm")

type ToolChoice = Literal["auto", "none", "required"] | str
"""``auto`` / ``none`` / ``required``, or the name of one offered tool to force."""


@functools.cache
def _exchange_errors() -> tuple[type[Exception], ...]:
    """What the SDK raises when an exchange fails (a 200 body that is not JSON included)."""
    import httpx2  # the transport of openai>=3: its errors surface while a stream is read
    import openai

    return (openai.APIError, httpx2.HTTPError, json.JSONDecodeError)


_PLACEHOLDER_KEY = "EMPTY"  # what vLLM's docs send when the server has no --api-key
_SCHEMA_NAME = re.compile(r"[^A-Za-z0-9_-]+")


class LLMBackend:
    """A client of one OpenAI-compatible endpoint and model. Open it with :meth:`from_settings`
    (or the constructor), use it from one event loop, and :meth:`close` it (or ``async with``).

    ``model=None`` uses the first model the endpoint lists (vLLM serves one), found on first use.
    """

    def __init__(
        self,
        *,
        base_url: str,
        model: str | None = None,
        api_key: str | None = None,
        timeout_seconds: float = 30.0,
        max_retries: int = 1,
        temperature: float = 0.0,
    ) -> None:
        self.base_url = base_url
        self.timeout_seconds = timeout_seconds
        self.temperature = temperature
        self._model = model
        self._model_lock = asyncio.Lock()
        import openai

        # The key is passed explicitly so the SDK never falls back to OPENAI_API_KEY.
        self._client = openai.AsyncOpenAI(
            base_url=base_url,
            api_key=api_key or _PLACEHOLDER_KEY,
            timeout=timeout_seconds,
            max_retries=max_retries,
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> LLMBackend | None:
        """The configured backend, or None when no ``llm_base_url`` is set (no LLM)."""
        if not settings.llm_base_url:
            return None
        return cls(
            base_url=settings.llm_base_url,
            model=settings.llm_model,
            api_key=(settings.llm_api_key.get_secret_value() if settings.llm_api_key else None),
            timeout_seconds=settings.llm_timeout_seconds,
            max_retries=settings.llm_max_retries,
            temperature=settings.llm_temperature,
        )

    @property
    def model(self) -> str | None:
        """The model asked for: configured, or found on first use; None before that."""
        return self._model

    async def close(self) -> None:
        """Close the HTTP connections."""
        await self._client.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # -- completions -------------------------------------------------------------------------

    @overload
    async def complete(
        self,
        messages: Sequence[Message],
        *,
        tools: Sequence[Tool] | None = None,
        tool_choice: ToolChoice | None = None,
        response_model: None = None,
        max_tokens: int | None = None,
    ) -> Completion[None]: ...

    @overload
    async def complete[M: BaseModel](
        self,
        messages: Sequence[Message],
        *,
        tools: Sequence[Tool] | None = None,
        tool_choice: ToolChoice | None = None,
        response_model: type[M],
        max_tokens: int | None = None,
    ) -> Completion[M]: ...

    async def complete(
        self,
        messages: Sequence[Message],
        *,
        tools: Sequence[Tool] | None = None,
        tool_choice: ToolChoice | None = None,
        response_model: type[BaseModel] | None = None,
        max_tokens: int | None = None,
    ) -> Completion[Any]:
        """One chat completion.

        With ``tools``, the reply's tool calls come back parsed (see :class:`ToolCall`). With
        ``response_model``, the model is asked for JSON of that model's schema and the reply is
        validated: :class:`StructuredOutputInvalid` when it is empty, refused, truncated, not
        JSON, or off-schema. :class:`LLMUnavailable` when no reply could be had.
        """
        request = await self._request(messages, tools, tool_choice, max_tokens)
        if response_model is not None:
            request["response_format"] = response_format(response_model)
        started = time.perf_counter()
        try:
            response: ChatCompletion = await self._client.chat.completions.create(**request)
        except _exchange_errors() as err:
            raise self._unavailable(err) from err
        latency_ms = (time.perf_counter() - started) * 1000
        try:
            # The SDK builds responses without validating them: a server that leaves out
            # required fields yields objects that fail here, not a typed error.
            choice = response.choices[0]
            message = choice.message
            calls = tuple(_tool_call(call) for call in message.tool_calls or ())
            usage = _usage(response.usage)
            model = str(response.model)
            text, refusal, finish_reason = message.content, message.refusal, choice.finish_reason
            if not isinstance(text, str | None) or not isinstance(refusal, str | None):
                raise TypeError("message content is not text")
        except (AttributeError, IndexError, TypeError, ValueError) as err:
            raise self._unavailable(_Fault("the LLM endpoint sent a malformed reply")) from err
        parsed = None
        if response_model is not None:
            parsed = validate_reply(
                response_model, text, finish_reason=finish_reason, refusal=refusal
            )
        return Completion(
            text=text,
            tool_calls=calls,
            parsed=parsed,
            usage=usage,
            model=model,
            latency_ms=latency_ms,
            finish_reason=finish_reason,
        )

    def stream(
        self,
        messages: Sequence[Message],
        *,
        tools: Sequence[Tool] | None = None,
        tool_choice: ToolChoice | None = None,
        max_tokens: int | None = None,
    ) -> CompletionStream:
        """A streamed chat completion: iterate it for text deltas (``str``) and tool-call
        pieces (:class:`ToolCallDelta`); after the end it holds the whole reply (``text``,
        ``tool_calls``, ``usage`` when the endpoint reports it, ``finish_reason``). The request
        is sent on first iteration; ``async with`` (or :meth:`CompletionStream.aclose`) closes it
        when the caller stops early."""
        return CompletionStream(self, messages, tools, tool_choice, max_tokens)

    # -- health ------------------------------------------------------------------------------

    async def health(self) -> HealthReport:
        """Probe ``GET /models``: reachable or not (with a safe reason), the models listed,
        whether the configured one is among them, and the round trip in milliseconds."""
        started = time.perf_counter()
        try:
            page = await self._client.models.list()
        except _exchange_errors() as err:
            # No warning: a monitor probes a down endpoint often, and the report says why.
            failure = self._unavailable(err, quiet=True)
            return HealthReport(
                reachable=False,
                latency_ms=(time.perf_counter() - started) * 1000,
                models=(),
                model=self._model,
                model_served=False,
                detail=str(failure.detail),
            )
        latency_ms = (time.perf_counter() - started) * 1000
        models = tuple(entry.id for entry in page.data)
        model = self._model if self._model is not None else (models[0] if models else None)
        return HealthReport(
            reachable=True,
            latency_ms=latency_ms,
            models=models,
            model=model,
            model_served=model is not None and model in models,
        )

    # -- internals ---------------------------------------------------------------------------

    async def _resolve_model(self) -> str:
        if self._model is not None:
            return self._model
        async with self._model_lock:
            if self._model is None:
                try:
                    page = await self._client.models.list()
                except _exchange_errors() as err:
                    raise self._unavailable(err) from err
                if not page.data:
                    raise LLMUnavailable("the LLM endpoint lists no model")
                self._model = page.data[0].id
            return self._model

    async def _request(
        self,
        messages: Sequence[Message],
        tools: Sequence[Tool] | None,
        tool_choice: ToolChoice | None,
        max_tokens: int | None,
    ) -> dict[str, Any]:
        if not messages:
            raise ValueError("a chat completion needs at least one message")
        request: dict[str, Any] = {
            "model": await self._resolve_model(),
            "messages": [dict(message) for message in messages],
            "temperature": self.temperature,
        }
        if tools:
            names = [tool.name for tool in tools]
            if len(set(names)) != len(names):
                raise ValueError(f"duplicate tool names: {sorted(names)}")
            # Already in the wire format: sent as they are, past the SDK's request transform
            # (which walks every schema, milliseconds a request for a dozen tools).
            request["extra_body"] = {"tools": [tool.to_openai() for tool in tools]}
        if tool_choice is not None:
            if tool_choice in ("auto", "none", "required"):
                request["tool_choice"] = tool_choice
            elif tools and tool_choice in {tool.name for tool in tools}:
                request["tool_choice"] = {"type": "function", "function": {"name": tool_choice}}
            else:
                raise ValueError(f"tool_choice {tool_choice!r} names no offered tool")
        if max_tokens is not None:
            # OpenAI's current name (``max_tokens`` is deprecated there); vLLM takes both.
            request["max_completion_tokens"] = max_tokens
        return request

    def _unavailable(self, err: Exception, *, quiet: bool = False) -> LLMUnavailable:
        """The AURORA-5031 for a failed exchange, with a detail that quotes nothing received."""
        detail = _failure_detail(err, self.timeout_seconds)
        logger.log(
            logging.DEBUG if quiet else logging.WARNING,
            "LLM request failed: %s (%s)",
            detail,
            type(err).__name__,
        )
        return LLMUnavailable(detail)


class CompletionStream:
    """One streamed chat completion; see :meth:`LLMBackend.stream`."""

    def __init__(
        self,
        backend: LLMBackend,
        messages: Sequence[Message],
        tools: Sequence[Tool] | None,
        tool_choice: ToolChoice | None,
        max_tokens: int | None,
    ) -> None:
        self._backend = backend
        self._args = (messages, tools, tool_choice, max_tokens)
        self._events: AsyncGenerator[str | ToolCallDelta] | None = None
        self._sdk_stream: openai.AsyncStream[ChatCompletionChunk] | None = None
        self._parts: list[str] = []
        self._calls: dict[int, list[str]] = {}  # index -> [id, name, argument text]
        self.text: str | None = None
        self.tool_calls: tuple[ToolCall, ...] = ()
        self.usage: Usage | None = None
        self.model: str | None = None
        self.finish_reason: str | None = None
        self.latency_ms: float | None = None
        self.done = False

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> str | ToolCallDelta:
        if self._events is None:
            self._events = self._run()
        return await anext(self._events)

    async def aclose(self) -> None:
        """Stop reading and close the HTTP response (harmless after the end)."""
        if self._events is not None:
            await self._events.aclose()
        if self._sdk_stream is not None:
            await self._sdk_stream.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def _run(self) -> AsyncGenerator[str | ToolCallDelta]:
        backend = self._backend
        request = await backend._request(*self._args)
        request["stream"] = True
        request["stream_options"] = {"include_usage": True}
        started = time.perf_counter()
        try:
            self._sdk_stream = await backend._client.chat.completions.create(**request)
            async for chunk in self._sdk_stream:
                try:
                    pieces = self._take(chunk)
                except (AttributeError, TypeError, ValueError) as err:
                    raise _Fault("the LLM endpoint sent a malformed stream chunk") from err
                for piece in pieces:
                    yield piece
        except _Fault as err:
            raise backend._unavailable(err) from err
        except _exchange_errors() as err:
            raise backend._unavailable(err) from err
        finally:
            if self._sdk_stream is not None:
                await self._sdk_stream.close()
        self.latency_ms = (time.perf_counter() - started) * 1000
        if self.finish_reason is None:
            # The body ended without a finish_reason: the server cut the reply short.
            raise backend._unavailable(
                _Fault("the LLM endpoint ended the stream before the reply was complete")
            )
        self.text = "".join(self._parts) if self._parts else None
        self.tool_calls = tuple(
            ToolCall.parse(id=call_id, name=name, raw_arguments=arguments)
            for _, (call_id, name, arguments) in sorted(self._calls.items())
        )
        self.done = True

    def _take(self, chunk: ChatCompletionChunk) -> list[str | ToolCallDelta]:
        self.model = chunk.model or self.model
        if chunk.usage is not None:
            self.usage = _usage(chunk.usage)
        pieces: list[str | ToolCallDelta] = []
        for choice in chunk.choices:
            if choice.index != 0:
                continue
            delta = choice.delta
            if delta.content:
                self._parts.append(delta.content)
                pieces.append(delta.content)
            for call in delta.tool_calls or ():
                function = call.function
                name = function.name if function else None
                fragment = (function.arguments if function else None) or ""
                entry = self._calls.setdefault(call.index, ["", "", ""])
                entry[0] = call.id or entry[0]
                entry[1] = name or entry[1]
                entry[2] += fragment
                pieces.append(ToolCallDelta(call.index, call.id, name, fragment))
            if choice.finish_reason is not None:
                self.finish_reason = choice.finish_reason
        return pieces


class _Fault(Exception):
    """A reply that broke the protocol, described in our own words."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


def _tool_call(call: ChatCompletionMessageToolCallUnion) -> ToolCall:
    if call.type == "function":
        return ToolCall.parse(
            id=call.id, name=call.function.name, raw_arguments=call.function.arguments
        )
    return ToolCall(call.id, call.custom.name, call.custom.input, "not a function tool call")


def response_format(model: type[BaseModel]) -> dict[str, Any]:
    """The ``json_schema`` response format asking for JSON of ``model``'s schema.

    ``strict`` stays off: OpenAI's strict mode accepts only a subset of JSON Schema that plain
    pydantic schemas often leave (defaults, optional fields), and vLLM constrains decoding to the
    schema either way. The reply is validated with pydantic regardless.
    """
    return {
        "type": "json_schema",
        "json_schema": {
            "name": _SCHEMA_NAME.sub("_", model.__name__)[:64] or "response",
            "schema": model.model_json_schema(),
            "strict": False,
        },
    }


def validate_reply[M: BaseModel](
    model: type[M],
    text: str | None,
    *,
    finish_reason: str | None = None,
    refusal: str | None = None,
) -> M:
    """``text`` validated as JSON of ``model``; :class:`StructuredOutputInvalid` saying why not.

    A reply wrapped in one Markdown code fence (as chat models like to write) is unwrapped.
    """
    name = model.__name__

    def invalid(failure: StructuredFailure, reason: str, **extra: Any) -> StructuredOutputInvalid:
        return StructuredOutputInvalid(
            schema_name=name, failure=failure, reason=reason, raw=text, **extra
        )

    if refusal:
        raise invalid("refused", "the model refused to answer")
    body = _unfence(text or "")
    if not body:
        raise invalid("empty", "the reply is empty")
    try:
        json.loads(body)
    except json.JSONDecodeError as err:
        if finish_reason == "length":
            raise invalid("truncated", "the reply was cut off at the token limit") from err
        raise invalid("invalid_json", f"not valid JSON ({err.msg} at char {err.pos})") from err
    try:
        return model.model_validate_json(body)
    except ValidationError as err:
        errors = err.errors(include_url=False, include_input=False, include_context=False)
        where = "; ".join(
            f"{'.'.join(str(part) for part in error['loc']) or '<root>'}: {error['msg']}"
            for error in errors[:5]
        )
        raise invalid(
            "schema_violation",
            f"{len(errors)} schema error(s): {where}",
            errors=[dict(error) for error in errors],
        ) from err


_FENCE = re.compile(r"\A```[A-Za-z0-9_-]*\s*\n(.*?)\n?```\Z", re.S)


def _unfence(text: str) -> str:
    stripped = text.strip()
    match = _FENCE.match(stripped)
    return match.group(1).strip() if match else stripped


def _usage(usage: Any) -> Usage:
    if usage is None:
        return Usage()
    prompt = int(usage.prompt_tokens or 0)
    completion = int(usage.completion_tokens or 0)
    total = int(usage.total_tokens or 0) or prompt + completion
    return Usage(prompt, completion, total)


def _failure_detail(err: Exception, timeout_seconds: float) -> str:
    """A safe, specific sentence for a failed exchange: our own words, never the error text."""
    import httpx2
    import openai

    match err:
        case openai.APITimeoutError() | httpx2.TimeoutException():
            return f"the LLM endpoint did not answer within {timeout_seconds:g} s"
        case openai.APIConnectionError() | httpx2.TransportError():
            return "could not connect to the LLM endpoint, or the connection was lost"
        case openai.AuthenticationError() | openai.PermissionDeniedError():
            return f"the LLM endpoint refused the credentials (HTTP {err.status_code})"
        case openai.RateLimitError():
            return "the LLM endpoint is rate limiting requests (HTTP 429)"
        case openai.NotFoundError():
            return "the LLM endpoint does not serve this model or route (HTTP 404)"
        case openai.APIStatusError() if err.status_code < 500:
            return f"the LLM endpoint rejected the request (HTTP {err.status_code})"
        case openai.APIStatusError():
            return f"the LLM endpoint failed (HTTP {err.status_code})"
        case _Fault():
            return err.detail
        case json.JSONDecodeError():
            return "the LLM endpoint sent a reply that is not JSON"
        case openai.APIResponseValidationError():
            return "the LLM endpoint sent a malformed response"
        case openai.APIError():
            return "the LLM endpoint reported an error"
        case _:
            return "the LLM request failed"
