"""Standard headers and the error envelope on every kind of response."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Awaitable, Callable

import pytest
from aiohttp import ClientResponse

from core.errors import CATALOGUE
from core.security.permissions import Role
from gateway.keys import SETTINGS
from tests.conftest import PASSWORD, Gateway
from tests.contract.spec import Spec

# Requests answered or refused, by users of their own: one gateway serves every case but the
# mode's, which changes the runtime mode.
pytestmark = pytest.mark.asyncio(loop_scope="module")

TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
WELL_FORMED_ID = "req-0123456789abcdef"
MALFORMED_IDS = ["bad id", "x" * 500, "short", "-leading-dash-id", "<script>alert(1)</script>"]

Call = Callable[[Gateway, dict[str, str]], Awaitable[ClientResponse]]


async def _ok(gw: Gateway, extra: dict[str, str]) -> ClientResponse:
    headers = await gw.user(Role.VIEWER)
    return await gw.client.get("/api/v1/users/me", headers={**headers, **extra})


async def _no_content(gw: Gateway, extra: dict[str, str]) -> ClientResponse:
    headers = await gw.user(Role.VIEWER)
    return await gw.client.post("/api/v1/auth/logout", headers={**headers, **extra})


async def _unauthenticated(gw: Gateway, extra: dict[str, str]) -> ClientResponse:
    return await gw.client.get("/api/v1/users/me", headers=extra)


async def _forbidden(gw: Gateway, extra: dict[str, str]) -> ClientResponse:
    headers = await gw.user(Role.VIEWER)
    return await gw.client.get("/api/v1/users", headers={**headers, **extra})


async def _unknown_route(gw: Gateway, extra: dict[str, str]) -> ClientResponse:
    return await gw.client.get("/api/v1/no-such-thing", headers=extra)


async def _wrong_method(gw: Gateway, extra: dict[str, str]) -> ClientResponse:
    headers = await gw.user(Role.VIEWER)
    return await gw.client.put("/api/v1/users/me", json={}, headers={**headers, **extra})


async def _malformed_json(gw: Gateway, extra: dict[str, str]) -> ClientResponse:
    return await gw.client.post(
        "/api/v1/auth/token",
        data=b'{"username": "x", ',
        headers={"Content-Type": "application/json", **extra},
    )


async def _locked_out(gw: Gateway, extra: dict[str, str]) -> ClientResponse:
    name = f"locked-{uuid.uuid4().hex[:6]}"
    await gw.create_user(name, Role.VIEWER)
    settings = gw.app[SETTINGS]
    for _ in range(settings.login_max_failures):
        wrong = await gw.client.post(
            "/api/v1/auth/token", json={"username": name, "password": "wrong password!"}
        )
        assert wrong.status == 401
    return await gw.client.post(
        "/api/v1/auth/token", json={"username": name, "password": PASSWORD}, headers=extra
    )


# name -> (request, expected status, expected AURORA code or None for a success)
CASES: dict[str, tuple[Call, int, str | None]] = {
    "200": (_ok, 200, None),
    "204": (_no_content, 204, None),
    "401": (_unauthenticated, 401, "AURORA-4010"),
    "403": (_forbidden, 403, "AURORA-4030"),
    "404": (_unknown_route, 404, "AURORA-4040"),
    "405": (_wrong_method, 405, "AURORA-4050"),
    "422": (_malformed_json, 422, "AURORA-4220"),
    "429": (_locked_out, 429, "AURORA-4290"),
}
ERROR_CASES = [name for name, (_, _, code) in CASES.items() if code is not None]


def _is_uuid(value: str | None) -> bool:
    try:
        return value is not None and str(uuid.UUID(value)) == value
    except ValueError:
        return False


def _assert_standard(response: ClientResponse, expected_status: int) -> None:
    assert response.status == expected_status
    assert response.headers.get("X-API-Version") == "1.0"
    assert response.headers.get("X-AuroraSOC-Mode") == "dry_run"


@pytest.mark.parametrize("case", list(CASES))
async def test_standard_headers(shared_gateway: Gateway, case: str) -> None:
    call, status, code = CASES[case]
    response = await call(shared_gateway, {})
    _assert_standard(response, status)
    assert _is_uuid(response.headers.get("X-Request-ID")), response.headers.get("X-Request-ID")

    response = await call(shared_gateway, {"X-Request-ID": WELL_FORMED_ID})
    _assert_standard(response, status)
    assert response.headers.get("X-Request-ID") == WELL_FORMED_ID
    if code is not None:
        assert (await response.json())["error"]["request_id"] == WELL_FORMED_ID


@pytest.mark.parametrize("case", ["200", "401", "404"])
async def test_malformed_request_id_is_replaced(shared_gateway: Gateway, case: str) -> None:
    call, status, code = CASES[case]
    for bad in MALFORMED_IDS:
        response = await call(shared_gateway, {"X-Request-ID": bad})
        _assert_standard(response, status)
        rid = response.headers.get("X-Request-ID")
        assert _is_uuid(rid), (bad[:20], rid)
        if code is not None:
            assert (await response.json())["error"]["request_id"] == rid


async def test_control_characters_in_request_id_never_come_back(shared_gateway: Gateway) -> None:
    # aiohttp's client refuses to send a control character, so speak HTTP by hand.
    server = shared_gateway.client.server
    reader, writer = await asyncio.open_connection(server.host, server.port)
    writer.write(
        b"GET /api/v1/auth/providers HTTP/1.1\r\nHost: test\r\n"
        b"X-Request-ID: bad id\x01\r\nConnection: close\r\n\r\n"
    )
    await writer.drain()
    raw = await reader.read()
    writer.close()
    head = raw.split(b"\r\n\r\n", 1)[0]
    status_line, *header_lines = head.split(b"\r\n")
    headers = {
        k.strip().lower(): v.strip() for k, _, v in (h.partition(b":") for h in header_lines)
    }
    if status_line.split()[1] == b"200":
        assert _is_uuid(headers[b"x-request-id"].decode())
    else:  # refused by the HTTP parser before the app runs
        assert status_line.split()[1] == b"400"
        assert b"\x01" not in headers.get(b"x-request-id", b"")


@pytest.mark.parametrize("case", ERROR_CASES)
async def test_error_envelope_matches_spec(shared_gateway: Gateway, spec: Spec, case: str) -> None:
    call, status, code = CASES[case]
    assert code is not None
    response = await call(shared_gateway, {})
    _assert_standard(response, status)
    assert response.content_type == "application/json"
    body = await response.json()
    assert list(body) == ["error"]
    error = body["error"]
    assert set(error) == {"code", "message", "detail", "timestamp", "request_id"}
    assert error["code"] == code
    assert error["code"][7:10] == str(status)
    documented = spec.errors.get(code)
    expected_message = documented.message if documented else CATALOGUE[code].message
    if documented is not None:
        assert documented.status == status
    assert error["message"] == expected_message
    assert TIMESTAMP.match(error["timestamp"]), error["timestamp"]
    assert error["request_id"] == response.headers["X-Request-ID"]
    assert _is_uuid(error["request_id"])


async def test_405_names_the_allowed_methods(shared_gateway: Gateway) -> None:
    response = await _wrong_method(shared_gateway, {})
    assert response.status == 405
    allowed = {m.strip() for m in response.headers["Allow"].split(",")}
    assert "GET" in allowed
    assert "PUT" not in allowed
    body = await response.json()
    assert set(body["error"]["detail"]["allowed"]) == allowed


async def test_429_carries_retry_after(shared_gateway: Gateway) -> None:
    response = await _locked_out(shared_gateway, {})
    assert response.status == 429
    retry_after = response.headers["Retry-After"]
    assert retry_after.isdigit()
    assert 1 <= int(retry_after) <= shared_gateway.app[SETTINGS].login_lockout_seconds + 1


@pytest.mark.asyncio(loop_scope="function")  # a gateway of its own
async def test_mode_header_follows_the_runtime_mode(
    gateway: Gateway, admin: dict[str, str]
) -> None:
    changed = await gateway.client.patch(
        "/api/v1/settings/runtime", json={"mode": "monitor"}, headers=admin
    )
    assert changed.status == 200
    assert changed.headers["X-AuroraSOC-Mode"] == "monitor"
    for response in [
        await gateway.client.get("/api/v1/users/me", headers=admin),
        await gateway.client.get("/api/v1/users/me"),
        await gateway.client.get("/api/v1/no-such-thing"),
    ]:
        assert response.headers["X-AuroraSOC-Mode"] == "monitor"
