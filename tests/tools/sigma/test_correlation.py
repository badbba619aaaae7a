"""Sigma correlation rules: GROUP BY / HAVING queries run on a real chDB table, and the types
that are refused."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import pytest
import yaml

from core.errors import SigmaValidationFailed
from tests.tools.sigma.conftest import T0, LogTable
from tools.sigma import convert, convert_all

BASE = {
    "title": "Failed logon",
    "id": "5d8fd9da-6916-45ef-8d4d-3fa9d19d1a64",
    "name": "failed_logon",
    "status": "test",
    "logsource": {"product": "windows", "service": "security"},
    "detection": {"sel": {"EventID": 4625}, "condition": "sel"},
}
SUCCESS = {
    **BASE,
    "title": "Logon",
    "id": "73a9addc-0cf9-44a4-ad18-e3b7a9d1eeb4",
    "name": "logon",
    "detection": {"sel": {"EventID": 4624}, "condition": "sel"},
}


def correlation(kind: str, condition: dict[str, Any], rules: list[str], **extra: Any) -> str:
    body = {
        "title": f"{kind} correlation",
        "id": "16a288b8-4ed2-440f-9984-7a128e86e006",
        "status": "test",
        "level": "high",
        "tags": ["attack.t1110"],
        "correlation": {
            "type": kind,
            "rules": rules,
            "group-by": ["Computer"],
            "timespan": "10m",
            "condition": condition,
            **extra,
        },
    }
    bases = [rule for rule in (BASE, SUCCESS) if rule["name"] in rules]
    return yaml.safe_dump_all([*bases, body], sort_keys=False)


def logon(minute: int, code: str, host: str, user: str) -> dict[str, Any]:
    return {
        "raw": f"{code}@{host}/{user}@{minute}",
        "timestamp": T0 + timedelta(minutes=minute),
        "event_code": code,
        "event_provider": "Security",
        "host_name": host,
        "fields": {"Channel": "Security", "TargetUserName": user},
    }


ROWS = [
    logon(0, "4625", "dc-01", "alice"),
    logon(1, "4625", "dc-01", "bob"),
    logon(2, "4625", "dc-01", "carol"),
    logon(3, "4624", "dc-01", "carol"),
    logon(1, "4625", "ws-02", "dave"),
    logon(30, "4625", "dc-01", "erin"),
]


def run(log_table: LogTable, text: str) -> list[Sequence[Any]]:
    conversion = convert(text)
    assert conversion.correlation is not None
    sql = conversion.correlation.query(log_table.quoted, conversion.condition)
    return list(log_table.client.query(sql + " ORDER BY window_start, group_0").result_rows)


def test_event_count(log_table: LogTable) -> None:
    text = correlation("event_count", {"gte": 3}, ["failed_logon"])
    conversion = convert(text)
    assert conversion.meta.techniques == ("T1110",)
    assert conversion.meta.logsource == "windows/security"
    assert conversion.correlation is not None
    assert conversion.correlation.group_by == (("Computer", "`host_name`"),)
    assert conversion.correlation.timespan_seconds == 600
    log_table.insert(ROWS)
    rows = run(log_table, text)
    assert [(r[1], r[2]) for r in rows] == [("dc-01", 3)]


def test_value_count(log_table: LogTable) -> None:
    text = correlation("value_count", {"gt": 2, "field": "TargetUserName"}, ["failed_logon"])
    assert "uniqExact(`x_TargetUserName`)" in convert(text).correlation.aggregate  # type: ignore[union-attr]
    log_table.insert(ROWS)
    assert [(r[1], r[2]) for r in run(log_table, text)] == [("dc-01", 3)]


def test_temporal(log_table: LogTable) -> None:
    text = correlation("temporal", {"gte": 2}, ["failed_logon", "logon"])
    log_table.insert(ROWS)
    # Only dc-01's first window holds both a failure and a success.
    assert [(r[1], r[2]) for r in run(log_table, text)] == [("dc-01", 2)]


def test_base_rules_are_not_output_on_their_own() -> None:
    text = correlation("event_count", {"gte": 3}, ["failed_logon"])
    assert [c.meta.title for c in convert_all(text)] == ["event_count correlation"]


@pytest.mark.parametrize("kind", ["temporal_ordered", "value_sum"])
def test_unsupported_types_are_refused(kind: str) -> None:
    condition = {"gte": 2} if kind == "temporal_ordered" else {"gte": 2, "field": "Bytes"}
    with pytest.raises(SigmaValidationFailed) as caught:
        convert(correlation(kind, condition, ["failed_logon", "logon"]))
    assert caught.value.code == "AURORA-4222"
    assert (
        f"correlation type {kind} is not supported" in caught.value.detail["errors"][0]["message"]
    )
