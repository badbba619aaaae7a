"""Event normalisation (both layouts), host context and the event rules of the endpoint agent."""

from __future__ import annotations

from typing import Any

import pytest

from agents.endpoint.agent import scan_events
from agents.endpoint.events import (
    FAILED_LOGON_BURST,
    HostContext,
    event_rule_catalogue,
    process_of,
    scan_bursts,
)
from tools.attack import AttackKB
from tools.logs.windows import WinEvent, event_id_of, normalise_event

NESTED_4688: dict[str, Any] = {
    "Event": {
        "#attributes": {"xmlns": "http://schemas.microsoft.com/win/2004/08/events/event"},
        "System": {
            "Provider": {"#attributes": {"Name": "Microsoft-Windows-Security-Auditing"}},
            "EventID": {"#attributes": {"Qualifiers": ""}, "#text": 4688},
            "TimeCreated": {"#attributes": {"SystemTime": "2024-05-01T10:00:00.000Z"}},
            "EventRecordID": 77,
            "Execution": {"#attributes": {"ProcessID": 4, "ThreadID": 8}},
            "Channel": "Security",
            "Computer": "ws01.corp.local",
            "Security": None,
        },
        "EventData": {
            "Data": [
                {"#attributes": {"Name": "SubjectUserName"}, "#text": "bob"},
                {"#attributes": {"Name": "SubjectDomainName"}, "#text": "CORP"},
                {"#attributes": {"Name": "NewProcessId"}, "#text": "0x15b4"},
                {
                    "#attributes": {"Name": "NewProcessName"},
                    "#text": "C:\\Windows\\System32\\schtasks.exe",
                },
                {"#attributes": {"Name": "CommandLine"}, "#text": "schtasks /create /tn x /tr y"},
                {
                    "#attributes": {"Name": "ParentProcessName"},
                    "#text": "C:\\Windows\\System32\\cmd.exe",
                },
            ]
        },
    }
}
FLAT_4688: dict[str, Any] = {
    "EventID": 4688,
    "Channel": "Security",
    "Computer": "ws01.corp.local",
    "Provider_Name": "Microsoft-Windows-Security-Auditing",
    "TimeCreated": "2024-05-01T10:00:00.000Z",
    "EventRecordID": 77,
    "ExecutionProcessID": 4,
    "SubjectUserName": "bob",
    "SubjectDomainName": "CORP",
    "NewProcessId": "0x15b4",
    "NewProcessName": "C:\\Windows\\System32\\schtasks.exe",
    "CommandLine": "schtasks /create /tn x /tr y",
    "ParentProcessName": "C:\\Windows\\System32\\cmd.exe",
}


def flat(event_id: int, channel: str = "Security", **data: Any) -> WinEvent:
    provider = {
        "Security": "Microsoft-Windows-Security-Auditing",
        "Microsoft-Windows-Sysmon/Operational": "Microsoft-Windows-Sysmon",
        "System": "Service Control Manager",
    }.get(channel, "")
    raw = {"EventID": event_id, "Channel": channel, "Provider_Name": provider, "Computer": "ws01"}
    return normalise_event({**raw, **data}, 0)


def sysmon(event_id: int, **data: Any) -> WinEvent:
    return flat(event_id, "Microsoft-Windows-Sysmon/Operational", **data)


def rules(event: WinEvent) -> set[str]:
    """The ATT&CK techniques the endpoint's rules find in one event."""
    return {t for hit in scan_events([event]).rule_hits for t in hit.rule.techniques}


def test_both_layouts_normalise_to_the_same_event() -> None:
    nested, flat_ = normalise_event(NESTED_4688, 3), normalise_event(FLAT_4688, 3)
    assert nested == flat_
    assert nested.event_id == 4688
    assert nested.log == "security"
    assert nested.ref == "events[3] Security 4688 record 77"
    assert nested.execution_pid == 4
    process = process_of(nested)
    assert process is not None
    assert (process.pid, process.user) == (0x15B4, "CORP\\bob")


