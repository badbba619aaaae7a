"""A platform-signed agent token (a service identity with no account) on the auth routes and
/users/me: clear answers, never a 500."""

from __future__ import annotations

import uuid

from sqlalchemy import func, select

from agents.acp.server import AGENT_TOKEN_TYPE
from gateway.app import ALL_ROUTES
from gateway.auth.models import ApiKey, RevokedToken
from gateway.keys import DATABASE, TOKENS
from tests.conftest import Gateway

KEYS = "/api/v1/auth/api-keys"
EMPTY_PAGE = {"items": [], "total": 0, "limit": 500, "offset": 0}
ME = "/api/v1/users/me"


def agent_headers(gateway: Gateway, subject: str = "hunter") -> dict[str, str]:
    token = gateway.app[TOKENS].issue(subject, token_type=AGENT_TOKEN_TYPE).token
    return {"Authorization": f"Bearer {token}"}


async def test_no_auth_route_or_users_me_fails_for_an_agent_token(gateway: Gateway) -> None:
    routes = [r for r in ALL_ROUTES if r.path.startswith("/api/v1/auth/") or r.path == ME]
    assert len(routes) >= 7
    failed = []
    for route in routes:
        path = route.path.replace("{key_id}", str(uuid.uuid4()))
        for body in (None, {}, {"name": "agent key"}):
            response = await gateway.client.request(
                route.http_method, path, json=body, headers=agent_headers(gateway)
            )
            if response.status >= 500:
                failed.append((route.method, route.path, body, response.status))
    assert failed == []


async def test_an_agent_token_cannot_own_api_keys(gateway: Gateway) -> None:
    agent = agent_headers(gateway)
    response = await gateway.client.post(KEYS, json={"name": "agent key"}, headers=agent)
    body = await response.json()
    assert (response.status, body["error"]["code"]) == (422, "AURORA-4220")
    assert body["error"]["detail"] == [
        {
            "loc": ["header", "Authorization"],
            "msg": "service identities cannot own API keys",
            "type": "value_error",
        }
    ]
    listed = await gateway.client.get(KEYS, headers=agent)
    assert (listed.status, await listed.json()) == (200, EMPTY_PAGE)
    async with gateway.app[DATABASE].session() as db:
        assert await db.scalar(select(func.count()).select_from(ApiKey)) == 0


async def test_an_agent_token_sees_itself_and_logs_out(gateway: Gateway) -> None:
    agent = agent_headers(gateway, "hunter")
    me = await gateway.client.get(ME, headers=agent)
    profile = await me.json()
    assert me.status == 200, profile
    assert (profile["username"], profile["role"], profile["auth_method"]) == (
        "agent:hunter",
        "service_agent",
        "agent_token",
    )
    assert (await gateway.client.post("/api/v1/auth/logout", headers=agent)).status == 204
    refused = await gateway.client.get(ME, headers=agent)
    assert (refused.status, (await refused.json())["error"]["code"]) == (401, "AURORA-4012")
    async with gateway.app[DATABASE].session() as db:
        [revoked] = list(await db.scalars(select(RevokedToken)))
    assert revoked.user_id is None  # no account behind it
    # Another agent token is not affected.
    assert (await gateway.client.get(ME, headers=agent_headers(gateway, "hunter"))).status == 200
