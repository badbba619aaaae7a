"""Windows events (tools.logs.windows): both JSON layouts, ECS mapping, the ``fields`` names."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from tools.logs import EventRejected, detect, parse_object
from tools.logs.common import MAX_FIELD_CHARS, MAX_TEXT_CHARS
from tools.logs.windows import event_id_of, evtx_records, normalise_event

from .conftest import RECEIVED

SYSMON = "Microsoft-Windows-Sysmon/Operational"


def flat(**data: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "EventID": 1,
        "Channel": SYSMON,
        "Computer": "ws01.corp.example",
        "Provider_Name": "Microsoft-Windows-Sysmon",
        "TimeCreated": "2024-05-01T10:00:00.1234567Z",
    }
    event.update(data)
    return event


def nested(event_id: Any, event_data: Any, **system: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "Provider": {"#attributes": {"Name": "Microsoft-Windows-Sysmon", "Guid": "{5770}"}},
        "EventID": event_id,
        "TimeCreated": {"#attributes": {"SystemTime": "2024-05-01T10:00:00.123456Z"}},
        "Execution": {"#attributes": {"ProcessID": 3544, "ThreadID": 4272}},
        "Channel": SYSMON,
        "Computer": "ws01.corp.example",
        "Security": {"#attributes": {"UserID": "S-1-5-18"}},
    }
    body.update(system)
    return {
        "Event": {
            "#attributes": {"xmlns": "http://schemas.microsoft.com/win/2004/08/events/event"},
            "System": body,
            "EventData": event_data,
        }
    }


def parse(obj: dict[str, Any], **kwargs: Any) -> Any:
    return parse_object(obj, raw=json.dumps(obj), received=RECEIVED, **kwargs)


def test_sysmon_process_creation_flat() -> None:
    event = parse(
        flat(
            Image="C:\\Windows\\System32\\cmd.exe",
            CommandLine="cmd.exe /c whoami",
            ProcessId=7728,
            ParentImage="C:\\Windows\\explorer.exe",
            ParentCommandLine="C:\\Windows\\Explorer.EXE",
            ParentProcessId="4242",
            User="CORP\\alice",
            Hashes="SHA1=AB,MD5=CD,SHA256=" + "E" * 64 + ",IMPHASH=FF",
            RuleName="-",
        )
    )
    assert event.format == "windows"
    assert event.timestamp == datetime(2024, 5, 1, 10, 0, 0, 123456, tzinfo=UTC)
    assert event.values == {
        "event.code": "1",
        "event.provider": SYSMON,
        "host.name": "ws01.corp.example",
        "event.category": "process",
        "event.action": "process_creation",
        "process.executable": "C:\\Windows\\System32\\cmd.exe",
        "process.pid": 7728,
        "process.command_line": "cmd.exe /c whoami",
        "process.parent.executable": "C:\\Windows\\explorer.exe",
        "process.parent.command_line": "C:\\Windows\\Explorer.EXE",
        "process.parent.pid": 4242,
        "process.name": "cmd.exe",
        "process.parent.name": "explorer.exe",
        "process.hash.sha256": "E" * 64,
        "user.name": "alice",
        "user.domain": "CORP",
    }
    assert event.fields["Image"] == "C:\\Windows\\System32\\cmd.exe"
    assert event.fields["ProcessId"] == "7728"
    assert event.fields["EventID"] == "1"
    assert event.fields["RuleName"] == "-"
    assert event.source == "windows"


def test_nested_layout_gives_the_same_names_as_flat() -> None:
    obj = nested(
        1,
        {
            "Image": "C:\\Tools\\psexec.exe",
            "CommandLine": "psexec \\\\dc01 cmd",
            "ProcessId": 99,
            "IntegrityLevel": "High",
            "Initiated": True,
            "Binary": None,
        },
    )
    event = parse(obj)
    assert detect(obj) == "windows"
    assert event.values["process.name"] == "psexec.exe"
    assert event.values["process.pid"] == 99
    fields = event.fields
    assert fields["Image"] == "C:\\Tools\\psexec.exe"
    assert fields["IntegrityLevel"] == "High"
    assert fields["Initiated"] == "true"
    assert fields["Binary"] == ""
    assert fields["Provider_Name"] == "Microsoft-Windows-Sysmon"
    assert fields["Provider_Guid"] == "{5770}"
    assert fields["Provider.#attributes.Name"] == "Microsoft-Windows-Sysmon"
    assert fields["TimeCreated"] == "2024-05-01T10:00:00.123456Z"
    assert fields["ExecutionProcessID"] == "3544"
    assert fields["ExecutionThreadID"] == "4272"
    assert fields["SecurityUserID"] == "S-1-5-18"
    assert fields["Channel"] == SYSMON
    assert not any("xmlns" in key for key in fields)


def test_nested_event_id_with_qualifiers_and_named_data_items() -> None:
    obj = nested(
        {"#attributes": {"Qualifiers": 16384}, "#text": 7045},
        {
            "Data": [
                {"#attributes": {"Name": "ServiceName"}, "#text": "evilsvc"},
                {"@Name": "ImagePath", "#text": "C:\\Temp\\evil.exe"},
            ]
        },
        Channel="System",
        Provider={"#attributes": {"Name": "Service Control Manager"}},
    )
    event = parse(obj)
    assert event.values["event.code"] == "7045"
    assert event.values["event.provider"] == "System"
    assert event.fields["EventID"] == "7045"
    assert event.fields["EventIDQualifiers"] == "16384"
    assert event.fields["ServiceName"] == "evilsvc"
    assert event.fields["ImagePath"] == "C:\\Temp\\evil.exe"


def test_unnamed_data_items_and_user_data() -> None:
    classic = nested(
        800,
        {"Data": {"#text": ["first item", "second item"]}, "Binary": None},
        Channel="Windows PowerShell",
        Provider={"#attributes": {"Name": "PowerShell"}},
    )
    event = parse(classic)
    assert event.fields["Data"] == "first item\nsecond item"
    assert event.values["event.action"] == "ps_classic_script"
    cleared = nested(
        1102,
        None,
        Channel="Security",
        Provider={"#attributes": {"Name": "Microsoft-Windows-Eventlog"}},
    )
    cleared["Event"]["UserData"] = {
        "LogFileCleared": {
            "#attributes": {"xmlns": "http://manifests.microsoft.com/win/2004/08/windows/eventlog"},
            "SubjectUserName": "admmig",
            "SubjectDomainName": "OFFSEC",
        }
    }
    event = parse(cleared)
    assert event.fields["SubjectUserName"] == "admmig"
    assert "LogFileCleared" not in " ".join(event.fields)
    assert (event.values["user.name"], event.values["user.domain"]) == ("admmig", "OFFSEC")
    assert event.values["event.action"] == "audit_log_cleared"


def test_event_data_name_clashing_with_system_keeps_both() -> None:
    event = parse(nested(1, {"Version": "data-version", "Image": "C:\\a.exe"}, Version=5))
    assert event.fields["Version"] == "5"
    assert event.fields["EventData.Version"] == "data-version"


def test_security_logon_uses_target_account_and_client_address() -> None:
    event = parse(
        {
            "EventID": 4625,
            "Channel": "Security",
            "Computer": "dc01",
            "TimeCreated": "2024-05-01T10:00:00Z",
            "Keywords": "0x8010000000000000",
            "SubjectUserName": "DC01$",
            "SubjectDomainName": "CORP",
            "TargetUserName": "bob",
            "TargetDomainName": "CORP",
            "IpAddress": "::ffff:10.1.2.3",
            "IpPort": "51234",
            "ProcessId": "0x0",
            "ProcessName": "-",
        }
    )
    assert event.values["user.name"] == "bob"
    assert event.values["event.outcome"] == "failure"
    assert event.values["event.action"] == "logon_failed"
    assert event.values["source.ip"] == "10.1.2.3"
    assert event.values["source.port"] == 51234
    assert "process.pid" not in event.values  # "0x0" of no process says nothing
    assert "process.executable" not in event.values


def test_security_group_change_uses_subject_not_the_group() -> None:
    event = parse(
        {
            "EventID": 4756,
            "Channel": "Security",
            "Computer": "dc01",
            "TimeCreated": "2024-05-01T10:00:00Z",
            "SubjectUserName": "admmig",
            "SubjectDomainName": "OFFSEC",
            "TargetUserName": "Compliance Management",
            "MemberName": "CN=eve,DC=offsec,DC=lan",
        }
    )
    assert event.values["user.name"] == "admmig"
    assert event.values["event.action"] == "group_member_added"


@pytest.mark.parametrize(
    ("event_id", "data", "expected"),
    [
        (
            22,
            {"QueryName": "evil.example.com", "Image": "C:\\x\\a.exe"},
            {"dns.question.name": "evil.example.com", "network.protocol": "dns"},
        ),
        (
            11,
            {"TargetFilename": "C:\\Windows\\Temp\\execute.bat", "Image": "C:\\x\\cmd.exe"},
            {"file.path": "C:\\Windows\\Temp\\execute.bat", "file.name": "execute.bat"},
        ),
        (
            13,
            {"TargetObject": "HKLM\\System\\Run\\x", "Details": "DWORD (0x00000003)"},
            {"registry.path": "HKLM\\System\\Run\\x", "registry.value": "DWORD (0x00000003)"},
        ),
        (12, {"EventType": "DeleteKey", "TargetObject": "HKLM\\a"}, {"registry.path": "HKLM\\a"}),
        (
            3,
            {
                "SourceIp": "10.0.0.5",
                "SourcePort": 50000,
                "DestinationIp": "fe80::1",
                "DestinationPort": "443",
                "Protocol": "tcp",
            },
            {
                "source.ip": "10.0.0.5",
                "source.port": 50000,
                "destination.ip": "fe80::1",
                "destination.port": 443,
                "network.transport": "tcp",
            },
        ),
    ],
)
def test_sysmon_event_kinds(event_id: int, data: dict[str, Any], expected: dict[str, Any]) -> None:
    event = parse(flat(EventID=event_id, **data))
    for name, value in expected.items():
        assert event.values[name] == value
    category = {22: "dns", 11: "file", 13: "registry", 12: "registry", 3: "network"}[event_id]
    assert event.values["event.category"] == category
    if event_id == 12:
        assert event.values["event.action"] == "registry_delete"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("ProcessId", -1),
        ("ProcessId", "abc"),
        ("ProcessId", 2**40),
        ("ProcessId", True),
        ("ProcessId", 1.5),
        ("SourcePort", "abc"),
        ("SourcePort", 70000),
        ("SourceIp", "not-an-ip"),
    ],
)
def test_bad_typed_values_stay_only_in_fields(name: str, value: Any) -> None:
    event = parse(flat(EventID=3, Image="C:\\a.exe", **{name: value}))
    ecs = {"ProcessId": "process.pid", "SourcePort": "source.port", "SourceIp": "source.ip"}
    assert ecs[name] not in event.values
    assert event.fields[name] == (
        "true" if value is True else str(value) if not isinstance(value, str) else value
    )


def test_enormous_values_are_capped_and_raw_is_whole() -> None:
    command = "powershell -enc " + "A" * 200_000
    obj = flat(CommandLine=command, Image="C:\\a.exe")
    event = parse(obj)
    assert event.values["process.command_line"] == command[:MAX_TEXT_CHARS]
    assert event.fields["CommandLine"] == command[:MAX_FIELD_CHARS]
    assert command in event.raw


@pytest.mark.parametrize(
    ("obj", "reason"),
    [
        ({"EventID": "-", "Channel": "Security", "Computer": "x"}, "without an EventID"),
        (
            {"EventID": 1, "Channel": "Security", "TimeCreated": "yesterday"},
            "unreadable timestamp in 'TimeCreated'",
        ),
        (
            {"EventID": 1, "Channel": "Security", "TimeCreated": "9999-01-01T00:00:00Z"},
            "unreadable timestamp",
        ),
    ],
)
def test_unreadable_windows_events_are_rejected(obj: dict[str, Any], reason: str) -> None:
    with pytest.raises(EventRejected) as caught:
        parse(obj)
    assert reason in caught.value.reason
    assert caught.value.code == "AURORA-4220"


def test_missing_time_falls_back_to_utc_time_then_ingest_time() -> None:
    event = parse(
        {"EventID": 1, "Channel": SYSMON, "Computer": "x", "UtcTime": "2024-05-01 09:00:00.500"}
    )
    assert event.timestamp == datetime(2024, 5, 1, 9, 0, 0, 500000, tzinfo=UTC)
    event = parse({"EventID": 1, "Channel": SYSMON, "Computer": "x"})
    assert event.timestamp == RECEIVED


@pytest.mark.parametrize(
    ("times", "expected"),
    [
        (  # both readable: TimeCreated wins
            {"TimeCreated": "2024-05-01T10:00:00Z", "UtcTime": "2024-05-01 09:00:00.500"},
            datetime(2024, 5, 1, 10, tzinfo=UTC),
        ),
        (  # TimeCreated unreadable, UtcTime readable: UtcTime
            {"TimeCreated": "yesterday", "UtcTime": "2024-05-01 09:00:00.500"},
            datetime(2024, 5, 1, 9, 0, 0, 500000, tzinfo=UTC),
        ),
        (  # empty TimeCreated counts as absent
            {"TimeCreated": "", "UtcTime": "2024-05-01 09:00:00.500"},
            datetime(2024, 5, 1, 9, 0, 0, 500000, tzinfo=UTC),
        ),
        (  # 100 ns ticks and an offset
            {"TimeCreated": "2024-05-01T12:00:00.1234567+02:00"},
            datetime(2024, 5, 1, 10, 0, 0, 123456, tzinfo=UTC),
        ),
    ],
)
def test_the_first_readable_time_is_the_events(times: dict[str, str], expected: datetime) -> None:
    assert parse({"EventID": 1, "Channel": SYSMON, "Computer": "x", **times}).timestamp == expected


def test_evtx_records_refuses_what_is_not_evtx() -> None:
    with pytest.raises(EventRejected, match="ElfFile"):
        list(evtx_records(b'{"EventID": 1}'))
    with pytest.raises(EventRejected, match="unreadable EVTX file"):
        list(evtx_records(b"ElfFile\x00" + b"\x00" * 50))


# -- the same reader for analysis (normalise_event) -------------------------------------------


def test_analysis_reads_the_names_the_log_table_stores() -> None:
    obj = nested(
        {"#attributes": {"Qualifiers": 16384}, "#text": 7045},
        {
            "Data": [
                {"#attributes": {"Name": "ServiceName"}, "#text": "evilsvc"},
                {"@Name": "ImagePath", "#text": "C:\\Temp\\evil.exe"},
            ]
        },
        Channel="System",
        Provider={"#attributes": {"Name": "Service Control Manager"}},
        EventRecordID=42,
    )
    event = normalise_event(obj, 5)
    stored = parse(obj).fields
    assert event.data == {
        "ServiceName": "evilsvc",
        "ImagePath": "C:\\Temp\\evil.exe",
        "SecurityUserID": "S-1-5-18",
    }
    assert all(stored[name] == value for name, value in event.data.items())
    assert (event.event_id, event.channel, event.provider, event.computer) == (
        7045,
        "System",
        "Service Control Manager",
        "ws01.corp.example",
    )
    assert (event.time, event.record_id, event.execution_pid) == (
        "2024-05-01T10:00:00.123456Z",
        "42",
        3544,
    )
    assert (event.log, event.ref) == ("system", "events[5] System 7045 record 42")
    # The flat layout of the same event reads the same.
    flat_obj = {
        "EventID": 7045,
        "Channel": "System",
        "Provider_Name": "Service Control Manager",
        "Computer": "ws01.corp.example",
        "TimeCreated": "2024-05-01T10:00:00.123456Z",
        "EventRecordID": 42,
        "ExecutionProcessID": 3544,
        "ServiceName": "evilsvc",
        "ImagePath": "C:\\Temp\\evil.exe",
        "SecurityUserID": "S-1-5-18",
    }
    assert normalise_event(flat_obj, 5) == event


def test_analysis_keeps_event_data_under_its_own_name() -> None:
    obj = nested(1, {"Version": "data-version", "Image": "C:\\a.exe"}, Version=5)
    assert normalise_event(obj, 0).data == {
        "Version": "data-version",
        "Image": "C:\\a.exe",
        "SecurityUserID": "S-1-5-18",
    }
    assert parse(obj).fields["EventData.Version"] == "data-version"


def test_analysis_joins_lists_and_reads_element_text() -> None:
    classic = nested(
        800,
        {"Data": {"#text": ["first item", "second item"]}},
        Channel="Windows PowerShell",
        Provider={"#attributes": {"Name": "PowerShell"}},
    )
    event = normalise_event(classic, 0)
    assert event.data == {"Data": "first item\nsecond item", "SecurityUserID": "S-1-5-18"}
    assert event.log == "powershell"
    flat_event = normalise_event(
        {"EventID": 1, "Channel": SYSMON, "Hashes": {"#text": "MD5=AB"}, "Tags": ["a", 2]}, 0
    )
    assert flat_event.data == {"Hashes": "MD5=AB", "Tags": "a\n2"}


@pytest.mark.parametrize(
    ("obj", "expected"),
    [
        ({"EventID": 4624}, 4624),
        ({"EventID": " 4688 "}, 4688),
        ({"EventID": "0x10"}, 16),
        ({"EventID": {"#text": "1102"}}, 1102),
        ({"Event": {"System": {"EventID": {"#text": 7045}}}}, 7045),
        ({"System": {"EventID": 4}, "EventData": {}}, 4),
        ({"Event": {"System": {}}}, None),
        ({"Event": {"EventData": {"EventID": 1}}}, None),
        ({"EventID": "-"}, None),
        ({"EventID": -1}, None),
        ({"EventID": True}, None),
        ({"EventID": 2**40}, None),
        ({"Channel": "Security"}, None),
        (["EventID"], None),
    ],
)
def test_event_id_of(obj: Any, expected: int | None) -> None:
    assert event_id_of(obj) == expected


def test_analysis_refuses_an_event_without_id() -> None:
    with pytest.raises(ValueError, match="no EventID"):
        normalise_event({"Channel": "Security", "Computer": "x"}, 0)
