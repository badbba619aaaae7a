"""The HTTP server around the app, over raw sockets: body limits while reading, slow clients,
protocol errors in the AURORA envelope, and an access log without credentials."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from core.db import create_database
from core.db.migrate import upgrade
from gateway.app import create_app
from gateway.console.assets import STATIC_ROOT
from gateway.index import Index
from gateway.server import GatewayRunner
from tests.conftest import make_settings

SECRET = "tok-3f9a1c7e55d2b8a4"


class Served:
    def __init__(self, port: int) -> None:
        self.port = port

    async def exchange(self, raw: bytes) -> tuple[int, dict[str, str], Any]:
        """Send ``raw`` and read one response: status, headers, JSON body."""
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        try:
            writer.write(raw)
            await writer.drain()
            async with asyncio.timeout(10):
                return await read_response(reader)
        finally:
            writer.close()


async def read_response(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], Any]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return status, headers, json.loads(body) if body else None


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[Served]:
    settings = make_settings(
        tmp_path / "data",
        f"sqlite+aiosqlite:///{tmp_path / 'aurora.db'}",
        header_read_timeout_seconds=0.5,
        body_read_timeout_seconds=0.5,
    )
    database = create_database(settings.effective_database_url)
    try:
        await upgrade(database)
    finally:
        await database.dispose()
    runner = GatewayRunner(create_app(settings), settings)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        assert runner.addresses
        yield Served(runner.addresses[0][1])
    finally:
        await runner.cleanup()


def _assert_envelope(status: int, headers: dict[str, str], body: Any, code: str) -> None:
    assert body["error"]["code"] == code, body
    assert str(status) == code[7:10]
    assert headers["x-api-version"] == "1.0"
    assert headers["x-request-id"] == body["error"]["request_id"]
    assert headers["x-aurorasoc-mode"] == "dry_run"
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["content-type"].startswith("application/json")


async def test_a_chunked_body_past_the_limit_is_refused_while_it_is_read(served: Served) -> None:
    # 2 MiB of a body that never ends: a server that buffers the whole body before checking
    # its size would wait for the rest and never answer.
    reader, writer = await asyncio.open_connection("127.0.0.1", served.port)
    try:
        writer.write(
            b"POST /api/v1/auth/token HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n"
        )
        chunk = b"x" * 65536
        for _ in range(32):
            writer.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        await writer.drain()
        async with asyncio.timeout(10):
            status, headers, body = await read_response(reader)
    finally:
        writer.close()
    _assert_envelope(status, headers, body, "AURORA-4130")
    assert body["error"]["detail"] == {"limit_bytes": 1_048_576}


async def test_a_stalled_body_is_cut_off_with_408(served: Served) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", served.port)
    try:
        writer.write(
            b"POST /api/v1/auth/token HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
            b'Content-Length: 100\r\n\r\n{"username":'
        )
        await writer.drain()
        async with asyncio.timeout(10):
            status, headers, body = await read_response(reader)
    finally:
        writer.close()
    _assert_envelope(status, headers, body, "AURORA-4081")


async def test_headers_sent_too_slowly_close_the_connection_with_408(served: Served) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", served.port)
    try:
        writer.write(b"GET /api/v1/auth/providers HTTP/1.1\r\nHost: t\r\nX-Slow: ")
        await writer.drain()
        async with asyncio.timeout(10):
            status, headers, body = await read_response(reader)
            assert await reader.read() == b""  # then closed
    finally:
        writer.close()
    _assert_envelope(status, headers, body, "AURORA-4081")


async def test_a_silent_connection_is_closed_after_the_header_timeout(served: Served) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", served.port)
    try:
        async with asyncio.timeout(10):
            status, _, body = await read_response(reader)
    finally:
        writer.close()
    assert (status, body["error"]["code"]) == (408, "AURORA-4081")


async def test_a_kept_alive_connection_serves_requests_in_a_row(served: Served) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", served.port)
    try:
        for _ in range(3):
            writer.write(b"GET /api/v1/auth/providers HTTP/1.1\r\nHost: t\r\n\r\n")
            await writer.drain()
            async with asyncio.timeout(10):
                status, _, body = await read_response(reader)
            assert status == 200
            assert body["providers"]
    finally:
        writer.close()


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        pytest.param(
            b"GET /api/v1/" + b"A" * 10_000 + SECRET.encode() + b" HTTP/1.1\r\nHost: t\r\n\r\n",
            "the request line or a header is too long",
            id="oversized-url",
        ),
        pytest.param(
            b"G\x01T /api/v1/auth/providers?" + SECRET.encode() + b" HTTP/1.1\r\nHost: t\r\n\r\n",
            "invalid HTTP method",
            id="bad-method",
        ),
        pytest.param(
            b"POST /api/v1/auth/token HTTP/1.1\r\nHost: t\r\nContent-Length: 1"
            + SECRET.encode()
            + b"\r\n\r\n",
            None,
            id="bad-content-length",
        ),
        pytest.param(
            b"GET /api/v1/auth/providers HTTP/1.1\r\nHost: t\r\nX-"
            + b"B" * 9000
            + b": "
            + SECRET.encode()
            + b"\r\n\r\n",
            "the request line or a header is too long",
            id="oversized-header",
        ),
    ],
)
async def test_protocol_errors_answer_in_the_envelope_without_echoing(
    served: Served, raw: bytes, reason: str | None
) -> None:
    status, headers, body = await served.exchange(raw)
    _assert_envelope(status, headers, body, "AURORA-4000")
    assert body["error"]["message"] == "Malformed request"
    if reason is not None:
        assert body["error"]["detail"] == {"reason": reason}
    assert SECRET not in json.dumps(body)
    assert "AAAA" not in json.dumps(body)


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param(b"[" * 100_000 + b"]" * 100_000, id="100k-deep"),
        pytest.param(b'{"a":' * 65 + b"1" + b"}" * 65, id="65-deep"),
        pytest.param(b'{"username": ' + b"9" * 4300 + b', "password": "x"}', id="4300-digits"),
        pytest.param(b'{"username": NaN, "password": "x"}', id="nan"),
        pytest.param(b'{"username": "\\ud800", "password": "x"}', id="lone-surrogate"),
    ],
)
async def test_hostile_json_bodies_are_422(served: Served, payload: bytes) -> None:
    raw = (
        b"POST /api/v1/auth/token HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (len(payload), payload)
    )
    status, headers, body = await served.exchange(raw)
    _assert_envelope(status, headers, body, "AURORA-4220")


async def test_the_access_log_redacts_credentials(
    served: Served, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="aurora.access")
    raw = (
        f"GET /api/v1/users/me?access_token={SECRET}&x=1 HTTP/1.1\r\nHost: t\r\n"
        f"Authorization: Bearer {SECRET}\r\nX-API-Key: {SECRET}\r\n\r\n"
    ).encode()
    status, _, _ = await served.exchange(raw)
    assert status == 401
    lines = [r.getMessage() for r in caplog.records if r.name == "aurora.access"]
    assert any("/api/v1/users/me?access_token=[redacted]&x=1" in line for line in lines), lines
    assert not any(SECRET in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("path", ["/", "/api/v1"])
async def test_the_index_says_what_serves_here(served: Served, path: str) -> None:
    status, headers, body = await served.exchange(
        f"GET {path} HTTP/1.1\r\nHost: t\r\nAccept: application/json\r\n\r\n".encode()
    )
    assert status == 200
    assert headers["x-api-version"] == "1.0"
    assert body["service"] == "AuroraSOC"
    assert body["auth"]["token"] == "/api/v1/auth/token"
    assert "README" in body["docs"]
    routes = {(r["method"], r["path"]): r["permission"] for r in body["routes"]}
    assert routes[("POST", "/api/v1/auth/token")] == "Public"
    assert routes[("GET", "/api/v1/alerts")] == "alerts:read"
    assert routes[("WS", "/api/v1/ws/alerts")] == "alerts:read"
    assert ("GET", "/") not in routes
    assert Index.model_validate(body).model_dump(mode="json") == body  # what the route declares


async def test_the_root_is_the_console_for_a_browser(served: Served) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", served.port)
    try:
        writer.write(b"GET / HTTP/1.1\r\nHost: t\r\nAccept: text/html\r\n\r\n")
        await writer.drain()
        async with asyncio.timeout(10):
            head = (await reader.readuntil(b"\r\n\r\n")).decode().lower()
            length = int(head.split("content-length:")[1].split("\r\n")[0])
            page = await reader.readexactly(length)
    finally:
        writer.close()
    assert head.startswith("http/1.1 200")
    assert "content-security-policy: default-src 'none'; script-src 'self';" in head
    assert page == (STATIC_ROOT / "index.html").read_bytes()
