"""JSON-RPC 2.0 framing, ACP error codes, and the routing metadata carried in ``params._meta``."""

from __future__ import annotations

import asyncio
import json
import random
import re
import secrets
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any, Final

import orjson
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    TypeAdapter,
)
from websockets.asyncio.connection import Connection
from websockets.protocol import State

from core.errors import AuroraError
from core.validation import EARLIEST, LATEST, MAX_JSON_DEPTH, UtcDatetime, json_depth

JSONRPC: Final = "2.0"

# Standard JSON-RPC 2.0 codes.
PARSE_ERROR: Final = -32700
INVALID_REQUEST: Final = -32600
METHOD_NOT_FOUND: Final = -32601
INVALID_PARAMS: Final = -32602
INTERNAL_ERROR: Final = -32603

# ACP codes, in the implementation-defined server-error range -32000..-32099.
OVERLOADED: Final = -32000
"""Too many requests in flight on this connection; retry after ``data.retry_after_ms``."""
DEADLINE_EXCEEDED: Final = -32001
HOP_LIMIT_EXCEEDED: Final = -32002
CANCELLED: Final = -32003
PLATFORM_ERROR: Final = -32010
"""A platform (AURORA) error: ``data.aurora_code`` names it."""
UNAVAILABLE: Final = -32011
"""The agent cannot serve right now (shutting down, a dependency down); retryable."""

MESSAGES: Final = {
    PARSE_ERROR: "Parse error",
    INVALID_REQUEST: "Invalid Request",
    METHOD_NOT_FOUND: "Method not found",
    INVALID_PARAMS: "Invalid params",
    INTERNAL_ERROR: "Internal error",
    OVERLOADED: "Overloaded",
    DEADLINE_EXCEEDED: "Deadline exceeded",
    HOP_LIMIT_EXCEEDED: "Hop limit exceeded",
    CANCELLED: "Request cancelled",
    PLATFORM_ERROR: "Platform error",
    UNAVAILABLE: "Agent unavailable",
}

RETRYABLE_CODES: Final = frozenset({OVERLOADED, UNAVAILABLE})
RETRYABLE_AURORA_CODES: Final = frozenset({"AURORA-5030", "AURORA-5031", "AURORA-5032"})

CANCEL_METHOD: Final = "$/cancel"
THOUGHT_METHOD: Final = "agent.thought"
TOOL_CALL_METHOD: Final = "agent.tool_call"

MAX_FRAME_DEPTH: Final = MAX_JSON_DEPTH
"""Deepest nesting of arrays and objects a frame may have (the platform's JSON limit): deeper
frames are refused, so nothing downstream (validation, serialisation, a replay) meets them."""

TRACEPARENT = re.compile(r"^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$")


