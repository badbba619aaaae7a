"""Evidence from rule hits (agents.runtime.evidence)."""

from __future__ import annotations

from agents.runtime.evidence import hit_evidence, layer_evidence
from core.schemas import Severity
from tools.behaviour import Rule, RuleHit
from tools.decode import unfold

RULES = (
    Rule("mimikatz", "Mimikatz", ("T1003.001",), "credential_access", Severity.CRITICAL, 0.9, "-"),
    Rule(
        "echo_base64_staging",
        "Base64 staging",
        ("T1027",),
        "defense_evasion",
        Severity.MEDIUM,
        0.5,
        "-",
    ),
    Rule("service_stop", "Service stopped", ("T1489",), "impact", Severity.HIGH, 0.7, "-"),
    Rule("log_clear", "Log cleared", ("T1070.001",), "defense_evasion", Severity.HIGH, 0.8, "-"),
)


def test_hit_evidence_is_capped_per_rule_and_worst_first() -> None:
    rules = {r.id: r for r in RULES}
    hits = [RuleHit(rules["echo_base64_staging"], f"events[{i}]", "echo QUFB") for i in range(7)]
    hits.append(RuleHit(rules["mimikatz"], "events[9]", "sekurlsa::logonpasswords"))
    evidence = hit_evidence(hits)
    assert [e.ref for e in evidence] == [
        "mimikatz @ events[9]",
        *(f"echo_base64_staging @ events[{i}]" for i in range(5)),
    ]
    assert evidence[0].summary == "critical: Mimikatz [T1003.001]: sekurlsa::logonpasswords"
    assert evidence[-1].summary.endswith("echo QUFB (and 2 more)")


def test_rules_of_one_severity_keep_their_order() -> None:
    rules = {r.id: r for r in RULES}
    high = [r for r in RULES if r.severity == "high"][:2]
    hits = [RuleHit(high[1], "a", "x"), RuleHit(rules["mimikatz"], "b", "y")]
    hits.append(RuleHit(high[0], "c", "z"))
    assert [e.ref.split(" @ ")[0] for e in hit_evidence(hits)] == [
        "mimikatz",
        high[1].id,
        high[0].id,
    ]


def test_layer_evidence_names_each_layer_by_its_method() -> None:
    layers = unfold("cG93ZXJzaGVsbCAtYyAnSW52b2tlLUV4cHJlc3Npb24n")
    evidence = layer_evidence("command_lines[0]", layers)
    assert [(e.kind, e.ref) for e in evidence] == [("decoded", "command_lines[0]")]
    assert evidence[0].summary == "base64: powershell -c 'Invoke-Expression'"
