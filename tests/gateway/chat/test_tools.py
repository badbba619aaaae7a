"""The assistant's tools against the real platform: logs searched in the store, a case and an
investigation shown, an indicator looked up by a running threat-intel specialist, a drafted
Sigma rule checked by the converter, all as the user who chats."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from core.security.permissions import Role
from core.settings import Settings
from gateway.keys import RUNNER
from tests.conftest import Gateway, specialist_on_loopback, start_gateway
from tests.fakes.openai_server import ScriptedOpenAI
from tests.gateway.siem.test_siem import RULE

API = "/api/v1"
COMPLETIONS = f"{API}/chat/completions"


@pytest.fixture
def backend() -> str:
    return "sqlite"


@pytest.fixture
async def platform(
    tmp_path: Path, settings: Settings
) -> AsyncIterator[tuple[Gateway, ScriptedOpenAI]]:
    """A gateway with a scripted model and a threat-intel specialist on loopback ports."""
    async with (
        specialist_on_loopback("threat_intel", tmp_path / "agent", settings.jwt_secret) as url,
        ScriptedOpenAI(models=("aurora-test",)) as model,
    ):
        configured = settings.model_copy(
            update={
                "agent_urls": {"threat_intel": [url]},
                "llm_base_url": model.base_url,
                "llm_model": "aurora-test",
                "llm_max_retries": 0,
            }
        )
        client = await start_gateway(configured)
        try:
            yield Gateway(client), model
        finally:
            await client.close()


async def turn(gateway: Gateway, headers: dict[str, str], message: str) -> dict[str, Any]:
    response = await gateway.client.post(COMPLETIONS, json={"message": message}, headers=headers)
    body: dict[str, Any] = await response.json()
    assert response.status == 200, body
    return body


async def test_the_tools_reach_the_platform_as_the_user(
    platform: tuple[Gateway, ScriptedOpenAI],
) -> None:
    gateway, model = platform
    analyst = await gateway.user(Role.ANALYST)
    now = datetime.now(UTC).isoformat()
    event = {
        "@timestamp": now,
        "host": {"name": "ws-17"},
        "process": {"name": "powershell.exe", "command_line": "powershell -enc SQBFAFgA"},
        "message": "encoded powershell on ws-17",
    }
    ingested = await gateway.client.post(
        f"{API}/siem/logs/ingest",
        data=json.dumps(event).encode(),
        headers={**analyst, "Content-Type": "application/x-ndjson"},
        params={"source": "edr-lab"},
    )
    assert ingested.status == 200, await ingested.text()
    [log_id] = (await ingested.json())["ids"]

    searched = await turn(gateway, analyst, "search powershell last 2h")
    assert searched["tool_calls"][0]["status"] == "executed"
    assert {"kind": "log", "id": log_id} in searched["citations"]
    assert "1 event(s)" in searched["message"]["content"]

    case = await gateway.client.post(
        f"{API}/cases", json={"title": "Encoded PowerShell on ws-17"}, headers=analyst
    )
    case_id = (await case.json())["id"]
    shown = await turn(gateway, analyst, f"show {case_id}")
    assert "Encoded PowerShell on ws-17" in shown["message"]["content"]
    assert {"kind": "case", "id": case_id} in shown["citations"]

    # The queue is stopped: the investigation stays queued, so that its planner never asks the
    # scripted model (which answers this conversation) while the chat goes on.
    await gateway.app[RUNNER].stop()
    dispatched = await turn(gateway, analyst, f"investigate {case_id} high")
    investigation_id = next(
        c["id"] for c in dispatched["citations"] if c["kind"] == "investigation"
    )
    receipt = await turn(gateway, analyst, f"show {investigation_id}")
    assert f"Investigation **{investigation_id}**" in receipt["message"]["content"]

    looked_up = await turn(gateway, analyst, "lookup 203.0.113.77")
    [call] = looked_up["tool_calls"]
    assert call["status"] == "executed", call
    assert "203.0.113.77" in looked_up["message"]["content"]

    # The model drafts a rule; the platform's converter checks it.
    model.reply_tool_call("draft_sigma_rule", {"rule": RULE})
    model.reply_text("The rule converts.")
    drafted = await turn(gateway, analyst, "Draft a Sigma rule for encoded PowerShell")
    [check] = drafted["tool_calls"]
    assert check["status"] == "executed"
    assert "converts" in check["summary"]
    model.reply_tool_call("draft_sigma_rule", {"rule": "title: [broken"})
    model.reply_text("It does not parse.")
    broken = await turn(gateway, analyst, "Draft another")
    assert "not a valid Sigma rule" in broken["tool_calls"][0]["summary"]
    tool_result = json.loads(
        model.chat_requests[-1].body["messages"][-1]["content"].split("\n", 1)[1].rsplit("\n", 1)[0]
    )
    assert tool_result["valid"] is False
