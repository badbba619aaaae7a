"""The Defender for Endpoint connector against a fake Defender API and token endpoint."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs

import pytest
from pydantic import SecretStr

from tests.fakes.edr_apis import SCOPE, FakeDefender
from tests.tools.edr.conftest import Sleeps
from tools.edr.base import (
    ActionStatus,
    ConnectorEndpoint,
    EdrAction,
    EdrAuthError,
    EdrEndpointUnknown,
    EdrRateLimited,
    EdrUnavailable,
    EndpointState,
)
from tools.edr.defender import DefenderConnector

TENANT = "8c1b2f4e-5a6d-4e7f-8a9b-0c1d2e3f4a5b"
CLIENT = "2f9a6c1d-3b4e-4f5a-9b8c-7d6e5f4a3b2c"
SECRET = "mde-SECRET-Qx8~vT2.pL9_rW4-nK7sY1zB"
WRONG = "wrong-SECRET-AAAABBBBCCCCDDDD"


class Ticker:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def mde() -> AsyncIterator[FakeDefender]:
    async with FakeDefender(tenant_id=TENANT, client_id=CLIENT, client_secret=SECRET) as fake:
        yield fake


@pytest.fixture
def ticker() -> Ticker:
    return Ticker()


@pytest.fixture
async def connector(
    mde: FakeDefender, sleeps: Sleeps, ticker: Ticker
) -> AsyncIterator[DefenderConnector]:
    async with make(mde, sleeps, clock=ticker) as opened:
        yield opened


def make(fake: FakeDefender, sleeps: Sleeps, secret: str = SECRET, **kw: Any) -> DefenderConnector:
    return DefenderConnector(
        "mde",
        tenant_id=TENANT,
        client_id=CLIENT,
        client_secret=SecretStr(secret),
        base_url=fake.base_url,
        login_url=fake.base_url,
        sleep=sleeps,
        **kw,
    )


def machine(native_id: str) -> ConnectorEndpoint:
    return ConnectorEndpoint(connector="mde", native_id=native_id, hostname="ws-0042")


async def test_inventory_follows_next_links(
    mde: FakeDefender, sleeps: Sleeps, ticker: Ticker
) -> None:
    first = mde.add_machine("WS-0042.corp.example", last_ip="10.20.0.42")
    for index in range(6):
        mde.add_machine(f"host-{index}.corp.example", last_ip=f"10.9.0.{index}")
    mde.add_machine("old-kiosk", last_ip="10.9.9.9", health_status="Inactive")
    mde.max_page = 3
    async with make(mde, sleeps, clock=ticker) as connector:
        found = await connector.inventory()
    assert len(found) == 8
    ws = found[0]
    assert (ws.native_id, ws.hostname, ws.fqdn, ws.ips) == (
        first,
        "ws-0042",
        "ws-0042.corp.example",
        ["10.20.0.42"],
    )
    assert (ws.os, ws.state) == ("Windows11", EndpointState.ONLINE)
    assert ws.last_seen == datetime(2024, 6, 1, 8, 58, 12, 123456, tzinfo=UTC)
    assert ws.details["healthStatus"] == "Active"
    assert (found[-1].hostname, found[-1].fqdn, found[-1].state) == (
        "old-kiosk",
        None,
        EndpointState.OFFLINE,
    )
    pages = [r for r in mde.requests if r.path == "/api/machines"]
    assert [r.query.get("$skip") for r in pages] == [None, "3", "6"]
    [token] = [r for r in mde.requests if r.path.endswith("/token")]
    form = parse_qs(token.body)
    assert token.path == f"/{TENANT}/oauth2/v2.0/token"
    assert form == {
        "grant_type": ["client_credentials"],
        "client_id": [CLIENT],
        "client_secret": [SECRET],
        "scope": [SCOPE],
    }


async def test_inventory_shows_isolation(mde: FakeDefender, connector: DefenderConnector) -> None:
    isolated = mde.add_machine("ws-1", last_ip="10.0.0.1")
    isolating = mde.add_machine("ws-2", last_ip="10.0.0.2")
    released = mde.add_machine("ws-3", last_ip="10.0.0.3")
    failed = mde.add_machine("ws-4", last_ip="10.0.0.4")
    for ident in (isolated, isolating, released, failed):
        await connector.act(EdrAction.ISOLATE, machine(ident), comment="x")
    for action in list(mde.actions.values()):
        if action["machineId"] in (isolated, released):
            mde.set_action_status(action["id"], "Succeeded")
        if action["machineId"] == failed:
            mde.set_action_status(action["id"], "Failed")
    receipt = await connector.act(EdrAction.UNISOLATE, machine(released), comment="x")
    mde.set_action_status(str(receipt.native_action_id), "Succeeded")
    await connector.act(EdrAction.SCAN, machine(isolated), comment="x")
    states = {e.native_id: e.state for e in await connector.inventory()}
    assert states == {
        isolated: EndpointState.ISOLATED,
        isolating: EndpointState.ISOLATING,
        released: EndpointState.ONLINE,
        failed: EndpointState.ONLINE,
    }
    [listing] = [r for r in mde.requests if r.path == "/api/machineactions"]
    assert listing.query["$filter"] == "type eq 'Isolate' or type eq 'Unisolate'"


async def test_isolate_and_poll_status(mde: FakeDefender, connector: DefenderConnector) -> None:
    ident = mde.add_machine("ws-0042.corp.example", last_ip="10.20.0.42")
    receipt = await connector.act(
        EdrAction.ISOLATE, machine(ident), comment="CASE-2024-00017: beaconing"
    )
    assert receipt.status is ActionStatus.PENDING
    assert receipt.native_action_id in mde.actions
    assert receipt.detail["type"] == "Isolate"
    assert receipt.detail["scope"] == "Full"
    [post] = [r for r in mde.requests if r.method == "POST" and r.path.startswith("/api/")]
    assert post.path == f"/api/machines/{ident}/isolate"
    assert json.loads(post.body) == {
        "Comment": "CASE-2024-00017: beaconing",
        "IsolationType": "Full",
    }
    assert (await connector.status(receipt)).status is ActionStatus.PENDING
    mde.set_action_status(str(receipt.native_action_id), "InProgress")
    progressing = await connector.status(receipt)
    assert progressing.status is ActionStatus.IN_PROGRESS
    mde.set_action_status(str(receipt.native_action_id), "Succeeded")
    done = await connector.status(progressing)
    assert (done.status, done.detail["status"]) == (ActionStatus.SUCCEEDED, "Succeeded")
    assert (await connector.status(done)) is done  # finished: the product is not asked again
    assert mde.write_count("POST /api/machines/{id}/isolate", ident) == 1


@pytest.mark.parametrize(
    ("native", "status"),
    [("Failed", ActionStatus.FAILED), ("TimeOut", ActionStatus.FAILED)],
)
async def test_failed_actions(
    mde: FakeDefender, connector: DefenderConnector, native: str, status: ActionStatus
) -> None:
    ident = mde.add_machine("ws-5", last_ip="10.0.0.5")
    receipt = await connector.act(EdrAction.UNISOLATE, machine(ident), comment="x")
    mde.set_action_status(str(receipt.native_action_id), native)
    after = await connector.status(receipt)
    assert (after.status, after.detail["status"]) == (status, native)


async def test_scan_and_unisolate_bodies(mde: FakeDefender, sleeps: Sleeps) -> None:
    ident = mde.add_machine("ws-6", last_ip="10.0.0.6")
    async with make(mde, sleeps, scan_type="Full", isolation_type="Selective") as connector:
        await connector.act(EdrAction.SCAN, machine(ident), comment="")
        await connector.act(EdrAction.UNISOLATE, machine(ident), comment="done")
        await connector.act(EdrAction.ISOLATE, machine(ident), comment="again")
    bodies = [
        (r.path.rsplit("/", 1)[1], json.loads(r.body))
        for r in mde.requests
        if r.method == "POST" and r.path.startswith("/api/")
    ]
    assert bodies == [
        ("runAntiVirusScan", {"Comment": "Requested through AuroraSOC", "ScanType": "Full"}),
        ("unisolate", {"Comment": "done"}),
        ("isolate", {"Comment": "again", "IsolationType": "Selective"}),
    ]


async def test_action_already_pending(mde: FakeDefender, connector: DefenderConnector) -> None:
    ident = mde.add_machine("ws-7", last_ip="10.0.0.7")
    await connector.act(EdrAction.ISOLATE, machine(ident), comment="x")
    with pytest.raises(EdrUnavailable) as refused:
        await connector.act(EdrAction.ISOLATE, machine(ident), comment="x")
    assert refused.value.reason == (
        "HTTP 400: ActiveRequestAlreadyExists: Action is already in progress"
    )
    assert mde.write_count() == 1


async def test_unknown_machine(mde: FakeDefender, connector: DefenderConnector) -> None:
    with pytest.raises(EdrEndpointUnknown) as unknown:
        await connector.act(EdrAction.ISOLATE, machine("0" * 40), comment="x")
    assert unknown.value.detail == {"connector": "mde", "endpoint": "0" * 40}
    assert mde.write_count() == 0


async def test_expired_token_renewed_once(
    mde: FakeDefender, connector: DefenderConnector, ticker: Ticker
) -> None:
    ident = mde.add_machine("ws-8", last_ip="10.0.0.8")
    await connector.inventory()
    mde.expire_tokens()  # revoked early: the product says 401
    await connector.act(EdrAction.ISOLATE, machine(ident), comment="x")
    tokens = [r for r in mde.requests if r.path.endswith("/token")]
    assert len(tokens) == 2
    assert [r.status for r in mde.requests if r.path.endswith("/isolate")] == [401, 201]
    assert mde.write_count() == 1
    # Near its expiry the token is renewed before use, with no 401 first.
    ticker.now += 3599 - 59
    await connector.inventory()
    assert len([r for r in mde.requests if r.path.endswith("/token")]) == 3
    assert all(r.status != 401 for r in mde.requests[-3:])


async def test_refused_client_secret(
    mde: FakeDefender, sleeps: Sleeps, assert_no_secret: Callable[..., None]
) -> None:
    async with make(mde, sleeps, secret=WRONG) as connector:
        with pytest.raises(EdrAuthError) as refused:
            await connector.inventory()
    assert refused.value.detail == {"connector": "mde", "status": 401}
    assert_no_secret(refused.value, WRONG, SECRET)


async def test_unknown_tenant(mde: FakeDefender, sleeps: Sleeps) -> None:
    connector = DefenderConnector(
        "mde",
        tenant_id="contoso.onmicrosoft.com",
        client_id=CLIENT,
        client_secret=SecretStr(SECRET),
        base_url=mde.base_url,
        login_url=mde.base_url,
        sleep=sleeps,
    )
    async with connector:
        with pytest.raises(EdrUnavailable) as refused:
            await connector.inventory()
    assert "invalid_request AADSTS90002: Tenant 'contoso.onmicrosoft.com' not found." in (
        refused.value.reason
    )
    assert SECRET not in refused.value.reason


async def test_rate_limited_action_waits_once(
    mde: FakeDefender, connector: DefenderConnector, sleeps: Sleeps
) -> None:
    ident = mde.add_machine("ws-9", last_ip="10.0.0.9")
    mde.rate_limit(1, retry_after="2")
    receipt = await connector.act(EdrAction.ISOLATE, machine(ident), comment="x")
    assert receipt.status is ActionStatus.PENDING
    assert sleeps.waits == [2.0]
    assert mde.write_count() == 1
    mde.rate_limit(2, retry_after="1")
    with pytest.raises(EdrRateLimited) as limited:
        await connector.act(EdrAction.SCAN, machine(ident), comment="x")
    assert limited.value.retry_after == 1
    assert limited.value.headers == {"Retry-After": "1"}
    assert mde.write_count() == 1


async def test_server_error_on_action_is_not_retried(
    mde: FakeDefender, connector: DefenderConnector
) -> None:
    ident = mde.add_machine("ws-10", last_ip="10.0.0.10")
    mde.fail(502, path="/api/machines/")
    with pytest.raises(EdrUnavailable) as failed:
        await connector.act(EdrAction.ISOLATE, machine(ident), comment="x")
    assert failed.value.reason == "HTTP 502: InternalServerError: An error occurred"
    assert len([r for r in mde.requests if r.path.endswith("/isolate")]) == 1
    mde.fail(500, path="/api/machines")
    assert len(await connector.inventory()) == 1  # a read is asked again


async def test_next_link_to_another_origin_is_not_followed(
    mde: FakeDefender, connector: DefenderConnector
) -> None:
    mde.add_machine("ws-11", last_ip="10.0.0.11")
    mde.add_machine("ws-12", last_ip="10.0.0.12")
    mde.max_page = 1
    mde.link_origin = "http://elsewhere.example"
    with pytest.raises(EdrUnavailable) as refused:
        await connector.inventory()
    assert refused.value.reason == "next page link leaves the configured API"
