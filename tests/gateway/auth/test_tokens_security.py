"""Forged, stale and revoked bearer tokens are refused with the exact AURORA code."""

from __future__ import annotations

import asyncio
import base64
import json
import math
import secrets
import time
import uuid
import warnings
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest
from jwt.warnings import InsecureKeyLengthWarning
from sqlalchemy import select

from core.errors import InvalidCredentials
from core.security.permissions import Role, permissions_for
from core.security.tokens import LEEWAY_SECONDS
from core.settings import Settings
from gateway.auth.models import RevokedToken
from gateway.auth.service import Authenticator
from gateway.keys import DATABASE, SETTINGS, TOKENS
from gateway.users.models import User
from tests.conftest import Gateway, start_gateway
from tests.waiting import eventually

# Tokens refused or accepted, and users, tokens and keys of each test's own: one gateway serves
# every case.
pytestmark = pytest.mark.asyncio(loop_scope="module")

ME = "/api/v1/users/me"


@pytest.fixture
def shared_settings(shared_gateway: Gateway) -> Settings:
    """The settings of the module's gateway (its signing key among them)."""
    return shared_gateway.app[SETTINGS]


def _b64(data: dict[str, Any]) -> str:
    raw = json.dumps(data, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _claims(settings: Settings, subject: str, **changes: Any) -> dict[str, Any]:
    now = datetime.now(UTC).replace(microsecond=0)
    claims: dict[str, Any] = {
        "sub": subject,
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
        "iat": int(now.timestamp()),
        "nbf": int(now.timestamp()),
        "exp": int((now + timedelta(minutes=5)).timestamp()),
        "jti": uuid.uuid4().hex,
        "typ": "access",
    }
    for name, value in changes.items():
        if value is None:
            claims.pop(name, None)
        else:
            claims[name] = value
    return claims


def _secret(settings: Settings) -> str:
    assert settings.jwt_secret is not None
    return settings.jwt_secret.get_secret_value()


def _sign(
    settings: Settings, claims: dict[str, Any], *, key: str | None = None, algorithm: str = "HS256"
) -> str:
    return jwt.encode(claims, key or _secret(settings), algorithm=algorithm)


async def _admin_id(gateway: Gateway, admin: dict[str, str]) -> str:
    response = await gateway.client.get(ME, headers=admin)
    assert response.status == 200
    return str((await response.json())["id"])


async def _refused(gateway: Gateway, token: str) -> tuple[int, str]:
    response = await gateway.client.get(ME, headers={"Authorization": f"Bearer {token}"})
    body = await response.json()
    return response.status, body["error"]["code"] if response.status >= 400 else "ok"


async def test_well_signed_crafted_token_is_accepted(
    shared_gateway: Gateway, shared_admin: dict[str, str], shared_settings: Settings
) -> None:
    # The control for every forgery below: the crafting itself yields a valid token.
    subject = await _admin_id(shared_gateway, shared_admin)
    assert await _refused(
        shared_gateway, _sign(shared_settings, _claims(shared_settings, subject))
    ) == (200, "ok")


async def test_alg_none_is_refused(
    shared_gateway: Gateway, shared_admin: dict[str, str], shared_settings: Settings
) -> None:
    subject = await _admin_id(shared_gateway, shared_admin)
    token = f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(_claims(shared_settings, subject))}."
    assert await _refused(shared_gateway, token) == (401, "AURORA-4012")


BAD_CLAIMS: list[tuple[str, dict[str, Any], str]] = [
    ("wrong audience", {"aud": "someone-else"}, "AURORA-4012"),
    ("wrong issuer", {"iss": "evil-issuer"}, "AURORA-4012"),
    ("missing jti", {"jti": None}, "AURORA-4012"),
    ("missing exp", {"exp": None}, "AURORA-4012"),
    ("missing sub", {"sub": None}, "AURORA-4012"),
    ("missing aud", {"aud": None}, "AURORA-4012"),
    ("empty jti", {"jti": ""}, "AURORA-4012"),
    ("numeric sub", {"sub": 12345}, "AURORA-4012"),
    ("not yet valid", {"nbf": "+3600"}, "AURORA-4012"),
    ("issued in the future", {"iat": "+3600"}, "AURORA-4012"),
    ("not an access token", {"typ": "refresh"}, "AURORA-4012"),
    ("expired", {"exp": "-120"}, "AURORA-4011"),
]


def _resolve(changes: dict[str, Any]) -> dict[str, Any]:
    """Relative times ("+3600", "-120") become epoch seconds from now."""
    now = int(datetime.now(UTC).timestamp())
    return {
        name: now + int(value) if isinstance(value, str) and value[:1] in {"+", "-"} else value
        for name, value in changes.items()
    }


async def test_bad_claims_are_refused(
    shared_gateway: Gateway, shared_admin: dict[str, str], shared_settings: Settings
) -> None:
    subject = await _admin_id(shared_gateway, shared_admin)
    wrong = []
    for case, changes, expected in BAD_CLAIMS:
        token = _sign(shared_settings, _claims(shared_settings, subject, **_resolve(changes)))
        outcome = await _refused(shared_gateway, token)
        if outcome != (401, expected):
            wrong.append((case, outcome))
    assert wrong == []


