"""Middleware behaviour that no single domain owns: WebSocket auth, body limits, 5xx envelope."""

import io
import uuid

import aiohttp
import pytest
from aiohttp import web

from core.errors import NotFound
from core.security.permissions import Permission, Role
from core.settings import Settings
from gateway.http import json_response, principal
from gateway.middleware import new_request_id
from gateway.routing import Access, Route
from tests.conftest import Gateway, start_gateway


async def echo_ws(request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse()
    await ws.prepare(request)
    await ws.send_json({"hello": principal(request).username})
    await ws.close()
    return ws


async def boom(request: web.Request) -> web.Response:
    raise RuntimeError("secret-db-password=hunter2 in a traceback")


async def missing(request: web.Request) -> web.Response:
    raise NotFound({"thing": request.match_info["thing_id"]})


async def small(request: web.Request) -> web.Response:
    from gateway.http import read_json

    return json_response({"got": await read_json(request)})


TEST_ROUTES = (
    Route("WS", "/api/v1/ws/test-echo", echo_ws, Access.AUTHENTICATED),
    Route("WS", "/api/v1/ws/test-system", echo_ws, Permission.SYSTEM_WRITE),
    Route("GET", "/api/v1/test/boom", boom, Access.PUBLIC),
    Route("GET", "/api/v1/test/things/{thing_id}", missing, Access.PUBLIC),
    Route("POST", "/api/v1/test/small", small, Access.PUBLIC, max_body_bytes=2048),
    Route("GET", "/api/v1/test/old", boom, Access.PUBLIC, sunset="2026-12-31T00:00:00Z"),
)


async def test_websocket_auth(settings: Settings) -> None:
    client = await start_gateway(settings, TEST_ROUTES)
    gateway = Gateway(client)
    try:
        headers = await gateway.user(Role.VIEWER, "watcher")
        token = headers["Authorization"].removeprefix("Bearer ")
        async with client.ws_connect("/api/v1/ws/test-echo", headers=headers) as ws:
            assert await ws.receive_json() == {"hello": "watcher"}
        async with client.ws_connect(f"/api/v1/ws/test-echo?access_token={token}") as ws:
            assert await ws.receive_json() == {"hello": "watcher"}
        for url, extra, status, code in [
            ("/api/v1/ws/test-echo", {}, 401, "AURORA-4010"),
            ("/api/v1/ws/test-echo?access_token=garbage", {}, 401, "AURORA-4012"),
            ("/api/v1/ws/test-system", headers, 403, "AURORA-4030"),
        ]:
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await client.ws_connect(url, headers=extra)
            assert refused.value.status == status
            # the same request as plain HTTP shows the envelope the upgrade was refused with
            plain = await client.get(
                url, headers={**extra, "Connection": "Upgrade", "Upgrade": "websocket"}
            )
            body = await plain.json()
            assert plain.status == status
            assert body["error"]["code"] == code
            assert plain.headers["X-API-Version"] == "1.0"
        # ?access_token= is for WebSocket upgrades only, not for REST routes
        rest = await client.get(f"/api/v1/users/me?access_token={token}")
        assert rest.status == 401
    finally:
        await client.close()


async def test_unexpected_error_is_5000_without_leaking(settings: Settings) -> None:
    client = await start_gateway(settings, TEST_ROUTES)
    try:
        response = await client.get("/api/v1/test/boom", headers={"X-Request-ID": "req-12345678"})
        body = await response.json()
        assert response.status == 500
        assert body["error"]["code"] == "AURORA-5000"
        assert body["error"]["request_id"] == "req-12345678"
        assert "hunter2" not in await response.text()
        assert "Traceback" not in await response.text()
        assert "Deprecation" not in response.headers
        old = await client.get("/api/v1/test/old")
        assert (old.headers["Deprecation"], old.headers["Sunset"]) == (
            "true",
            "2026-12-31T00:00:00Z",
        )
        gone = await client.get("/api/v1/test/things/42")
        assert (await gone.json())["error"]["detail"] == {"thing": "42"}
    finally:
        await client.close()


async def test_body_limits(settings: Settings) -> None:
    client = await start_gateway(settings, TEST_ROUTES)
    try:
        ok = await client.post("/api/v1/test/small", json={"a": "x" * 100})
        assert ok.status == 200
        big = await client.post("/api/v1/test/small", json={"a": "x" * 5000})
        body = await big.json()
        assert big.status == 413
        assert body["error"]["code"] == "AURORA-4130"
        assert body["error"]["detail"] == {"limit_bytes": 2048}

        async def chunks():  # type: ignore[no-untyped-def]
            for _ in range(10):
                yield b"x" * 1000

        chunked = await client.post(
            "/api/v1/test/small", data=chunks(), headers={"Content-Type": "application/json"}
        )
        assert chunked.status == 413
        # the app-wide limit applies to routes without their own
        huge = await client.post(
            "/api/v1/auth/token",
            data=io.BytesIO(b"{" + b" " * (settings.max_body_bytes + 10) + b"}"),
            headers={"Content-Type": "application/json"},
        )
        assert huge.status == 413
        wrong_type = await client.post("/api/v1/test/small", data=b"{}")
        assert wrong_type.status == 422
    finally:
        await client.close()


@pytest.mark.parametrize(
    ("method", "path", "body", "loc"),
    [
        ("GET", "/api/v1/alerts/ALRT-2026%0000001", None, ["path", "alert_id"]),
        ("GET", "/api/v1/alerts?status=%00", None, ["query", "status"]),
        ("GET", "/api/v1/cases?x%00=1", None, ["query", "?"]),
        ("POST", "/api/v1/alerts", {"title": "a\u0000b", "source": "t"}, ["body", "title"]),
        (
            "POST",
            "/api/v1/alerts",
            {"title": "t", "source": "t", "raw": {"k": ["\u0000"]}},
            ["body", "raw", "k", 0],
        ),
    ],
)
async def test_a_nul_character_is_422_on_every_backend(
    gateway: Gateway, method: str, path: str, body: object, loc: list[object]
) -> None:
    # PostgreSQL stores no NUL in text: before this check such a request was a 500 there.
    headers = await gateway.user(Role.ANALYST)
    response = await gateway.client.request(method, path, json=body, headers=headers)
    error = (await response.json())["error"]
    assert (response.status, error["code"]) == (422, "AURORA-4220")
    assert error["detail"] == [
        {"loc": loc, "msg": "NUL characters are not accepted", "type": "string_nul"}
    ]
    listed = await gateway.client.get("/api/v1/alerts", headers=headers)
    assert (await listed.json())["total"] == 0


def test_request_ids_are_unique_version_4_uuids() -> None:
    ids = [new_request_id() for _ in range(10_000)]
    assert len(set(ids)) == len(ids)
    for text in ids[:: len(ids) // 10]:
        parsed = uuid.UUID(text)
        assert str(parsed) == text
        assert parsed.version == 4
        assert parsed.variant == uuid.RFC_4122
