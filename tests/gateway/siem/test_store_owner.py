"""A gateway that leaves the embedded log store to another (``AURORA_LOG_STORE_OWNER=false``):
it opens no chDB, runs none of the jobs that read the store, serves everything else, and
answers what needs the store with AURORA-5032 saying where the logs are."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from core.security.permissions import Role
from core.settings import Settings
from gateway.keys import LOGSTORE, NETWORK, SCHEDULER
from tests.conftest import Gateway, start_gateway


@pytest.fixture
async def replica(settings: Settings) -> AsyncIterator[Gateway]:
    client = await start_gateway(settings.model_copy(update={"log_store_owner": False}))
    try:
        yield Gateway(client)
    finally:
        await client.close()


async def test_a_replica_without_the_store_says_where_the_logs_are(
    replica: Gateway, settings: Settings
) -> None:
    replica_settings = settings
    app = replica.app
    headers = await replica.user(Role.ADMIN)
    assert not app[LOGSTORE].owned
    assert not (replica_settings.data_dir / "logstore").exists()
    assert not app[SCHEDULER].running
    assert not app[NETWORK].running

    for method, path, body in (
        ("GET", "/api/v1/siem/logs?q=*", None),
        ("GET", "/api/v1/siem/sources", None),
        ("POST", "/api/v1/siem/logs/ingest", {"message": "x"}),
    ):
        response = await replica.client.request(method, path, json=body, headers=headers)
        answer = await response.json()
        assert response.status == 503, (path, answer)
        assert answer["error"]["code"] == "AURORA-5032"
        assert "store owner" in answer["error"]["detail"]["reason"]

    # Everything that is not the logs is served.
    response = await replica.client.post(
        "/api/v1/alerts", json={"title": "still here", "source": "test"}, headers=headers
    )
    assert response.status == 201, await response.text()