class RpcError(Exception):
    """A JSON-RPC error to send back (server side) or that came back (client side)."""

    def __init__(self, code: int, message: str | None = None, data: Any = None) -> None:
        self.code = code
        self.message = message or MESSAGES.get(code, "Server error")
        self.data = data
        super().__init__(f"{self.code} {self.message}")

    @property
    def retryable(self) -> bool:
        if self.code in RETRYABLE_CODES:
            return True
        return isinstance(self.data, dict) and self.data.get("aurora_code") in (
            RETRYABLE_AURORA_CODES
        )

    @property
    def aurora_code(self) -> str | None:
        if isinstance(self.data, dict):
            code = self.data.get("aurora_code")
            return code if isinstance(code, str) else None
        return None

    @classmethod
    def from_aurora(cls, err: AuroraError) -> RpcError:
        return cls(
            PLATFORM_ERROR,
            err.message,
            {"aurora_code": err.code, "http_status": err.status, "detail": err.detail},
        )

    def to_dict(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.data is not None:
            error["data"] = self.data
        return error


def encode(payload: Any) -> bytes:
    """JSON as UTF-8 bytes (orjson: this runs twice per call); values orjson refuses (ints past
    64 bits, say) go through the standard library."""
    try:
        return orjson.dumps(payload)
    except TypeError:
        return json.dumps(payload, default=str).encode()


class FrameTooDeep(ValueError):
    """A frame that is JSON but nests deeper than allowed; ``message`` is what it parsed to
    (so a server can still answer the request's id)."""

    def __init__(self, message: Any, limit: int) -> None:
        super().__init__(f"nested more than {limit} levels deep")
        self.message = message


def decode(frame: str | bytes, *, max_depth: int | None = MAX_FRAME_DEPTH) -> Any:
    """Parse one frame; ValueError when it is not JSON (nesting too deep to parse included),
    :class:`FrameTooDeep` (a ValueError) when it parses but nests past ``max_depth``."""
    try:
        message = orjson.loads(frame)
    except orjson.JSONDecodeError:
        # orjson refuses some valid JSON (integers past 64 bits): let the standard parser judge.
        # Past orjson's own depth limit (1,024) the standard parser runs out of stack instead.
        try:
            message = json.loads(frame)
        except RecursionError as err:
            raise ValueError("nested too deeply to parse") from err
    if max_depth is not None and _deeper_than(message, frame, max_depth):
        raise FrameTooDeep(message, max_depth)
    return message


def _deeper_than(message: Any, frame: str | bytes, limit: int) -> bool:
    # Nesting cannot exceed the number of opening brackets in the text (strings included):
    # nearly every frame is cleared by two counts in C instead of a walk over its values.
    if isinstance(frame, str):
        brackets = frame.count("[") + frame.count("{")
    else:
        brackets = frame.count(b"[") + frame.count(b"{")
    return brackets > limit and json_depth(message, stop_at=limit) > limit


def error_response(request_id: Any, error: RpcError) -> dict[str, Any]:
    return {"jsonrpc": JSONRPC, "error": error.to_dict(), "id": request_id}


def result_response(request_id: Any, result: Any) -> dict[str, Any]:
    return {"jsonrpc": JSONRPC, "result": result, "id": request_id}


def notification(method: str, params: dict[str, Any]) -> dict[str, Any]:
    return {"jsonrpc": JSONRPC, "method": method, "params": params}


# Trace ids and idempotency keys need uniqueness, not secrecy: a seeded PRNG gives that without
# a system call per request (this runs on every handoff).
_ids = random.Random(secrets.randbits(128))  # noqa: S311 - uniqueness, not secrecy


def unique_hex(bits: int = 128) -> str:
    """A random identifier of ``bits`` bits as lower-case hex (never all zeros)."""
    return f"{_ids.getrandbits(bits) | 1:0{bits // 4}x}"


def new_traceparent() -> str:
    """A fresh W3C trace context (version 00, sampled)."""
    ids = unique_hex(192)
    return f"00-{ids[:32]}-{ids[32:]}-01"


def child_traceparent(parent: str | None) -> str:
    """The same trace with a new span id, or a new trace when there is no valid parent."""
    if parent is None or not TRACEPARENT.match(parent):
        return new_traceparent()
    return f"{parent[:36]}{unique_hex(64)}{parent[52:]}"


class DeadlineSweeper[K]:
    """Expires work past its deadline with one timer task for all of it, instead of a timer
    handle per request (thousands a second would churn the event loop's timer heap).

    ``add(key, deadline)`` with a loop-clock deadline; every ``tick`` seconds the keys whose
    deadline has passed are handed to ``expire`` and forgotten. Precision is one tick.
    """

    def __init__(self, expire: Callable[[K], None], tick: float = 0.01) -> None:
        self._expire = expire
        self._tick = tick
        self._entries: dict[K, float] = {}
        self._task: asyncio.Task[None] | None = None

    def add(self, key: K, deadline: float) -> None:
        self._entries[key] = deadline
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._sweep())

    def discard(self, key: K) -> None:
        self._entries.pop(key, None)

    async def _sweep(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._entries:
                await asyncio.sleep(self._tick)
                now = loop.time()
                expired = [key for key, deadline in self._entries.items() if deadline <= now]
                for key in expired:
                    del self._entries[key]
                    self._expire(key)
        finally:
            self._task = None

    def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
        self._entries.clear()


HOLD_CHUNKS: Final = 32
"""Most pieces of framed data (a frame is one or two: header and payload) a
:class:`FrameWriter` keeps back while holding before it writes them."""


class FrameWriter:
    """Sends UTF-8 text frames on one WebSocket connection, each framed and written to the
    transport in the call: ``Connection.send`` does the same behind an async context manager
    and fragmentation bookkeeping that a whole small frame does not need, and that cost is
    most of what the loop spends sending one.

    :meth:`send` waits only for the connection's own flow control (its write buffer over the
    high-water mark); on a connection that is not open it raises ``ConnectionClosed``, as
    ``Connection.send`` does. Frames leave in the order they are sent.

    Between :meth:`hold` and :meth:`flush` the framed bytes are kept and then written in one
    system call. A server holds while it answers requests that arrived together and are
    already read (that work runs without yielding to the loop, so no reply waits on anything
    but its neighbours) and flushes before it waits for more. Holding frames until the next
    turn of the event loop instead delays every reply by a turn, and measured with
    ``benchmarks/acp.py`` on a quiet machine it lost more than it saved (0.58 of the echo's
    throughput against 0.71 written at once).
    """

    __slots__ = ("_connection", "_held")

    def __init__(self, connection: Connection) -> None:
        self._connection = connection
        self._held: list[bytes] | None = None

    def hold(self) -> None:
        """Keep what is sent from now on until :meth:`flush`."""
        if self._held is None:
            self._held = []

    def flush(self) -> None:
        """Write what was held, in one system call, and stop holding."""
        held, self._held = self._held, None
        if held:
            self._write(b"".join(held))

    async def send(self, frame: bytes) -> None:
        connection = self._connection
        protocol = connection.protocol
        if protocol.state is not State.OPEN:
            await connection.send(frame, text=True)  # raises ConnectionClosed, as it should
            return
        protocol.send_text(frame)
        held = self._held
        if held is not None:
            held.extend(protocol.data_to_send())
            if len(held) >= HOLD_CHUNKS:  # the first of a long burst does not wait for all
                self._held = []
                self._write(b"".join(held))
            return
        self._write(b"".join(protocol.data_to_send()))
        if connection.paused:
            await connection.drain()

    async def drain(self) -> None:
        """Wait while the connection's write buffer is over its high-water mark."""
        if self._connection.paused:
            await self._connection.drain()

    def _write(self, data: bytes) -> None:
        connection = self._connection
        try:
            connection.transport.write(data)
        except Exception as err:  # as in Connection.send: a failed write loses the connection
            connection.set_connection_exc(err)
            connection.transport.abort()


_MOMENT = TypeAdapter(UtcDatetime)


def _epoch_seconds(value: Any) -> Any:
    """An ISO 8601 moment with a zone (text, or a datetime in process) as seconds since the
    epoch, checked as every moment of the platform is; anything else goes on to the number's
    own checks."""
    if not isinstance(value, str | datetime):
        return value
    return _MOMENT.validate_python(value).timestamp()


EARLIEST_SECONDS: Final = EARLIEST.timestamp()
LATEST_SECONDS: Final = LATEST.timestamp()
Deadline = Annotated[
    float,
    Strict(),  # a number is seconds: never a bool, never milliseconds guessed from its size
    Field(ge=EARLIEST_SECONDS, le=LATEST_SECONDS, allow_inf_nan=False),
    BeforeValidator(_epoch_seconds),
]
"""An absolute deadline as seconds since the epoch, from a number of seconds or ISO 8601 text
with a zone, within the years the platform accepts. Kept as a number: the server needs only
the seconds left, and a number is checked in pydantic's compiled core (a datetime cost a
microsecond more a call to build, check and read back)."""


class Meta(BaseModel):
    """Routing metadata of one ACP request (``params._meta``)."""

    model_config = ConfigDict(extra="allow", frozen=True)

    traceparent: str | None = Field(default=None, pattern=TRACEPARENT.pattern)
    """W3C trace context: ``00-<32 hex trace id>-<16 hex span id>-<2 hex flags>``."""
    investigation_id: str | None = Field(default=None, max_length=128)
    sender: str | None = Field(default=None, max_length=128)
    target: str | None = Field(default=None, max_length=128)
    hop: int = Field(default=0, ge=0)
    deadline: Deadline | None = None
    """Absolute: seconds since the epoch, or ISO 8601 with a zone (UTC, within the years the
    platform accepts: anything else is refused, never an overflow)."""
    idempotency_key: str | None = Field(default=None, min_length=1, max_length=200)
    prompt_version: str | None = Field(default=None, max_length=64)

    def seconds_left(self) -> float | None:
        if self.deadline is None:
            return None
        return self.deadline - time.time()

    def deadline_text(self) -> str | None:
        """The deadline as ISO 8601 in UTC, for messages."""
        return (
            None
            if self.deadline is None
            else datetime.fromtimestamp(self.deadline, UTC).isoformat()
        )
