"""The store: upserts that merge per source, lookups (exact, CIDR, parent domain, expired)."""

from __future__ import annotations

import asyncio
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from core.errors import ValidationFailed
from core.schemas import Severity
from tests.tools.intel.conftest import NOW, Clock
from tools.intel import (
    AsyncIntelStore,
    Indicator,
    IndicatorType,
    IntelStore,
    MatchKind,
)

T = IndicatorType


def ip(value: str, source: str = "feed-a", **fields: Any) -> Indicator:
    return Indicator(type=T.IP, value=value, source=source, **fields)


def test_upsert_inserts_a_normalised_record(store: IntelStore) -> None:
    outcome = store.upsert(
        Indicator(
            type=T.DOMAIN,
            value="Login.Badcdn.EXAMPLE.",
            source="feed-a",
            confidence=70,
            severity=Severity.HIGH,
            tags=frozenset({"phishing"}),
            techniques=frozenset({"t1566.002"}),
            threat_actors=frozenset({"Harbor Spider"}),
            reference="indicator--1",
        )
    )
    assert outcome == "inserted"
    record = store.get("domain", "login.badcdn.example", "feed-a")
    assert record is not None
    assert record.value == "login.badcdn.example"
    assert record.confidence == 70
    assert record.severity is Severity.HIGH
    assert record.tags == ("phishing",)
    assert record.techniques == ("T1566.002",)
    assert record.threat_actors == ("Harbor Spider",)
    assert record.reference == "indicator--1"
    # No timestamps from the feed: first and last seen are the time of the upsert.
    assert record.first_seen == record.last_seen == NOW


def test_same_source_merges(store: IntelStore, clock: Clock) -> None:
    first = datetime(2024, 3, 1, tzinfo=UTC)
    store.upsert(
        ip(
            "198.51.100.23",
            confidence=80,
            severity=Severity.MEDIUM,
            tags=frozenset({"c2"}),
            first_seen=first,
            last_seen=first,
            valid_until=datetime(2024, 9, 1, tzinfo=UTC),
            description="C2",
            malware_families=frozenset({"GhostLoader"}),
        )
    )
    later = datetime(2024, 5, 1, tzinfo=UTC)
    outcome = store.upsert(
        ip(
            "198.51.100.23",
            confidence=40,
            severity=Severity.LOW,
            tags=frozenset({"botnet"}),
            first_seen=later,
            last_seen=later,
            valid_until=datetime(2024, 12, 1, tzinfo=UTC),
            malware_families=frozenset({"HarborRAT"}),
        )
    )
    assert outcome == "updated"
    record = store.get("ip", "198.51.100.23", "feed-a")
    assert record is not None
    assert record.confidence == 80  # max
    assert record.severity is Severity.MEDIUM  # the higher
    assert record.tags == ("botnet", "c2")  # union
    assert record.malware_families == ("GhostLoader", "HarborRAT")
    assert record.first_seen == first  # earliest kept
    assert record.last_seen == later  # advanced
    assert record.valid_until == datetime(2024, 12, 1, tzinfo=UTC)  # longest
    assert record.description == "C2"  # kept when the new one has none
    assert store.stats().total == 1


def test_last_seen_never_moves_back(store: IntelStore) -> None:
    late, early = datetime(2024, 5, 1, tzinfo=UTC), datetime(2024, 1, 1, tzinfo=UTC)
    store.upsert(ip("192.0.2.1", first_seen=late, last_seen=late))
    store.upsert(ip("192.0.2.1", first_seen=early, last_seen=early))
    record = store.get("ip", "192.0.2.1", "feed-a")
    assert record is not None
    assert (record.first_seen, record.last_seen) == (early, late)


def test_no_expiry_is_kept_over_an_expiry(store: IntelStore) -> None:
    store.upsert(ip("192.0.2.2"))
    store.upsert(ip("192.0.2.2", valid_until=datetime(2024, 7, 1, tzinfo=UTC)))
    record = store.get("ip", "192.0.2.2", "feed-a")
    assert record is not None
    assert record.valid_until is None


