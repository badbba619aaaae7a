"""Serving the gateway: the HTTP server around the app, until SIGINT or SIGTERM.

aiohttp's own connection handler answers what never reaches the app (a malformed request line,
a bad method, a header too long, an invalid ``Content-Length``) in plain text that quotes the
offending bytes, and waits as long as a client likes for a request's headers. The handler here
answers those in the AURORA envelope without echoing the request, cuts off clients too slow to
send their headers, and the access log never shows a credential.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl, urlencode

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.http_exceptions import (
    BadHttpMessage,
    BadHttpMethod,
    BadStatusLine,
    InvalidHeader,
    InvalidURLError,
    LineTooLong,
    TransferEncodingError,
)
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest

from core.errors import AuroraError, BadRequest, InternalError, RequestTimeout
from core.settings import Settings
from gateway.app import create_app
from gateway.http import JSON_TYPE, error_body
from gateway.keys import REQUEST_ID, ROUTE_TABLE
from gateway.middleware import standard_headers

log = logging.getLogger("aurora")
protocol_log = logging.getLogger("aurora.gateway")

KEEPALIVE_TIMEOUT_SECONDS = 75.0
"""How long an idle kept-alive connection stays open (nginx's default)."""

SECRET_QUERY_KEYS = frozenset(
    {"access_token", "token", "api_key", "apikey", "key", "password", "secret", "code"}
)
"""Query parameters whose values the access log replaces (a WebSocket's ``?access_token=``,
an OAuth ``code``)."""


def redacted_path(request: BaseRequest) -> str:
    """The request's path and query, with the values of credential parameters replaced."""
    url = request.rel_url
    if not url.query_string:
        return url.path
    pairs = parse_qsl(url.query_string, keep_blank_values=True)
    cleaned = [(k, "[redacted]" if k.lower() in SECRET_QUERY_KEYS else v) for k, v in pairs]
    return f"{url.path}?{urlencode(cleaned, safe='[]/:*')}"


class AccessLogger(AbstractAccessLogger):
    """One line per request: who, what (credentials redacted), status, size, time, request id.
    Headers are never logged."""

    def log(self, request: BaseRequest, response: web.StreamResponse, time: float) -> None:
        self.logger.info(
            '%s "%s %s HTTP/%d.%d" %d %d %.1fms %s',
            request.remote or "-",
            request.method,
            redacted_path(request),
            request.version.major,
            request.version.minor,
            response.status,
            response.body_length,
            time * 1000,
            request.get(REQUEST_ID) or response.headers.get("X-Request-ID", "-"),
        )


REFUSALS: tuple[tuple[type[BadHttpMessage], str], ...] = (
    (LineTooLong, "the request line or a header is too long"),
    (BadHttpMethod, "invalid HTTP method"),
    (BadStatusLine, "malformed request line"),
    (InvalidURLError, "invalid URL"),
    (InvalidHeader, "invalid header"),
    (TransferEncodingError, "invalid transfer encoding"),
)
"""What is wrong with a request aiohttp refused, by its error's class (the first that fits)."""


def _protocol_error(status: int, exc: BaseException | None) -> AuroraError:
    """What a request that never reached the app gets, described without its bytes."""
    if status >= 500 or not isinstance(exc, BadHttpMessage):
        return InternalError()
    reason = next((why for kind, why in REFUSALS if isinstance(exc, kind)), "malformed request")
    return BadRequest({"reason": reason})


def _deprecation(app: web.Application, request: BaseRequest) -> dict[str, str]:
    """A deprecated route's headers for a request refused before routing (by its path alone:
    the deprecated routes have no path parameters)."""
    try:
        path = request.rel_url.path
    except Exception:  # a URL aiohttp could not read has no route
        return {}
    for route in app[ROUTE_TABLE].values():
        if route.sunset is not None and route.path == path:
            return {"Deprecation": "true", "Sunset": route.sunset}
    return {}


class GatewayProtocol(RequestHandler):
    """aiohttp's connection handler with the gateway's answers to protocol errors and a
    deadline for each request's headers."""

    def __init__(
        self, manager: web.Server, *, app: web.Application, header_timeout: float, **kwargs: Any
    ) -> None:
        super().__init__(manager, **kwargs)
        self._app = app
        self._header_timeout = header_timeout
        self._header_timer: asyncio.TimerHandle | None = None

    def handle_error(
        self,
        request: BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        err = _protocol_error(status, exc)
        if isinstance(err, InternalError):
            protocol_log.error("error outside the app serving %s", request.remote, exc_info=exc)
        else:  # the class only: the message quotes the client's bytes
            protocol_log.info(
                "refused a malformed request from %s (%s)", request.remote, type(exc).__name__
            )
        if request.writer.output_size > 0:
            raise ConnectionError("a response was already being sent")
        request_id = str(uuid.uuid4())
        response = web.Response(
            body=error_body(err, request_id), status=err.status, content_type=JSON_TYPE
        )
        response.headers.update(standard_headers(self._app, request_id))
        response.headers.update(_deprecation(self._app, request))
        response.force_close()
        return response

    # -- the header deadline: from a connection's start, or a request's first byte, until its
    # headers are complete --

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._arm_header_timer()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._messages or self._request_in_progress or self._upgraded:
            self._disarm_header_timer()
        elif data:
            self._arm_header_timer()

    def connection_lost(self, exc: BaseException | None) -> None:
        self._disarm_header_timer()
        super().connection_lost(exc)

    def _arm_header_timer(self) -> None:
        if self._header_timer is None:
            self._header_timer = self._loop.call_later(self._header_timeout, self._headers_late)

    def _disarm_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_late(self) -> None:
        self._header_timer = None
        transport = self.transport
        if transport is None or self._messages or self._request_in_progress or self._upgraded:
            return
        request_id = str(uuid.uuid4())
        err = RequestTimeout(
            {"reason": f"request headers not received within {self._header_timeout:g} s"}
        )
        body = error_body(err, request_id)
        head = (
            "HTTP/1.1 408 Request Timeout\r\n"
            f"Content-Type: {JSON_TYPE}\r\n"
            f"Content-Length: {len(body)}\r\n"
            "Connection: close\r\n"
            + "".join(
                f"{name}: {value}\r\n"
                for name, value in standard_headers(self._app, request_id).items()
            )
            + "\r\n"
        )
        transport.write(head.encode() + body)
        protocol_log.info("closed a connection whose request headers were late")
        self.force_close()


class GatewayServer(web.Server):
    """Makes a :class:`GatewayProtocol` for each connection."""

    def __init__(self, *args: Any, app: web.Application, header_timeout: float, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._gateway_app = app
        self._header_timeout = header_timeout

    def __call__(self) -> RequestHandler:
        return GatewayProtocol(
            self,
            app=self._gateway_app,
            header_timeout=self._header_timeout,
            loop=self._loop,
            **self._kwargs,
        )


class GatewayRunner(web.AppRunner):
    """An ``AppRunner`` whose server is a :class:`GatewayServer`."""

    def __init__(self, app: web.Application, settings: Settings) -> None:
        access_log = logging.getLogger("aurora.access") if settings.access_log else None
        super().__init__(
            app,
            handle_signals=False,
            access_log=access_log,
            access_log_class=AccessLogger,
            keepalive_timeout=KEEPALIVE_TIMEOUT_SECONDS,
        )
        self._header_timeout = settings.header_read_timeout_seconds

    async def setup(self) -> None:
        """Start the app's resources; when one fails to start, close those already started
        (in reverse order) before the error propagates."""
        try:
            await super().setup()
        except BaseException:
            await self.app.cleanup()
            raise

    async def _make_server(self) -> web.Server:
        stock = await super()._make_server()
        return GatewayServer(
            stock.request_handler,
            request_factory=stock.request_factory,
            handler_cancellation=stock.handler_cancellation,
            loop=asyncio.get_running_loop(),
            app=self.app,
            header_timeout=self._header_timeout,
            **stock._kwargs,
        )


async def serve(
    settings: Settings, *, banner: Callable[[str], None], stop: asyncio.Event | None = None
) -> None:
    """Run the gateway until ``stop`` is set (without one: until SIGINT or SIGTERM), then shut
    down cleanly."""
    app = create_app(settings)
    runner = GatewayRunner(app, settings)
    await runner.setup()
    # Everything loaded by now (the libraries, the route table, the resources) lives as long as
    # the process: keep it out of the collector's full passes. Otherwise each one walks some
    # 300k objects, about 180 ms on two cores, and a request that waits behind it is a p99
    # outlier. Only the serving process does this (tests build many apps in one process).
    gc.collect()
    gc.freeze()
    try:
        site = web.TCPSite(runner, settings.host, settings.port)
        await site.start()
        banner(settings.public_url)
        if stop is None:
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(signum, stop.set)
        await stop.wait()
        log.info("shutting down")
    finally:
        await runner.cleanup()
