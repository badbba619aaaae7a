"""Automation rules on a real database and a real event bus: a rule acting on a new alert, its
loop guard stopping its own effects, its flood guard counting what is over its rate, failures
counted by code, toggling and deleting, and the events the bus dropped counted as lost.

The playbook engine and the investigation runner are small fakes: they are under test in their
own packages, and here only what automation hands them matters."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from sqlalchemy import event, select

from core.db import Database, create_database
from core.errors import AuroraError, NotFound
from core.events import EventBus
from core.settings import Settings
from core.validation import validate
from gateway.alerts import api as alerts
from gateway.alerts.schemas import AlertCreate, AlertRead
from gateway.soar import automation as automation_module
from gateway.soar.automation import Automation
from gateway.soar.models import AutomationFiring, AutomationRule, PlaybookExecution
from gateway.soar.rules import (
    RuleCreate,
    RuleQuery,
    create_rule,
    delete_rule,
    get_rule,
    list_firings,
    list_rules,
    toggle_rule,
)
from tests.waiting import eventually


@pytest.fixture
def backend() -> str:
    """SQLite only: what is tested here does not depend on the database engine (the engine's
    queue, ledger and approvals run on both in test_engine.py)."""
    return "sqlite"


@pytest.fixture
async def database(settings: Settings) -> AsyncIterator[Database]:
    opened = create_database(settings.effective_database_url)
    try:
        yield opened
    finally:
        await opened.dispose()


@dataclass
class Playbooks:
    """Stands in for the SOAR engine: records what it was asked to queue."""

    calls: list[dict[str, Any]] = field(default_factory=list)
    error: AuroraError | None = None

    async def enqueue(
        self,
        *,
        playbook_id: str,
        inputs: dict[str, Any],
        actor: str,
        trigger: dict[str, Any],
        depth: int = 0,
    ) -> PlaybookExecution:
        if self.error is not None:
            raise self.error
        self.calls.append(
            {
                "playbook_id": playbook_id,
                "inputs": inputs,
                "actor": actor,
                "trigger": trigger,
                "depth": depth,
            }
        )
        return PlaybookExecution(id=f"PBX-2026-{len(self.calls):05d}", playbook_id=playbook_id)


@dataclass
class Investigations:
    """Stands in for the investigations' enqueue and runner: numbers what it was asked."""

    calls: list[dict[str, Any]] = field(default_factory=list)

    async def dispatch(
        self, *, actor: str, alert_id: str | None, case_id: str | None, priority: str
    ) -> str:
        self.calls.append(
            {"actor": actor, "alert_id": alert_id, "case_id": case_id, "priority": priority}
        )
        return f"INV-2026-{len(self.calls):05d}"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Rig:
    database: Database
    bus: EventBus
    playbooks: Playbooks
    investigations: Investigations
    clock: Clock
    automation: Automation

    async def rule(self, **fields: Any) -> str:
        body = validate(RuleCreate, {"name": "rule", **fields})
        async with self.database.session() as db:
            return (await create_rule(db=db, actor="ana", body=body)).id

    async def read(self, rule_id: str) -> AutomationRule:
        async with self.database.session() as db:
            return await get_rule(db=db, rule_id=rule_id)

    async def counters(self, rule_id: str) -> dict[str, int]:
        rule = await self.read(rule_id)
        return {
            "fired": rule.fired,
            "skipped_loop": rule.skipped_loop,
            "skipped_rate": rule.skipped_rate,
            "failed": rule.failed,
        }

    async def firings(self, rule_id: str) -> list[AutomationFiring]:
        async with self.database.session() as db:
            return list(reversed(await list_firings(db=db, rule_id=rule_id, limit=500)))

    async def alert(self, **fields: Any) -> AlertRead:
        body = AlertCreate.model_validate(
            {"title": "Encoded PowerShell", "source": "sysmon", "severity": "high", **fields}
        )
        async with self.database.session() as db:
            read, _merged = await alerts.create_alert(
                db=db, actor="sensor", body=body, dedup_window_seconds=0
            )
        return read

    def publish(self, topic: str, payload: dict[str, Any]) -> None:
        self.bus.publish(topic, payload)

    async def dispatched(self, count: int) -> None:
        """Wait until ``count`` investigations were dispatched in all."""
        await eventually(
            lambda: len(self.investigations.calls) >= count, what=f"{count} dispatched"
        )

    async def settled(self, events: int) -> None:
        """Wait until automation has handled ``events`` events in all."""
        await eventually(
            lambda: self.automation.counts["events"] >= events,
            what=f"{events} events handled",
        )


