"""The scheduler's shared scans: due rules of one logsource and window evaluated over one scan,
each rule's matches attributed to it and raised, recorded and published exactly as its own run
would; a rule that breaks its scan fails alone."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select, update

from core.security.permissions import Role
from gateway.alerts.models import Alert
from gateway.detections import runs
from gateway.detections.models import DetectionRule, RuleHit, RuleRun
from gateway.detections.runs import DetectionScheduler, shared_matches
from gateway.keys import DATABASE, LOGSTORE
from tests.conftest import Gateway
from tests.gateway.siem.test_siem import EVENTS, NOW, PS, RULE, ingest, ndjson, sysmon

RULES = "/api/v1/detections/rules"
LOOKBACK = 3 * 3600
"""Wide enough for :data:`NOW` (up to 90 minutes ago) and the minutes before it."""

CMD = """
title: whoami from cmd
status: test
logsource:
  product: windows
  category: process_creation
detection:
  selection:
    Image|endswith: '\\\\cmd.exe'
    CommandLine|contains: 'whoami'
  condition: selection
level: medium
"""
NOTHING = """
title: A tool nobody ran
status: test
logsource:
  product: windows
  category: process_creation
detection:
  selection:
    Image|endswith: '\\\\never-seen.exe'
  condition: selection
level: low
"""
DNS = """
title: Lookups of an evil name
status: test
logsource:
  product: windows
  category: dns_query
detection:
  selection:
    QueryName|contains: 'evil'
  condition: selection
