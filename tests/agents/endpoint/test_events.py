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
    scan_event,
    task_command,
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
    return {hit.rule.id for hit in scan_event(event)}


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
    assert rules(cleared) == {"log_cleared"}
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
    assert rules(access) == {"lsass_access"}
    # The OS's own readers of lsass are left alone.
    assert (
        rules(
            sysmon(
                10,
                SourceImage="C:\\Windows\\system32\\wininit.exe",
                TargetImage="C:\\Windows\\system32\\lsass.exe",
                GrantedAccess="0x1fffff",
            )
        )
        == set()
    )
    # Access that cannot read memory is not dumping.
    assert (
        rules(
            sysmon(
                10,
                SourceImage="C:\\tools\\x.exe",
                TargetImage="C:\\Windows\\system32\\lsass.exe",
                GrantedAccess="0x1000",
            )
        )
        == set()
    )


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        (flat(4720, TargetUserName="backdoor", SubjectUserName="bob"), {"account_created"}),
        (
            flat(
                4732,
                TargetUserName="Administrators",
                MemberName="CN=eve,DC=corp",
                SubjectUserName="bob",
            ),
            {"privileged_group_add"},
        ),
        (flat(4732, TargetUserName="Print Users", MemberName="CN=eve"), {"group_add"}),
        (flat(4765, TargetUserName="eve", SidHistory="S-1-5-21-1-512"), {"sid_history"}),
        (
            flat(7045, "System", ServiceName="BTOBTO", ImagePath="%COMSPEC% /Q /c echo"),
            {"service_installed"},
        ),
        (
            flat(4624, LogonType="9", LogonProcessName="seclogo ", TargetUserName="admmig"),
            {"pass_the_hash"},
        ),
        (flat(4624, LogonType="3", LogonProcessName="Kerberos", TargetUserName="admmig"), set()),
        (
            flat(
                4662,
                SubjectUserName="eve",
                Properties="%%7688 {1131f6ad-9c07-11d1-f79f-00c04fc2dcd2}",
            ),
            {"dcsync"},
        ),
        (
            flat(
                4662, SubjectUserName="DC01$", Properties="{1131f6ad-9c07-11d1-f79f-00c04fc2dcd2}"
            ),
            set(),
        ),
        (
            flat(4616, SubjectUserName="admmig", ProcessName="C:\\x\\powershell.exe"),
            {"time_changed"},
        ),
        (
            flat(
                4616,
                SubjectUserName="LOCAL SERVICE",
                ProcessName="C:\\Windows\\System32\\svchost.exe",
            ),
            set(),
        ),
        (
            sysmon(8, SourceImage="C:\\t\\a.exe", TargetImage="C:\\Windows\\explorer.exe"),
            {"remote_thread"},
        ),
        (
            sysmon(
                7,
                Image="C:\\app\\a.exe",
                ImageLoaded="C:\\Users\\x\\AppData\\Local\\Temp\\vcruntime140.dll",
            ),
            {"dll_from_user_folder"},
        ),
        (
            sysmon(7, Image="C:\\app\\a.exe", ImageLoaded="C:\\Windows\\System32\\kernel32.dll"),
            set(),
        ),
        (
            sysmon(11, Image="C:\\x\\cmd.exe", TargetFilename="C:\\Windows\\Temp\\execute.bat"),
            {"executable_dropped"},
        ),
        (sysmon(11, Image="C:\\x\\w.exe", TargetFilename="C:\\evil.doc.lnk"), {"double_extension"}),
        (
            sysmon(
                1,
                Image="C:\\Windows\\System32\\mmc.exe",
                CommandLine="C:\\Windows\\system32\\mmc.exe -Embedding",
            ),
            {"dcom_mmc"},
        ),
    ],
)
def test_event_rules(event: WinEvent, expected: set[str]) -> None:
    assert rules(event) == expected


def test_scheduled_task_as_system() -> None:
    content = (
        "<Task><Actions><Exec><Command>C:\\tools\\shell.cmd</Command><Arguments>-x</Arguments>"
        "</Exec></Actions><Principals><Principal><UserId>S-1-5-18</UserId></Principal>"
        "</Principals></Task>"
    )
    assert task_command(content) == "C:\\tools\\shell.cmd -x"
    assert rules(flat(4698, TaskName="\\t", TaskContent=content)) == {
        "task_created",
        "task_runs_as_system",
    }
    as_user = content.replace("S-1-5-18", "CORP\\bob")
    assert rules(flat(4698, TaskName="\\t", TaskContent=as_user)) == {"task_created"}


def test_registry_rules_read_key_and_value() -> None:
    events = [
        sysmon(
            13,
            TargetObject="HKLM\\System\\CurrentControlSet\\Services\\BTOBTO\\ImagePath",
            Details="%%COMSPEC%% /Q /c echo cd ^> \\\\127.0.0.1\\C$\\__output 2^>^&1",
        ),
        sysmon(
            13,
            TargetObject="HKU\\S-1\\Software\\Microsoft\\Windows\\CurrentVersion\\Run\\upd",
            Details="C:\\Users\\a\\AppData\\Roaming\\u.exe",
        ),
        sysmon(
            13,
            TargetObject="HKLM\\System\\CurrentControlSet\\Services\\Dnscache\\Start",
            Details="DWORD (0x00000002)",
        ),
    ]
    found = [sorted({h.rule.id for h, e in scan_events([event]).hits}) for event in events]
    assert found == [["impacket_exec", "reg_service_imagepath"], ["reg_run_key"], []]


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
