"""The verdict rule: typed evidence from what the agents observed, corroboration across
independent sources, and nothing from techniques read in the request's text."""

from __future__ import annotations

from typing import Any

import pytest

from agents.acp.finding import Corroboration, Evidence, Finding
from agents.catalog import Subject
from core.schemas import Severity
from orchestrator.receipt import build_receipt
from orchestrator.state import AgentFinding, Failure, InvestigationState
from orchestrator.verdict import (
    CALIBRATED,
    MALICIOUS_FROM,
    SUSPICIOUS_FROM,
    high_impact_techniques,
    judge,
    shipped_high_impact,
    signals_of,
)
from tools.attack import AttackKB

RANSOMWARE = "LockBit encrypted the shares and deleted the shadow copies."


def hit(rule: str, severity: str, where: str = "command_lines[0]") -> Evidence:
    return Evidence(kind="rule_hit", ref=f"{rule} @ {where}", summary=f"{severity}: {rule}")


def context(*techniques: str) -> Evidence:
    return Evidence(kind="context_techniques", ref="context", summary=", ".join(techniques))


def finding(agent: str, severity: str = "informational", **fields: Any) -> AgentFinding:
    return AgentFinding(
        agent=agent,
        summary=fields.pop("summary", f"{agent} looked"),
        severity=Severity(severity),
        confidence=fields.pop("confidence", 0.5),
        round=0,
        latency_ms=1.0,
        **fields,
    )


def receipt(*findings: AgentFinding, failures: int = 0) -> dict[str, Any]:
    state: InvestigationState = {
        "subject": Subject(title="Ransomware report", text=RANSOMWARE),
        "findings": list(findings),
        "failures": [
            Failure(agent=f"a{n}", round=0, reason="down", stage="dispatch", error="X")
            for n in range(failures)
        ],
    }
    return build_receipt(state)


def nothing_found(agent: str) -> AgentFinding:
    """An agent that examined nothing: the report's techniques as context evidence only."""
    return finding(
        agent,
        "informational",
        confidence=0.3,
        summary="0 event(s) in the window.",
        evidence=[
            Evidence(kind="tool_call", ref="search_logs", summary="0 event(s) on 0 host(s): "),
            context("T1486", "T1490"),
        ],
    )


def test_high_impact_is_read_from_the_attack_tactics() -> None:
    impact = high_impact_techniques(AttackKB.load())
    assert {"T1486", "T1490", "T1003", "T1003.001", "T1055", "T1021.002", "T1041"} <= impact
    assert not {"T1082", "T1087.002", "T1059.001", "T1071.001"} & impact  # no impact in them
    assert shipped_high_impact() == impact


def test_a_ransomware_report_whose_agents_observed_it_is_malicious() -> None:
    malware = finding(
        "malware",
        "high",
        mitre_techniques=["T1490", "T1027"],
        evidence=[
            hit("vssadmin_delete_shadows", "high"),
            Evidence(kind="decoded", ref="command_lines[1]", summary="base64: vssadmin delete"),
        ],
    )
    intel = finding(
        "threat_intel",
        "high",
        corroborations=[
            Corroboration(
                type="domain", value="lockbit.example", kind="threat_intel", source="feed"
            )
        ],
    )
    both = receipt(malware, intel, nothing_found("hunter"))
    assert (both["verdict"], both["severity"]) == ("malicious", "high")
    assert both["confidence"] >= 0.85
    # The observation alone (one source) is suspicious; the intel match corroborates it.
    alone = receipt(malware)
    assert (alone["verdict"], alone["severity"]) == ("suspicious", "high")
    assert alone["confidence"] < both["confidence"]


def test_encryption_observed_by_two_rules_is_malicious() -> None:
    endpoint = finding(
        "endpoint",
        "critical",
        mitre_techniques=["T1486", "T1490"],
        evidence=[
            hit("ransom_note_dropped", "high", "events[3]"),
            hit("shadow_delete", "critical"),
        ],
    )
    judged = judge([endpoint], failed=0)
    assert (judged.verdict, judged.severity, judged.sources) == ("malicious", "critical", 2)
    assert {s.kind for s in judged.signals} == {"detection", "impact"}


