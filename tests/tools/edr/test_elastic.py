"""The Elastic Defend connector against a fake Kibana endpoint management API."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest
from pydantic import SecretStr

from tests.fakes.edr_apis import FakeElastic
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
from tools.edr.elastic import ElasticConnector

API_KEY = "ZWxhc3RpYy1TRUNSRVQtaWQ6a2V5LVNFQ1JFVC0xMjM0NTY3OA=="
WRONG = "d3JvbmctU0VDUkVULWtleTpub3BlLW5vcGUtbm9wZQ=="


@pytest.fixture
async def kibana() -> AsyncIterator[FakeElastic]:
    async with FakeElastic(api_key=API_KEY) as fake:
        yield fake


@pytest.fixture
async def connector(kibana: FakeElastic, sleeps: Sleeps) -> AsyncIterator[ElasticConnector]:
    async with make(kibana, sleeps) as opened:
        yield opened


def make(fake: FakeElastic, sleeps: Sleeps, key: str = API_KEY, **kw: Any) -> ElasticConnector:
    return ElasticConnector(
        "elastic", base_url=fake.base_url, api_key=SecretStr(key), sleep=sleeps, **kw
    )


def host(agent: str, os: str = "Windows 11 Enterprise") -> ConnectorEndpoint:
    return ConnectorEndpoint(connector="elastic", native_id=agent, hostname="h", os=os)


async def test_inventory_pages_and_states(kibana: FakeElastic, sleeps: Sleeps) -> None:
    first = kibana.add_endpoint("WS-0042.corp.example", ips=["10.20.0.42"])
    kibana.add_endpoint("web-01", ips=["10.0.5.20"], os_name="Linux", host_status="offline")
    kibana.add_endpoint("db-01", ips=["10.0.5.30"], isolated=True)
    kibana.add_endpoint("kiosk", ips=["10.0.9.9"], host_status="unhealthy")
    kibana.add_endpoint("lab-5", ips=["10.0.9.5"])
    async with make(kibana, sleeps, page_size=2) as connector:
        found = await connector.inventory()
    assert [e.hostname for e in found] == ["ws-0042", "web-01", "db-01", "kiosk", "lab-5"]
    ws = found[0]
    assert (ws.native_id, ws.fqdn, ws.ips) == (first, "ws-0042.corp.example", ["10.20.0.42"])
    assert ws.os == "Windows 11 Enterprise 23H2 (10.0.22631.3593)"
    assert ws.last_seen == datetime(2024, 6, 1, 8, 58, 12, 432173, tzinfo=UTC)
    assert ws.details["policy"] == "Protect"
    assert [e.state for e in found] == [
        EndpointState.ONLINE,
        EndpointState.OFFLINE,
        EndpointState.ISOLATED,
        EndpointState.UNKNOWN,
        EndpointState.ONLINE,
    ]
    pages = [r for r in kibana.requests if r.path == "/api/endpoint/metadata"]
    assert [r.query["page"] for r in pages] == ["0", "1", "2"]
    assert all(r.headers["Authorization"] == f"ApiKey {API_KEY}" for r in pages)
    assert all(r.headers["Elastic-Api-Version"] == "2023-10-31" for r in pages)


async def test_isolate_poll_and_release(kibana: FakeElastic, connector: ElasticConnector) -> None:
    agent = kibana.add_endpoint("ws-1", ips=["10.0.0.1"])
    receipt = await connector.act(EdrAction.ISOLATE, host(agent), comment="CASE-17")
    assert receipt.status is ActionStatus.PENDING
    assert receipt.detail["command"] == "isolate"
    [post] = [r for r in kibana.requests if r.method == "POST"]
    assert post.path == "/api/endpoint/action/isolate"
    assert post.headers["kbn-xsrf"] == "true"
    assert json.loads(post.body) == {"endpoint_ids": [agent], "comment": "CASE-17"}
    assert (await connector.status(receipt)).status is ActionStatus.PENDING
    kibana.complete_action(str(receipt.native_action_id))
    done = await connector.status(receipt)
    assert (done.status, done.detail["status"]) == (ActionStatus.SUCCEEDED, "successful")
    assert (await connector.inventory())[0].state is EndpointState.ISOLATED
    released = await connector.act(EdrAction.UNISOLATE, host(agent), comment="clean")
    kibana.complete_action(str(released.native_action_id), successful=False)
    failed = await connector.status(released)
    assert failed.status is ActionStatus.FAILED
    assert failed.detail["errors"] == ["Endpoint action failed to apply"]
    assert kibana.write_count(target=agent) == 2


async def test_scan_path_follows_the_os(kibana: FakeElastic, sleeps: Sleeps) -> None:
    agent = kibana.add_endpoint("ws-2", ips=["10.0.0.2"])
    async with make(kibana, sleeps) as connector:
        await connector.act(EdrAction.SCAN, host(agent), comment="")
        await connector.act(EdrAction.SCAN, host(agent, os="Ubuntu 22.04"), comment="x")
    async with make(kibana, sleeps, scan_path="/home") as connector:
        await connector.act(EdrAction.SCAN, host(agent), comment="x")
    bodies = [json.loads(r.body) for r in kibana.requests if r.method == "POST"]
    assert [b["parameters"]["path"] for b in bodies] == ["C:\\", "/", "/home"]
    assert bodies[0]["comment"] == "Requested through AuroraSOC"


async def test_unknown_endpoint(kibana: FakeElastic, connector: ElasticConnector) -> None:
    with pytest.raises(EdrEndpointUnknown):
        await connector.act(EdrAction.ISOLATE, host("no-such-agent"), comment="x")
    assert kibana.write_count() == 0


async def test_refused_key_is_not_retried(
    kibana: FakeElastic, sleeps: Sleeps, assert_no_secret: Callable[..., None]
) -> None:
    async with make(kibana, sleeps, key=WRONG) as connector:
        with pytest.raises(EdrAuthError) as refused:
            await connector.inventory()
    assert refused.value.detail == {"connector": "elastic", "status": 401}
    assert len(kibana.requests) == 1
    assert_no_secret(refused.value, WRONG, API_KEY)


async def test_rate_limit_and_server_errors(
    kibana: FakeElastic, connector: ElasticConnector, sleeps: Sleeps
) -> None:
    agent = kibana.add_endpoint("ws-3", ips=["10.0.0.3"])
    kibana.rate_limit(1, retry_after="4")
    await connector.act(EdrAction.ISOLATE, host(agent), comment="x")
    assert sleeps.waits == [4.0]
    kibana.rate_limit(1)  # no Retry-After: reported at once, with the default wait
    with pytest.raises(EdrRateLimited) as limited:
        await connector.act(EdrAction.SCAN, host(agent), comment="x")
    assert limited.value.retry_after == 60
    kibana.fail(500, path="/api/endpoint/action/")
    with pytest.raises(EdrUnavailable) as failed:
        await connector.act(EdrAction.SCAN, host(agent), comment="x")
    assert failed.value.reason == (
        "HTTP 500: Internal Server Error: An internal server error occurred."
    )
    assert kibana.write_count() == 1


async def test_fake_refuses_a_write_without_xsrf(kibana: FakeElastic) -> None:
    """The fake holds the connector to Kibana's rule: a raw POST without kbn-xsrf is refused."""
    agent = kibana.add_endpoint("ws-4", ips=["10.0.0.4"])
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"{kibana.base_url}/api/endpoint/action/isolate",
            json={"endpoint_ids": [agent]},
            headers={"Authorization": f"ApiKey {API_KEY}"},
        ) as response,
    ):
        body = await response.json()
    assert response.status == 400
    assert body["message"] == "Request must contain a kbn-xsrf header."
    assert kibana.write_count() == 0
