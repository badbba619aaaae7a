"""The built-in playbooks: each parses and validates, and their expressions do what they say on
realistic data (alerts as the platform stores them, the shared Windows logs in the real log
store). Whole runs through the engine are the engine's and the end-to-end tests'."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from core.db import Database, create_database
from core.logstore.query import compile_query
from core.settings import Settings
from gateway.alerts import api as alerts
from gateway.alerts.schemas import AlertCreate
from gateway.soar.definition import PlaybookDefinition, evaluate, load_builtin, render
from gateway.soar.steps import STEP_KINDS, StepEnv
from tests.conftest import shared_data_dir
from tests.core.logstore.conftest import open_store
from tests.gateway.soar.test_steps import make_env
from tools.logs.parse import parse_line


@pytest.fixture
def backend() -> str:
    """SQLite only: what is tested here does not depend on the database engine (the engine's
    queue, ledger and approvals run on both in test_engine.py)."""
    return "sqlite"


BUILTIN = {definition.id: definition for definition in load_builtin()}
BRUTE_FORCE = (
    "logs/evtx_to_mitre_attack/jsonl/TA0006-Credential Access/T1110.xxx-Brut force/"
    "ID4771-Kerberos brutforce with valid user.jsonl"
)


def test_the_five_playbooks_are_shipped_and_valid() -> None:
    assert sorted(BUILTIN) == [
        "brute-force-response",
        "malware-containment",
        "network-attack-response",
        "phishing-triage",
        "suspicious-powershell",
    ]
    for definition in BUILTIN.values():
        subject = "attack_id" if definition.id == "network-attack-response" else "alert_id"
        assert definition.inputs[subject].required is True
        assert all(step.uses in STEP_KINDS for step in definition.steps)
        assert definition.description


@pytest.mark.parametrize(
    ("playbook", "uses"),
    [
        (
            "phishing-triage",
            {"intel.enrich", "case.create", "network.block_url", "email.block_sender", "notify"},
        ),
        ("malware-containment", {"intel.enrich", "edr.isolate", "edr.scan", "case.create"}),
        ("brute-force-response", {"logs.search", "network.block_ip", "case.update"}),
        ("suspicious-powershell", {"agent.call", "edr.scan", "edr.isolate", "case.create"}),
    ],
)
def test_each_playbook_does_what_its_practice_needs(playbook: str, uses: set[str]) -> None:
    assert uses <= {step.uses for step in BUILTIN[playbook].steps}


def test_containment_runs_only_on_a_malicious_verdict() -> None:
    for playbook in ("malware-containment", "suspicious-powershell"):
        isolate = next(s for s in BUILTIN[playbook].steps if s.uses == "edr.isolate")
        assert isolate.if_ is not None
        assert "malicious" in isolate.if_


@pytest.fixture
async def database(settings: Settings) -> AsyncIterator[Database]:
    assert settings.database_url is not None
    opened = create_database(settings.database_url)
    try:
        yield opened
    finally:
        await opened.dispose()


async def read_alert(env: StepEnv, body: dict[str, Any]) -> dict[str, Any]:
    async with env.database.session() as db:
        alert, _ = await alerts.create_alert(
            db=db, actor="detections", body=AlertCreate.model_validate(body), dedup_window_seconds=0
        )
    kind = STEP_KINDS["alert.get"]
    return await kind.run(env, kind.validate({"alert_id": alert.id}))


def context(definition: PlaybookDefinition, inputs: dict[str, Any]) -> dict[str, Any]:
    return {
        "inputs": inputs,
        "trigger": {},
        "steps": {},
        "execution": {"id": "PBX-2026-00001", "mode": "active", "playbook": definition.id},
    }


def params_of(definition: PlaybookDefinition, step_id: str, scope: dict[str, Any]) -> Any:
    step = definition.step(step_id)
    return STEP_KINDS[step.uses].validate(render(step.with_, scope))


async def test_phishing_triage_judges_the_urls_and_the_sender(
    settings: Settings, database: Database
) -> None:
    definition = BUILTIN["phishing-triage"]
    env = make_env(settings, database)
    alert = await read_alert(
        env,
        {
            "title": "Credential phishing: 'Your mailbox is full' with a login link",
            "description": "Reported by alice@corp.example: link to hxxps://evil[.]example[.]com/owa",
            "source": "mail-gateway",
            "severity": "high",
            "entities": [
                {"type": "url", "value": "hxxps://evil[.]example[.]com/owa"},
                {"type": "ip", "value": "45.33.32.156"},
                {"type": "user", "value": "alice"},
            ],
            "raw": {"email": {"from": {"address": ["billing@evil.example.com"]}}},
        },
    )
    scope = context(definition, {"alert_id": alert["id"], "sender": None, "channel": "soc"})
    scope["steps"]["alert"] = {"status": "succeeded", "output": alert}
    enrich = params_of(definition, "enrich", scope)
    assert [(i.type, i.value) for i in enrich.indicators] == [
        ("url", "https://evil.example.com/owa"),
        ("ip", "45.33.32.156"),
        ("email", "billing@evil.example.com"),
    ]
    # the threat-intel step found the URL and the address malicious
    scope["steps"]["enrich"] = {
        "status": "succeeded",
        "output": {
            "malicious": True,
            "summary": "2 indicators listed by campaign",
            "malicious_indicators": [
                {"type": "url", "value": "https://evil.example.com/owa"},
                {"type": "ip", "value": "45.33.32.156"},
            ],
        },
    }
    assert evaluate(str(definition.step("block_sender").foreach), scope) == [
        "billing@evil.example.com"
    ]
    assert evaluate(str(definition.step("block_urls").foreach), scope) == [
        "https://evil.example.com/owa"
    ]
    tags = params_of(definition, "verdict", scope).tags
    assert tags == ["phishing", "verdict:malicious"]
    case = params_of(definition, "case", scope)
    assert (case.alert_id, case.severity.value) == (alert["id"], "high")
    assert [o.value for o in case.observables] == ["https://evil.example.com/owa", "45.33.32.156"]
    scope["steps"]["case"] = {"status": "succeeded", "output": {"case_id": "CASE-2026-00001"}}
    note = params_of(definition, "notify", scope)
    assert note.severity.value == "high"
    assert "Case: CASE-2026-00001." in note.message


async def test_brute_force_finds_the_failures_and_the_targeted_account(
    settings: Settings, database: Database
) -> None:
    data = shared_data_dir()
    if data is None:
        pytest.skip("the shared data (../shared/data or AURORA_SHARED_DATA) is not here")
    events = [parse_line(line) for line in (data / BRUTE_FORCE).read_text().splitlines() if line]
    definition = BUILTIN["brute-force-response"]
    async with open_store() as store:
        await store.insert(events)
        env = make_env(settings, database, logstore=store)
        # the alert a detection raised on the last failure of the burst
        last = max(events, key=lambda e: e.timestamp)
        alert = await read_alert(
            env,
            {
                "title": "Kerberos pre-authentication failures from one source",
                "source": "aurora-detections",
                "severity": "high",
                "observed_at": last.timestamp.isoformat(),
                "entities": [
                    {"type": "ip", "value": "10.23.123.11"},
                    {"type": "host", "value": "rootdc1.offsec.lan"},
                    {"type": "user", "value": "admin-hacker"},
                ],
            },
        )
        scope = context(
            definition, {"alert_id": alert["id"], "window_seconds": 3600, "channel": "soc"}
        )
        scope["steps"]["alert"] = {"status": "succeeded", "output": alert}
        scope["steps"]["enrich"] = {"status": "succeeded", "output": {"malicious": False}}
        outputs = {}
        for step_id in ("failures", "successes"):
            params = params_of(definition, step_id, scope)
            compile_query(params.query)
            outputs[step_id] = await STEP_KINDS["logs.search"].run(env, params)
            scope["steps"][step_id] = {"status": "succeeded", "output": outputs[step_id]}
    assert outputs["failures"]["count"] == 54
    assert outputs["successes"]["count"] == 0
    case = params_of(definition, "case", scope)
    assert case.severity.value == "high"  # no logon succeeded
    assert [(o.type, o.value, o.ioc) for o in case.observables] == [("user", "admin-hacker", False)]
    scope["steps"]["case"] = {"status": "succeeded", "output": {"case_id": "CASE-2026-00002"}}
    block = definition.step("block")
    assert evaluate(str(block.foreach), scope) == ["10.23.123.11"]
    note = params_of(definition, "accounts", scope)
    assert "Failed logons found: 54." in note.comment
    assert "Accounts targeted: admin-hacker." in note.comment
    assert "revoke their sessions): none." in note.comment
