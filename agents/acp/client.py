"""HandoffTool's engine: calls agent methods over ACP.

One persistent WebSocket per agent URL, requests multiplexed by id, reconnection, absolute
deadlines, retries of retryable errors only (exponential backoff with full jitter), a circuit
breaker per agent, a bound on requests in flight, and ``$/cancel`` when the caller gives up.
Platform errors come back as the same typed AURORA error the agent raised.

An agent that refuses connections is taken for one that is starting (or restarting) for
``startup_grace`` seconds: calls wait for it, polling with backoff within their own deadline,
and its circuit stays closed. One that refuses longer is dead: calls to it fail after their
retries, and its circuit opens.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from agents.acp.protocol import (
    CANCEL_METHOD,
    DEADLINE_EXCEEDED,
    JSONRPC,
    PLATFORM_ERROR,
    DeadlineSweeper,
    FrameWriter,
    RpcError,
    child_traceparent,
    decode,
    encode,
    unique_hex,
)
from agents.acp.registry import AgentRegistry
from core.errors import AuroraError, ServiceUnavailable, error_for_code

log = logging.getLogger("aurora.acp.client")

Notification = dict[str, Any]
NotificationHandler = Callable[[str, Notification], None]
"""Called with (agent name, notification message) for every notification an agent streams."""


class ConnectionLost(Exception):
    """The connection failed before a reply came; the call may be retried."""


class NotReachable(ConnectionLost):
    """No connection could be made: the agent is not listening (yet), or not answering."""


_JITTER = random.Random()  # noqa: S311
"""The client's own generator: retry jitter neither draws from nor disturbs the global one
(which programs and test tools seed for their own reproducibility)."""


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    attempts: int = 3
    base_delay: float = 0.05
    max_delay: float = 1.0

    def delay(self, attempt: int) -> float:
        """Full jitter: uniform in [0, min(max, base * 2**attempt)]."""
        ceiling = min(self.max_delay, self.base_delay * 2 ** min(attempt, 32))
        return _JITTER.uniform(0, ceiling)


@dataclass(slots=True)
class CircuitBreaker:
    """Opens after ``threshold`` consecutive failures; after ``reset_after`` seconds lets one
    trial call through (half-open), which closes it on success or reopens it on failure."""

    threshold: int = 5
    reset_after: float = 10.0
    failures: int = 0
    opened_at: float | None = None
    trial_running: bool = False

    @property
    def state(self) -> str:
        if self.opened_at is None:
            return "closed"
        if time.monotonic() - self.opened_at >= self.reset_after:
            return "half_open"
        return "open"

    def allow(self) -> bool:
        state = self.state
        if state == "closed":
            return True
        if state == "half_open" and not self.trial_running:
            self.trial_running = True
            return True
        return False

    def success(self) -> None:
        self.failures, self.opened_at, self.trial_running = 0, None, False

    def failure(self) -> None:
        self.failures += 1
        self.trial_running = False
        if self.failures >= self.threshold or self.opened_at is not None:
            self.opened_at = time.monotonic()

    def starting(self) -> None:
        """The agent was found starting (or restarting): what failed before says nothing of
        the agent to come, so the circuit closes and calls wait for it within their deadline."""
        self.failures, self.opened_at, self.trial_running = 0, None, False


@dataclass(frozen=True, slots=True)
class Dialling:
    """How a client's connections connect: the bearer token for each handshake, the largest
    frame, how long a connect may take, and where notifications go."""

    token: Callable[[], str]
    max_frame_bytes: int
    connect_timeout: float
    on_notification: NotificationHandler | None


class AgentConnection:
    """One persistent WebSocket to one agent URL; concurrent requests share it by id."""

    def __init__(self, *, agent: str, url: str, dialling: Dialling) -> None:
        self.agent = agent
        self.url = url
        self._dialling = dialling
        self._socket: ClientConnection | None = None
        self._writer: FrameWriter | None = None
        self._reader: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._listeners: dict[int, NotificationHandler] = {}
        self._deadlines: DeadlineSweeper[int] = DeadlineSweeper(self._expire)
        self.healthy = True
        """What the last health probe found (calls prefer healthy replicas)."""

    @property
    def connected(self) -> bool:
        return self._socket is not None and self._reader is not None and not self._reader.done()

    async def _ensure(self, within: float | None = None) -> FrameWriter:
        """The open connection's writer, or a new connection's within ``within`` seconds (at
        most the connect timeout); :class:`NotReachable` when none can be made."""
        async with self._lock:
            if self.connected:
                assert self._writer is not None
                return self._writer
            timeout = self._dialling.connect_timeout
            limit = timeout if within is None else min(timeout, within)
            try:
                async with asyncio.timeout(limit):
                    socket = await connect(
                        self.url,
                        additional_headers={"Authorization": f"Bearer {self._dialling.token()}"},
                        max_size=self._dialling.max_frame_bytes,
                        compression=None,
                        max_queue=1024,
                        open_timeout=None,
                    )
            except InvalidStatus as err:
                if err.response.status_code == 401:
                    raise ServiceUnavailable(
                        {"agent": self.agent, "reason": "the agent refused our token"}
                    ) from err
                raise NotReachable(f"handshake refused: {err.response.status_code}") from err
            except (OSError, TimeoutError, InvalidHandshake) as err:
                raise NotReachable(f"cannot connect to {self.url}: {err}") from err
            self._socket = socket
            self._writer = FrameWriter(socket)
            self._reader = asyncio.create_task(self._read(socket), name=f"acp-read-{self.agent}")
            return self._writer

    async def _read(self, socket: ClientConnection) -> None:
        try:
            async for frame in socket:
                self._dispatch(frame)
        except ConnectionClosed:
            pass
        finally:
            pending, self._pending = self._pending, {}
            for future in pending.values():
                if not future.done():
                    future.set_exception(ConnectionLost("connection closed before the reply"))

    def _dispatch(self, frame: str | bytes) -> None:
        try:
            message = decode(frame)
        except ValueError:
            log.warning("agent %s sent a frame that is not JSON", self.agent)
            return
        for item in message if isinstance(message, list) else [message]:
            if not isinstance(item, dict):
                continue
            if "id" in item and ("result" in item or "error" in item):
                future = (
                    self._pending.pop(item["id"], None) if isinstance(item["id"], int) else None
                )
                if future is not None and not future.done():
                    future.set_result(item)
            elif isinstance(item.get("method"), str):
                params = item.get("params")
                request_id = params.get("request_id") if isinstance(params, dict) else None
                listener = self._listeners.get(request_id) if isinstance(request_id, int) else None
                if listener is not None:
                    listener(self.agent, item)
                if self._dialling.on_notification is not None:
                    self._dialling.on_notification(self.agent, item)

    async def request(
        self,
        method: str,
        params: dict[str, Any],
        *,
        wait_seconds: float | None,
        listener: NotificationHandler | None = None,
    ) -> dict[str, Any]:
        """Send one request and wait up to ``wait_seconds`` for its reply (the raw response)."""
        writer = self._writer if self.connected else None
        if writer is None:
            writer = await self._ensure(wait_seconds)
        request_id = next(self._ids)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[dict[str, Any]] = loop.create_future()
        self._pending[request_id] = future
        if listener is not None:
            self._listeners[request_id] = listener
        frame = encode({"jsonrpc": JSONRPC, "method": method, "params": params, "id": request_id})
        try:
            try:
                await writer.send(frame)
            except ConnectionClosed as err:
                raise ConnectionLost("connection closed while sending") from err
            if wait_seconds is not None:
                self._deadlines.add(request_id, loop.time() + wait_seconds)
            return await future
        except (TimeoutError, asyncio.CancelledError):
            # The caller gave up, or the deadline passed: tell the agent to stop working on it.
            await self.notify(CANCEL_METHOD, {"id": request_id})
            raise
        finally:
            self._pending.pop(request_id, None)
            self._listeners.pop(request_id, None)
            self._deadlines.discard(request_id)

    def _expire(self, request_id: int) -> None:
        future = self._pending.get(request_id)
        if future is not None and not future.done():
            future.set_exception(TimeoutError())

    async def notify(self, method: str, params: dict[str, Any]) -> None:
        writer = self._writer
        if writer is None:
            return
        with contextlib.suppress(ConnectionClosed, RuntimeError):
            await writer.send(encode({"jsonrpc": JSONRPC, "method": method, "params": params}))

    async def close(self) -> None:
        self._deadlines.close()
        if self._socket is not None:
            await self._socket.close()
        if self._reader is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        self._socket = self._reader = self._writer = None


@dataclass(slots=True)
class _Agent:
    connections: list[AgentConnection]
    breaker: CircuitBreaker
    slots: asyncio.Semaphore
    next_index: int = 0
    calls: int = 0
    failures: int = 0
    last_error: str | None = None
    latencies: list[float] = field(default_factory=list)
    down_since: float | None = None
    """When connections to it began to be refused (monotonic), None while it is reachable."""

    def pick(self) -> AgentConnection:
        """The next replica, round-robin, skipping those the last health check found down
        (all of them, when none is up: a call is then the freshest probe)."""
        count = len(self.connections)
        for _ in range(count):
            connection = self.connections[self.next_index % count]
            self.next_index += 1
            if connection.healthy:
                return connection
        connection = self.connections[self.next_index % count]
        self.next_index += 1
        return connection


@dataclass(frozen=True, slots=True)
class ReplicaHealth:
    """What one health probe of one agent replica found."""

    agent: str
    url: str
    healthy: bool
    latency_ms: float | None
    detail: str | None
    breaker: str


@dataclass(frozen=True, slots=True)
class CallOptions:
    """Routing metadata and limits of one call."""

    investigation_id: str | None = None
    traceparent: str | None = None
    hop: int = 0
    timeout: float | None = None
    """Seconds from now; ignored when ``deadline`` (epoch seconds) is given."""
    deadline: float | None = None
    idempotency_key: str | None = None
    prompt_version: str | None = None


DEFAULT_OPTIONS = CallOptions()


class HandoffClient:
    """Calls any agent in the registry by name; one instance per process, shared by callers."""

    def __init__(
        self,
        *,
        registry: AgentRegistry,
        sender: str,
        token: Callable[[], str],
        default_timeout: float = 60.0,
        retry: RetryPolicy | None = None,
        breaker_threshold: int = 5,
        breaker_reset_after: float = 10.0,
        max_in_flight: int = 256,
        max_frame_bytes: int = 1_048_576,
        connect_timeout: float = 5.0,
        startup_grace: float = 120.0,
        on_notification: NotificationHandler | None = None,
    ) -> None:
        """``startup_grace``: how long an agent that refuses connections is taken for one that
        is starting or restarting (calls wait for it) rather than dead (its circuit opens)."""
        self.registry = registry
        self.sender = sender
        self.default_timeout = default_timeout
        self.retry = retry or RetryPolicy()
        self._breaker = (breaker_threshold, breaker_reset_after)
        self._max_in_flight = max_in_flight
        self._dialling = Dialling(token, max_frame_bytes, connect_timeout, self._forward)
        self._startup_grace = startup_grace
        self.on_notification = on_notification
        self._agents: dict[str, _Agent] = {}
        # Idempotency keys: unique per client (random prefix) and per call (counter).
        self._key_prefix = f"{sender}-{unique_hex(64)}-"
        self._keys = itertools.count(1)

    def _agent(self, name: str) -> _Agent:
        agent = self._agents.get(name)
        if agent is None:
            urls = self.registry.urls(name)  # AURORA-4043 for an unknown agent
            agent = _Agent(
                connections=[
                    AgentConnection(agent=name, url=url, dialling=self._dialling) for url in urls
                ],
                breaker=CircuitBreaker(*self._breaker),
                slots=asyncio.Semaphore(self._max_in_flight),
            )
            self._agents[name] = agent
        return agent

    def _forward(self, agent: str, message: Notification) -> None:
        if self.on_notification is not None:
            self.on_notification(agent, message)

    def breaker_state(self, agent: str) -> str:
        return self._agent(agent).breaker.state

    def _starting(self, state: _Agent) -> bool:
        """Note that ``state``'s agent refused a connection; whether it has refused for less
        than the start-up grace (so it may be starting or restarting, not dead)."""
        now = time.monotonic()
        if state.down_since is None:
            state.down_since = now
        return now - state.down_since < self._startup_grace

    async def call(
        self,
        agent: str,
        method: str,
        params: dict[str, Any] | None = None,
        options: CallOptions | None = None,
        *,
        listener: NotificationHandler | None = None,
    ) -> Any:
        """Call ``agent.method(params)`` and return its result.

        Raises the agent's AURORA error for platform errors, :class:`RpcError` for protocol
        errors, AURORA-5030 when the agent cannot be reached (after retries, or circuit open, or
        still starting when the deadline came).
        """
        options = options or DEFAULT_OPTIONS
        state = self._agents.get(agent) or self._agent(agent)
        deadline = options.deadline or time.time() + (options.timeout or self.default_timeout)
        meta: dict[str, Any] = {
            "traceparent": child_traceparent(options.traceparent),
            "sender": self.sender,
            "target": agent,
            "hop": options.hop,
            "deadline": deadline,
            # One key for every attempt: a retry never runs the work twice.
            "idempotency_key": options.idempotency_key or f"{self._key_prefix}{next(self._keys)}",
        }
        if options.investigation_id is not None:
            meta["investigation_id"] = options.investigation_id
        if options.prompt_version is not None:
            meta["prompt_version"] = options.prompt_version
        payload = {**(params or {}), "_meta": meta}
        attempt = waits = 0
        failure: Exception | None = None
        while True:
            if not state.breaker.allow():
                raise ServiceUnavailable({"agent": agent, "reason": "circuit open"})
            remaining = deadline - time.time()
            if remaining <= 0:
                if isinstance(failure, NotReachable):
                    raise ServiceUnavailable(
                        {"agent": agent, "reason": "agent not up within the deadline"}
                    ) from failure
                raise RpcError(DEADLINE_EXCEEDED, data={"agent": agent, "method": method})
            connection = state.pick()
            state.calls += 1
            started = time.perf_counter()
            try:
                async with state.slots:
                    reply = await connection.request(
                        method, payload, wait_seconds=remaining, listener=listener
                    )
                state.latencies.append(time.perf_counter() - started)
                state.down_since = None
            except ConnectionLost as err:
                state.failures += 1
                state.last_error = str(err)
                failure = err
                if isinstance(err, NotReachable) and self._starting(state):
                    # Not up yet: wait for it, within the deadline, without spending attempts.
                    state.breaker.starting()
                    waits += 1
                    pause = min(self.retry.delay(waits), max(0.0, deadline - time.time()))
                    await asyncio.sleep(pause)
                    continue
                state.breaker.failure()
            except TimeoutError as err:
                state.breaker.failure()
                state.failures += 1
                state.last_error = "deadline exceeded"
                raise RpcError(DEADLINE_EXCEEDED, data={"agent": agent, "method": method}) from err
            else:
                if len(state.latencies) > 1000:
                    del state.latencies[:500]
                if "result" in reply:
                    state.breaker.success()
                    return reply["result"]
                error = _error_from(reply)
                if not error.retryable:
                    state.breaker.success()  # the agent is alive and answered
                    raise _rebuild(error)
                state.last_error = error.message
                failure = error
            attempt += 1
            if attempt >= self.retry.attempts:
                if isinstance(failure, RpcError):
                    raise _rebuild(failure)
                raise ServiceUnavailable(
                    {"agent": agent, "reason": "agent unreachable", "attempts": attempt}
                ) from failure
            delay = self.retry.delay(attempt)
            retry_after = getattr(failure, "data", None)
            if isinstance(retry_after, dict) and "retry_after_ms" in retry_after:
                delay = max(delay, float(retry_after["retry_after_ms"]) / 1000)
            await asyncio.sleep(min(delay, max(0.0, deadline - time.time())))

    async def check_health(self, wait_seconds: float = 3.0) -> list[ReplicaHealth]:
        """Probe every replica of every registered agent with ``agent.health``, concurrently;
        calls then skip the replicas found down until a later probe finds them up."""

        async def probe(name: str, connection: AgentConnection) -> ReplicaHealth:
            started = time.perf_counter()
            try:
                reply = await connection.request(
                    "agent.health", {"_meta": {"sender": self.sender}}, wait_seconds=wait_seconds
                )
            except (ConnectionLost, TimeoutError, ServiceUnavailable) as err:
                connection.healthy = False
                if isinstance(err, NotReachable):
                    self._starting(self._agents[name])
                reason = "timed out" if isinstance(err, TimeoutError) else "unreachable"
                return ReplicaHealth(
                    name, connection.url, False, None, reason, self._agents[name].breaker.state
                )
            connection.healthy = "result" in reply
            self._agents[name].down_since = None
            return ReplicaHealth(
                name,
                connection.url,
                connection.healthy,
                round((time.perf_counter() - started) * 1000, 3),
                None if connection.healthy else "agent.health failed",
                self._agents[name].breaker.state,
            )

        probes = [
            probe(name, connection)
            for name in self.registry.names()
            for connection in self._agent(name).connections
        ]
        return list(await asyncio.gather(*probes))

    async def close(self) -> None:
        for agent in self._agents.values():
            for connection in agent.connections:
                await connection.close()
        self._agents.clear()


def _error_from(reply: dict[str, Any]) -> RpcError:
    error = reply.get("error")
    if not isinstance(error, dict) or not isinstance(error.get("code"), int):
        return RpcError(-32603, "Malformed error from agent")
    return RpcError(error["code"], str(error.get("message", "")), error.get("data"))


def _rebuild(error: RpcError) -> Exception:
    """The AURORA error an agent raised, rebuilt; other RPC errors as they are."""
    code = error.aurora_code
    if error.code == PLATFORM_ERROR and code is not None:
        detail = error.data.get("detail") if isinstance(error.data, dict) else None
        rebuilt: AuroraError = error_for_code(code)(detail)
        return rebuilt
    return error
