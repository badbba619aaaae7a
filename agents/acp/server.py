"""The ACP server: an agent's JSON-RPC 2.0 methods served over WebSocket.

One JSON-RPC object or batch per text frame; requests on one connection run concurrently and
are answered by id. Conformant to the JSON-RPC 2.0 specification (section 7's examples included),
with ACP's routing metadata in ``params._meta``: hop limit, absolute deadline, idempotency,
trace context. Errors never carry a traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import struct
import time
import weakref
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, Final

import orjson
from pydantic import BaseModel, RootModel, ValidationError
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from agents.acp.protocol import (
    CANCEL_METHOD,
    CANCELLED,
    DEADLINE_EXCEEDED,
    HOP_LIMIT_EXCEEDED,
    INTERNAL_ERROR,
    INVALID_PARAMS,
    INVALID_REQUEST,
    JSONRPC,
    MAX_FRAME_DEPTH,
    METHOD_NOT_FOUND,
    OVERLOADED,
    PARSE_ERROR,
    THOUGHT_METHOD,
    TOOL_CALL_METHOD,
    DeadlineSweeper,
    FrameTooDeep,
    FrameWriter,
    Meta,
    RpcError,
    decode,
    encode,
    error_response,
    notification,
)
from core.errors import AuroraError
from core.security.tokens import TokenService

log = logging.getLogger("aurora.acp")

AGENT_TOKEN_TYPE = "agent"
NO_META = Meta()
_MISSING: Any = object()
_STAMP = struct.Struct("<d")


@dataclass(frozen=True, slots=True)
class AcpLimits:
    """Per-server protocol limits."""

    max_frame_bytes: int = 1_048_576
    max_depth: int = MAX_FRAME_DEPTH
    """Deepest nesting a frame may have; a deeper one is answered ``INVALID_REQUEST``."""
    max_in_flight: int = 128
    """Requests running at once on one connection; past it, ``OVERLOADED``."""
    max_batch: int = 100
    hop_limit: int = 8
    retry_after_ms: int = 50
    idempotency_ttl_seconds: float = 600.0
    idempotency_max_entries: int = 10_000


class CallContext:
    """What a method sees of its call: metadata, caller, and a way to stream notifications."""

    __slots__ = ("_connection", "caller", "meta", "method", "request_id")

    def __init__(
        self,
        *,
        connection: FrameWriter | None,
        caller: str | None,
        method: str,
        request_id: Any,
        meta: Meta,
    ) -> None:
        self._connection = connection
        self.caller = caller
        self.method = method
        self.request_id = request_id
        self.meta = meta

    async def notify(self, method: str, params: dict[str, Any]) -> None:
        """Send a notification to the caller; a closed connection is not an error here."""
        if self._connection is None:
            return
        with contextlib.suppress(ConnectionClosed):
            await self._connection.send(encode(notification(method, params)))

    async def thought(self, step: str, text: str) -> None:
        """Stream one reasoning step (``agent.thought``)."""
        await self.notify(
            THOUGHT_METHOD,
            {
                "request_id": self.request_id,
                "investigation_id": self.meta.investigation_id,
                "step": step,
                "text": text,
            },
        )

    async def tool_call(
        self, tool: str, arguments: dict[str, Any], result_summary: str, duration_ms: float
    ) -> None:
        """Report one tool call (``agent.tool_call``)."""
        await self.notify(
            TOOL_CALL_METHOD,
            {
                "request_id": self.request_id,
                "investigation_id": self.meta.investigation_id,
                "tool": tool,
                "arguments": arguments,
                "result_summary": result_summary,
                "duration_ms": round(duration_ms, 3),
            },
        )


Handler = Callable[[Any, CallContext], Awaitable[Any]]


@dataclass(frozen=True, slots=True)
class MethodSpec:
    """A served method: its handler and the pydantic models of its params and result."""

    name: str
    handler: Handler
    params: type[BaseModel] | None
    result: type[BaseModel] | None
    description: str

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "params_schema": self.params.model_json_schema() if self.params else None,
            "result_schema": self.result.model_json_schema() if self.result else None,
        }


@dataclass(slots=True)
class _Connection:
    """Per-connection state: running requests by id, for limits and ``$/cancel``."""

    writer: FrameWriter | None
    caller: str | None
    running: dict[Any, asyncio.Task[Any]] = field(default_factory=dict)
    in_flight: int = 0


def _encode_result(result: Any) -> bytes:
    """A method's result as JSON, serialised once (the reply and the idempotency record share
    it); one that is not JSON is an internal error, never a crash."""
    try:
        if isinstance(result, BaseModel):
            return result.__pydantic_serializer__.to_json(result)
        try:
            return orjson.dumps(result)
        except TypeError:
            return json.dumps(result).encode()  # what orjson refuses: ints past 64 bits, say
    except (TypeError, ValueError) as err:
        log.exception("a result could not be serialised")
        raise RpcError(INTERNAL_ERROR) from err


def _result_frame(request_id: Any, result: bytes) -> bytes:
    """``{"jsonrpc": "2.0", "result": ..., "id": ...}`` around an already serialised result."""
    return b'{"jsonrpc":"2.0","result":' + result + b',"id":' + encode(request_id) + b"}"


def _error_frame(request_id: Any, error: RpcError) -> bytes:
    return encode(error_response(request_id, error))


def _valid_id(value: Any) -> bool:
    """A JSON-RPC id: a string, a number or null."""
    return (
        value is None
        or isinstance(value, str)
        or (isinstance(value, int | float) and not isinstance(value, bool))
    )


def _replay(outcome: bytes) -> bytes:
    """The remembered outcome of an idempotent call: its serialised result, or its error
    raised again."""
    if outcome[:1] == b"E":
        payload = decode(outcome[1:], max_depth=None)  # our own bytes
        raise RpcError(payload["code"], payload.get("message"), payload.get("data"))
    return outcome[1:]


def _validation_data(err: ValidationError, prefix: tuple[str, ...] = ()) -> dict[str, Any]:
    return {
        "errors": [
            {"loc": [*prefix, *e["loc"]], "msg": e["msg"], "type": e["type"]}
            for e in err.errors(include_url=False, include_input=False, include_context=False)
        ]
    }


HOLD_BELOW_SECONDS: Final = 50e-6
"""Replies are held for one write only on a connection whose frames take less than this on
average to answer up to their first wait: a reply held behind a method that computes for
milliseconds would wait for it."""


def _buffered_frames(socket: ServerConnection) -> Callable[[], int]:
    """How many frames ``socket`` has read that its reader has not taken yet (websockets keeps
    them in its message assembler); always 0 where that is not to be seen."""
    frames = getattr(getattr(socket, "recv_messages", None), "frames", None)
    if frames is None or not hasattr(frames, "__len__"):
        return lambda: 0
    count: Callable[[], int] = frames.__len__
    return count


class AgentServer:
    """Serves one agent's methods; ``agent.card`` and ``agent.health`` are built in."""

    def __init__(
        self,
        *,
        name: str,
        version: str,
        description: str,
        tokens: TokenService | None,
        limits: AcpLimits | None = None,
        card_extra: Callable[[], dict[str, Any]] | None = None,
        health_extra: Callable[[], Awaitable[dict[str, Any]]] | None = None,
    ) -> None:
        self.name = name
        self.version = version
        self.description = description
        self.limits = limits or AcpLimits()
        self._tokens = tokens
        self._card_extra = card_extra
        self._health_extra = health_extra
        self._methods: dict[str, MethodSpec] = {}
        # Idempotency: calls still running (awaited by repeats), and outcomes of finished ones.
        self._running: dict[str, asyncio.Future[bytes]] = {}
        # FIFO expiry pops from the front: an OrderedDict does that in O(1), where a plain dict
        # would make every look at its first entry skip the holes left by earlier pops.
        self._done: OrderedDict[str, bytes] = OrderedDict()
        self._calls_since_expiry = 0
        self._expired: set[asyncio.Task[Any]] = set()
        self._deadlines: DeadlineSweeper[asyncio.Task[Any]] = DeadlineSweeper(self._past_deadline)
        self._connections: set[int] = set()
        # The agent token's subject of each authenticated socket, from handshake to handler.
        self._callers: weakref.WeakKeyDictionary[ServerConnection, str] = (
            weakref.WeakKeyDictionary()
        )
        self._started = time.monotonic()
        self.served = 0
        self.add_method("agent.card", self._card, description="This agent's card.")
        self.add_method("agent.health", self._health, description="Liveness and load.")

    def _past_deadline(self, task: asyncio.Task[Any]) -> None:
        self._expired.add(task)
        task.cancel()

    # -- registration -------------------------------------------------------------------------

    def add_method(
        self,
        name: str,
        handler: Handler,
        *,
        params: type[BaseModel] | None = None,
        result: type[BaseModel] | None = None,
        description: str = "",
    ) -> None:
        """Serve ``handler`` as ``name``; ``params`` validates by-name or by-position params."""
        if name.startswith("rpc.") or name == CANCEL_METHOD:
            raise ValueError(f"method name {name!r} is reserved")
        self._methods[name] = MethodSpec(name, handler, params, result, description)

    def method(
        self,
        name: str,
        *,
        params: type[BaseModel] | None = None,
        result: type[BaseModel] | None = None,
        description: str = "",
    ) -> Callable[[Handler], Handler]:
        """Decorator form of :meth:`add_method`."""

        def register(handler: Handler) -> Handler:
            self.add_method(name, handler, params=params, result=result, description=description)
            return handler

        return register

    @property
    def methods(self) -> dict[str, MethodSpec]:
        return dict(self._methods)

    # -- built-in methods ---------------------------------------------------------------------

    async def _card(self, _params: Any, _ctx: CallContext) -> dict[str, Any]:
        card: dict[str, Any] = {
            "name": self.name,
            "version": self.version,
            "description": self.description,
            "protocol": "acp/jsonrpc-2.0+websocket",
            "methods": [spec.describe() for spec in self._methods.values()],
            "prompt_versions": {},
            "backend": {"kind": "builtin"},
            "limits": {
                "max_frame_bytes": self.limits.max_frame_bytes,
                "max_in_flight": self.limits.max_in_flight,
                "max_batch": self.limits.max_batch,
                "hop_limit": self.limits.hop_limit,
            },
        }
        if self._card_extra is not None:
            card.update(self._card_extra())
        return card

    async def _health(self, _params: Any, _ctx: CallContext) -> dict[str, Any]:
        health: dict[str, Any] = {
            "status": "ok",
            "agent": self.name,
            "version": self.version,
            "uptime_seconds": round(time.monotonic() - self._started, 3),
            "connections": len(self._connections),
            "served": self.served,
        }
        if self._health_extra is not None:
            health.update(await self._health_extra())
        return health

    # -- dispatch -----------------------------------------------------------------------------

    async def handle_text(self, text: str | bytes, connection: _Connection) -> bytes | None:
        """Answer one frame: the serialised response, or None when nothing is due."""
        try:
            message = decode(text, max_depth=self.limits.max_depth)
        except FrameTooDeep as err:
            # JSON, but nested past any sane request: refused whole, answered to its id.
            found = err.message.get("id") if isinstance(err.message, dict) else None
            reply_id = found if _valid_id(found) else None
            return _error_frame(reply_id, RpcError(INVALID_REQUEST, data={"reason": str(err)}))
        except (ValueError, UnicodeDecodeError):
            return _error_frame(None, RpcError(PARSE_ERROR))
        if isinstance(message, list):
            if not message:
                return _error_frame(None, RpcError(INVALID_REQUEST))
            if len(message) > self.limits.max_batch:
                error = RpcError(
                    INVALID_REQUEST, data={"reason": f"batch over {self.limits.max_batch} items"}
                )
                return _error_frame(None, error)
            answers = await asyncio.gather(*(self._handle_one(m, connection) for m in message))
            replies = [a for a in answers if a is not None]
            return b"[" + b",".join(replies) + b"]" if replies else None
        return await self._handle_one(message, connection)

    async def _handle_one(self, message: Any, connection: _Connection) -> bytes | None:
        """One request's serialised response (None for a notification)."""
        if not isinstance(message, dict):
            return _error_frame(None, RpcError(INVALID_REQUEST))
        request_id: Any = message.get("id", _MISSING)
        is_notification = request_id is _MISSING
        valid_id = is_notification or _valid_id(request_id)
        reply_id = None if is_notification or not valid_id else request_id
        method = message.get("method")
        params: Any = message.get("params", _MISSING)
        if (
            message.get("jsonrpc") != JSONRPC
            or not isinstance(method, str)
            or not valid_id
            or (params is not _MISSING and not isinstance(params, dict | list))
        ):
            return _error_frame(reply_id, RpcError(INVALID_REQUEST))
        if method == CANCEL_METHOD:
            self._cancel(params, connection)
            return None if is_notification else _result_frame(request_id, b"null")
        try:
            given: dict[str, Any] | list[Any] | None = None if params is _MISSING else params
            result = await self._call(method, given, reply_id, connection)
        except RpcError as err:
            return None if is_notification else _error_frame(reply_id, err)
        return None if is_notification else _result_frame(reply_id, result)

    def _cancel(self, params: Any, connection: _Connection) -> None:
        target = params.get("id") if isinstance(params, dict) else None
        task = connection.running.get(target)
        if task is not None:
            task.cancel()

    async def _call(
        self,
        name: str,
        params: dict[str, Any] | list[Any] | None,
        request_id: Any,
        connection: _Connection,
    ) -> bytes:
        """Run one method call (idempotency, limits, deadline); its serialised result."""
        spec = self._methods.get(name)
        if spec is None:
            raise RpcError(METHOD_NOT_FOUND, data={"method": name})
        meta, arguments = self._parse_params(spec, params)
        if meta.hop > self.limits.hop_limit:
            raise RpcError(
                HOP_LIMIT_EXCEEDED, data={"hop": meta.hop, "limit": self.limits.hop_limit}
            )
        if meta.target is not None and meta.target != self.name:
            raise RpcError(
                INVALID_PARAMS,
                data={
                    "errors": [
                        {
                            "loc": ["_meta", "target"],
                            "type": "value_error",
                            "msg": f"this agent is '{self.name}', not '{meta.target}'",
                        }
                    ]
                },
            )
        if meta.idempotency_key is None:
            return await self._run_limited(spec, arguments, meta, request_id, connection)
        key = f"{connection.caller}\x1f{name}\x1f{meta.idempotency_key}"
        self._calls_since_expiry += 1
        if self._calls_since_expiry >= 256:
            self._expire_idempotent()
        done = self._done.get(key)
        if done is not None:
            return _replay(done[_STAMP.size :])
        running = self._running.get(key)
        if running is not None:
            return await asyncio.shield(running)
        future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._running[key] = future
        try:
            result = await self._run_limited(spec, arguments, meta, request_id, connection)
        except RpcError as err:
            # A retryable, cancelled or late call must be able to run again when retried.
            if not (err.retryable or err.code in {CANCELLED, DEADLINE_EXCEEDED}):
                self._remember(key, b"E" + encode(err.to_dict()))
            future.set_exception(err)
            future.exception()  # retrieved: nobody else may be waiting
            raise
        except BaseException:
            future.cancel()
            raise
        finally:
            del self._running[key]
        self._remember(key, b"R" + result)
        future.set_result(result)
        return result

    def _remember(self, key: str, outcome: bytes) -> None:
        """Keep a finished call's outcome: ``str`` keys and ``bytes`` values only, so the
        garbage collector never tracks this (possibly large) cache, which keeps tail latency
        low under load."""
        self._done[key] = _STAMP.pack(time.monotonic()) + outcome

    def _expire_idempotent(self) -> None:
        self._calls_since_expiry = 0
        horizon = time.monotonic() - self.limits.idempotency_ttl_seconds
        done = self._done
        while done:
            oldest = next(iter(done))
            if len(done) <= self.limits.idempotency_max_entries and (
                _STAMP.unpack_from(done[oldest])[0] >= horizon
            ):
                break
            done.popitem(last=False)

    def _parse_params(
        self, spec: MethodSpec, params: dict[str, Any] | list[Any] | None
    ) -> tuple[Meta, Any]:
        meta = NO_META
        if isinstance(params, dict) and "_meta" in params:
            params = dict(params)
            raw_meta = params.pop("_meta")
            try:
                meta = Meta.model_validate(raw_meta)
            except ValidationError as err:
                raise RpcError(INVALID_PARAMS, data=_validation_data(err, ("_meta",))) from err
        if spec.params is None:
            if params:
                raise RpcError(INVALID_PARAMS, data={"reason": f"{spec.name} takes no params"})
            return meta, None
        if issubclass(spec.params, RootModel):
            try:
                return meta, spec.params.model_validate(params)
            except ValidationError as err:
                raise RpcError(INVALID_PARAMS, data=_validation_data(err)) from err
        if isinstance(params, list):
            fields = list(spec.params.model_fields)
            if len(params) > len(fields):
                raise RpcError(
                    INVALID_PARAMS, data={"reason": f"at most {len(fields)} positional params"}
                )
            params = dict(zip(fields, params, strict=False))
        try:
            return meta, spec.params.model_validate(params or {})
        except ValidationError as err:
            raise RpcError(INVALID_PARAMS, data=_validation_data(err)) from err

    async def _run_limited(
        self,
        spec: MethodSpec,
        arguments: Any,
        meta: Meta,
        request_id: Any,
        connection: _Connection,
    ) -> bytes:
        if connection.in_flight >= self.limits.max_in_flight:
            raise RpcError(
                OVERLOADED,
                data={
                    "retry_after_ms": self.limits.retry_after_ms,
                    "in_flight": connection.in_flight,
                    "limit": self.limits.max_in_flight,
                },
            )
        seconds_left = meta.seconds_left()
        if seconds_left is not None and seconds_left <= 0:
            raise RpcError(DEADLINE_EXCEEDED, data={"deadline": meta.deadline_text()})
        context = CallContext(
            connection=connection.writer,
            caller=connection.caller,
            method=spec.name,
            request_id=request_id,
            meta=meta,
        )
        connection.in_flight += 1
        task = asyncio.current_task()
        assert task is not None
        tracked = request_id is not None
        if tracked:
            connection.running[request_id] = task
        if seconds_left is not None:
            self._deadlines.add(task, asyncio.get_running_loop().time() + seconds_left)
        try:
            result = await spec.handler(arguments, context)
        except asyncio.CancelledError as err:
            if task in self._expired:
                self._expired.discard(task)
                task.uncancel()
                raise RpcError(DEADLINE_EXCEEDED, data={"deadline": meta.deadline_text()}) from err
            if task.cancelling():
                task.uncancel()
                raise RpcError(CANCELLED, data={"id": request_id}) from err
            raise
        except RpcError:
            raise
        except AuroraError as err:
            raise RpcError.from_aurora(err) from err
        except ValidationError as err:
            log.warning("%s returned data that failed validation: %s", spec.name, err)
            raise RpcError(INTERNAL_ERROR) from err
        except Exception as err:
            log.exception("method %s failed (request %r)", spec.name, request_id)
            raise RpcError(INTERNAL_ERROR) from err
        finally:
            connection.in_flight -= 1
            if seconds_left is not None:
                self._deadlines.discard(task)
            if self._expired:
                self._expired.discard(task)
            if tracked:
                connection.running.pop(request_id, None)
        self.served += 1
        return _encode_result(result)

    # -- transport ----------------------------------------------------------------------------

    def _authenticate(self, connection: ServerConnection, request: Request) -> Response | None:
        if self._tokens is None:
            return None
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token:
            return self._refuse(connection, "missing bearer token")
        try:
            claims = self._tokens.verify(token.strip(), token_type=AGENT_TOKEN_TYPE)
        except AuroraError as err:
            return self._refuse(connection, err.detail or err.message)
        self._callers[connection] = claims.subject
        return None

    @staticmethod
    def _refuse(connection: ServerConnection, reason: str) -> Response:
        body = json.dumps(
            {
                "error": {
                    "code": "AURORA-4010",
                    "message": "Authentication required",
                    "detail": reason,
                }
            }
        )
        response = connection.respond(HTTPStatus.UNAUTHORIZED, body)
        response.headers = Headers(
            [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
        )
        return response

    async def _serve_connection(self, socket: ServerConnection) -> None:
        writer = FrameWriter(socket)
        connection = _Connection(writer=writer, caller=self._callers.get(socket))
        self._connections.add(id(connection))
        pending: set[asyncio.Task[None]] = set()
        loop = asyncio.get_running_loop()
        buffered = _buffered_frames(socket)
        clock = time.perf_counter
        cost = 0.0  # how long a frame's answer runs before it first waits, on average
        try:
            async for frame in socket:
                if cost < HOLD_BELOW_SECONDS and buffered():
                    # More requests are already read and answers here are quick: the replies
                    # of those answered at once go out together, in one write, once the last
                    # of them is answered (slow answers would make the held replies wait).
                    writer.hold()
                else:
                    writer.flush()
                began = clock()
                # Eager: a request that never waits (most validation errors, quick methods) is
                # answered without a trip through the event loop's ready queue.
                task = asyncio.eager_task_factory(loop, self._answer(frame, connection))
                cost += (clock() - began - cost) * 0.125
                pending.add(task)
                task.add_done_callback(pending.discard)
                if not buffered():
                    writer.flush()
                    await writer.drain()  # a peer that does not read is not sent more
        except ConnectionClosed:
            pass
        finally:
            self._connections.discard(id(connection))
            for task in list(pending):
                task.cancel()

    async def _answer(self, frame: str | bytes, connection: _Connection) -> None:
        reply = await self.handle_text(frame, connection)
        if reply is not None and connection.writer is not None:
            with contextlib.suppress(ConnectionClosed):
                await connection.writer.send(reply)

    async def start(self, host: str, port: int) -> Server:
        """Listen on ``host:port``; close the returned server to stop."""
        return await serve(
            self._serve_connection,
            host,
            port,
            process_request=self._authenticate,
            max_size=self.limits.max_frame_bytes,
            compression=None,
            max_queue=1024,
            server_header=None,
        )

    async def dispatch(self, message: str, *, caller: str | None = None) -> str | None:
        """Answer a frame without a socket (for in-process use and tests)."""
        reply = await self.handle_text(message, _Connection(writer=None, caller=caller))
        return None if reply is None else reply.decode()