def test_sources_never_merge(store: IntelStore) -> None:
    store.upsert(ip("198.51.100.23", "feed-a", confidence=30))
    store.upsert(ip("198.51.100.23", "feed-b", confidence=90))
    matches = store.lookup("ip", "198.51.100.23")
    assert [(m.record.source, m.record.confidence) for m in matches] == [
        ("feed-b", 90),
        ("feed-a", 30),
    ]
    assert all(m.match is MatchKind.EXACT and not m.expired for m in matches)


def test_upsert_many_is_all_or_nothing(store: IntelStore) -> None:
    with pytest.raises(ValidationFailed) as caught:
        store.upsert_many([ip("192.0.2.3"), ip("192.0.2.300")])
    assert caught.value.code == "AURORA-4220"
    assert caught.value.detail["value"] == "192.0.2.300"
    assert store.stats().total == 0


def test_an_indicator_refuses_bad_technique_ids() -> None:
    with pytest.raises(ValueError, match="not ATT&CK technique ids: TA0001"):
        ip("192.0.2.4", techniques=frozenset({"TA0001"}))


def test_cidr_containment(store: IntelStore) -> None:
    store.upsert(ip("10.0.0.0/8", "feed-a"))
    store.upsert(ip("10.20.0.0/16", "feed-b"))
    store.upsert(ip("10.20.30.40", "feed-c"))
    store.upsert(ip("11.0.0.0/8", "feed-a"))
    matches = store.lookup("ip", "10.20.30.40")
    assert [(m.match, m.record.value) for m in matches] == [
        (MatchKind.EXACT, "10.20.30.40"),
        (MatchKind.CIDR, "10.20.0.0/16"),  # most specific network first
        (MatchKind.CIDR, "10.0.0.0/8"),
    ]
    assert store.lookup("ip", "10.99.0.1")[0].record.value == "10.0.0.0/8"
    # A network looked up matches the networks that contain it, not those inside it.
    assert [m.record.value for m in store.lookup("ip", "10.20.0.0/24")] == [
        "10.20.0.0/16",
        "10.0.0.0/8",
    ]
    assert store.lookup("ip", "12.0.0.1") == []


def test_ipv6_cidr_containment(store: IntelStore) -> None:
    store.upsert(ip("2001:db8::/32"))
    matches = store.lookup("ip", "2001:DB8:0:1::5")
    assert [(m.match, m.record.value) for m in matches] == [(MatchKind.CIDR, "2001:db8::/32")]
    assert store.lookup("ip", "2001:db9::1") == []


def test_parent_domain_match(store: IntelStore) -> None:
    store.upsert(Indicator(type=T.DOMAIN, value="badcdn.example", source="feed-a"))
    store.upsert(Indicator(type=T.DOMAIN, value="login.badcdn.example", source="feed-b"))
    matches = store.lookup("domain", "a.login.badcdn.example")
    assert [(m.match, m.record.value) for m in matches] == [
        (MatchKind.PARENT_DOMAIN, "login.badcdn.example"),
        (MatchKind.PARENT_DOMAIN, "badcdn.example"),
    ]
    exact = store.lookup("domain", "BADCDN.example")
    assert [(m.match, m.record.value) for m in exact] == [(MatchKind.EXACT, "badcdn.example")]
    # A different name that merely ends the same way is no child.
    assert store.lookup("domain", "notbadcdn.example") == []


def test_other_types_match_exactly(store: IntelStore) -> None:
    digest = "970ac0b3f650e911862affbce47aef6ac93240aeba8ba74e19f2f7a61b55f420"
    store.upsert(Indicator(type=T.HASH, value=digest.upper(), source="feed-a"))
    store.upsert(Indicator(type=T.URL, value="http://badcdn.example/gate.php", source="feed-a"))
    assert [m.record.subtype for m in store.lookup("hash", digest)] == ["sha256"]
    assert store.lookup("url", "http://badcdn.example/gate.php?x=1") == []
    assert store.lookup("hash", "34965c1acaaddfb0e329160401edbcd9") == []


