"""Automation rules' conditions, expressions and bodies, without a database: what each operator
holds for, and the AURORA-4220 a bad body answers, naming the field."""

from __future__ import annotations

from typing import Any

import pytest

from core.errors import ValidationFailed
from core.validation import validate
from gateway.soar.rules import ConditionTimeout, RuleCreate, holds, resolve

ALERT: dict[str, Any] = {
    "id": "ALRT-2026-00007",
    "title": "Encoded PowerShell on WS-042",
    "severity": "high",
    "source": "sysmon",
    "occurrences": 3,
    "tags": ["endpoint", "powershell"],
    "entities": [{"type": "host", "value": "ws-042"}, {"type": "ip", "value": "10.0.0.5"}],
    "assignee": None,
    "last_seen": "2026-11-30T10:15:00+00:00",
    "receipt": {"verdict": "malicious", "confidence": 0.9},
}

CASES = [
    # (field, op, value, holds)
    ("severity", "eq", "high", True),
    ("severity", "eq", "High", False),  # exact
    ("assignee", "eq", None, True),
    ("receipt.verdict", "eq", "malicious", True),
    ("entities.1.value", "eq", "10.0.0.5", True),
    ("entities.9.value", "eq", "10.0.0.5", False),
    ("severity", "ne", "low", True),
    ("severity", "ne", "high", False),
    ("missing", "ne", "x", True),
    ("source", "in", ["sysmon", "edr"], True),
    ("source", "in", ["suricata"], False),
    ("tags", "in", ["powershell", "phishing"], True),  # a list holds when any element is in
    ("tags", "in", ["phishing"], False),
    ("missing", "in", ["x"], False),
    ("source", "not_in", ["suricata"], True),
    ("tags", "not_in", ["endpoint"], False),
    ("missing", "not_in", ["x"], True),
    ("title", "contains", "PowerShell", True),
    ("title", "contains", "powershell", False),  # case matters: use matches with (?i)
    ("tags", "contains", "endpoint", True),
    ("tags", "contains", "phishing", False),
    ("receipt", "contains", "verdict", True),
    ("occurrences", "contains", 3, False),
    ("severity", "gte", "medium", True),  # by rank, not spelling ("high" < "medium")
    ("severity", "gte", "critical", False),
    ("severity", "lte", "high", True),
    ("occurrences", "gte", 3, True),
    ("occurrences", "lte", 2, False),
    ("receipt.confidence", "gte", 0.8, True),
    ("last_seen", "gte", "2026-11-30T00:00:00+00:00", True),  # ISO timestamps in order
    ("last_seen", "lte", "2026-11-01T00:00:00+00:00", False),
    ("occurrences", "gte", "2", False),  # a number against a text: never
    ("missing", "gte", 1, False),
    ("receipt.verdict", "exists", True, True),
    ("assignee", "exists", True, False),  # null is absent
    ("assignee", "exists", False, True),
    ("title", "matches", r"(?i)encoded\s+powershell", True),
    ("title", "matches", r"^WS-\d+$", False),
    ("entities.0.value", "matches", r"^ws-\d{3}$", True),
    ("occurrences", "matches", r"3", False),  # only texts
]


@pytest.mark.parametrize(("field", "op", "value", "expected"), CASES)
def test_each_operator(field: str, op: str, value: Any, expected: bool) -> None:
    condition = validate(RuleCreate, _rule(conditions=[{"field": field, "op": op, "value": value}]))
    assert condition.conditions[0].holds(ALERT) is expected
    assert holds(field, op, condition.conditions[0].value, ALERT) is expected


def test_exists_defaults_to_true() -> None:
    rule = validate(RuleCreate, _rule(conditions=[{"field": "receipt.verdict", "op": "exists"}]))
    assert rule.conditions[0].value is True


def test_a_runaway_pattern_stops_at_its_time_limit() -> None:
    with pytest.raises(ConditionTimeout):
        holds("title", "matches", r"(a|aa)+$", {"title": "a" * 60 + "b"})


def test_resolve() -> None:
    assert resolve(ALERT, "entities.0") == {"type": "host", "value": "ws-042"}
    assert resolve(ALERT, "receipt.verdict") == "malicious"
    assert resolve(ALERT, "tags.x") is None
    assert resolve(ALERT, "severity.level") is None


def _rule(**fields: Any) -> dict[str, Any]:
    return {
        "name": "Tag encoded PowerShell",
        "trigger": "alert.created",
        "actions": [{"type": "tag", "tags": ["triage"]}],
        **fields,
    }


