"""The five WebSocket streams: each needs the read permission of its data, and each ends (a last
error message, then close code 4401 or 4403) when its credential stops holding: expiry, logout,
deletion, a revoked key, at once on this gateway and at the next refresh when done elsewhere.
Actions sent over /ws/approvals are judged by the sender's credential as it stands then."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp import ClientWebSocketResponse, WSMsgType, WSServerHandshakeError
from sqlalchemy import select, update

from core.security.permissions import Permission, Role
from core.settings import Settings
from gateway.app import ALL_ROUTES
from gateway.auth.models import ApiKey, RevokedToken
from gateway.investigations.models import Approval
from gateway.keys import AUTHENTICATOR, BUS, DATABASE, TOKENS
from gateway.users.models import User
from tests.conftest import Gateway, make_settings, start_gateway
from tests.ports import free_port

AGENT = "quiet-agent"
STREAMS = {
    "/api/v1/ws/alerts": Permission.ALERTS_READ,
    "/api/v1/ws/agent-thoughts": Permission.INVESTIGATIONS_READ,
    "/api/v1/ws/investigation-receipts": Permission.INVESTIGATIONS_READ,
    f"/api/v1/ws/agents/{AGENT}/tool-calls": Permission.AGENTS_READ,
    "/api/v1/ws/approvals": Permission.INVESTIGATIONS_READ,
}
KEYS = "/api/v1/auth/api-keys"


def stream_settings(settings: Settings) -> Settings:
    """The test settings with one configured (never reached) agent, for its tool-call stream."""
    return make_settings(
        settings.data_dir,
        settings.effective_database_url,
        jwt_secret=settings.jwt_secret.get_secret_value() if settings.jwt_secret else None,
        agent_urls={AGENT: [f"ws://127.0.0.1:{free_port()}"]},
    )


@pytest.fixture
async def gateway(settings: Settings) -> AsyncIterator[Gateway]:
    client = await start_gateway(stream_settings(settings))
    try:
        yield Gateway(client)
    finally:
        await client.close()


@pytest.fixture
def no_refresh(gateway: Gateway, monkeypatch: pytest.MonkeyPatch) -> None:
    """Only what happens on this gateway may end a stream: the periodic refresh does nothing."""

    async def idle() -> None:
        return None

    monkeypatch.setattr(gateway.app[AUTHENTICATOR], "refresh", idle, raising=False)


@dataclass(frozen=True)
class Ending:
    """How the server ended a stream: the AURORA code of its last error message, the close
    code and the close reason."""

    error: str | None
    close: int | None
    reason: str | None


async def ending(ws: ClientWebSocketResponse, within: float = 10.0) -> Ending:
    """Read the stream until the server closes it; fail after ``within`` seconds."""
    last: str | None = None
    async with asyncio.timeout(within):
        while True:
            message = await ws.receive()
            if message.type is WSMsgType.TEXT:
                data = json.loads(message.data)
                if data.get("type") == "error":
                    last = data["error"]["code"]
            elif message.type is WSMsgType.CLOSE:
                return Ending(last, int(message.data), str(message.extra))
            elif message.type in {WSMsgType.CLOSED, WSMsgType.ERROR}:
                return Ending(last, ws.close_code, None)


def connect(gateway: Gateway, path: str, credential: dict[str, str]) -> Any:
    return gateway.client.ws_connect(path, headers=credential)


async def key_for(
    gateway: Gateway, owner: dict[str, str], permissions: list[Permission] | None = None
) -> tuple[str, dict[str, str]]:
    body: dict[str, Any] = {"name": f"k-{uuid.uuid4().hex[:6]}"}
    if permissions is not None:
        body["permissions"] = [p.value for p in permissions]
    response = await gateway.client.post(KEYS, json=body, headers=owner)
    created = await response.json()
    assert response.status == 201, created
    return str(created["id"]), {"X-API-Key": created["key"]}


async def user_id(gateway: Gateway, username: str) -> str:
    async with gateway.app[DATABASE].session() as db:
        found = await db.scalar(select(User.id).where(User.username == username))
    assert found is not None
    return str(found)


async def still_open(gateway: Gateway, ws: ClientWebSocketResponse) -> bool:
    """The alert stream delivers a fresh event."""
    marker = uuid.uuid4().hex
    gateway.app[BUS].publish("alerts.created", {"id": marker})
    async with asyncio.timeout(5):
        while True:
            message = await ws.receive()
            if message.type is not WSMsgType.TEXT:
                return False
            data = json.loads(message.data)
            if data.get("alert", {}).get("id") == marker:
                return True


def test_every_stream_names_the_permission_of_its_data() -> None:
    routes = {r.path.replace("{agent_id}", AGENT): r for r in ALL_ROUTES if r.is_websocket}
    assert {path: route.stream_permission for path, route in routes.items()} == STREAMS
    # The contract's label stays "Authenticated"; the stream's permission is checked besides.
    assert {route.access.value for route in routes.values()} == {"authenticated"}


async def test_streams_need_the_read_permission_of_their_data(
    gateway: Gateway, admin: dict[str, str]
) -> None:
    wrong = []
    for path, needed in STREAMS.items():
        _, lacking = await key_for(gateway, admin, [p for p in Permission if p is not needed])
        response = await gateway.client.get(path, headers=lacking)
        outcome = (response.status, (await response.json())["error"])
        if outcome[0] != 403 or outcome[1]["code"] != "AURORA-4030":
            wrong.append((path, "plain", outcome))
        elif outcome[1]["detail"] != {"required": needed.value}:
            wrong.append((path, "detail", outcome))
        try:
            async with connect(gateway, path, lacking):
                wrong.append((path, "upgraded without the permission"))
        except WSServerHandshakeError as refused:
            if refused.status != 403:
                wrong.append((path, "handshake", refused.status))
        _, holding = await key_for(gateway, admin, [needed])
        async with connect(gateway, path, holding) as ws:
            assert not ws.closed
    assert wrong == []


async def test_a_key_with_only_siem_read_gets_no_alert_stream(
    gateway: Gateway, admin: dict[str, str]
) -> None:
    _, siem_only = await key_for(gateway, admin, [Permission.SIEM_READ])
    with pytest.raises(WSServerHandshakeError) as refused:
        async with connect(gateway, "/api/v1/ws/alerts", siem_only):
            pass
    assert refused.value.status == 403


@pytest.mark.usefixtures("no_refresh")
async def test_logout_ends_every_stream_of_that_token_at_once(gateway: Gateway) -> None:
    viewer = await gateway.user(Role.VIEWER)
    other = await gateway.user(Role.VIEWER)
    async with contextlib.AsyncExitStack() as stack:
        sockets = [await stack.enter_async_context(connect(gateway, p, viewer)) for p in STREAMS]
        bystander = await stack.enter_async_context(connect(gateway, "/api/v1/ws/alerts", other))
        logout = await gateway.client.post("/api/v1/auth/logout", headers=viewer)
        assert logout.status == 204
        endings = await asyncio.gather(*(ending(ws) for ws in sockets))
        for path, end in zip(STREAMS, endings, strict=True):
            assert end == Ending("AURORA-4012", 4401, "the access token has been revoked"), path
        # Another session of the same kind is untouched.
        assert await still_open(gateway, bystander)


@pytest.mark.usefixtures("no_refresh")
async def test_a_stream_ends_when_its_token_expires(gateway: Gateway) -> None:
    await gateway.create_user("brief", Role.ANALYST)
    short = gateway.token_for(await user_id(gateway, "brief"), ttl_seconds=3)
    async with connect(gateway, "/api/v1/ws/alerts", {"Authorization": f"Bearer {short}"}) as ws:
        end = await ending(ws)
    assert end == Ending("AURORA-4011", 4401, "the access token has expired")


@pytest.mark.usefixtures("no_refresh")
async def test_deleting_a_user_ends_its_token_and_key_streams_at_once(
    gateway: Gateway, admin: dict[str, str]
) -> None:
    doomed = await gateway.user(Role.ANALYST, "doomed")
    _, key = await key_for(gateway, doomed)
    async with (
        connect(gateway, "/api/v1/ws/alerts", doomed) as by_token,
        connect(gateway, "/api/v1/ws/approvals", key) as by_key,
    ):
        deleted = await gateway.client.delete("/api/v1/users/doomed", headers=admin)
        assert deleted.status == 204
        token_end, key_end = await asyncio.gather(ending(by_token), ending(by_key))
    assert token_end == Ending("AURORA-4012", 4401, "the account no longer exists or is disabled")
    assert key_end == Ending(
        "AURORA-4012", 4401, "the API key's owner no longer exists or is disabled"
    )


@pytest.mark.usefixtures("no_refresh")
async def test_revoking_a_key_ends_its_streams_at_once(
    gateway: Gateway, admin: dict[str, str]
) -> None:
    key_id, key = await key_for(gateway, admin, [Permission.ALERTS_READ])
    _, kept = await key_for(gateway, admin, [Permission.ALERTS_READ])
    async with (
        connect(gateway, "/api/v1/ws/alerts", key) as ws,
        connect(gateway, "/api/v1/ws/alerts", kept) as other,
    ):
        assert (await gateway.client.delete(f"{KEYS}/{key_id}", headers=admin)).status == 204
        end = await ending(ws)
        assert await still_open(gateway, other)
    assert end == Ending("AURORA-4012", 4401, "the API key has been revoked")


async def test_changes_made_elsewhere_end_streams_at_the_next_refresh(
    gateway: Gateway, settings: Settings, admin: dict[str, str]
) -> None:
    # Another replica on the same database: what it does reaches this gateway only through the
    # database, which this gateway reads again every few seconds.
    replica = Gateway(await start_gateway(stream_settings(settings)))
    try:
        logged_out = await gateway.user(Role.VIEWER)
        await gateway.create_user("disabled", Role.VIEWER)
        disabled = await gateway.login("disabled")
        revoked_id, revoked = await key_for(gateway, admin, [Permission.ALERTS_READ])
        narrowed_id, narrowed = await key_for(
            gateway, admin, [Permission.ALERTS_READ, Permission.CASES_READ]
        )
        kept = await gateway.user(Role.VIEWER)
        async with (
            connect(gateway, "/api/v1/ws/alerts", logged_out) as ws_logged_out,
            connect(gateway, "/api/v1/ws/alerts", disabled) as ws_disabled,
            connect(gateway, "/api/v1/ws/alerts", revoked) as ws_revoked,
            connect(gateway, "/api/v1/ws/alerts", narrowed) as ws_narrowed,
            connect(gateway, "/api/v1/ws/alerts", kept) as ws_kept,
        ):
            assert (
                await replica.client.post("/api/v1/auth/logout", headers=logged_out)
            ).status == 204
            assert (await replica.client.delete(f"{KEYS}/{revoked_id}", headers=admin)).status == (
                204
            )
            async with gateway.app[DATABASE].session() as db:
                await db.execute(
                    update(User).where(User.username == "disabled").values(is_active=False)
                )
                await db.execute(
                    update(ApiKey)
                    .where(ApiKey.id == narrowed_id)
                    .values(permissions=["cases:read"])
                )
                await db.commit()
            ends = await asyncio.gather(
                *(
                    ending(ws, within=20)
                    for ws in (ws_logged_out, ws_disabled, ws_revoked, ws_narrowed)
                )
            )
            assert await still_open(gateway, ws_kept)
    finally:
        await replica.client.close()
    assert ends == [
        Ending("AURORA-4012", 4401, "the access token has been revoked"),
        Ending("AURORA-4012", 4401, "the account no longer exists or is disabled"),
        Ending("AURORA-4012", 4401, "the API key has been revoked"),
        Ending("AURORA-4030", 4403, "alerts:read no longer granted"),
    ]


async def _pending_approval(gateway: Gateway) -> str:
    approval_id = f"INV-2026-{uuid.uuid4().hex[:5]}/A1"
    now = datetime.now(UTC)
    async with gateway.app[DATABASE].session() as db:
        db.add(
            Approval(
                id=approval_id,
                investigation_id=approval_id.split("/")[0],
                action="block_ip",
                target="203.0.113.9",
                request={},
                status="pending",
                requested_at=now,
                expires_at=now + timedelta(hours=1),
            )
        )
        await db.commit()
    return approval_id


async def _status(gateway: Gateway, approval_id: str) -> str:
    async with gateway.app[DATABASE].session() as db:
        approval = await db.get(Approval, approval_id)
    assert approval is not None
    return approval.status


async def _greeted(ws: ClientWebSocketResponse, approval_id: str) -> None:
    greeting = await asyncio.wait_for(ws.receive_json(), 5)
    assert greeting["type"] == "pending"
    assert approval_id in {a["approval_id"] for a in greeting["approvals"]}


@pytest.mark.usefixtures("no_refresh")
async def test_a_responder_logged_out_elsewhere_cannot_decide(gateway: Gateway) -> None:
    approval_id = await _pending_approval(gateway)
    responder = await gateway.user(Role.RESPONDER, "resp")
    token = responder["Authorization"].removeprefix("Bearer ")
    async with connect(gateway, "/api/v1/ws/approvals", responder) as ws:
        await _greeted(ws, approval_id)
        # The logout happened on another replica: only the database knows yet.
        claims = gateway.app[TOKENS].verify(token)
        async with gateway.app[DATABASE].session() as db:
            db.add(
                RevokedToken(jti=claims.jti, user_id=claims.subject, expires_at=claims.expires_at)
            )
            await db.commit()
        await ws.send_json({"type": "decide", "approval_id": approval_id, "decision": "deny"})
        end = await ending(ws)
    assert end == Ending("AURORA-4012", 4401, "the access token has been revoked")
    assert await _status(gateway, approval_id) == "pending"


@pytest.mark.usefixtures("no_refresh")
async def test_a_responder_demoted_meanwhile_cannot_decide(gateway: Gateway) -> None:
    approval_id = await _pending_approval(gateway)
    responder = await gateway.user(Role.RESPONDER, "resp")
    async with connect(gateway, "/api/v1/ws/approvals", responder) as ws:
        await _greeted(ws, approval_id)
        async with gateway.app[DATABASE].session() as db:
            await db.execute(
                update(User).where(User.username == "resp").values(role=Role.ANALYST.value)
            )
            await db.commit()
        await ws.send_json({"type": "decide", "approval_id": approval_id, "decision": "approve"})
        refused = await asyncio.wait_for(ws.receive_json(), 5)
        assert refused["type"] == "error"
        assert refused["approval_id"] == approval_id
        assert refused["error"]["code"] == "AURORA-4030"
        # Still a reader of the stream (analysts read investigations): it stays open.
        await ws.send_json({"type": "cancel"})
        assert (await asyncio.wait_for(ws.receive_json(), 5))["error"]["code"] == "AURORA-4220"
    assert await _status(gateway, approval_id) == "pending"
    # Promoted again, the same socket decides: the check is the current role.
    async with gateway.app[DATABASE].session() as db:
        await db.execute(
            update(User).where(User.username == "resp").values(role=Role.RESPONDER.value)
        )
        await db.commit()
    async with connect(gateway, "/api/v1/ws/approvals", responder) as ws:
        await _greeted(ws, approval_id)
        await ws.send_json({"type": "decide", "approval_id": "INV-0-0/A9", "decision": "deny"})
        reached = await asyncio.wait_for(ws.receive_json(), 5)
    assert reached["error"]["code"] == "AURORA-4040"


@pytest.mark.parametrize(
    "frame",
    [
        pytest.param("[" * 30_000 + "]" * 30_000, id="30k-deep"),
        pytest.param('{"type": "decide", "approval_id": "A\\u0000", "decision": "deny"}', id="nul"),
        pytest.param('{"type": "decide", "approval_id": NaN}', id="nan"),
    ],
)
async def test_a_hostile_message_is_refused_and_the_socket_stays_useful(
    gateway: Gateway, frame: str
) -> None:
    approval_id = await _pending_approval(gateway)
    responder = await gateway.user(Role.RESPONDER, "resp")
    async with connect(gateway, "/api/v1/ws/approvals", responder) as ws:
        await _greeted(ws, approval_id)
        await ws.send_str(frame)
        refused = await asyncio.wait_for(ws.receive_json(), 5)
        assert refused["type"] == "error"
        assert refused["error"]["code"] == "AURORA-4220"
        await ws.send_json({"type": "decide", "approval_id": approval_id, "decision": "deny"})
        decided = await asyncio.wait_for(ws.receive_json(), 5)
    assert decided["type"] == "decided"
    assert await _status(gateway, approval_id) == "denied"
