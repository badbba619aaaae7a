"""The authorization sweep: every non-public route refuses the anonymous and the unentitled."""

from __future__ import annotations

import re
import uuid
from typing import Any

from aiohttp import ClientResponse

from core.security.permissions import ROLE_PERMISSIONS, Permission, Role
from gateway.app import ALL_ROUTES
from gateway.routing import Access, Route
from tests.conftest import Gateway

PARAM = re.compile(r"\{([^}:]+)(?::[^}]*)?\}")
GUARDED = [r for r in ALL_ROUTES if r.access is not Access.PUBLIC]
PERMISSION_GUARDED = [r for r in GUARDED if isinstance(r.access, Permission)]


def _concrete(path: str) -> str:
    """``path`` with each ``{param}`` replaced by a plausible random value."""
    return PARAM.sub(lambda m: f"{m.group(1).replace('_', '-')}-{uuid.uuid4().hex[:12]}", path)


async def _call(gw: Gateway, route: Route, headers: dict[str, str]) -> ClientResponse:
    kwargs: dict[str, Any] = {"headers": headers}
    if route.http_method in {"POST", "PUT", "PATCH"}:
        kwargs["json"] = {}
    return await gw.client.request(route.http_method, _concrete(route.path), **kwargs)


async def _outcome(response: ClientResponse) -> tuple[int, str | None]:
    if response.content_type != "application/json" or response.status < 400:
        return response.status, None
    body = await response.json()
    return response.status, body.get("error", {}).get("code") if isinstance(body, dict) else None


def _label(route: Route) -> str:
    return f"{route.method} {route.path}"


def _role_lacking(permission: Permission) -> Role | None:
    """The role with the most permissions that still lacks ``permission``; None when every
    role holds it (then only the API-key sweep can show the check)."""
    lacking = [role for role, held in ROLE_PERMISSIONS.items() if permission not in held]
    if not lacking:
        return None
    return max(lacking, key=lambda role: len(ROLE_PERMISSIONS[role]))


async def _api_key(gw: Gateway, owner: dict[str, str], permissions: list[Permission]) -> str:
    response = await gw.client.post(
        "/api/v1/auth/api-keys",
        json={
            "name": f"sweep-{uuid.uuid4().hex[:6]}",
            "permissions": [p.value for p in permissions],
        },
        headers=owner,
    )
    body = await response.json()
    assert response.status == 201, body
    assert sorted(body["permissions"]) == sorted(p.value for p in permissions)
    return str(body["key"])


def test_sweep_covers_routes() -> None:
    # Guards the sweeps below against passing on an empty route list.
    assert GUARDED
    assert PERMISSION_GUARDED


async def test_no_credentials_is_401(gateway: Gateway) -> None:
    wrong = []
    for route in GUARDED:
        outcome = await _outcome(await _call(gateway, route, {}))
        if outcome != (401, "AURORA-4010"):
            wrong.append((_label(route), outcome))
    assert wrong == []


async def test_api_key_without_the_permission_is_403(
    gateway: Gateway, admin: dict[str, str]
) -> None:
    wrong = []
    for route in PERMISSION_GUARDED:
        assert isinstance(route.access, Permission)
        others = [p for p in Permission if p is not route.access]
        key = await _api_key(gateway, admin, others)
        outcome = await _outcome(await _call(gateway, route, {"X-API-Key": key}))
        if outcome != (403, "AURORA-4030"):
            wrong.append((_label(route), outcome))
    assert wrong == []


async def test_role_without_the_permission_is_403(gateway: Gateway) -> None:
    wrong = []
    tokens: dict[Role, dict[str, str]] = {}
    for route in PERMISSION_GUARDED:
        assert isinstance(route.access, Permission)
        role = _role_lacking(route.access)
        if role is None:
            continue
        if role not in tokens:
            tokens[role] = await gateway.user(role)
        outcome = await _outcome(await _call(gateway, route, tokens[role]))
        if outcome != (403, "AURORA-4030"):
            wrong.append((_label(route), role.value, outcome))
    assert wrong == []


async def test_entitled_callers_get_past_authorization(
    gateway: Gateway, admin: dict[str, str]
) -> None:
    wrong = []
    for route in GUARDED:
        # A fresh token per route: the sweep includes logout, which revokes the one it is sent.
        credentials = {"admin token": await gateway.login("root-admin")}
        if isinstance(route.access, Permission):
            credentials["key with only this permission"] = {
                "X-API-Key": await _api_key(gateway, admin, [route.access])
            }
            holder = min(
                (r for r, held in ROLE_PERMISSIONS.items() if route.access in held),
                key=lambda r: len(ROLE_PERMISSIONS[r]),
            )
            credentials[f"{holder.value} token"] = await gateway.user(holder)
        else:
            credentials["viewer token"] = await gateway.user(Role.VIEWER)
        for name, headers in credentials.items():
            status, code = await _outcome(await _call(gateway, route, headers))
            if status in {401, 403}:
                wrong.append((_label(route), name, status, code))
    assert wrong == []


async def test_public_routes_need_no_credentials(gateway: Gateway) -> None:
    public = [r for r in ALL_ROUTES if r.access is Access.PUBLIC]
    assert public
    wrong = []
    for route in public:
        status, code = await _outcome(await _call(gateway, route, {}))
        if status in {401, 403}:
            wrong.append((_label(route), status, code))
    assert wrong == []