@pytest.fixture
async def rig(database: Database) -> AsyncIterator[Rig]:
    bus, playbooks, investigations, clock = EventBus(), Playbooks(), Investigations(), Clock()
    outcomes: list[tuple[str, str]] = []
    automation = Automation(
        database=database,
        bus=bus,
        engine=playbooks,
        dispatch=investigations,
        clock=clock,
        on_outcome=lambda trigger, outcome: outcomes.append((trigger, outcome)),
    )
    async with automation:
        yield Rig(database, bus, playbooks, investigations, clock, automation)


async def test_a_rule_fires_on_a_new_alert(rig: Rig) -> None:
    rule_id = await rig.rule(
        trigger="alert.created",
        conditions=[
            {"field": "severity", "op": "gte", "value": "high"},
            {"field": "title", "op": "matches", "value": "(?i)powershell"},
        ],
        actions=[
            {"type": "tag", "tags": ["auto-triaged"]},
            {
                "type": "run_playbook",
                "playbook_id": "suspicious-powershell",
                "inputs": {
                    "alert_id": "${{ event.id }}",
                    "why": "rule ${{ rule.id }} on ${{ topic }}",
                    "hosts": "${{ event.entities[?type=='host'].value }}",
                },
            },
        ],
    )
    updates = rig.bus.subscribe("alerts.updated")
    low = await rig.alert(severity="low", title="PowerShell profile loaded")
    high = await rig.alert(tags=["endpoint"], entities=[{"type": "host", "value": "WS-042"}])
    rig.publish("alerts.created", low.model_dump(mode="json"))
    rig.publish("alerts.created", high.model_dump(mode="json"))
    await rig.settled(2)

    assert await rig.counters(rule_id) == {
        "fired": 1,
        "skipped_loop": 0,
        "skipped_rate": 0,
        "failed": 0,
    }
    assert (await rig.read(rule_id)).last_fired_at is not None
    async with rig.database.session() as db:
        tagged = await alerts.get_alert(db=db, alert_id=high.id)
        untouched = await alerts.get_alert(db=db, alert_id=low.id)
    assert (tagged.tags, untouched.tags) == (["auto-triaged", "endpoint"], [])
    assert rig.playbooks.calls == [
        {
            "playbook_id": "suspicious-powershell",
            "inputs": {
                "alert_id": high.id,
                "why": f"rule {rule_id} on alerts.created",
                "hosts": ["ws-042"],
            },
            "actor": f"automation:{rule_id}",
            "trigger": {
                "kind": "automation",
                "rule_id": rule_id,
                "topic": "alerts.created",
                "subject": high.id,
                "rules": [rule_id],
            },
            "depth": 1,
        }
    ]
    announced = updates.drain()
    assert [(e.payload["id"], e.payload["automation"]) for e in announced] == [
        (high.id, {"depth": 1, "rules": [rule_id]})
    ]
    assert announced[0].payload["tags"] == ["auto-triaged", "endpoint"]
    [firing] = await rig.firings(rule_id)
    assert (firing.outcome, firing.topic, firing.subject, firing.depth) == (
        "fired",
        "alerts.created",
        high.id,
        0,
    )
    assert firing.detail["actions"] == [
        {"type": "tag", "alert_id": high.id, "tags": ["auto-triaged"]},
        {"type": "run_playbook", "execution_id": "PBX-2026-00001"},
    ]