level: high
"""
LOOKUP = {
    "EventID": 22,
    "Channel": "Microsoft-Windows-Sysmon/Operational",
    "Computer": "ws-20",
    "TimeCreated": (NOW - timedelta(minutes=1)).isoformat(),
    "Image": PS,
    "QueryName": "evil.example.com",
    "ProcessId": 301,
}
MORE = [sysmon(m, f"ws-{m}", PS, f"powershell.exe -enc QUFB{m}") for m in range(6, 12)]
"""More encoded PowerShell starts: with :data:`EVENTS`, nine, older than theirs."""


async def rule(gateway: Gateway, headers: dict[str, str], sigma: str, enabled: bool = True) -> str:
    response = await gateway.client.post(
        RULES,
        headers=headers,
        json={"sigma": sigma, "enabled": enabled, "lookback_seconds": LOOKBACK},
    )
    created = await response.json()
    assert response.status == 201, created
    return str(created["id"])


def scheduler(
    gateway: Gateway, shared: bool, published: list[tuple[str, Any]]
) -> DetectionScheduler:
    made = DetectionScheduler(
        database=gateway.app[DATABASE],
        store=gateway.app[LOGSTORE],
        dedup_window=lambda: 600,
        publish=lambda topic, body: published.append((topic, body)),
    )
    made.shared_scans = shared
    return made


async def runs_of(gateway: Gateway) -> dict[str, RuleRun]:
    async with gateway.app[DATABASE].session() as db:
        return {r.rule_id: r for r in await db.scalars(select(RuleRun))}


def outcome(run: RuleRun) -> tuple[Any, ...]:
    """What a run recorded, less its ids and times."""
    sample = [e["id"] for e in run.sample]
    return (
        run.kind,
        run.status,
        run.matches,
        run.alerts,
        run.suppressed,
        run.already_seen,
        run.error,
        sample,
        run.requested_by,
        run.window_end - run.window_start,
        run.finished_at is not None,
    )


@pytest.fixture
async def hunter(gateway: Gateway) -> dict[str, str]:
    headers = await gateway.user(Role.HUNTER)
    status, body = await ingest(gateway, headers, ndjson([*EVENTS, *MORE, LOOKUP]), source="s")
    assert status == 200, body
    return headers


async def test_matches_are_attributed_to_their_rules(
    gateway: Gateway, hunter: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runs, "SCAN_RULES", 2)  # three rules of one logsource: two scans
    ids = {
        name: await rule(gateway, hunter, sigma)
        for name, sigma in (("ps", RULE), ("cmd", CMD), ("none", NOTHING), ("dns", DNS))
    }
    published: list[tuple[str, Any]] = []
    assert await scheduler(gateway, True, published).run_due() == 4
    recorded = await runs_of(gateway)
    found = {
        name: (recorded[i].status, recorded[i].matches, recorded[i].alerts)
        for name, i in ids.items()
    }
    assert found == {
        "ps": ("succeeded", 9, 9),
        "cmd": ("succeeded", 1, 1),
        "none": ("succeeded", 0, 0),
        "dns": ("succeeded", 1, 1),
    }
    assert [e["process.command_line"] for e in recorded[ids["cmd"]].sample] == ["cmd.exe /c whoami"]
    # Oldest first, as a run of its own samples them.
    hosts = [e["host.name"] for e in recorded[ids["ps"]].sample]
    assert hosts[:3] == ["ws-11", "ws-10", "ws-9"]
    matched = [body for topic, body in published if topic == "detections.matched"]
    assert sorted(m["rule_id"] for m in matched) == sorted(
        [ids["ps"]] * 9 + [ids["cmd"], ids["dns"]]
    )
    assert {m["run_id"] for m in matched if m["rule_id"] == ids["dns"]} == {recorded[ids["dns"]].id}
    async with gateway.app[DATABASE].session() as db:
        next_runs = (
            await db.execute(
                select(DetectionRule.id, DetectionRule.next_run_at, DetectionRule.version)
            )
        ).all()
    assert all(at is not None and version == 1 for _, at, version in next_runs)
    # Due again later, nothing is raised twice.
    async with gateway.app[DATABASE].session() as db:
        await db.execute(update(DetectionRule).values(next_run_at=NOW))
        await db.commit()
    assert await scheduler(gateway, True, []).run_due() == 4
    async with gateway.app[DATABASE].session() as db:
        second = list(
            await db.scalars(
                select(RuleRun).where(RuleRun.rule_id == ids["ps"]).order_by(RuleRun.started_at)
            )
        )
    assert [(r.matches, r.alerts, r.already_seen) for r in second] == [(9, 9, 0), (9, 0, 9)]


async def test_alerts_are_committed_together_and_a_hit_raced_in_is_left_out(
    gateway: Gateway, hunter: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runs, "ALERTS_PER_COMMIT", 4)  # nine matches: three transactions
    ps = await rule(gateway, hunter, RULE)
    database = gateway.app[DATABASE]
    batches: list[int] = []
    commit_alerts, stage_alerts = runs._commit_alerts, runs.stage_alerts

    async def counted(database: Any, rule: Any, batch: list[Any], dedup: int) -> Any:
        batches.append(len(batch))
        return await commit_alerts(database, rule, batch, dedup)

    raced: list[str] = []

    async def racing(**kwargs: Any) -> Any:
        if len(batches) == 2 and not raced:
            # Another run of the rule hits the second batch's first event first.
            raced.append(kwargs["bodies"][0].raw["log_id"])
            async with database.session() as other:
                other.add(RuleHit(rule_id=ps, log_id=raced[0], alert_id="ALRT-0000-00000"))
                await other.commit()
        return await stage_alerts(**kwargs)

    monkeypatch.setattr(runs, "_commit_alerts", counted)
    monkeypatch.setattr(runs, "stage_alerts", racing)
    published: list[tuple[str, Any]] = []
    assert await scheduler(gateway, True, published).run_due() == 1
    # The second batch rolled back whole, then went one event at a time.
    assert batches == [4, 4, 1, 1, 1, 1, 1]
    run = (await runs_of(gateway))[ps]
    assert (run.status, run.matches, run.alerts, run.already_seen) == ("succeeded", 9, 8, 1)
    matched = [body["log_id"] for topic, body in published if topic == "detections.matched"]
    assert len(matched) == len(set(matched)) == 8
    assert raced[0] not in matched
    async with database.session() as db:
        hits = {h.log_id: h.alert_id for h in await db.scalars(select(RuleHit))}
        alerts = set(await db.scalars(select(Alert.id)))
    assert len(hits) == 9
    assert {hits[log_id] for log_id in matched} <= alerts  # every hit's alert committed
    created = {body["id"] for topic, body in published if topic.startswith("alerts.")}
    assert created == alerts


async def test_a_broken_rule_fails_alone(gateway: Gateway, hunter: dict[str, str]) -> None:
    ids = [await rule(gateway, hunter, sigma) for sigma in (RULE, CMD, NOTHING)]
    async with gateway.app[DATABASE].session() as db:
        broken = await db.get(DetectionRule, ids[1])
        assert broken is not None
        # A condition the engine refuses (as one stored by an older conversion might be).
        await db.execute(
            update(DetectionRule)
            .where(DetectionRule.id == ids[1])
            .values(
                condition=broken.condition.replace("whoami", "') AND no_such_function(1) AND ('")
            )
        )
        await db.commit()
    assert await scheduler(gateway, True, []).run_due() == 3
    recorded = await runs_of(gateway)
    assert [(recorded[i].status, recorded[i].matches, recorded[i].alerts) for i in ids] == [
        ("succeeded", 9, 9),
        ("failed", 0, 0),
        ("succeeded", 0, 0),
    ]
    assert all(r.finished_at is not None for r in recorded.values())
    # The failure its own run records.
    alone = await runs.run_rule(
        database=gateway.app[DATABASE],
        store=gateway.app[LOGSTORE],
        rule_id=ids[1],
        start=NOW - timedelta(hours=1),
        end=NOW,
        kind="preview",
        actor="test",
        dedup_window_seconds=600,
    )
    assert alone.status == "failed"
    assert recorded[ids[1]].error == alone.error
    assert alone.error


async def test_shared_scans_record_what_runs_of_their_own_record(
    gateway: Gateway, hunter: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same rules twice over the same events: one copy run rule by rule, the other as
    shared scans; each pair's runs, alerts and published events agree."""
    monkeypatch.setattr(runs, "MAX_ALERTS_PER_RUN", 5)  # past it: counted, not raised
    sigmas = (RULE, CMD, NOTHING, DNS)
    alone = [await rule(gateway, hunter, s) for s in sigmas]
    shared = [await rule(gateway, hunter, s, enabled=False) for s in sigmas]
    for rule_id in (alone[0], shared[0]):  # the same suppression on both copies
        response = await gateway.client.post(
            f"{RULES}/{rule_id}/suppressions",
            headers=hunter,
            json={"match": {"host.name": "ws-9"}, "reason": "lab", "duration_seconds": 3600},
        )
        assert response.status == 201, await response.json()
    published_alone: list[tuple[str, Any]] = []
    assert await scheduler(gateway, False, published_alone).run_due() == 4
    async with gateway.app[DATABASE].session() as db:
        await db.execute(
            update(DetectionRule)
            .where(DetectionRule.id.in_(alone))
            .values(enabled=False, next_run_at=None)
        )
        await db.execute(
            update(DetectionRule)
            .where(DetectionRule.id.in_(shared))
            .values(enabled=True, next_run_at=NOW)
        )
        await db.commit()
    published_shared: list[tuple[str, Any]] = []
    assert await scheduler(gateway, True, published_shared).run_due() == 4
    recorded = await runs_of(gateway)
    assert [outcome(recorded[i]) for i in shared] == [outcome(recorded[i]) for i in alone]
    assert outcome(recorded[shared[0]])[2:6] == (9, 4, 1, 0)  # ws-9 suppressed; 5 raised at most

    def events(published: list[tuple[str, Any]], ids: list[str]) -> list[tuple[Any, ...]]:
        return sorted(
            (topic, ids.index(body["rule_id"]) if "rule_id" in body else -1, body.get("log_id"))
            for topic, body in published
            if topic == "detections.matched"
        ) + sorted(topic for topic, _ in published if topic.startswith("alerts."))

    assert events(published_shared, shared) == events(published_alone, alone)


async def test_shared_matches_agree_with_each_rules_own_query(
    gateway: Gateway, hunter: dict[str, str]
) -> None:
    ids = [await rule(gateway, hunter, s) for s in (RULE, CMD, NOTHING, DNS)]
    async with gateway.app[DATABASE].session() as db:
        rules = list(await db.scalars(select(DetectionRule).where(DetectionRule.id.in_(ids))))
    store = gateway.app[LOGSTORE]
    start, end = NOW - timedelta(hours=1), NOW + timedelta(minutes=1)
    for limit in (0, 3, 1000):
        found = await shared_matches(store, rules, start=start, end=end, limit=limit)
        for one in rules:
            total, events = await store.matching(
                runs.scoped_condition(one), {}, start=start, end=end, limit=limit
            )
            got = found[one.id]
            assert got.error is None
            assert (got.total, [e["id"] for e in got.events or []]) == (
                total,
                [e["id"] for e in events],
            )
