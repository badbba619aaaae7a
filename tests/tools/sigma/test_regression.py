"""SigmaHQ's regression data: 60 rules, each with the real Sysmon event(s) it must match
(``sigma/regression`` in the shared data). Each event becomes a log-table row (a minimal
flattening written here; the Windows parser lands separately), and the converted rule must
select as many events as the index expects (at least one where it gives no count)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import shared_data_dir
from tests.tools.sigma.conftest import LogTable
from tools.sigma import convert

# Sysmon / EVTX names → the columns the Sigma pipeline maps them onto (exact copies).
TEXT_COLUMNS = {
    "EventID": "event_code",
    "Computer": "host_name",
    "Image": "process_executable",
    "CommandLine": "process_command_line",
    "ParentImage": "process_parent_executable",
    "ParentCommandLine": "process_parent_command_line",
    "TargetFilename": "file_path",
    "TargetObject": "registry_path",
    "Details": "registry_value",
    "QueryName": "dns_question_name",
    "SourceIp": "source_ip",
    "DestinationIp": "destination_ip",
}
INT_COLUMNS = {
    "ProcessId": "process_pid",
    "ParentProcessId": "process_parent_pid",
    "SourcePort": "source_port",
    "DestinationPort": "destination_port",
}


def index() -> list[dict[str, Any]]:
    root = shared_data_dir()
    if root is None:
        return []
    return list(json.loads((root / "sigma/regression_index.json").read_text()))


def text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return text(value.get("#text", ""))
    return "" if value is None else str(value)


def flatten(event: dict[str, Any]) -> dict[str, str]:
    """System leaves under their names (attributes as ``Parent_attr``: ``Provider_Name``),
    EventData leaves under their bare names."""
    body = event["Event"]
    fields: dict[str, str] = {}
    for key, value in (body.get("System") or {}).items():
        if isinstance(value, dict):
            for attribute, attribute_value in (value.get("#attributes") or {}).items():
                fields[f"{key}_{attribute}"] = text(attribute_value)
            if "#text" in value:
                fields[key] = text(value["#text"])
        elif value is not None:
            fields[key] = text(value)
    data = body.get("EventData") or {}
    for key, value in data.items():
        if key != "#attributes" and value is not None:
            fields[key] = text(value)
    return fields


def to_row(event: dict[str, Any]) -> dict[str, Any]:
    fields = flatten(event)
    row: dict[str, Any] = {"raw": json.dumps(event), "fields": fields}
    for name, column in TEXT_COLUMNS.items():
        if name in fields:
            row[column] = fields[name]
    for name, column in INT_COLUMNS.items():
        if fields.get(name, "").isdigit():
            row[column] = int(fields[name])
    return row


def read_events(path: Path) -> list[dict[str, Any]]:
    """One JSON object, or several written one after another."""
    decoder = json.JSONDecoder()
    content = path.read_text(encoding="utf-8-sig")
    events: list[dict[str, Any]] = []
    position = 0
    while position < len(content):
        while position < len(content) and content[position].isspace():
            position += 1
        if position >= len(content):
            break
        event, position = decoder.raw_decode(content, position)
        events.append(event)
    return events


CASES = index()


def test_shared_regression_index_is_present() -> None:
    if shared_data_dir() is None:
        pytest.skip("shared data not found (../shared/data or AURORA_SHARED_DATA)")
    assert len(CASES) == 60


@pytest.mark.parametrize("case", CASES, ids=[c["rule_title"] for c in CASES])
def test_rule_matches_its_events(case: dict[str, Any], log_table: LogTable) -> None:
    root = shared_data_dir()
    assert root is not None
    sigma = root / "sigma"
    conversion = convert((sigma / case["rule_path"]).read_text(encoding="utf-8"))
    assert conversion.meta.id == case["rule_id"]
    assert conversion.meta.level == case["level"]
    for test in case["tests"]:
        events = read_events(sigma / test["json_path"])
        log_table.insert([to_row(event) for event in events])
        matched = len(log_table.matching(conversion.condition))
        if test["match_count"] is None:
            assert matched >= 1, conversion.condition
        else:
            assert matched == test["match_count"], conversion.condition