def test_a_good_body_is_kept_as_given() -> None:
    rule = validate(
        RuleCreate,
        _rule(
            conditions=[{"field": "severity", "op": "gte", "value": "high"}],
            actions=[
                {"type": "tag", "tags": ["Auto", "triage"]},
                {
                    "type": "run_playbook",
                    "playbook_id": "phishing-triage",
                    "inputs": {"alert_id": "${{ event.id }}"},
                },
                {"type": "dispatch_investigation", "priority": "high"},
                {"type": "assign", "assignee": "tier2"},
                {"type": "promote_to_case"},
            ],
        ),
    )
    assert (rule.max_per_minute, rule.max_depth, rule.enabled) == (60, 2, True)
    assert [a.type for a in rule.actions] == [
        "tag",
        "run_playbook",
        "dispatch_investigation",
        "assign",
        "promote_to_case",
    ]
    assert rule.actions[0].model_dump() == {"type": "tag", "tags": ["auto", "triage"]}


BAD = [
    ({"trigger": "alert.deleted"}, ["body", "trigger"]),
    (
        {"conditions": [{"field": "severity", "op": "like", "value": "x"}]},
        ["body", "conditions", 0, "op"],
    ),
    (
        {"conditions": [{"field": "a..b", "op": "eq", "value": "x"}]},
        ["body", "conditions", 0, "field"],
    ),
    (
        {"conditions": [{"field": "source", "op": "in", "value": "sysmon"}]},
        ["body", "conditions", 0, "value"],
    ),
    (
        {"conditions": [{"field": "source", "op": "in", "value": []}]},
        ["body", "conditions", 0, "value"],
    ),
    (
        {"conditions": [{"field": "source", "op": "eq", "value": {"a": 1}}]},
        ["body", "conditions", 0, "value"],
    ),
    (
        {"conditions": [{"field": "n", "op": "gte", "value": True}]},
        ["body", "conditions", 0, "value"],
    ),
    (
        {"conditions": [{"field": "n", "op": "exists", "value": "yes"}]},
        ["body", "conditions", 0, "value"],
    ),
    (
        {"conditions": [{"field": "title", "op": "matches", "value": "(unclosed"}]},
        ["body", "conditions", 0, "value"],
    ),
    (
        {"conditions": [{"field": "title", "op": "matches", "value": "a" * 513}]},
        ["body", "conditions", 0, "value"],
    ),
    (
        {"conditions": [{"field": "title", "op": "eq", "value": "x", "extra": 1}]},
        ["body", "conditions", 0, "extra"],
    ),
    ({"actions": []}, ["body", "actions"]),
    ({"actions": [{"type": "reboot"}]}, ["body", "actions", 0]),
    ({"actions": [{"type": "tag", "tags": []}]}, ["body", "actions", 0, "tag", "tags"]),
    ({"actions": [{"type": "tag", "tags": ["Not A Tag"]}]}, ["body", "actions", 0, "tag", "tags"]),
    (
        {"actions": [{"type": "assign", "assignee": ""}]},
        ["body", "actions", 0, "assign", "assignee"],
    ),
    (
        {"actions": [{"type": "run_playbook", "playbook_id": "Bad Id"}]},
        ["body", "actions", 0, "run_playbook", "playbook_id"],
    ),
    (
        {
            "actions": [
                {
                    "type": "run_playbook",
                    "playbook_id": "triage",
                    "inputs": {"cmd": "${{ event.[ }}"},
                }
            ]
        },
        ["body", "actions", 0, "run_playbook", "inputs"],
    ),
    (
        {"actions": [{"type": "dispatch_investigation", "priority": "asap"}]},
        ["body", "actions", 0, "dispatch_investigation", "priority"],
    ),
    ({"max_per_minute": 0}, ["body", "max_per_minute"]),
    ({"max_per_minute": 10_001}, ["body", "max_per_minute"]),
    ({"max_depth": 11}, ["body", "max_depth"]),
    ({"name": ""}, ["body", "name"]),
    ({"owner": "me"}, ["body", "owner"]),
]


@pytest.mark.parametrize(("change", "loc"), BAD)
def test_a_bad_body_names_its_field(change: dict[str, Any], loc: list[str | int]) -> None:
    with pytest.raises(ValidationFailed) as caught:
        validate(RuleCreate, _rule(**change))
    assert caught.value.code == "AURORA-4220"
    assert [problem["loc"] for problem in caught.value.detail] == [loc]