@pytest.mark.parametrize("max_depth", [1, 2, 3])
async def test_its_own_tag_stops_at_its_loop_guard(rig: Rig, max_depth: int) -> None:
    rule_id = await rig.rule(
        trigger="alert.updated",
        conditions=[{"field": "severity", "op": "eq", "value": "high"}],
        actions=[{"type": "tag", "tags": ["escalated"]}],
        max_depth=max_depth,
    )
    alert = await rig.alert()
    rig.publish("alerts.updated", alert.model_dump(mode="json"))  # an analyst's change

    # It acts on the analyst's change and on each of its own, max_depth firings deep in all.
    await eventually(
        lambda: _counted(rig, rule_id, "skipped_loop", 1), what="the loop guard stopped it"
    )
    await rig.settled(max_depth + 1)
    assert await rig.counters(rule_id) == {
        "fired": max_depth,
        "skipped_loop": 1,
        "skipped_rate": 0,
        "failed": 0,
    }
    firings = await rig.firings(rule_id)
    assert [(f.outcome, f.depth) for f in firings] == [
        *(("fired", depth) for depth in range(max_depth)),
        ("loop_guard", max_depth),
    ]
    assert firings[-1].detail == {"max_depth": max_depth, "chain": [rule_id] * max_depth}
    assert rig.automation.counts["events"] == max_depth + 1  # nothing after the guard


async def test_what_a_playbook_caused_carries_its_depth(rig: Rig) -> None:
    rule_id = await rig.rule(
        trigger="alert.updated", actions=[{"type": "dispatch_investigation"}], max_depth=2
    )
    for depth, ident in ((1, "ALRT-2026-00001"), (2, "ALRT-2026-00002")):
        # An alert.tag step of an execution that automation started at this depth.
        marked = {"depth": depth, "rules": ["AR-2026-99999"], "execution_id": "PBX-2026-00001"}
        rig.publish("alerts.updated", {"id": ident, "automation": marked})
    await rig.settled(2)
    assert [(f.subject, f.outcome, f.depth) for f in await rig.firings(rule_id)] == [
        ("ALRT-2026-00001", "fired", 1),
        ("ALRT-2026-00002", "loop_guard", 2),
    ]
    assert [c["alert_id"] for c in rig.investigations.calls] == ["ALRT-2026-00001"]


async def test_two_rules_feeding_each_other_stop_at_their_depth(rig: Rig) -> None:
    ping = await rig.rule(
        trigger="alert.updated", actions=[{"type": "assign", "assignee": "tier1"}], max_depth=3
    )
    pong = await rig.rule(
        trigger="alert.updated",
        conditions=[{"field": "assignee", "op": "eq", "value": "tier1"}],
        actions=[{"type": "tag", "tags": ["seen-by-tier1"]}],
        max_depth=3,
    )
    alert = await rig.alert()
    rig.publish("alerts.updated", alert.model_dump(mode="json"))
    await eventually(lambda: _counted(rig, ping, "skipped_loop", 1), what="ping stopped")
    await eventually(lambda: _counted(rig, pong, "skipped_loop", 1), what="pong stopped")
    # Depth 0: ping. Its change (depth 1): ping and pong. Theirs (depth 2): ping, pong twice...
    # Each stops at depth 3 whatever the other did.
    ping_firings = await rig.firings(ping)
    assert max(f.depth for f in ping_firings if f.outcome == "fired") == 2
    assert all(f.depth >= 3 for f in ping_firings if f.outcome == "loop_guard")