async def test_expired_forgery_is_invalid_not_expired(
    shared_gateway: Gateway, shared_admin: dict[str, str], shared_settings: Settings
) -> None:
    # A forged token must not learn anything from the answer, not even that it has expired.
    subject = await _admin_id(shared_gateway, shared_admin)
    claims = _claims(shared_settings, subject, **_resolve({"exp": "-120"}))
    token = _sign(shared_settings, claims, key=secrets.token_urlsafe(32))
    assert await _refused(shared_gateway, token) == (401, "AURORA-4012")


async def test_token_expiring_while_in_use_is_refused(
    shared_gateway: Gateway, shared_admin: dict[str, str]
) -> None:
    # A token accepted (and possibly remembered) a moment ago must still lapse on time.
    subject = await _admin_id(shared_gateway, shared_admin)
    # Real waits: the clock itself is under test (the verifier's cache and PyJWT each read it).
    if time.time() % 1 > 0.5:  # leave at least half a second to use it while valid
        await asyncio.sleep(1.01 - time.time() % 1)
    valid_until = math.floor(time.time()) + 1
    expires = valid_until - LEEWAY_SECONDS
    token = shared_gateway.token_for(
        subject, ttl_seconds=60, now=datetime.fromtimestamp(expires - 60, UTC)
    )
    assert await _refused(shared_gateway, token) == (200, "ok")
    assert await _refused(shared_gateway, token) == (200, "ok")
    await asyncio.sleep(valid_until - time.time() + 0.2)
    assert await _refused(shared_gateway, token) == (401, "AURORA-4011")


async def test_wrong_signature_is_refused(
    shared_gateway: Gateway, shared_admin: dict[str, str], shared_settings: Settings
) -> None:
    subject = await _admin_id(shared_gateway, shared_admin)
    token = _sign(shared_settings, _claims(shared_settings, subject), key=secrets.token_urlsafe(32))
    assert await _refused(shared_gateway, token) == (401, "AURORA-4012")


async def test_other_hmac_algorithm_with_the_right_key_is_refused(
    shared_gateway: Gateway, shared_admin: dict[str, str], shared_settings: Settings
) -> None:
    subject = await _admin_id(shared_gateway, shared_admin)
    with warnings.catch_warnings():
        # The test settings' 32-byte secret is short for HS512; irrelevant to the forgery.
        warnings.simplefilter("ignore", InsecureKeyLengthWarning)
        token = _sign(shared_settings, _claims(shared_settings, subject), algorithm="HS512")
    assert await _refused(shared_gateway, token) == (401, "AURORA-4012")


async def test_tampered_payload_is_refused(
    shared_gateway: Gateway, shared_admin: dict[str, str], shared_settings: Settings
) -> None:
    subject = await _admin_id(shared_gateway, shared_admin)
    header, _, signature = _sign(shared_settings, _claims(shared_settings, subject)).split(".")
    forged = _b64(_claims(shared_settings, str(uuid.uuid4())))
    assert await _refused(shared_gateway, f"{header}.{forged}.{signature}") == (401, "AURORA-4012")


async def test_garbage_token_is_refused(shared_gateway: Gateway) -> None:
    wrong = []
    for token in ["garbage", "a.b.c", "a.b", "....", "eyJhbGciOiJIUzI1NiJ9.e30.", "x" * 4000]:
        response = await shared_gateway.client.get(ME, headers={"Authorization": f"Bearer {token}"})
        outcome = (response.status, (await response.json())["error"]["code"])
        if outcome != (401, "AURORA-4012"):
            wrong.append((token[:30], outcome))
    assert wrong == []


async def test_token_for_unknown_user_is_refused(shared_gateway: Gateway) -> None:
    assert await _refused(shared_gateway, shared_gateway.token_for(str(uuid.uuid4()))) == (
        401,
        "AURORA-4012",
    )


async def test_token_of_deleted_user_is_refused(
    shared_gateway: Gateway, shared_admin: dict[str, str]
) -> None:
    victim = await shared_gateway.user(Role.ANALYST, "soon-gone")
    before = await shared_gateway.client.get(ME, headers=victim)
    assert before.status == 200
    deleted = await shared_gateway.client.delete("/api/v1/users/soon-gone", headers=shared_admin)
    assert deleted.status == 204
    after = await shared_gateway.client.get(ME, headers=victim)
    body = await after.json()
    assert after.status == 401
    assert body["error"]["code"] == "AURORA-4012"


async def test_logged_out_token_is_refused(shared_gateway: Gateway) -> None:
    headers = await shared_gateway.user(Role.VIEWER)
    other = await shared_gateway.user(Role.VIEWER)
    assert (await shared_gateway.client.get(ME, headers=headers)).status == 200
    logout = await shared_gateway.client.post("/api/v1/auth/logout", headers=headers)
    assert logout.status == 204
    assert await logout.read() == b""
    after = await shared_gateway.client.get(ME, headers=headers)
    assert after.status == 401
    assert (await after.json())["error"]["code"] == "AURORA-4012"
    again = await shared_gateway.client.post("/api/v1/auth/logout", headers=headers)
    assert again.status == 401
    # Revoking one token leaves the user's other sessions alone.
    assert (await shared_gateway.client.get(ME, headers=other)).status == 200