def test_expired_records_are_reported_not_dropped(store: IntelStore, clock: Clock) -> None:
    store.upsert(ip("192.0.2.5", valid_until=NOW + timedelta(hours=1)))
    assert [m.expired for m in store.lookup("ip", "192.0.2.5")] == [False]
    clock.advance(hours=2)
    matches = store.lookup("ip", "192.0.2.5")
    assert [(m.expired, m.record.value) for m in matches] == [(True, "192.0.2.5")]
    assert store.stats().expired == 1


def test_invalid_lookup_is_a_validation_error(store: IntelStore) -> None:
    with pytest.raises(ValidationFailed) as caught:
        store.lookup("ip", "not-an-ip")
    assert caught.value.detail == {
        "type": "ip",
        "value": "not-an-ip",
        "reason": caught.value.detail["reason"],
    }
    assert "not an IP" in caught.value.detail["reason"]
    with pytest.raises(ValidationFailed):
        store.lookup("mutex", "Global\\x")


def test_lookup_many(store: IntelStore) -> None:
    store.upsert(ip("10.0.0.0/8"))
    store.upsert(Indicator(type=T.DOMAIN, value="badcdn.example", source="feed-a"))
    results = store.lookup_many(
        [("ip", "10.1.1.1"), ("domain", "X.badcdn.example"), ("ip", "bogus"), ("hash", "a" * 32)]
    )
    assert [(r.normalised, len(r.matches), r.error) for r in results] == [
        ("10.1.1.1", 1, None),
        ("x.badcdn.example", 1, None),
        (None, 0, "not an IP address or network"),
        ("a" * 32, 0, None),
    ]
    assert results[1].value == "X.badcdn.example"
    assert results[1].matches[0].match is MatchKind.PARENT_DOMAIN


def test_stats(store: IntelStore) -> None:
    store.upsert_many(
        [
            ip("192.0.2.1", "feed-a"),
            ip("192.0.2.2", "feed-a"),
            ip("192.0.2.1", "feed-b"),
            Indicator(type=T.DOMAIN, value="badcdn.example", source="feed-b"),
        ]
    )
    stats = store.stats()
    assert stats.total == 4
    assert stats.by_source == {"feed-a": 2, "feed-b": 2}
    assert stats.by_type == {"ip": 3, "domain": 1}
    assert stats.by_source_and_type == {"feed-a": {"ip": 2}, "feed-b": {"domain": 1, "ip": 1}}
    assert store.delete_source("feed-a") == 2
    assert store.stats().by_source == {"feed-b": 2}


def test_persists_across_reopen(tmp_path: Path) -> None:
    path = tmp_path / "intel.db"
    with IntelStore(path) as first:
        first.upsert(ip("198.51.100.23", tags=frozenset({"c2"})))
    with IntelStore(path) as second:
        matches = second.lookup("ip", "198.51.100.23")
    assert [(m.record.value, m.record.tags) for m in matches] == [("198.51.100.23", ("c2",))]


def test_concurrent_threads_share_one_store(store: IntelStore) -> None:
    def write(offset: int) -> None:
        for i in range(50):
            store.upsert(ip(f"10.{offset}.0.{i}", tags=frozenset({f"t{offset}"})))
            store.lookup("ip", f"10.{offset}.0.{i}")

    threads = [threading.Thread(target=write, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert store.stats().total == 200


async def test_async_wrapper_runs_off_the_loop(clock: Clock) -> None:
    store = AsyncIntelStore.open(":memory:", clock=clock)
    try:
        results = await asyncio.gather(
            store.upsert(ip("192.0.2.10")), store.upsert(ip("192.0.2.11"))
        )
        assert sorted(results) == ["inserted", "inserted"]
        assert await store.upsert_many([ip("192.0.2.10"), ip("192.0.2.12")]) == [
            "updated",
            "inserted",
        ]
        matches = await store.lookup("ip", "192.0.2.10")
        assert [m.record.value for m in matches] == ["192.0.2.10"]
        many = await store.lookup_many([("ip", "192.0.2.11"), ("ip", "192.0.2.13")])
        assert [len(r.matches) for r in many] == [1, 0]
        assert (await store.stats()).total == 3
    finally:
        await store.close()
