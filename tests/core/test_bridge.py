"""Events across replicas through PostgreSQL: what one replica publishes reaches the other's
subscribers, marked with its origin, once each, in order; an insert that commits late is not
stepped over; a replica that was not listening reads on from its cursor."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from core.bridge import BusBridge, BusEvent
from core.db import Database, create_database
from core.events import Event, EventBus
from core.settings import Settings
from tests.conftest import postgres_admin_url
from tests.waiting import eventually


@pytest.fixture
def backend() -> str:
    if postgres_admin_url() is None:
        pytest.skip("the bridge is PostgreSQL's: set AURORA_TEST_POSTGRES_URL (.ci/run does)")
    return "postgres"


@pytest.fixture
async def database(settings: Settings) -> AsyncIterator[Database]:
    database = create_database(settings.effective_database_url)
    try:
        yield database
    finally:
        await database.dispose()


def replica(settings: Settings, database: Database, name: str) -> tuple[EventBus, BusBridge]:
    bus = EventBus()
    bridge = BusBridge(
        bus, database, url=settings.effective_database_url, origin=name, poll_seconds=0.2
    )
    return bus, bridge


async def test_events_reach_the_other_replica_once_in_order(
    settings: Settings, database: Database
) -> None:
    bus_a, bridge_a = replica(settings, database, "a")
    bus_b, bridge_b = replica(settings, database, "b")
    async with bridge_a, bridge_b:
        heard_b = bus_b.subscribe("alerts.*")
        heard_a = bus_a.subscribe("alerts.*")
        for n in range(50):
            bus_a.publish("alerts.created", {"n": n})
        bus_b.publish("alerts.updated", {"n": "from b"})

        async def got_b() -> list[Event]:
            return [e for e in heard_b.drain() if isinstance(e, Event)]

        received: list[Event] = []

        async def all_of_a() -> bool:
            received.extend(await got_b())
            return len([e for e in received if e.origin == "a"]) >= 50

        await eventually(all_of_a, what="a's events at b")
        from_a = [e for e in received if e.origin == "a"]
        assert [e.payload["n"] for e in from_a] == list(range(50))  # once each, in order
        local = [e for e in received if e.origin is None]
        assert [e.payload["n"] for e in local] == ["from b"]
        await eventually(lambda: bridge_a.received >= 1, what="b's event at a")
        at_a = heard_a.drain()
        assert [e.payload["n"] for e in at_a if isinstance(e, Event) and e.origin == "b"] == [
            "from b"
        ]
        assert bridge_a.lost == bridge_b.lost == 0


async def test_a_late_commit_is_waited_for_and_a_missed_notice_caught_up(
    settings: Settings, database: Database
) -> None:
    bus_b, bridge_b = replica(settings, database, "b")
    async with bridge_b:
        heard = bus_b.subscribe("*")
        # Another replica takes an id, then commits after a later id is committed.
        async with database.session() as slow:
            await slow.execute(
                BusEvent.__table__.insert().values(topic="x.first", payload={}, at="t", origin="c")
            )
            async with database.session() as fast:
                await fast.execute(
                    BusEvent.__table__.insert().values(
                        topic="x.second", payload={}, at="t", origin="c"
                    )
                )
                await fast.commit()
            await eventually(lambda: bridge_b.received >= 1, what="the later id read")
            await slow.commit()  # no NOTIFY: read on the next poll
        await eventually(lambda: bridge_b.received >= 2, what="the earlier id read too")
        topics = [e.topic for e in heard.drain() if isinstance(e, Event)]
        assert sorted(topics) == ["x.first", "x.second"]