def test_event_ids_and_user_data() -> None:
    assert event_id_of({"EventID": "4624"}) == 4624
    assert event_id_of({"Event": {"System": {"EventID": 1}}}) == 1
    assert event_id_of({"Event": {"System": {}}}) is None
    assert event_id_of({"EventID": "x"}) is None
    assert event_id_of({"EventID": True}) is None
    assert event_id_of(["EventID"]) is None
    cleared = normalise_event(
        {
            "Event": {
                "System": {
                    "EventID": 1102,
                    "Channel": "Security",
                    "Provider": {"#attributes": {"Name": "Microsoft-Windows-Eventlog"}},
                    "Security": {"#attributes": {"UserID": "S-1-5-21-1"}},
                },
                "UserData": {
                    "LogFileCleared": {"SubjectUserName": "admmig", "SubjectDomainName": "OFFSEC"}
                },
            }
        },
        0,
    )
    assert cleared.data["SubjectUserName"] == "admmig"
    assert cleared.data["SecurityUserID"] == "S-1-5-21-1"
    assert rules(cleared)
    with pytest.raises(ValueError, match="no EventID"):
        normalise_event({"Channel": "Security"}, 0)


def test_unnamed_data_is_kept() -> None:
    event = normalise_event(
        {"EventID": 800, "Channel": "Windows PowerShell", "Data": ["wevtutil cl Security", "x"]}, 0
    )
    assert event.data["Data"] == "wevtutil cl Security\nx"
    assert event.log == "powershell"


def test_event_ids_are_read_in_their_log() -> None:
    # Setup 10 is a servicing step, not Sysmon process access: no rule.
    setup = flat(
        10, "Setup", TargetImage="C:\\Windows\\system32\\lsass.exe", GrantedAccess="0x1fffff"
    )
    assert setup.log == "other"
    assert rules(setup) == set()
    access = sysmon(
        10,
        SourceImage="C:\\Users\\x\\AppData\\Local\\Temp\\p.exe",
        SourceProcessId=4242,
        TargetImage="C:\\Windows\\system32\\lsass.exe",
        GrantedAccess="0x1fffff",
        CallTrace="C:\\Windows\\SYSTEM32\\ntdll.dll+9d4c4",
    )
    assert "T1003.001" in rules(access)


def techniques(events: list[WinEvent]) -> set[str]:
    return {t for hit in scan_events(events).rule_hits for t in hit.rule.techniques}


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        # Behaviours written for the test, not taken from any labelled log.
        # SigmaHQ r2026-07-01 tags log clearing with ATT&CK v18's id.
        (
            flat(
                1102,
                Provider_Name="Microsoft-Windows-Eventlog",
                SubjectUserName="bob",
                SubjectDomainName="CORP",
            ),
            "T1685.005",
        ),
        (
            sysmon(
                1,
                Image="C:\\Users\\bob\\Downloads\\tool.exe",
                CommandLine="tool.exe privilege::debug sekurlsa::logonpasswords exit",
            ),
            "T1003.001",
        ),
        (
            sysmon(
                1,
                Image="C:\\Windows\\System32\\vssadmin.exe",
                CommandLine="vssadmin.exe Delete Shadows /All /Quiet",
                ParentImage="C:\\Windows\\System32\\cmd.exe",
            ),
            "T1490",
        ),
        (
            sysmon(
                13,
                TargetObject="HKU\\S-1\\Software\\Microsoft\\Windows\\CurrentVersion\\Run\\upd",
                Details="C:\\Users\\a\\AppData\\Roaming\\u.exe",
                Image="C:\\Users\\a\\AppData\\Roaming\\dropper.exe",
            ),
            "T1547.001",
        ),
    ],
)
def test_sigma_rules_see_generic_behaviour(event: WinEvent, expected: str) -> None:
    assert expected in techniques([event])


def test_a_security_4688_process_start_is_judged_like_sysmon_1() -> None:
    started = flat(
        4688,
        NewProcessName="C:\\Windows\\System32\\vssadmin.exe",
        CommandLine="vssadmin delete shadows /all /quiet",
        ParentProcessName="C:\\Windows\\System32\\cmd.exe",
    )
    assert "T1490" in techniques([started])


def test_decoded_layers_are_judged_as_commands() -> None:
    import base64

    hidden = base64.b64encode("vssadmin delete shadows /all /quiet".encode("utf-16-le")).decode()
    started = sysmon(
        1,
        Image="C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe",
        CommandLine=f"powershell.exe -enc {hidden}",
    )
    sources = {hit.source for hit in scan_events([started]).rule_hits}
    assert any(source.endswith("(powershell-encoded)") or "(" in source for source in sources)
    assert "T1490" in techniques([started])


