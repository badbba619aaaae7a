"""The log store on a ClickHouse server, as several gateways use it (``AURORA_CLICKHOUSE_URL``):
two stores, as two gateways open them, on one database of one server; what one writes, the
other reads. With ``AURORA_TEST_CLICKHOUSE_CLUSTER`` as well, the tables are made ON CLUSTER
(ReplicatedMergeTree under a Distributed table) and the same holds.

No ClickHouse server can be installed on the project's CI machine (Debian's only package,
18.16, lacks the ``Map`` and ``DateTime64`` types the table uses), so these tests skip there;
point ``AURORA_TEST_CLICKHOUSE_URL`` at a server (``http://default:@127.0.0.1:8123``) to run
them, against a throwaway database of their own.
"""

from __future__ import annotations

import os
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import SecretStr

from core.logstore.schema import LogEvent
from core.logstore.store import LogStore, SearchRequest
from core.settings import Settings


@pytest.fixture
def server() -> str:
    url = os.environ.get("AURORA_TEST_CLICKHOUSE_URL")
    if not url:
        pytest.skip(
            "no ClickHouse server: set AURORA_TEST_CLICKHOUSE_URL (and, for a cluster, "
            "AURORA_TEST_CLICKHOUSE_CLUSTER) to test the server path"
        )
    return url


async def test_two_gateways_share_one_server(server: str) -> None:
    settings = Settings(
        clickhouse_url=SecretStr(server),
        clickhouse_cluster=os.environ.get("AURORA_TEST_CLICKHOUSE_CLUSTER") or None,
        clickhouse_database=f"t_{uuid.uuid4().hex[:12]}",
        log_retention_days=0,
    )
    first, second = LogStore.from_settings(settings), LogStore.from_settings(settings)
    await first.start()
    await second.start()  # the second start finds the tables made: nothing changes
    try:
        now = datetime.now(UTC).replace(microsecond=0)
        event = LogEvent(
            timestamp=now,
            format="json",
            source="gateway-1",
            raw='{"message": "written by one gateway"}',
            values={"host.name": "ws-17", "message": "written by one gateway"},
            fields={"message": "written by one gateway"},
        )
        [event_id] = await first.insert([event])
        page = await second.search(
            SearchRequest(
                start=now - timedelta(minutes=1),
                end=now + timedelta(minutes=1),
                filters={"host.name": "ws-17"},
            )
        )
        assert [e["id"] for e in page.items] == [event_id]
        assert (await second.get(event_id)) is not None
        stats = await second.stats(start=now - timedelta(hours=1), end=now + timedelta(hours=1))
        assert stats["storage"]["rows"] >= 1
    finally:
        await first.drop()
        await first.close()
        await second.close()
