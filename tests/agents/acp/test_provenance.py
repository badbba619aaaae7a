"""Target provenance: who may corroborate what, and what a corroboration vouches for."""

from __future__ import annotations

from typing import Any

import pytest

from agents.acp.finding import Finding, RecommendedAction, TargetSource
from agents.acp.provenance import (
    Provenance,
    indicator_keys,
    platform_corroborations,
    vouched,
)


def listing(value: str, kind: str = "threat_intel", type_: str = "ip") -> dict[str, Any]:
    return {"type": type_, "value": value, "kind": kind, "source": "feed", "detail": ""}


def test_only_the_agent_whose_role_it_is_may_corroborate() -> None:
    claims = {"corroborations": [listing("45.33.32.156"), listing("45.33.32.157", "reputation")]}
    claims["corroborations"].append(listing("45.33.32.158", "telemetry"))
    assert [c["value"] for c in vouched("threat_intel", claims)] == ["45.33.32.156", "45.33.32.157"]
    assert [c["value"] for c in vouched("hunter", claims)] == ["45.33.32.158"]
    # a malware or network agent (or a model steered by a command line) vouches for nothing
    for agent in ("malware", "network", "endpoint", "responder", "anyone"):
        assert vouched(agent, claims) == []
    assert vouched("threat_intel", {"corroborations": [{"kind": "threat_intel"}, "junk"]}) == []
    assert platform_corroborations([listing("1.2.3.4", "threat_intel")]) == []
    assert platform_corroborations([listing("1.2.3.4", "telemetry")])[0]["agent"] == "platform"


@pytest.mark.parametrize(
    ("target", "keys"),
    [
        ("45.33.32.156", ["45.33.32.156"]),
        ("http://45.33.32.156/a.ps1", ["http://45.33.32.156/a.ps1", "45.33.32.156"]),
        ("https://Evil.Example./x", ["https://Evil.Example./x", "evil.example"]),
        ("Phish@Evil.Example", ["phish@evil.example", "evil.example"]),
        ("ws-042:4242", ["ws-042:4242", "ws-042"]),
        ("pid:4242", ["pid:4242"]),
        ("45.33.32.0/24", ["45.33.32.0/24"]),  # a network is not vouched for by one address
        ("2001:DB8::1", ["2001:db8::1"]),
    ],
)
def test_what_a_corroboration_may_vouch_for(target: str, keys: list[str]) -> None:
    assert indicator_keys(target) == keys


def test_origin_and_corroboration_of_each_target() -> None:
    malware = Finding(
        agent="malware",
        summary="cradle",
        severity="high",
        confidence=0.9,
        recommended_actions=[
            RecommendedAction(
                action="block_domain",
                target="LOGIN.microsoftonline.com",
                reason="named in a command line",
                impact="low",
                provenance=[TargetSource(kind="command_line", ref="command_lines[0]")],
            ),
            RecommendedAction(
                action="block_ip",
                target="45.33.32.156",
                reason="named in a command line",
                impact="medium",
                provenance=[TargetSource(kind="command_line", ref="command_lines[0]")],
            ),
        ],
    ).model_dump(mode="json")
    # the malware agent claims a feed listing of the domain: not its role, ignored
    malware["corroborations"] = [listing("login.microsoftonline.com", type_="domain")]
    model = Finding(
        agent="network",
        summary="x",
        severity="high",
        confidence=0.5,
        backend="llm",
        model="m-1",
        recommended_actions=[
            RecommendedAction(
                action="block_ip",
                target="45.33.32.156",
                reason="the model says so",
                impact="low",
                # a model cannot lend itself a source
                provenance=[TargetSource(kind="threat_intel", ref="made up")],
            )
        ],
    ).model_dump(mode="json")
    intel = {"agent": "threat_intel", "corroborations": [listing("45.33.32.156")]}
    findings = [malware, model, intel]
    known = Provenance(findings, [c for f in findings for c in vouched(str(f["agent"]), f)])
    assert known.corroborations("login.microsoftonline.com") == []
    assert known.origin("login.microsoftonline.com") == [
        {"agent": "malware", "kind": "command_line", "ref": "command_lines[0]"}
    ]
    assert [c["agent"] for c in known.corroborations("45.33.32.156")] == ["threat_intel"]
    assert known.origin("45.33.32.156") == [
        {"agent": "malware", "kind": "command_line", "ref": "command_lines[0]"},
        {"agent": "network", "kind": "model_output", "ref": "m-1"},
    ]
    assert [c["value"] for c in known.corroborations("http://45.33.32.156/x")] == ["45.33.32.156"]
    assert known.corroborations("45.33.32.0/24") == []
    assert known.origin("never.proposed") == []