async def test_the_flood_guard_counts_what_is_over_the_rate(rig: Rig) -> None:
    rule_id = await rig.rule(
        trigger="alert.created",
        actions=[{"type": "dispatch_investigation", "priority": "high"}],
        max_per_minute=3,
    )
    for n in range(5):
        rig.publish("alerts.created", {"id": f"ALRT-2026-{n:05d}", "severity": "high"})
    await rig.settled(5)
    assert await rig.counters(rule_id) == {
        "fired": 3,
        "skipped_loop": 0,
        "skipped_rate": 2,
        "failed": 0,
    }
    assert [c["alert_id"] for c in rig.investigations.calls] == [
        "ALRT-2026-00000",
        "ALRT-2026-00001",
        "ALRT-2026-00002",
    ]
    assert rig.investigations.calls[0] == {
        "actor": f"automation:{rule_id}",
        "alert_id": "ALRT-2026-00000",
        "case_id": None,
        "priority": "high",
    }
    firings = await rig.firings(rule_id)
    assert [(f.outcome, f.subject) for f in firings[3:]] == [
        ("rate_limited", "ALRT-2026-00003"),
        ("rate_limited", "ALRT-2026-00004"),
    ]
    assert firings[3].detail == {"max_per_minute": 3}

    rig.clock.now += 59.0  # still within the minute of the first three
    rig.publish("alerts.created", {"id": "ALRT-2026-00005"})
    await rig.settled(6)
    assert (await rig.counters(rule_id))["skipped_rate"] == 3
    rig.clock.now += 1.5  # the first three are more than a minute old
    rig.publish("alerts.created", {"id": "ALRT-2026-00006"})
    await rig.settled(7)
    assert await rig.counters(rule_id) == {
        "fired": 4,
        "skipped_loop": 0,
        "skipped_rate": 3,
        "failed": 0,
    }
    assert rig.automation.counts["rate_limited"] == 3


async def test_a_dispatched_investigation_carries_its_depth_to_its_receipt(rig: Rig) -> None:
    rule_id = await rig.rule(
        trigger="investigation.finished",
        conditions=[{"field": "receipt.verdict", "op": "eq", "value": "malicious"}],
        actions=[{"type": "dispatch_investigation"}],
        max_depth=2,
    )
    receipt = {
        "status": "completed",
        "alert_id": "ALRT-2026-00001",
        "receipt": {"verdict": "malicious"},
    }
    rig.publish("investigations.receipt", {"investigation_id": "INV-2026-00100", **receipt})
    rig.publish(
        "investigations.receipt",
        {"investigation_id": "INV-2026-00101", **receipt, "receipt": {"verdict": "benign"}},
    )
    await rig.settled(2)
    # The runner finishes what automation dispatched: its receipt is one firing deeper.
    for n in (1, 2):
        await rig.dispatched(n)
        rig.publish("investigations.receipt", {"investigation_id": f"INV-2026-{n:05d}", **receipt})
    await eventually(lambda: _counted(rig, rule_id, "skipped_loop", 1), what="stopped")
    assert await rig.counters(rule_id) == {
        "fired": 2,
        "skipped_loop": 1,
        "skipped_rate": 0,
        "failed": 0,
    }
    assert [(f.subject, f.outcome, f.depth) for f in await rig.firings(rule_id)] == [
        ("INV-2026-00100", "fired", 0),
        ("INV-2026-00001", "fired", 1),
        ("INV-2026-00002", "loop_guard", 2),
    ]
    assert [c["priority"] for c in rig.investigations.calls] == ["normal", "normal"]


async def test_promote_to_case_once(rig: Rig) -> None:
    rule_id = await rig.rule(
        trigger="alert.created", actions=[{"type": "promote_to_case"}], max_depth=1
    )
    cases = rig.bus.subscribe("cases.created")
    alert = await rig.alert(entities=[{"type": "ip", "value": "45.33.32.156"}])
    rig.publish("alerts.created", alert.model_dump(mode="json"))
    rig.publish("alerts.created", alert.model_dump(mode="json"))  # seen twice: one case
    await rig.settled(2)
    async with rig.database.session() as db:
        promoted = await alerts.get_alert(db=db, alert_id=alert.id)
    assert promoted.case_id is not None
    assert [e.payload["id"] for e in cases.drain()] == [promoted.case_id]
    details = [f.detail["actions"] for f in await rig.firings(rule_id)]
    assert details == [
        [{"type": "promote_to_case", "case_id": promoted.case_id, "created": True}],
        [{"type": "promote_to_case", "case_id": promoted.case_id, "created": False}],
    ]