async def test_revocation_survives_a_restart(
    shared_gateway: Gateway, shared_settings: Settings
) -> None:
    headers = await shared_gateway.user(Role.VIEWER)
    assert (await shared_gateway.client.post("/api/v1/auth/logout", headers=headers)).status == 204
    fresh = await start_gateway(shared_settings)
    try:
        response = await fresh.get(ME, headers=headers)
        assert response.status == 401
        assert (await response.json())["error"]["code"] == "AURORA-4012"
    finally:
        await fresh.close()


async def test_the_refresher_forgets_revocations_of_expired_tokens(shared_gateway: Gateway) -> None:
    database = shared_gateway.app[DATABASE]
    now = datetime.now(UTC)
    async with database.session() as db:
        db.add(RevokedToken(jti="old", user_id="u", expires_at=now - timedelta(minutes=1)))
        db.add(RevokedToken(jti="live", user_id="u", expires_at=now + timedelta(hours=1)))
        await db.commit()
    authenticator = Authenticator(
        database=database,
        tokens=shared_gateway.app[TOKENS],
        user_cache_ttl=1.0,
        refresh_interval=0.05,
    )

    async def revoked() -> set[str]:
        async with database.session() as db:
            return set(await db.scalars(select(RevokedToken.jti)))

    async def forgot_the_expired() -> bool:
        return "old" not in await revoked()

    async with authenticator.refresh_loop():
        await eventually(forgot_the_expired, interval=0.05)
    assert "live" in await revoked()


async def test_non_bearer_authorization_is_401_authentication_required(
    shared_gateway: Gateway, shared_admin: dict[str, str]
) -> None:
    token = shared_admin["Authorization"].removeprefix("Bearer ")
    wrong = []
    for value in [
        "Basic xxx",
        "Basic dXNlcjpwYXNz",
        f"Token {token}",
        token,
        "Bearer",
        "Bearer   ",
    ]:
        response = await shared_gateway.client.get(ME, headers={"Authorization": value})
        outcome = (response.status, (await response.json())["error"]["code"])
        if outcome != (401, "AURORA-4010"):
            wrong.append((value[:20], outcome))
    assert wrong == []


async def test_query_string_token_is_ignored_on_http_routes(
    shared_gateway: Gateway, shared_admin: dict[str, str]
) -> None:
    # Only a WebSocket upgrade may carry its token in the URL (browsers cannot set headers).
    token = shared_admin["Authorization"].removeprefix("Bearer ")
    response = await shared_gateway.client.get(ME, params={"access_token": token})
    body = await response.json()
    assert response.status == 401
    assert body["error"]["code"] == "AURORA-4010"


async def test_invalid_bearer_is_not_rescued_by_a_valid_api_key(
    shared_gateway: Gateway, shared_admin: dict[str, str]
) -> None:
    created = await shared_gateway.client.post(
        "/api/v1/auth/api-keys", json={"name": "k"}, headers=shared_admin
    )
    key = (await created.json())["key"]
    response = await shared_gateway.client.get(
        ME, headers={"Authorization": "Bearer not-a-token", "X-API-Key": key}
    )
    assert response.status == 401
    assert (await response.json())["error"]["code"] == "AURORA-4012"


async def test_a_change_made_elsewhere_reaches_a_token_s_caller(shared_gateway: Gateway) -> None:
    """A token's caller is built once and reused while its account reads the same; a role
    changed or sessions ended by another replica (straight in the database here) reach it once
    the account is read again."""
    user_id = await _admin_id(shared_gateway, await shared_gateway.user(Role.VIEWER))
    token = shared_gateway.token_for(user_id)
    authenticator = Authenticator(
        database=shared_gateway.app[DATABASE],
        tokens=shared_gateway.app[TOKENS],
        user_cache_ttl=0.05,
    )
    first = await authenticator.from_bearer(token)
    assert (first.user.role, first.method) == ("viewer", "token")
    assert await authenticator.from_bearer(token) is first

    async with shared_gateway.app[DATABASE].session() as db:
        user = await db.get(User, user_id)
        assert user is not None
        user.role = Role.RESPONDER.value
        await db.commit()

    async def responder() -> bool:
        caller = await authenticator.from_bearer(token)
        return caller.user.role == "responder" and caller.permissions == permissions_for(
            Role.RESPONDER
        )

    await eventually(responder, interval=0.02)

    async with shared_gateway.app[DATABASE].session() as db:
        user = await db.get(User, user_id)
        assert user is not None
        user.tokens_valid_after = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=1)
        await db.commit()

    async def refused() -> bool:
        try:
            await authenticator.from_bearer(token)
        except InvalidCredentials:
            return True
        return False

    await eventually(refused, interval=0.02)
