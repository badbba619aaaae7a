"""The Wazuh connector against a fake Wazuh server API v4."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import SecretStr

from tests.fakes.edr_apis import FakeWazuh
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
from tools.edr.wazuh import DEFAULT_ISOLATE_COMMAND, DEFAULT_RELEASE_COMMAND, WazuhConnector

PASSWORD = "wz-SECRET-7d1c9e0a4b2f68e3c5a1d0f9"
WRONG = "wrong-SECRET-0000111122223333"


@pytest.fixture
async def wazuh() -> AsyncIterator[FakeWazuh]:
    async with FakeWazuh(username="aurora-api", password=PASSWORD) as fake:
        fake.add_agent("001", "WS-0042.corp.example", ip="10.20.0.42")
        fake.add_agent("002", "web-01", ip="10.0.5.20", os_name="Ubuntu", status="disconnected")
        fake.add_agent(
            "003", "build-7", ip="10.0.9.7", os_name="Debian GNU/Linux", status="pending"
        )
        yield fake


@pytest.fixture
async def connector(wazuh: FakeWazuh, sleeps: Sleeps) -> AsyncIterator[WazuhConnector]:
    async with make(wazuh, sleeps) as opened:
        yield opened


def make(fake: FakeWazuh, sleeps: Sleeps, password: str = PASSWORD, **kw: Any) -> WazuhConnector:
    return WazuhConnector(
        "wazuh-prod",
        base_url=fake.base_url,
        username="aurora-api",
        password=SecretStr(password),
        sleep=sleeps,
        **kw,
    )


def endpoint(native_id: str, hostname: str = "ws-0042") -> ConnectorEndpoint:
    return ConnectorEndpoint(connector="wazuh-prod", native_id=native_id, hostname=hostname)


async def test_inventory_pages_through_agents(wazuh: FakeWazuh, sleeps: Sleeps) -> None:
    for index in range(4, 12):
        wazuh.add_agent(f"{index:03d}", f"host-{index}", ip=f"10.9.0.{index}")
    async with make(wazuh, sleeps, page_size=3) as connector:
        found = await connector.inventory()
    assert [e.native_id for e in found] == [f"{i:03d}" for i in range(1, 12)]  # no manager
    first = found[0]
    assert (first.hostname, first.fqdn, first.ips) == (
        "ws-0042",
        "ws-0042.corp.example",
        ["10.20.0.42"],
    )
    assert first.os == "Microsoft Windows 11 Enterprise"
    assert first.state is EndpointState.ONLINE
    assert first.last_seen == datetime(2024, 6, 1, 8, 59, 30, tzinfo=UTC)
    assert first.details["version"] == "Wazuh v4.7.3"
    assert found[1].state is EndpointState.OFFLINE
    assert found[2].state is EndpointState.UNKNOWN
    pages = [r for r in wazuh.requests if r.path == "/agents"]
    assert [r.query["offset"] for r in pages] == ["0", "3", "6", "9"]
    assert all(r.query["limit"] == "3" for r in pages)
    [login] = [r for r in wazuh.requests if r.path == "/security/user/authenticate"]
    assert login.method == "POST"
    assert base64.b64decode(login.headers["Authorization"][6:]).decode() == (
        f"aurora-api:{PASSWORD}"
    )
    assert all(r.headers["Authorization"].startswith("Bearer ") for r in pages)


async def test_isolate_and_release_send_the_configured_commands(
    wazuh: FakeWazuh, connector: WazuhConnector
) -> None:
    receipt = await connector.act(EdrAction.ISOLATE, endpoint("001"), comment="CASE-17")
    assert receipt.status is ActionStatus.SUCCEEDED
    assert receipt.detail == {
        "message": "AR command was sent to all agents",
        "command": DEFAULT_ISOLATE_COMMAND,
    }
    assert (await connector.status(receipt)) == receipt
    await connector.act(EdrAction.UNISOLATE, endpoint("001"), comment="clean")
    sent = wazuh.agents["001"].commands
    assert [c["command"] for c in sent] == [DEFAULT_ISOLATE_COMMAND, DEFAULT_RELEASE_COMMAND]
    assert sent[0]["alert"]["data"]["aurora"] == {"action": "isolate", "comment": "CASE-17"}
    [put, _] = [r for r in wazuh.requests if r.path == "/active-response"]
    assert put.method == "PUT"
    assert put.query == {"agents_list": "001"}
    assert json.loads(put.body)["arguments"] == []
    assert wazuh.write_count("PUT /active-response", "001") == 2


async def test_custom_commands(wazuh: FakeWazuh, sleeps: Sleeps) -> None:
    async with make(
        wazuh, sleeps, isolate_command="isolate-host", command_arguments=["--keep-manager"]
    ) as connector:
        await connector.act(EdrAction.ISOLATE, endpoint("001"), comment="x")
    [sent] = wazuh.agents["001"].commands
    assert (sent["command"], sent["arguments"]) == ("isolate-host", ["--keep-manager"])


async def test_agent_failures_are_mapped(wazuh: FakeWazuh, connector: WazuhConnector) -> None:
    with pytest.raises(EdrEndpointUnknown):
        await connector.act(EdrAction.ISOLATE, endpoint("099"), comment="x")
    with pytest.raises(EdrUnavailable) as inactive:
        await connector.act(EdrAction.ISOLATE, endpoint("002", "web-01"), comment="x")
    assert inactive.value.reason == "Wazuh error 1707: Cannot send request, agent is not active"
    with pytest.raises(EdrUnavailable) as malformed:
        await connector.act(EdrAction.ISOLATE, endpoint("not-an-id"), comment="x")
    assert malformed.value.reason.startswith("HTTP 400: Bad Request: 'not-an-id' does not match")
    assert wazuh.write_count() == 0


async def test_scan_and_its_progress(wazuh: FakeWazuh, connector: WazuhConnector) -> None:
    receipt = await connector.act(EdrAction.SCAN, endpoint("001"), comment="x")
    assert receipt.status is ActionStatus.PENDING
    assert wazuh.write_count("PUT /syscheck", "001") == 1
    running = await connector.status(receipt)
    assert running.status is ActionStatus.IN_PROGRESS
    wazuh.complete_scan("001")
    done = await connector.status(running)
    assert done.status is ActionStatus.SUCCEEDED
    assert done.detail["scan_end"] > done.detail["scan_start"]
    assert (await connector.status(done)) == done
    # A second scan: the first one's finished record does not count as the second's.
    second = await connector.act(EdrAction.SCAN, endpoint("001"), comment="x")
    assert second.detail["previous_scan_start"] == done.detail["scan_start"]
    assert (await connector.status(second)).status is ActionStatus.IN_PROGRESS


async def test_expired_token_is_renewed_once(wazuh: FakeWazuh, connector: WazuhConnector) -> None:
    await connector.inventory()
    wazuh.expire_tokens()
    await connector.act(EdrAction.ISOLATE, endpoint("001"), comment="x")
    logins = [r for r in wazuh.requests if r.path == "/security/user/authenticate"]
    assert len(logins) == 2
    statuses = [r.status for r in wazuh.requests if r.path == "/active-response"]
    assert statuses == [401, 200]
    assert wazuh.write_count() == 1


async def test_refused_credential(
    wazuh: FakeWazuh, sleeps: Sleeps, assert_no_secret: Callable[..., None]
) -> None:
    async with make(wazuh, sleeps, password=WRONG) as connector:
        with pytest.raises(EdrAuthError) as refused:
            await connector.inventory()
    assert refused.value.detail == {"connector": "wazuh-prod", "status": 401}
    assert_no_secret(refused.value, WRONG, PASSWORD)
    assert "password" not in repr(connector).lower()


async def test_permission_denied(wazuh: FakeWazuh, connector: WazuhConnector) -> None:
    wazuh.fail(403, path="/active-response")
    with pytest.raises(EdrAuthError) as denied:
        await connector.act(EdrAction.ISOLATE, endpoint("001"), comment="x")
    assert denied.value.detail["status"] == 403
    assert wazuh.write_count() == 0


async def test_rate_limit_waits_once_then_reports(
    wazuh: FakeWazuh, connector: WazuhConnector, sleeps: Sleeps
) -> None:
    wazuh.rate_limit(1, retry_after="2")
    await connector.act(EdrAction.ISOLATE, endpoint("001"), comment="x")
    assert sleeps.waits == [2.0]
    assert wazuh.write_count() == 1
    wazuh.rate_limit(2, retry_after="3")
    with pytest.raises(EdrRateLimited) as limited:
        await connector.inventory()
    assert limited.value.retry_after == 3
    wazuh.rate_limit(1, retry_after="600")  # longer than the connector waits
    with pytest.raises(EdrRateLimited) as long_wait:
        await connector.inventory()
    assert long_wait.value.retry_after == 600
    assert sleeps.waits == [2.0, 3.0]


async def test_server_errors(wazuh: FakeWazuh, connector: WazuhConnector) -> None:
    # A read is asked again after a 5xx; a state-changing request never is.
    wazuh.fail(500, path="/agents")
    assert len(await connector.inventory()) == 3
    wazuh.fail(500, path="/active-response")
    with pytest.raises(EdrUnavailable) as failed:
        await connector.act(EdrAction.ISOLATE, endpoint("001"), comment="x")
    assert failed.value.reason == "HTTP 500: Wazuh Internal Error: Wazuh Internal Error"
    assert len([r for r in wazuh.requests if r.path == "/active-response"]) == 1
    # 503 is a refusal before acting: sent again once.
    wazuh.fail(503, path="/active-response")
    await connector.act(EdrAction.ISOLATE, endpoint("001"), comment="x")
    assert wazuh.write_count() == 1


async def test_timeout_on_an_action_is_not_retried(wazuh: FakeWazuh, sleeps: Sleeps) -> None:
    async with make(wazuh, sleeps, timeout_seconds=0.2) as connector:
        await connector.inventory()
        wazuh.delay = 5.0
        with pytest.raises(EdrUnavailable) as timed_out:
            await connector.act(EdrAction.ISOLATE, endpoint("001"), comment="x")
    assert timed_out.value.reason == "timeout: the product may have carried the request out"
    assert len([r for r in wazuh.requests if r.path == "/active-response"]) == 1


async def test_unreachable_product(sleeps: Sleeps) -> None:
    fake = FakeWazuh(password=PASSWORD)
    await fake.start()
    url = fake.base_url
    await fake.close()
    connector = WazuhConnector(
        "wazuh-prod", base_url=url, username="u", password=SecretStr(PASSWORD), sleep=sleeps
    )
    async with connector:
        with pytest.raises(EdrUnavailable, match="unavailable") as down:
            await connector.inventory()
    assert "authentication failed" in down.value.reason