async def test_failures_are_counted_by_code(rig: Rig) -> None:
    rig.playbooks.error = NotFound({"playbook_id": "gone-playbook"})
    missing = await rig.rule(
        trigger="alert.created",
        actions=[
            {"type": "run_playbook", "playbook_id": "gone-playbook"},
            {"type": "assign", "assignee": "never"},
        ],
    )
    unknown_alert = await rig.rule(
        trigger="network.attack", actions=[{"type": "tag", "tags": ["ddos"]}]
    )
    runaway = await rig.rule(
        trigger="alert.created",
        conditions=[{"field": "title", "op": "matches", "value": "(a|aa)+$"}],
        actions=[{"type": "tag", "tags": ["never"]}],
    )
    rig.publish("alerts.created", {"id": "ALRT-2026-00009", "title": "a" * 60 + "b"})
    rig.publish("network.attacks", {"attack_id": "NA-1", "alert_id": "ALRT-2026-99999"})
    await rig.settled(2)

    for rule_id in (missing, unknown_alert, runaway):
        assert await rig.counters(rule_id) == {
            "fired": 0,
            "skipped_loop": 0,
            "skipped_rate": 0,
            "failed": 1,
        }
    [first] = await rig.firings(missing)
    assert first.detail == {
        "error": "AURORA-4040",
        "action": 0,
        "reason": {"playbook_id": "gone-playbook"},
        "actions": [],
    }
    [second] = await rig.firings(unknown_alert)
    assert (second.subject, second.detail["error"]) == ("NA-1", "AURORA-4042")
    [third] = await rig.firings(runaway)
    assert third.detail == {"error": "condition_timeout", "field": "title"}
    assert "Traceback" not in str([first.detail, second.detail, third.detail])
    assert rig.automation.counts["failed"] == 3


async def test_toggle_and_delete(rig: Rig) -> None:
    rule_id = await rig.rule(trigger="alert.created", actions=[{"type": "dispatch_investigation"}])
    marker = await rig.rule(
        trigger="detection.matched", actions=[{"type": "dispatch_investigation"}]
    )
    async with rig.database.session() as db:
        off = await toggle_rule(db=db, actor="bob", rule_id=rule_id)
    assert (off.enabled, off.updated_by) == (False, "bob")
    async with rig.database.session() as db:
        page, total = await list_rules(db=db, query=RuleQuery(enabled=False))
        assert ([r.id for r in page], total) == ([rule_id], 1)
        page, total = await list_rules(db=db, query=RuleQuery(trigger="detection.matched"))
        assert ([r.id for r in page], total) == ([marker], 1)
    rig.publish("alerts.created", {"id": "ALRT-2026-00001"})
    rig.publish("detections.matched", {"alert_id": "ALRT-2026-00002"})  # handled after it
    await eventually(lambda: _counted(rig, marker, "fired", 1), what="marker fired")
    assert (await rig.counters(rule_id))["fired"] == 0  # off: not even counted

    async with rig.database.session() as db:
        on = await toggle_rule(db=db, actor="bob", rule_id=rule_id)
    assert on.enabled is True
    rig.publish("alerts.created", {"id": "ALRT-2026-00003"})
    await eventually(lambda: _counted(rig, rule_id, "fired", 1), what="fired once on again")

    async with rig.database.session() as db:
        await delete_rule(db=db, actor="bob", rule_id=rule_id)
        with pytest.raises(NotFound) as caught:
            await get_rule(db=db, rule_id=rule_id)
        assert caught.value.detail == {"rule_id": rule_id}
        left = await db.scalars(select(AutomationFiring.rule_id).distinct())
        assert list(left) == [marker]  # its firings went with it
        for change in (toggle_rule, delete_rule):
            with pytest.raises(NotFound):
                await change(db=db, actor="bob", rule_id=rule_id)
    rig.publish("alerts.created", {"id": "ALRT-2026-00004"})
    rig.publish("detections.matched", {"alert_id": "ALRT-2026-00005"})
    await eventually(lambda: _counted(rig, marker, "fired", 2), what="marker fired again")
    assert [c["alert_id"] for c in rig.investigations.calls] == [
        "ALRT-2026-00002",
        "ALRT-2026-00003",
        "ALRT-2026-00005",
    ]


