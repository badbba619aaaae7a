"""The network configuration's versions: defaults at version 0, a change is a version with who,
when and the diff, history newest first, rollback as a new version, stale and concurrent
writers refused, invalid documents refused with the field at fault."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from core.db import Database, create_database
from core.errors import Conflict, NotFound, ValidationFailed
from core.settings import Settings
from core.validation import validate
from gateway.network import config as service
from gateway.network.config import (
    ConfigCache,
    ConfigUpdate,
    ConfigVersionRead,
    HistoryQuery,
    RollbackRequest,
    diff_documents,
)
from gateway.network.configuration import NetworkConfig
from gateway.network.models import NetworkConfigVersion
from tests.conftest import postgres_admin_url


@pytest.fixture
def backend(request: pytest.FixtureRequest) -> str:
    """SQLite, unless a test asks for an engine (``indirect``): what is tested is the service's
    logic; the concurrent-writers test runs on both engines."""
    engine = str(getattr(request, "param", "sqlite"))
    if engine == "postgres" and postgres_admin_url() is None:
        pytest.skip("PostgreSQL suite: set AURORA_TEST_POSTGRES_URL (.ci/run provisions one)")
    return engine


@pytest.fixture
async def database(settings: Settings) -> AsyncIterator[Database]:
    assert settings.database_url is not None
    opened = create_database(settings.database_url)
    try:
        yield opened
    finally:
        await opened.dispose()


def update(**changes: Any) -> ConfigUpdate:
    """A whole document: the defaults with ``changes`` (dotted paths) applied."""
    document: dict[str, Any] = NetworkConfig().model_dump(mode="json")
    for path, value in changes.items():
        *parents, leaf = path.split("__")
        target = document
        for key in parents:
            target = target[key]
        target[leaf] = value
    return validate(ConfigUpdate, document)


async def put(database: Database, body: ConfigUpdate, actor: str = "alice") -> service.ConfigRead:
    async with database.session() as db:
        return await service.put_config(db, actor=actor, body=body)


async def test_defaults_are_version_zero(database: Database) -> None:
    async with database.session() as db:
        current = await service.current_config(db)
    assert current.version == 0
    assert current.history_id is None
    assert current.config == NetworkConfig()
    assert current.diff == []
    assert await service.load_config(database) == NetworkConfig()


async def test_a_change_is_a_version_with_who_when_and_the_diff(database: Database) -> None:
    body = update(thresholds__port_scan__distinct_ports=40, reason="fewer false positives")
    stored = await put(database, body)
    assert stored.version == 1
    assert stored.changed
    assert stored.changed_by == "alice"
    assert stored.changed_at is not None
    assert stored.reason == "fewer false positives"
    assert [c.model_dump() for c in stored.diff] == [
        {"path": "thresholds.port_scan.distinct_ports", "old": 25, "new": 40}
    ]
    assert stored.config.thresholds.port_scan.distinct_ports == 40

    second = await put(
        database,
        update(
            thresholds__port_scan__distinct_ports=40,
            home_networks=["10.0.0.0/8"],
            sources=["zeek"],
            expected_version=1,
        ),
        actor="bob",
    )
    assert second.version == 2
    assert second.changed_by == "bob"
    # lists are compared whole
    assert {c.path: (c.old, c.new) for c in second.diff} == {
        "home_networks": (
            ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7"],
            ["10.0.0.0/8"],
        ),
        "sources": (["suricata", "zeek", "netflow"], ["zeek"]),
    }
    async with database.session() as db:
        current = await service.current_config(db)
    assert current.version == 2
    assert current.history_id == second.history_id
    assert current.config.sources == ["zeek"]
    loaded = await service.load_config(database)
    assert loaded.sources == ["zeek"]
    assert [str(n) for n in loaded.home_networks] == ["10.0.0.0/8"]


async def test_an_identical_document_adds_no_version(database: Database) -> None:
    first = await put(database, update(thresholds__dga__nxdomains=50))
    again = await put(database, update(thresholds__dga__nxdomains=50, reason="same again"))
    assert not again.changed
    assert again.version == first.version == 1
    assert again.reason is None  # the answer is the version in force, untouched
    # the defaults, sent when none is stored, add none either
    async with database.session() as db:
        count = await db.scalar(select(func.count()).select_from(NetworkConfigVersion))
    assert count == 1


async def test_identical_defaults_store_nothing(database: Database) -> None:
    same = await put(database, update())
    assert (same.version, same.changed, same.history_id) == (0, False, None)


async def test_history_is_newest_first_and_filters(database: Database) -> None:
    for ports, actor in ((30, "alice"), (31, "bob"), (32, "alice")):
        await put(database, update(thresholds__port_scan__distinct_ports=ports), actor=actor)
    async with database.session() as db:
        rows, total = await service.history(db=db, query=HistoryQuery(limit=2))
        assert total == 3
        assert [r.version for r in rows] == [3, 2]
        items = [ConfigVersionRead.model_validate(r) for r in rows]
        assert items[0].diff[0].model_dump() == {
            "path": "thresholds.port_scan.distinct_ports",
            "old": 31,
            "new": 32,
        }
        assert items[0].config["thresholds"]["port_scan"]["distinct_ports"] == 32
        rows, total = await service.history(db=db, query=HistoryQuery(changed_by="alice", offset=1))
        assert total == 2
        assert [r.version for r in rows] == [1]
        newest = items[0].changed_at
        rows, total = await service.history(
            db=db, query=HistoryQuery(since=newest + timedelta(seconds=1))
        )
        assert (rows, total) == ([], 0)


async def test_rollback_is_a_new_version(database: Database) -> None:
    v1 = await put(database, update(thresholds__beaconing__max_jitter=0.3))
    v2 = await put(database, update(thresholds__beaconing__max_jitter=0.5, sources=["suricata"]))
    assert v1.history_id is not None
    async with database.session() as db:
        back = await service.rollback(
            db, actor="carol", history_id=v1.history_id, body=RollbackRequest(expected_version=2)
        )
    assert back.version == 3
    assert back.rollback_of == v1.history_id
    assert back.changed_by == "carol"
    assert back.reason == "rollback to version 1"
    assert back.config == v1.config
    assert {c.path: (c.old, c.new) for c in back.diff} == {
        "thresholds.beaconing.max_jitter": (0.5, 0.3),
        "sources": (["suricata"], ["suricata", "zeek", "netflow"]),
    }
    async with database.session() as db:
        rows, total = await service.history(db=db, query=HistoryQuery())
        current = await service.current_config(db)
    assert total == 3  # nothing rewritten: v2 is still there
    assert [r.version for r in rows] == [3, 2, 1]
    assert rows[1].config == v2.config.model_dump(mode="json")
    assert current.version == 3
    assert current.config == v1.config


@pytest.mark.parametrize("history_id", [4242, "4242", "abc", "-1", "99999999999", "\uff11"])
async def test_rollback_of_an_unknown_version_names_it(
    database: Database, history_id: int | str
) -> None:
    await put(database, update(thresholds__dga__nxdomains=30))
    async with database.session() as db:
        with pytest.raises(NotFound) as caught:
            await service.rollback(db, actor="alice", history_id=history_id)
    assert caught.value.code == "AURORA-4040"
    assert caught.value.detail == {"history_id": history_id}


async def test_rollback_takes_the_path_text(database: Database) -> None:
    first = await put(database, update(thresholds__dga__nxdomains=30))
    await put(database, update(thresholds__dga__nxdomains=60))
    async with database.session() as db:
        back = await service.rollback(db, actor="alice", history_id=str(first.history_id))
    assert (back.version, back.rollback_of) == (3, first.history_id)
    assert back.config.thresholds.dga.nxdomains == 30


async def test_a_rollback_onto_the_same_document_is_still_a_version(database: Database) -> None:
    only = await put(database, update(thresholds__dga__nxdomains=30))
    assert only.history_id is not None
    async with database.session() as db:
        again = await service.rollback(
            db, actor="bob", history_id=only.history_id, body=RollbackRequest(reason="undo")
        )
    assert (again.version, again.diff, again.reason, again.changed) == (2, [], "undo", True)


async def test_a_stale_expected_version_is_a_conflict(database: Database) -> None:
    await put(database, update(thresholds__ddos__min_flows=6000))
    with pytest.raises(Conflict) as caught:
        await put(database, update(thresholds__ddos__min_flows=7000, expected_version=0))
    assert caught.value.code == "AURORA-4090"
    assert caught.value.detail["current_version"] == 1
    # a stale writer is refused even when its document is the one in force
    with pytest.raises(Conflict):
        await put(database, update(thresholds__ddos__min_flows=6000, expected_version=0))
    async with database.session() as db:
        current = await service.current_config(db)
        with pytest.raises(Conflict):
            await service.rollback(
                db,
                actor="alice",
                history_id=current.history_id or 0,
                body=RollbackRequest(expected_version=0),
            )
    assert current.version == 1
    assert current.config.thresholds.ddos.min_flows == 6000


async def test_a_writer_that_read_an_old_version_loses(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two writers that read the same version: the one that stores second breaks the unique
    version and is told so (its change is not stored)."""
    await put(database, update(thresholds__dga__nxdomains=30))

    async def stale(db: Any) -> None:
        return None  # what a writer saw before version 1 was stored

    monkeypatch.setattr(service, "_newest", stale)
    with pytest.raises(Conflict) as caught:
        await put(database, update(thresholds__dga__nxdomains=40), actor="bob")
    assert caught.value.detail["current_version"] == 1
    monkeypatch.undo()
    async with database.session() as db:
        current = await service.current_config(db)
    assert current.version == 1
    assert current.config.thresholds.dga.nxdomains == 30


@pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)
async def test_concurrent_writers_store_distinct_versions(database: Database) -> None:
    outcomes = await asyncio.gather(
        *(
            put(database, update(thresholds__port_scan__distinct_ports=100 + n), actor=f"u{n}")
            for n in range(4)
        ),
        return_exceptions=True,
    )
    stored = [o for o in outcomes if isinstance(o, service.ConfigRead)]
    refused = [o for o in outcomes if isinstance(o, Conflict)]
    assert len(stored) + len(refused) == 4, outcomes
    assert stored
    async with database.session() as db:
        rows, total = await service.history(db=db, query=HistoryQuery())
    assert total == len(stored)
    assert sorted(r.version for r in rows) == list(range(1, total + 1))
    assert sorted(s.version for s in stored) == list(range(1, total + 1))


@pytest.mark.parametrize(
    ("document", "loc"),
    [
        (
            {"thresholds": {"port_scan": {"distinct_ports": 1}}},
            ["body", "thresholds", "port_scan", "distinct_ports"],
        ),
        ({"home_networks": ["10.0.0.0/33"]}, ["body", "home_networks", 0]),
        ({"sources": ["pcap"]}, ["body", "sources", 0]),
        ({"allowlist": [{"reason": "x"}]}, ["body", "allowlist", 0]),
        (
            {"thresholds": {"beaconing": {"min_interval_seconds": 60, "max_interval_seconds": 30}}},
            ["body", "thresholds", "beaconing"],
        ),
        ({"sensors": [{"name": "a", "kind": "zeek", "silence_seconds": 5}]}, None),
        ({"expected_version": -1}, ["body", "expected_version"]),
        ({"surprise": True}, ["body", "surprise"]),
    ],
)
async def test_invalid_configuration_names_the_field(
    database: Database, document: dict[str, Any], loc: list[Any] | None
) -> None:
    with pytest.raises(ValidationFailed) as caught:
        validate(ConfigUpdate, document)
    assert caught.value.code == "AURORA-4220"
    locs = [error["loc"] for error in caught.value.detail]
    if loc is None:
        loc = ["body", "sensors", 0, "silence_seconds"]
    assert loc in locs, locs
    async with database.session() as db:
        assert (await service.current_config(db)).version == 0


async def test_the_cache_follows_new_versions(database: Database) -> None:
    cache = ConfigCache(database)
    assert await cache.get() == NetworkConfig()
    await put(database, update(schedule__interval_seconds=120))
    assert (await cache.get()).schedule.interval_seconds == 120
    first = await cache.get()
    assert await cache.get() is first  # not parsed again while no version is added
    await put(database, update(schedule__interval_seconds=300))
    assert (await cache.get()).schedule.interval_seconds == 300


def test_diff_of_documents() -> None:
    old = {"a": 1, "b": {"c": [1, 2], "d": "x"}, "gone": True}
    new = {"a": 1, "b": {"c": [2, 1], "d": "y"}, "added": None, "e": 1.0}
    assert diff_documents(old, new) == [
        {"path": "b.c", "old": [1, 2], "new": [2, 1]},
        {"path": "b.d", "old": "x", "new": "y"},
        {"path": "e", "old": None, "new": 1.0},
        {"path": "gone", "old": True, "new": None},
    ]
    assert diff_documents({"x": 1}, {"x": 1.0}) == [{"path": "x", "old": 1, "new": 1.0}]
    assert diff_documents(old, old) == []