def test_context_only_techniques_never_raise_a_verdict() -> None:
    said = finding(
        "threat_intel",
        "low",
        evidence=[context("T1486", "T1490", "T1003.001")],
    )
    # Even a built-in finding naming high-impact techniques without a detection adds nothing.
    named = finding("network", "informational", mitre_techniques=["T1486", "T1003.001"])
    result = receipt(said, named)
    assert (result["verdict"], result["severity"]) == ("benign_or_unknown", "informational")
    assert signals_of(said, shipped_high_impact()) == []
    assert signals_of(named, shipped_high_impact()) == []
    assert result["techniques"] == [
        {"id": t, "agents": ["network"], "support": result["techniques"][i]["support"]}
        for i, t in enumerate(["T1486", "T1003.001"])
    ]
    assert "T1490" not in {t["id"] for t in result["techniques"]}


def test_an_agent_that_found_nothing_credits_nothing() -> None:
    idle = nothing_found("hunter")
    assert signals_of(idle, shipped_high_impact()) == []
    with_idle = receipt(nothing_found("hunter"), nothing_found("network"))
    assert with_idle["techniques"] == []
    assert with_idle["verdict"] == "benign_or_unknown"
    seen = finding("endpoint", "medium", evidence=[hit("pktmon_capture", "medium", "events[0]")])
    # Adding an idle agent changes nothing of the verdict of one that saw something.
    assert receipt(seen, idle)["confidence"] == receipt(seen)["confidence"]
    assert receipt(seen, idle)["verdict"] == receipt(seen)["verdict"] == "suspicious"


def test_a_models_claim_weighs_less_than_a_detection() -> None:
    claim = finding("malware", "high", backend="llm", model="m")
    detection = finding("malware", "high", evidence=[hit("ps_download", "high")])
    claimed, detected = judge([claim], failed=0), judge([detection], failed=0)
    assert [s.kind for s in claimed.signals] == ["claim"]
    assert claimed.probability < detected.probability


def test_every_specialist_failing_is_inconclusive() -> None:
    result = receipt(failures=2)
    assert (result["verdict"], result["confidence"]) == ("inconclusive", 0.0)
    degraded = receipt(finding("malware", "medium", evidence=[hit("x", "medium")]), failures=2)
    assert degraded["verdict"] == "suspicious"  # from the ones that answered


@pytest.mark.parametrize(
    ("severity", "expected"),
    [("low", "benign_or_unknown"), ("medium", "suspicious"), ("high", "suspicious")],
)
def test_one_uncorroborated_detection_is_at_most_suspicious(severity: str, expected: str) -> None:
    judged = judge([finding("endpoint", severity, evidence=[hit("r", severity)])], failed=0)
    assert judged.verdict == expected
    if expected == "suspicious":
        assert judged.severity >= SUSPICIOUS_FROM
        assert judged.confidence == round(judged.probability, 3)
    else:
        assert judged.severity <= Severity.LOW
        assert judged.confidence == round(1 - judged.probability, 3)


def test_the_weights_raise_the_probability_with_each_kind_of_evidence() -> None:
    assert CALIBRATED.prior < 0  # no evidence: more likely benign
    assert min(CALIBRATED.detection, CALIBRATED.impact, CALIBRATED.intel) > 0
    assert CALIBRATED.intel > CALIBRATED.sighting > CALIBRATED.claim
    assert MALICIOUS_FROM > SUSPICIOUS_FROM


def test_findings_are_what_the_receipt_judges() -> None:
    base = Finding(agent="malware", summary="s", severity=Severity.HIGH, confidence=0.9)
    assert judge([base], failed=0).verdict == "benign_or_unknown"  # a severity, no evidence
