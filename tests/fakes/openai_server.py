"""A scripted OpenAI-compatible HTTP server, for tests that run the real ``openai`` client.

It listens on 127.0.0.1 (a free port), speaks the wire format of ``POST /v1/chat/completions``
(a JSON reply, or Server-Sent Events ``data: {...}`` chunks ending in ``data: [DONE]`` when the
request says ``"stream": true``) and ``GET /v1/models``, and answers each chat request with the
next reply the test scripted::

    async with ScriptedOpenAI(models=("aurora-test",)) as fake:
        fake.reply_tool_call("lookup_ip", {"ip": "203.0.113.7"})
        fake.reply_text("The address is a known scanner.", usage=(120, 9))
        backend = LLMBackend(base_url=fake.base_url, model="aurora-test", max_retries=0)
        ...
        assert fake.chat_requests[1].messages[-1]["role"] == "tool"

Replies (each is used once, in order; the same reply renders as JSON or as a stream, whichever
the request asks for):

- :meth:`reply_text` / :meth:`reply_json`: an assistant message (``reply_json`` dumps a value);
- :meth:`reply_tool_call` / :meth:`reply_tool_calls`: tool calls; arguments given as a mapping
  are sent as JSON, a ``str`` is sent verbatim (so a test can send malformed JSON);
- :meth:`reply_raw`: any HTTP body and status, verbatim;
- :meth:`fail`: an HTTP error with OpenAI's error envelope (500, 429, 401, ...);
- :meth:`reply_models` / ``fail(..., endpoint="models")``: script the next ``/v1/models`` answer,
  which otherwise lists ``models``.

Every reply takes ``delay`` (seconds before answering: for timeouts); streamed ones also take
``chunk_delay`` (between chunks) and ``disconnect_after`` (drop the connection after that many
chunks, with no ``[DONE]``). ``usage=(prompt, completion)`` sets the reported token counts;
otherwise they are estimated at about four characters a token.

Like the real servers, it checks each chat request before using a reply, and answers one that is
malformed with HTTP 400 (or 404 for a model it does not serve, 401 for a wrong API key when
``api_key`` is set) without using the scripted reply: every assistant ``tool_calls`` message must
be followed by one ``tool`` message per call id, ``tool_choice`` needs ``tools``,
``stream_options`` needs ``stream``, a ``json_schema`` response format needs a name and a schema.

Every request is recorded in :attr:`requests` (``chat_requests`` for the chat ones) with its
parsed JSON body and the status it got. A chat request that finds no reply left gets HTTP 500 and
is kept in :attr:`unexpected`; leaving the ``async with`` block then fails the test.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import re
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Literal

from aiohttp import web

from core.loopback import LoopbackServer

Endpoint = Literal["chat", "models"]

CHAT_PATH = "/v1/chat/completions"
MODELS_PATH = "/v1/models"
_SCHEMA_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_ROLES = {"system", "developer", "user", "assistant", "tool"}


@dataclass
class RecordedRequest:
    """One request the server received."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any
    """The parsed JSON body (None when there was none or it was not JSON)."""
    raw: bytes
    status: int = 0
    """The HTTP status it was answered with (0 while unanswered)."""

    def _field(self, name: str) -> Any:
        return self.body.get(name) if isinstance(self.body, dict) else None

    @property
    def model(self) -> Any:
        return self._field("model")

    @property
    def messages(self) -> list[dict[str, Any]]:
        return list(self._field("messages") or [])

    @property
    def tools(self) -> list[dict[str, Any]] | None:
        return self._field("tools")  # type: ignore[no-any-return]

    @property
    def tool_names(self) -> list[str]:
        return [tool["function"]["name"] for tool in self.tools or []]

    @property
    def tool_choice(self) -> Any:
        return self._field("tool_choice")

    @property
    def response_format(self) -> dict[str, Any] | None:
        return self._field("response_format")  # type: ignore[no-any-return]

    @property
    def stream(self) -> bool:
        return bool(self._field("stream"))

    @property
    def authorization(self) -> str | None:
        return self.headers.get("authorization")


@dataclass(frozen=True)
class ScriptedToolCall:
    """A tool call to put in a reply: ``arguments`` as a mapping (sent as JSON) or verbatim text."""

    name: str
    arguments: Mapping[str, Any] | str
    id: str | None = None

    @property
    def argument_text(self) -> str:
        if isinstance(self.arguments, str):
            return self.arguments
        return json.dumps(dict(self.arguments))


