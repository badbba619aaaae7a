"""The parsers on real third-party logs: EVTX-to-MITRE-Attack (JSON lines and .evtx), SigmaHQ's
regression events, and Suricata EVE samples."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from core.logstore.schema import BY_NAME, FORMATS
from tools.logs import parse_payload
from tools.logs.common import leaf_text
from tools.logs.payload import ParseResult

from .conftest import RECEIVED, shared

ATTACK = "logs/evtx_to_mitre_attack"


def parse_file(path: Path, content_type: str | None = None) -> ParseResult:
    return parse_payload(
        path.read_bytes(),
        content_type=content_type,
        source=None,
        format=None,
        filename=path.name,
        received=RECEIVED,
    )


def check_values(result: ParseResult) -> None:
    """Every value is of its field's kind and in range; every event is timezone-aware."""
    for event in result.events:
        assert event.timestamp.tzinfo is not None
        assert event.format in FORMATS
        for name, value in event.values.items():
            field = BY_NAME[name]
            if field.kind == "int":
                assert isinstance(value, int)
                assert 0 <= value < 1 << field.bits
            else:
                assert isinstance(value, str)
                assert value


def test_every_attack_json_line_parses() -> None:
    folder = shared(f"{ATTACK}/jsonl")
    files = sorted(folder.rglob("*.jsonl"))
    assert len(files) >= 30
    lines = accepted = 0
    for path in files:
        lines += sum(1 for line in path.read_text(encoding="utf-8").splitlines() if line.strip())
        result = parse_file(path, "application/x-ndjson")
        assert result.rejected == [], (path.name, result.rejected[:3])
        accepted += result.accepted
        check_values(result)
        assert {e.format for e in result.events} == {"windows"}
        assert all(e.values.get("event.code") for e in result.events)
        assert all(e.values.get("host.name") for e in result.events)
    assert accepted == lines == 568  # a 100 % parse rate


def test_attack_process_creations_map_to_ecs() -> None:
    path = shared(
        f"{ATTACK}/jsonl/TA0002-Execution/T1053.005-Scheduled Task/"
        "ID4688-4698 Persistent scheduled task with SYSTEM privileges creation.jsonl"
    )
    events = parse_file(path).events
    creation = next(e for e in events if e.values["event.code"] == "4688")
    assert creation.values["event.action"] == "process_creation"
    assert creation.values["process.name"] == "schtasks.exe"
    assert creation.values["process.parent.name"] == "powershell.exe"
    assert "/ru SYSTEM" in str(creation.values["process.command_line"])
    # 4688 writes process ids in hex: NewProcessId is the child, ProcessId its parent.
    assert creation.values["process.pid"] == int(creation.fields["NewProcessId"], 16)
    assert creation.values["process.parent.pid"] == int(creation.fields["ProcessId"], 16)
    assert (creation.values["user.name"], creation.values["user.domain"]) == ("admmig", "OFFSEC")
    task = next(e for e in events if e.values["event.code"] == "4698")
    assert task.values["event.action"] == "scheduled_task_created"
    assert task.fields["TaskName"] == "\\eviltask"


def test_evtx_files_give_what_their_json_twins_give() -> None:
    folder = shared(ATTACK)
    pairs = [
        (path, folder / "evtx" / path.relative_to(folder / "jsonl").with_suffix(".evtx"))
        for path in sorted((folder / "jsonl").rglob("*.jsonl"))
    ]
    assert all(evtx.is_file() for _, evtx in pairs)
    compared = 0
    for json_path, evtx_path in pairs:
        from_json = parse_file(json_path)
        from_evtx = parse_file(evtx_path, "application/octet-stream")
        assert from_evtx.rejected == []
        check_values(from_evtx)
        assert len(from_evtx.events) == len(from_json.events)
        for flat, nested in zip(from_json.events, from_evtx.events, strict=True):
            assert nested.timestamp == flat.timestamp
            assert nested.values == flat.values
            # Every non-empty leaf of the flat layout has the same name and text from the evtx.
            for key, text in flat.fields.items():
                if text:
                    assert nested.fields.get(key) == text, (evtx_path.name, key)
            assert nested.fields["Provider.#attributes.Name"] == nested.fields["Provider_Name"]
            compared += 1
    assert compared == 568


def test_sysmon_network_event_from_evtx() -> None:
    path = shared(
        f"{ATTACK}/evtx/TA0002-Execution/T1047-Windows Management Instrumentation/"
        "ID3-7-10-Suspicious DLL loaded (CME+Mimikatz).evtx"
    )
    events = parse_file(path).events
    by_code = {e.values["event.code"]: e for e in events}
    network = by_code["3"]
    assert network.values["event.category"] == "network"
    assert network.values["network.transport"] == "tcp"
    assert network.values["destination.port"] == 443
    assert network.values["source.ip"] == network.fields["SourceIp"]
    image_load = by_code["7"]
    assert image_load.values["event.action"] == "image_load"
    assert str(image_load.values["file.path"]).endswith(".dll")
    assert "file.hash.sha256" in image_load.values  # hashes of the loaded image, not the process
    assert "process.hash.sha256" not in image_load.values
    access = by_code["10"]
    assert access.fields["GrantedAccess"] == "0x143a"
    assert access.fields["TargetImage"].lower().endswith("lsass.exe")
    assert access.values["process.name"] == "powershell.exe"


def _sigma_fields(detection: dict[str, Any]) -> set[str]:
    names: set[str] = set()
    for key, value in detection.items():
        if key in ("condition", "timeframe"):
            continue
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, dict):
                names.update(str(k).split("|")[0] for k in item)
    return names