async def test_a_burst_reads_each_triggers_rules_once(
    rig: Rig, request: pytest.FixtureRequest
) -> None:
    rule_id = await rig.rule(
        trigger="alert.created",
        conditions=[{"field": "severity", "op": "gte", "value": "high"}],
        actions=[{"type": "tag", "tags": ["burst"]}],
    )
    raised = [await rig.alert(title=f"burst {n}") for n in range(3)]
    reads = 0

    def counted(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        nonlocal reads
        reads += "WHERE automation_rules.enabled" in statement  # the enabled rules read

    _count_reads(rig, request, counted)
    for alert in raised:  # published without yielding, as a detection run announces a batch
        rig.publish("alerts.created", alert.model_dump(mode="json"))
        rig.publish("detections.matched", {"alert_id": alert.id})
    # Six events, and the three updates the tags announce (a burst of their own).
    await rig.settled(9)
    assert reads == 3  # one read for each trigger, not one for each event
    assert (await rig.counters(rule_id))["fired"] == 3
    async with rig.database.session() as db:
        for alert in raised:
            assert (await alerts.get_alert(db=db, alert_id=alert.id)).tags == ["burst"]
    # The rules are read again for a later event: a change made meanwhile applies to it.
    async with rig.database.session() as db:
        await toggle_rule(db=db, rule_id=rule_id, actor="ana")  # disabled
    late = await rig.alert(title="after the change")
    rig.publish("alerts.created", late.model_dump(mode="json"))
    await rig.settled(10)
    assert reads == 4
    assert (await rig.counters(rule_id))["fired"] == 3


async def test_a_burst_is_bounded(
    rig: Rig, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(automation_module, "BURST", 2)
    await rig.rule(trigger="alert.created", actions=[{"type": "tag", "tags": ["x"]}])
    reads = 0

    def counted(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        nonlocal reads
        reads += "WHERE automation_rules.enabled" in statement

    _count_reads(rig, request, counted)
    for n in range(4):  # four alerts the rule does not find: no updates announced
        rig.publish("alerts.created", {"id": f"ALRT-2026-{n:05d}"})
    await rig.settled(4)
    assert reads == 2  # two bursts of two


def _count_reads(rig: Rig, request: pytest.FixtureRequest, counted: Any) -> None:
    engine = rig.database.engine.sync_engine
    event.listen(engine, "before_cursor_execute", counted)
    request.addfinalizer(lambda: event.remove(engine, "before_cursor_execute", counted))


async def test_events_the_bus_dropped_are_counted_as_lost(database: Database) -> None:
    bus = EventBus()
    lost: list[int] = []
    automation = Automation(
        database=database,
        bus=bus,
        engine=Playbooks(),
        dispatch=Investigations(),
        queue_size=2,
        on_lost=lost.append,
    )
    async with automation:
        for n in range(10):  # published without yielding: the reader cannot keep up
            bus.publish("alerts.created", {"id": f"ALRT-2026-{n:05d}"})
        await eventually(lambda: automation.counts["events"] == 2, what="the last two handled")
        assert automation.counts["events_lost"] == 8
        assert lost == [8]
    assert bus.subscriber_count == 0  # stopped: unsubscribed


async def _counted(rig: Rig, rule_id: str, counter: str, value: int) -> bool:
    return (await rig.counters(rule_id))[counter] >= value