@dataclass
class _Message:
    text: str | None
    tool_calls: list[tuple[str, str, str]]  # (id, name, argument text)
    finish_reason: str
    usage: tuple[int, int] | None
    model: str | None
    chunks: list[str] | None
    delay: float
    chunk_delay: float
    disconnect_after: int | None


@dataclass
class _Failure:
    status: int
    message: str
    error_type: str
    code: str | int | None
    headers: dict[str, str]
    delay: float


@dataclass
class _Raw:
    body: bytes
    status: int
    content_type: str
    headers: dict[str, str]
    delay: float


@dataclass
class _Models:
    models: list[str] | None
    delay: float


type _Reply = _Message | _Failure | _Raw | _Models

_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "invalid_request_error",
    403: "permission_error",
    404: "NotFoundError",
    429: "rate_limit_error",
}


class _Rejected(Exception):
    def __init__(self, status: int, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param


@dataclass
class ScriptedOpenAI(LoopbackServer):
    """The scripted server; see the module docstring. Use it with ``async with``."""

    models: Sequence[str] = ("aurora-test-model",)
    api_key: str | None = None
    """When set, a request without ``Authorization: Bearer <api_key>`` gets HTTP 401."""
    strict: bool = True
    """Check chat requests as real servers do (see the module docstring)."""

    requests: list[RecordedRequest] = field(default_factory=list, init=False)
    unexpected: list[RecordedRequest] = field(default_factory=list, init=False)

    def __post_init__(self) -> None:
        self._queues: dict[Endpoint, deque[_Reply]] = {"chat": deque(), "models": deque()}
        self._ids = itertools.count(1)
        self._closing = asyncio.Event()

    # -- lifecycle ---------------------------------------------------------------------------

    def build_app(self) -> web.Application:
        app = web.Application()
        app.router.add_post(CHAT_PATH, self._chat)
        app.router.add_get(MODELS_PATH, self._models)
        return app

    async def on_close(self) -> None:
        self._closing.set()  # wakes every scripted delay, so shutdown is immediate

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
        if exc is None and self.unexpected:
            raise AssertionError(
                f"{len(self.unexpected)} chat request(s) found no scripted reply; first messages: "
                f"{self.unexpected[0].messages}"
            )

    @property
    def base_url(self) -> str:
        """What to give the client as ``base_url``: ``http://127.0.0.1:PORT/v1``."""
        return f"{self.origin}/v1"

    @property
    def chat_requests(self) -> list[RecordedRequest]:
        return [request for request in self.requests if request.path == CHAT_PATH]

    @property
    def pending(self) -> int:
        """Scripted chat replies not used yet."""
        return len(self._queues["chat"])

    # -- scripting ---------------------------------------------------------------------------

    def reply_text(
        self,
        text: str,
        *,
        finish_reason: str = "stop",
        usage: tuple[int, int] | None = None,
        model: str | None = None,
        chunks: Sequence[str] | None = None,
        delay: float = 0.0,
        chunk_delay: float = 0.0,
        disconnect_after: int | None = None,
    ) -> None:
        """Answer the next chat request with ``text``; streamed, it is split into ``chunks``
        (which must join to ``text``) or word by word."""
        if chunks is not None and "".join(chunks) != text:
            raise ValueError("chunks must join to text")
        self._queues["chat"].append(
            _Message(
                text,
                [],
                finish_reason,
                usage,
                model,
                list(chunks) if chunks is not None else None,
                delay,
                chunk_delay,
                disconnect_after,
            )
        )

    def reply_json(self, value: Any, **options: Any) -> None:
        """Answer with ``json.dumps(value)`` as the text (a structured-output reply)."""
        self.reply_text(json.dumps(value), **options)

    def reply_tool_call(
        self,
        name: str,
        arguments: Mapping[str, Any] | str,
        *,
        call_id: str | None = None,
        **options: Any,
    ) -> None:
        """Answer with one call of tool ``name``."""
        self.reply_tool_calls([ScriptedToolCall(name, arguments, call_id)], **options)

    def reply_tool_calls(
        self,
        calls: Sequence[ScriptedToolCall | tuple[str, Mapping[str, Any] | str]],
        *,
        text: str | None = None,
        usage: tuple[int, int] | None = None,
        model: str | None = None,
        delay: float = 0.0,
        chunk_delay: float = 0.0,
        disconnect_after: int | None = None,
    ) -> None:
        """Answer with several tool calls (``finish_reason="tool_calls"``), optionally after
        some ``text``. Calls without an id get ``call_<n>``."""
        scripted = [
            call if isinstance(call, ScriptedToolCall) else ScriptedToolCall(*call)
            for call in calls
        ]
        if not scripted:
            raise ValueError("at least one tool call")
        rendered = [
            (call.id or f"call_{next(self._ids)}", call.name, call.argument_text)
            for call in scripted
        ]
        self._queues["chat"].append(
            _Message(
                text,
                rendered,
                "tool_calls",
                usage,
                model,
                None,
                delay,
                chunk_delay,
                disconnect_after,
            )
        )

    def reply_raw(
        self,
        body: str | bytes,
        *,
        status: int = 200,
        content_type: str = "application/json",
        headers: Mapping[str, str] | None = None,
        delay: float = 0.0,
        endpoint: Endpoint = "chat",
    ) -> None:
        """Answer the next request to ``endpoint`` with exactly this body and status."""
        data = body.encode() if isinstance(body, str) else body
        self._queues[endpoint].append(_Raw(data, status, content_type, dict(headers or {}), delay))

    def fail(
        self,
        status: int,
        *,
        message: str | None = None,
        error_type: str | None = None,
        code: str | int | None = None,
        headers: Mapping[str, str] | None = None,
        delay: float = 0.0,
        endpoint: Endpoint = "chat",
    ) -> None:
        """Answer the next request to ``endpoint`` with HTTP ``status`` and OpenAI's error body
        ``{"error": {"message", "type", "param", "code"}}``. (The client retries 408, 409, 429
        and 5xx; send ``headers={"retry-after-ms": "1"}`` to keep its backoff short.)"""
        self._queues[endpoint].append(
            _Failure(
                status,
                message or f"scripted failure {status}",
                error_type or _ERROR_TYPES.get(status, "server_error"),
                code,
                dict(headers or {}),
                delay,
            )
        )

    def reply_models(self, models: Sequence[str] | None = None, *, delay: float = 0.0) -> None:
        """Answer the next ``/v1/models`` with ``models`` (default: the served ones)."""
        self._queues["models"].append(_Models(list(models) if models is not None else None, delay))

    # -- handlers ----------------------------------------------------------------------------

    async def _record(self, request: web.Request) -> RecordedRequest:
        raw = await request.read()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        recorded = RecordedRequest(
            request.method,
            request.path,
            {key.lower(): value for key, value in request.headers.items()},
            body,
            raw,
        )
        self.requests.append(recorded)
        return recorded

    def _check_key(self, recorded: RecordedRequest) -> None:
        if self.api_key is None:
            return
        presented = (recorded.authorization or "").removeprefix("Bearer ").strip()
        if presented != self.api_key:
            # Real providers echo (part of) the presented key: the caller must not repeat it.
            raise _Rejected(401, f"Incorrect API key provided: {presented}.")

    async def _models(self, request: web.Request) -> web.StreamResponse:
        recorded = await self._record(request)
        try:
            self._check_key(recorded)
        except _Rejected as rejected:
            return self._answer(recorded, _error_response(rejected))
        queue = self._queues["models"]
        reply = queue.popleft() if queue else _Models(None, 0.0)
        await self._sleep(reply.delay)
        if isinstance(reply, _Models):
            ids = reply.models if reply.models is not None else list(self.models)
            created = int(time.time())
            listing = [
                {"id": name, "object": "model", "created": created, "owned_by": "vllm"}
                for name in ids
            ]
            return self._answer(recorded, web.json_response({"object": "list", "data": listing}))
        if isinstance(reply, _Message):
            raise AssertionError("reply_text and friends script chat, not /v1/models")
        return self._answer(recorded, _static_response(reply))

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        recorded = await self._record(request)
        try:
            self._check_key(recorded)
            if self.strict:
                self._check_chat(recorded.body)
        except _Rejected as rejected:
            return self._answer(recorded, _error_response(rejected))
        queue = self._queues["chat"]
        if not queue:
            self.unexpected.append(recorded)
            missing = _Rejected(500, "ScriptedOpenAI: no reply scripted for this request")
            return self._answer(recorded, _error_response(missing))
        reply = queue.popleft()
        await self._sleep(reply.delay)
        if isinstance(reply, _Message):
            body = recorded.body if isinstance(recorded.body, dict) else {}
            if body.get("stream"):
                return await self._stream(request, recorded, reply, body)
            return self._answer(recorded, web.json_response(self._completion(reply, body)))
        if isinstance(reply, _Models):
            raise AssertionError("reply_models scripts /v1/models, not chat")
        return self._answer(recorded, _static_response(reply))

    def _answer(
        self, recorded: RecordedRequest, response: web.StreamResponse
    ) -> web.StreamResponse:
        recorded.status = response.status
        return response

    async def _sleep(self, seconds: float) -> None:
        """A scripted delay (what a slow-backend test is about), cut short when the server
        closes."""
        if seconds > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), seconds)

    # -- the wire format ---------------------------------------------------------------------

    def _check_chat(self, body: Any) -> None:
        if not isinstance(body, dict):
            raise _Rejected(400, "We could not parse the JSON body of your request.")
        model = body.get("model")
        if not isinstance(model, str) or not model:
            raise _Rejected(400, "you must provide a model parameter", "model")
        if model not in self.models:
            raise _Rejected(404, f"The model `{model}` does not exist.", "model")
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise _Rejected(400, "'messages' must be a non-empty array", "messages")
        open_calls: list[str] = []
        for index, message in enumerate(messages):
            where = f"messages.[{index}]"
            if not isinstance(message, dict) or message.get("role") not in _ROLES:
                raise _Rejected(400, f"Invalid value for '{where}.role'.", f"{where}.role")
            role = message["role"]
            if role == "tool":
                call_id = message.get("tool_call_id")
                if call_id not in open_calls:
                    raise _Rejected(
                        400,
                        "Invalid parameter: messages with role 'tool' must be a response to a "
                        "preceeding message with 'tool_calls'.",
                        f"{where}.role",
                    )
                open_calls.remove(call_id)
                continue
            if open_calls:
                raise _Rejected(
                    400,
                    "An assistant message with 'tool_calls' must be followed by tool messages "
                    "responding to each 'tool_call_id'. The following tool_call_ids did not have "
                    f"response messages: {', '.join(open_calls)}",
                    "messages",
                )
            if role == "assistant":
                for call in message.get("tool_calls") or []:
                    function = call.get("function") if isinstance(call, dict) else None
                    if not isinstance(function, dict) or not isinstance(
                        function.get("arguments"), str
                    ):
                        raise _Rejected(
                            400, f"Invalid '{where}.tool_calls'.", f"{where}.tool_calls"
                        )
                    open_calls.append(call.get("id"))
            elif not isinstance(message.get("content"), str | list):
                raise _Rejected(400, f"Invalid '{where}.content'.", f"{where}.content")
        if open_calls:
            raise _Rejected(
                400,
                "An assistant message with 'tool_calls' must be followed by tool messages "
                f"responding to each 'tool_call_id'. Missing: {', '.join(open_calls)}",
                "messages",
            )
        tools = body.get("tools")
        names: set[str] = set()
        for tool in tools or []:
            function = tool.get("function") if isinstance(tool, dict) else None
            if tool.get("type") != "function" or not isinstance(function, dict):
                raise _Rejected(400, "Invalid 'tools': each must be a function tool.", "tools")
            if not isinstance(function.get("name"), str):
                raise _Rejected(400, "Invalid 'tools': missing function name.", "tools")
            names.add(function["name"])
        choice = body.get("tool_choice")
        if choice is not None:
            if not tools:
                raise _Rejected(
                    400,
                    "Invalid value for 'tool_choice': 'tool_choice' is only allowed when 'tools' "
                    "are specified.",
                    "tool_choice",
                )
            if isinstance(choice, dict) and choice.get("function", {}).get("name") not in names:
                raise _Rejected(400, "Invalid 'tool_choice': no such tool.", "tool_choice")
            if isinstance(choice, str) and choice not in ("auto", "none", "required"):
                raise _Rejected(400, f"Invalid value for 'tool_choice': {choice}.", "tool_choice")
        if body.get("stream_options") is not None and not body.get("stream"):
            raise _Rejected(
                400,
                "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
                "stream_options",
            )
        response_format = body.get("response_format")
        if response_format is not None:
            kind = response_format.get("type") if isinstance(response_format, dict) else None
            if kind not in ("text", "json_object", "json_schema"):
                raise _Rejected(400, "Invalid 'response_format.type'.", "response_format")
            if kind == "json_schema":
                spec = response_format.get("json_schema")
                if (
                    not isinstance(spec, dict)
                    or not _SCHEMA_NAME.match(str(spec.get("name", "")))
                    or not isinstance(spec.get("schema"), dict)
                ):
                    raise _Rejected(
                        400, "Invalid 'response_format.json_schema'.", "response_format"
                    )

    def _usage(self, reply: _Message, body: dict[str, Any]) -> dict[str, int]:
        if reply.usage is not None:
            prompt, completion = reply.usage
        else:
            prompt = max(1, len(json.dumps(body.get("messages", []))) // 4)
            produced = len(reply.text or "") + sum(len(n) + len(a) for _, n, a in reply.tool_calls)
            completion = max(1, produced // 4)
        return {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        }

    def _completion(self, reply: _Message, body: dict[str, Any]) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": reply.text, "refusal": None}
        if reply.tool_calls:
            message["tool_calls"] = [
                {"id": call_id, "type": "function", "function": {"name": name, "arguments": args}}
                for call_id, name, args in reply.tool_calls
            ]
        return {
            "id": f"chatcmpl-{next(self._ids)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": reply.model or body.get("model") or self.models[0],
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "logprobs": None,
                    "finish_reason": reply.finish_reason,
                }
            ],
            "usage": self._usage(reply, body),
        }

    async def _stream(
        self, request: web.Request, recorded: RecordedRequest, reply: _Message, body: dict[str, Any]
    ) -> web.StreamResponse:
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )
        recorded.status = 200
        await response.prepare(request)
        stream_id = f"chatcmpl-{next(self._ids)}"
        model = reply.model or body.get("model") or self.models[0]
        created = int(time.time())

        def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
            return {
                "id": stream_id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "choices": [
                    {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
                ],
            }

        events: list[dict[str, Any]] = [chunk({"role": "assistant", "content": ""})]
        if reply.text:
            pieces = reply.chunks if reply.chunks is not None else _words(reply.text)
            events.extend(chunk({"content": piece}) for piece in pieces)
        for index, (call_id, name, args) in enumerate(reply.tool_calls):
            head = {"index": index, "id": call_id, "type": "function"}
            events.append(
                chunk({"tool_calls": [{**head, "function": {"name": name, "arguments": ""}}]})
            )
            events.extend(
                chunk({"tool_calls": [{"index": index, "function": {"arguments": fragment}}]})
                for fragment in _fragments(args)
            )
        events.append(chunk({}, reply.finish_reason))
        options = body.get("stream_options") or {}
        if options.get("include_usage"):
            events.append(
                {
                    "id": stream_id,
                    "object": "chat.completion.chunk",
                    "created": created,
                    "model": model,
                    "choices": [],
                    "usage": self._usage(reply, body),
                }
            )
        for sent, event in enumerate(events):
            if reply.disconnect_after is not None and sent >= reply.disconnect_after:
                # Drop the connection mid-body, as a crashed server would: no terminating chunk.
                if request.transport is not None:
                    request.transport.abort()
                return response
            if sent and reply.chunk_delay:
                await self._sleep(reply.chunk_delay)
            await response.write(f"data: {json.dumps(event)}\n\n".encode())
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response


def _words(text: str) -> list[str]:
    return re.findall(r"\S+\s*|\s+", text)


def _fragments(text: str) -> list[str]:
    if len(text) < 3:
        return [text] if text else []
    third = len(text) // 3
    return [text[:third], text[third : 2 * third], text[2 * third :]]


def _error_response(rejected: _Rejected) -> web.Response:
    return _error(
        rejected.status,
        rejected.message,
        _ERROR_TYPES.get(rejected.status, "server_error"),
        None,
        rejected.param,
        {},
    )


def _error(
    status: int,
    message: str,
    error_type: str,
    code: str | int | None,
    param: str | None,
    headers: Mapping[str, str],
) -> web.Response:
    body = {"error": {"message": message, "type": error_type, "param": param, "code": code}}
    return web.json_response(body, status=status, headers=dict(headers))


def _static_response(reply: _Failure | _Raw) -> web.Response:
    if isinstance(reply, _Failure):
        return _error(
            reply.status, reply.message, reply.error_type, reply.code, None, reply.headers
        )
    return web.Response(
        body=reply.body, status=reply.status, content_type=reply.content_type, headers=reply.headers
    )
