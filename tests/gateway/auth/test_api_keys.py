"""API keys: shown once, never listed, scoped, revocable, expiring."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import update

from core.security.apikeys import KEY_PATTERN
from core.security.permissions import Permission, Role, permissions_for
from gateway.auth.models import ApiKey
from gateway.keys import DATABASE
from tests.conftest import Gateway

KEYS = "/api/v1/auth/api-keys"
EMPTY_PAGE = {"items": [], "total": 0, "limit": 500, "offset": 0}
ME = "/api/v1/users/me"


async def _create(gateway: Gateway, owner: dict[str, str], **fields: Any) -> dict[str, Any]:
    response = await gateway.client.post(KEYS, json={"name": "ci", **fields}, headers=owner)
    body = await response.json()
    assert response.status == 201, body
    return dict(body)


async def _error(response: Any) -> tuple[int, str]:
    return response.status, (await response.json())["error"]["code"]


async def test_create_shows_the_key_once(gateway: Gateway, admin: dict[str, str]) -> None:
    response = await gateway.client.post(KEYS, json={"name": "deploy bot"}, headers=admin)
    assert response.status == 201
    assert response.headers.get("Cache-Control") == "no-store"
    created = await response.json()
    key = created["key"]
    assert key.startswith("ak_")
    match = KEY_PATTERN.match(key)
    assert match is not None
    assert created["prefix"] == match.group(1)
    assert created["name"] == "deploy bot"
    assert created["revoked_at"] is None
    assert created["expires_at"] is None
    # Without "permissions" the key carries all of the owner's.
    assert sorted(created["permissions"]) == sorted(p.value for p in Permission)

    listed = await gateway.client.get(KEYS, headers=admin)
    text = await listed.text()
    assert listed.status == 200
    body = json.loads(text)
    assert body["total"] == 1
    [item] = body["items"]
    assert item["id"] == created["id"]
    assert "key" not in item
    assert key not in text
    assert match.group(2) not in text
    assert all(match.group(2) not in str(value) for value in item.values())


async def test_keys_are_listed_a_page_at_a_time_oldest_first(
    gateway: Gateway, admin: dict[str, str]
) -> None:
    ids = [(await _create(gateway, admin, name=f"key {n}"))["id"] for n in range(3)]
    listed = await gateway.client.get(KEYS, params={"limit": "2", "offset": "1"}, headers=admin)
    page = await listed.json()
    assert listed.status == 200
    assert ([k["id"] for k in page["items"]], page["total"]) == (ids[1:], 3)
    assert (page["limit"], page["offset"]) == (2, 1)
    for bad in ({"limit": "0"}, {"limit": "501"}, {"offset": "-1"}, {"owner": "x"}):
        refused = await gateway.client.get(KEYS, params=bad, headers=admin)
        assert (refused.status, [d["loc"] for d in (await refused.json())["error"]["detail"]]) == (
            422,
            [["query", *bad]],
        )


async def test_keys_are_listed_for_their_owner_only(
    gateway: Gateway, admin: dict[str, str]
) -> None:
    await _create(gateway, admin)
    viewer = await gateway.user(Role.VIEWER)
    listed = await gateway.client.get(KEYS, headers=viewer)
    assert listed.status == 200
    assert await listed.json() == EMPTY_PAGE


async def test_key_authenticates(gateway: Gateway) -> None:
    analyst = await gateway.user(Role.ANALYST, "key-owner")
    created = await _create(gateway, analyst, permissions=["alerts:read", "cases:write"])
    response = await gateway.client.get(ME, headers={"X-API-Key": created["key"]})
    body = await response.json()
    assert response.status == 200, body
    assert body["username"] == "key-owner"
    assert body["auth_method"] == "api_key"
    assert body["permissions"] == ["alerts:read", "cases:write"]
    listed = await (await gateway.client.get(KEYS, headers=analyst)).json()
    assert listed["items"][0]["last_used_at"] is not None


async def test_each_key_of_one_owner_shows_its_own_grant(gateway: Gateway) -> None:
    """``/users/me`` answers with the grant of the key presented, not another of its owner's
    keys seen before (the profile is the same account, signed in the same way)."""
    analyst = await gateway.user(Role.ANALYST, "two-keys")
    narrow = await _create(gateway, analyst, name="narrow", permissions=["alerts:read"])
    wide = await _create(gateway, analyst, name="wide", permissions=["alerts:read", "siem:read"])
    for created in (narrow, wide, narrow):
        response = await gateway.client.get(ME, headers={"X-API-Key": created["key"]})
        body = await response.json()
        assert response.status == 200, body
        assert body["permissions"] == created["permissions"]
    token = await (await gateway.client.get(ME, headers=analyst)).json()
    assert token["auth_method"] == "token"
    assert token["permissions"] == sorted(p.value for p in permissions_for(Role.ANALYST))


async def test_scoped_key_is_refused_elsewhere(gateway: Gateway, admin: dict[str, str]) -> None:
    created = await _create(gateway, admin, permissions=["system:read"])
    key = {"X-API-Key": created["key"]}
    assert (await gateway.client.get("/api/v1/settings/runtime", headers=key)).status == 200
    patch = await gateway.client.patch(
        "/api/v1/settings/runtime", json={"mode": "monitor"}, headers=key
    )
    assert await _error(patch) == (403, "AURORA-4030")
    users = await gateway.client.get("/api/v1/users", headers=key)
    assert await _error(users) == (403, "AURORA-4030")
    # The refused change was not applied.
    runtime = await (await gateway.client.get("/api/v1/settings/runtime", headers=admin)).json()
    assert runtime["settings"]["mode"] == "dry_run"


async def test_key_cannot_exceed_its_owner(gateway: Gateway) -> None:
    viewer = await gateway.user(Role.VIEWER)
    assert Permission.ALERTS_WRITE not in permissions_for(Role.VIEWER)
    response = await gateway.client.post(
        KEYS,
        json={"name": "sneaky", "permissions": ["alerts:read", "alerts:write"]},
        headers=viewer,
    )
    body = await response.json()
    assert response.status == 403
    assert body["error"]["code"] == "AURORA-4030"
    assert body["error"]["detail"] == {"permissions_not_held": ["alerts:write"]}
    assert "key" not in body
    listed = await (await gateway.client.get(KEYS, headers=viewer)).json()
    assert listed == EMPTY_PAGE


async def test_default_key_carries_the_owner_permissions(
    gateway: Gateway,
) -> None:
    viewer = await gateway.user(Role.VIEWER)
    created = await _create(gateway, viewer)
    assert sorted(created["permissions"]) == sorted(p.value for p in permissions_for(Role.VIEWER))
    response = await gateway.client.get(
        "/api/v1/settings/runtime", headers={"X-API-Key": created["key"]}
    )
    assert await _error(response) == (403, "AURORA-4030")


async def test_revoked_key_is_refused(gateway: Gateway, admin: dict[str, str]) -> None:
    created = await _create(gateway, admin)
    key = {"X-API-Key": created["key"]}
    assert (await gateway.client.get(ME, headers=key)).status == 200
    revoked = await gateway.client.delete(f"{KEYS}/{created['id']}", headers=admin)
    assert revoked.status == 204
    assert await revoked.read() == b""
    assert await _error(await gateway.client.get(ME, headers=key)) == (401, "AURORA-4012")
    listed = await (await gateway.client.get(KEYS, headers=admin)).json()
    assert listed["items"][0]["revoked_at"] is not None
    # Revoking again is harmless.
    assert (await gateway.client.delete(f"{KEYS}/{created['id']}", headers=admin)).status == 204


async def test_expired_key_is_refused(gateway: Gateway, admin: dict[str, str]) -> None:
    soon = datetime.now(UTC) + timedelta(hours=1)
    created = await _create(gateway, admin, expires_at=soon.isoformat())
    key = {"X-API-Key": created["key"]}
    assert (await gateway.client.get(ME, headers=key)).status == 200
    async with gateway.app[DATABASE].session() as db:
        await db.execute(
            update(ApiKey)
            .where(ApiKey.id == created["id"])
            .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
        await db.commit()
    assert await _error(await gateway.client.get(ME, headers=key)) == (401, "AURORA-4011")


async def test_non_admin_cannot_revoke_someone_elses_key(
    gateway: Gateway, admin: dict[str, str]
) -> None:
    analyst = await gateway.user(Role.ANALYST)
    other = await gateway.user(Role.ANALYST)
    created = await _create(gateway, analyst)
    response = await gateway.client.delete(f"{KEYS}/{created['id']}", headers=other)
    assert await _error(response) == (404, "AURORA-4040")
    # Same answer as for a key that does not exist: no way to probe for ids.
    missing = await gateway.client.delete(
        f"{KEYS}/00000000-0000-0000-0000-000000000000", headers=other
    )
    assert await _error(missing) == (404, "AURORA-4040")
    assert (await gateway.client.get(ME, headers={"X-API-Key": created["key"]})).status == 200
    # An admin may revoke anyone's key.
    assert (await gateway.client.delete(f"{KEYS}/{created['id']}", headers=admin)).status == 204
    response = await gateway.client.get(ME, headers={"X-API-Key": created["key"]})
    assert await _error(response) == (401, "AURORA-4012")


async def test_malformed_and_unknown_keys_are_refused(
    gateway: Gateway, admin: dict[str, str]
) -> None:
    real = (await _create(gateway, admin))["key"]
    match = KEY_PATTERN.match(real)
    assert match is not None
    prefix = match.group(1)
    for bad in [
        "not-a-key",
        "ak_short_secret",
        real + "x",
        f"ak_{prefix}_{'A' * 43}",  # right prefix, wrong secret
        f"ak_{'Z' * 12}_{'A' * 43}",  # well-formed, unknown prefix
    ]:
        response = await gateway.client.get(ME, headers={"X-API-Key": bad})
        assert await _error(response) == (401, "AURORA-4012"), bad


async def test_expiry_in_the_past_is_422(gateway: Gateway, admin: dict[str, str]) -> None:
    past = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    response = await gateway.client.post(
        KEYS, json={"name": "stale", "expires_at": past}, headers=admin
    )
    body = await response.json()
    assert response.status == 422
    assert body["error"]["code"] == "AURORA-4220"
    assert [d["loc"] for d in body["error"]["detail"]] == [["body", "expires_at"]]
    listed = await (await gateway.client.get(KEYS, headers=admin)).json()
    assert listed["total"] == 0


async def test_invalid_create_bodies_are_422(gateway: Gateway, admin: dict[str, str]) -> None:
    for bad, field in [
        ({"name": "naive", "expires_at": "2999-01-01T00:00:00"}, "expires_at"),
        ({"name": "x", "permissions": ["alerts:fly"]}, "permissions"),
        ({"name": ""}, "name"),
        ({"name": "x", "owner": "someone"}, "owner"),
    ]:
        response = await gateway.client.post(KEYS, json=bad, headers=admin)
        body = await response.json()
        assert response.status == 422, bad
        assert body["error"]["code"] == "AURORA-4220"
        assert any(d["loc"][:2] == ["body", field] for d in body["error"]["detail"]), body
    listed = await (await gateway.client.get(KEYS, headers=admin)).json()
    assert listed["total"] == 0


async def test_a_key_cannot_create_keys(gateway: Gateway, admin: dict[str, str]) -> None:
    # A key made by a key could outlive its parent or survive its revocation: only a signed-in
    # account creates keys, and the refusal comes before the body is even read.
    parent = {"X-API-Key": (await _create(gateway, admin))["key"]}
    for body in ({"name": "child"}, {"name": "child", "permissions": ["system:read"]}, {}):
        response = await gateway.client.post(KEYS, json=body, headers=parent)
        refused = await response.json()
        assert (response.status, refused["error"]["code"]) == (403, "AURORA-4030"), body
        assert "sign in" in refused["error"]["detail"]["reason"]
        assert "key" not in refused
    listed = await (await gateway.client.get(KEYS, headers=admin)).json()
    assert [item["name"] for item in listed["items"]] == ["ci"]
    # The key still reads what its grant allows.
    assert (await gateway.client.get(KEYS, headers=parent)).status == 200


async def test_key_dies_with_its_owner(gateway: Gateway, admin: dict[str, str]) -> None:
    owner = await gateway.user(Role.ANALYST, "short-lived")
    key = {"X-API-Key": (await _create(gateway, owner))["key"]}
    assert (await gateway.client.get(ME, headers=key)).status == 200
    assert (await gateway.client.delete("/api/v1/users/short-lived", headers=admin)).status == 204
    assert await _error(await gateway.client.get(ME, headers=key)) == (401, "AURORA-4012")


async def test_logout_with_a_key_is_refused_and_keeps_the_key(
    gateway: Gateway, admin: dict[str, str]
) -> None:
    key = {"X-API-Key": (await _create(gateway, admin))["key"]}
    response = await gateway.client.post("/api/v1/auth/logout", headers=key)
    body = await response.json()
    assert response.status == 422
    assert body["error"]["code"] == "AURORA-4220"
    assert body["error"]["detail"][0]["loc"] == ["header", "Authorization"]
    assert (await gateway.client.get(ME, headers=key)).status == 200