def test_sigma_regression_events_hold_their_rules_fields() -> None:
    root = shared("sigma")
    index = json.loads((root / "regression_index.json").read_text(encoding="utf-8"))
    assert len(index) == 60
    events_seen = 0
    for entry in index:
        rule = yaml.safe_load((root / entry["rule_path"]).read_text(encoding="utf-8"))
        wanted = _sigma_fields(rule["detection"])
        for test in entry["tests"]:
            path = root / test["json_path"]
            result = parse_file(path, "application/json")
            assert result.rejected == []
            check_values(result)
            assert result.events
            events_seen += len(result.events)
            present = set().union(*(e.fields for e in result.events))
            assert wanted <= present, (entry["rule_title"], wanted - present)
            for event, original in zip(result.events, _documents(path), strict=True):
                data = original["Event"].get("EventData") or {}
                for name, value in data.items():
                    if not isinstance(value, dict | list):
                        assert event.fields[name] == leaf_text(value)
                system = original["Event"]["System"]
                assert event.fields["EventID"] == str(system["EventID"])
                assert event.fields["Channel"] == system["Channel"]
                assert event.fields["Provider_Name"] == system["Provider"]["#attributes"]["Name"]
    assert events_seen >= 60


def _documents(path: Path) -> list[dict[str, Any]]:
    """The JSON objects of a file holding one or several pretty-printed documents."""
    text = path.read_text(encoding="utf-8")
    decoder = json.JSONDecoder()
    found: list[dict[str, Any]] = []
    pos = 0
    while True:
        while pos < len(text) and text[pos].isspace():
            pos += 1
        if pos >= len(text):
            return found
        value, pos = decoder.raw_decode(text, pos)
        found.append(value)


def test_sigma_process_creation_spot_checks() -> None:
    root = shared("sigma/regression/regression_data/rules/windows/process_creation")
    events = [
        event
        for path in sorted(root.rglob("*.json"))
        for event in parse_file(path, "application/json").events
    ]
    creations = [e for e in events if e.values.get("event.action") == "process_creation"]
    assert len(creations) >= 20
    for event in creations:
        assert event.fields["Image"] == event.values["process.executable"]
        assert event.fields["CommandLine"] == event.values["process.command_line"]
        assert event.fields["ParentImage"] == event.values["process.parent.executable"]
        assert event.values["process.name"] == event.fields["Image"].rsplit("\\", 1)[-1]
        assert event.values["event.provider"] == "Microsoft-Windows-Sysmon/Operational"


def test_suricata_samples_parse_with_rule_names() -> None:
    root = shared("network/suricata_sample_data/samples")
    files = sorted(root.rglob("alerts-only.json"))
    assert len(files) == 4
    total = 0
    for path in files:
        result = parse_file(path, "application/json")
        records = json.loads(path.read_text(encoding="utf-8"))
        assert result.rejected == []
        assert result.accepted == len(records)
        check_values(result)
        total += result.accepted
        for event, record in zip(result.events, records, strict=True):
            assert event.format == "suricata"
            assert event.values["rule.name"] == record["alert"]["signature"]
            assert event.values["event.severity"] == record["alert"]["severity"]
            assert event.values["event.code"] == "alert"
            assert event.fields["alert.signature_id"] == str(record["alert"]["signature_id"])
            assert event.values["destination.port"] == record["dest_port"]
            assert event.values["network.transport"] == record["proto"].lower()
    assert total == 548


@pytest.mark.parametrize("cut", [0.5, 0.9])
def test_truncated_real_evtx_is_reported(cut: float) -> None:
    path = shared(
        f"{ATTACK}/evtx/TA0008-Lateral Movement/T1550-Use Alternate Authentication Material/"
        "ID4624-Mimikatz Pass the hash.evtx"
    )
    body = path.read_bytes()
    whole = parse_payload(body, content_type=None, source="dc01", format=None, received=RECEIVED)
    assert whole.accepted > 0
    assert {e.source for e in whole.events} == {"dc01"}
    truncated = parse_payload(
        body[: int(len(body) * cut)], content_type=None, source=None, format=None
    )
    assert truncated.accepted < whole.accepted
    assert [r.reason.split(":")[0] for r in truncated.rejected] == ["truncated EVTX file"]


def test_corrupted_evtx_chunk_costs_only_itself() -> None:
    path = shared(
        f"{ATTACK}/evtx/TA0002-Execution/T1059.003-Windows Command Shell/"
        "ID4688-SQL Server payload injectection for reverse shell (MSF).evtx"
    )
    body = bytearray(path.read_bytes())
    assert (len(body) - 4096) // 65536 > 1  # several chunks
    whole = parse_payload(bytes(body), content_type=None, source=None, format=None)
    # Break the magic of the first record header of the first chunk (4096 + 512).
    body[4096 + 512 : 4096 + 516] = b"\x00\x42\x00\x20"
    damaged = parse_payload(bytes(body), content_type=None, source=None, format=None)
    assert len(damaged.rejected) == 1
    assert damaged.rejected[0].reason.startswith("unreadable EVTX record: ")
    assert (damaged.rejected[0].index, damaged.rejected[0].line) == (0, None)
    # The other chunks' records are all there, in order.
    assert 0 < damaged.accepted < whole.accepted
    tail = [e.fields["EventRecordID"] for e in whole.events[-damaged.accepted :]]
    assert [e.fields["EventRecordID"] for e in damaged.events] == tail


def test_evtx_under_another_format_is_rejected() -> None:
    path = shared(
        f"{ATTACK}/evtx/TA0008-Lateral Movement/T1550-Use Alternate Authentication Material/"
        "ID4624-Mimikatz Pass the hash.evtx"
    )
    result = parse_payload(path.read_bytes(), content_type=None, source=None, format="zeek")
    assert result.accepted == 0
    assert result.rejected[0].reason == "format 'zeek' cannot read an EVTX file"