def test_quiet_events_fire_nothing() -> None:
    logon = flat(4624, LogonType="2", TargetUserName="bob", TargetDomainName="CORP")
    assert scan_events([logon]).hits == []


def test_failed_logon_bursts_have_thresholds() -> None:
    def failures(
        count: int, user: str = "admin-hacker", source: str = "::ffff:10.23.123.11"
    ) -> list[WinEvent]:
        return [
            normalise_event(
                {
                    "EventID": 4771,
                    "Channel": "Security",
                    "TargetUserName": user,
                    "Status": "0x18",
                    "IpAddress": source,
                },
                i,
            )
            for i in range(count)
        ]

    assert scan_bursts(failures(FAILED_LOGON_BURST - 1)) == []
    burst = scan_bursts(failures(FAILED_LOGON_BURST))
    assert [h.rule.id for h in burst] == ["password_guessing"]
    assert burst[0].excerpt == "10 failed logons for admin-hacker from ::ffff:10.23.123.11"
    spray = [e for i in range(6) for e in failures(1, user=f"user{i}", source="10.0.0.9")]
    assert [h.rule.id for h in scan_bursts(spray)] == ["password_spraying"]


def test_kerberoasting_needs_rc4_tickets_for_several_services() -> None:
    def tgs(service: str, encryption: str) -> WinEvent:
        return normalise_event(
            {
                "EventID": 4769,
                "Channel": "Security",
                "TargetUserName": "eve@CORP",
                "ServiceName": service,
                "TicketEncryptionType": encryption,
                "Status": "0x0",
            },
            0,
        )

    assert scan_bursts([tgs(f"svc{i}", "0x12") for i in range(3)]) == []
    assert [h.rule.id for h in scan_bursts([tgs(f"svc{i}", "0x17") for i in range(3)])] == [
        "kerberoasting"
    ]


def test_host_context() -> None:
    events = [
        normalise_event(FLAT_4688, 0),
        flat(
            4624,
            LogonType="10",
            TargetUserName="bob",
            TargetDomainName="CORP",
            IpAddress="10.0.0.7",
        ),
        flat(
            4625, LogonType="3", TargetUserName="bob", TargetDomainName="CORP", IpAddress="10.0.0.7"
        ),
        flat(4624, LogonType="5", TargetUserName="SYSTEM", TargetDomainName="NT AUTHORITY"),
        sysmon(
            3, Image="C:\\x\\powershell.exe", DestinationIp="203.0.113.9", DestinationPort="443"
        ),
        flat(7045, "System", ServiceName="BTOBTO", ImagePath="cmd /c x"),
        flat(
            4720,
            TargetUserName="backdoor",
            TargetDomainName="CORP",
            SubjectUserName="bob",
            SubjectDomainName="CORP",
        ),
        normalise_event(
            {
                "EventID": 1102,
                "Channel": "Security",
                "Provider_Name": "Microsoft-Windows-Eventlog",
                "SubjectUserName": "bob",
                "Computer": "dc01",
            },
            0,
        ),
    ]
    context = HostContext.build(events)
    assert context.events == 8
    assert context.users == {"CORP\\bob": 4, "CORP\\backdoor": 1, "bob": 1}
    assert [p.image for p in context.processes] == ["C:\\Windows\\System32\\schtasks.exe"]
    assert context.connections == {("powershell.exe", "203.0.113.9", "443"): 1}
    assert context.logons == {
        ("success", "remote interactive"): 1,
        ("failure", "network"): 1,
        ("success", "service"): 1,
    }
    assert context.logon_sources == {"10.0.0.7": 2}
    assert context.services == [("BTOBTO", "cmd /c x")]
    assert context.account_changes == ["account created: CORP\\backdoor by CORP\\bob"]
    assert context.log_clears == ["Security cleared by bob"]
    summary = context.summary("ws01")
    assert "1 other computer(s) in the events: dc01" in summary
    assert "services installed: BTOBTO" in summary


def test_event_rules_map_to_current_attack() -> None:
    kb = AttackKB.load()
    rules_ = event_rule_catalogue()
    assert len({r.id for r in rules_}) == len(rules_)
    for rule in rules_:
        for technique in rule.techniques:
            assert kb.canonical_id(technique) == technique, (rule.id, technique)
