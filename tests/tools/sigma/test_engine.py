"""The in-process Sigma engine (tools.sigma.engine) and the rule corpus (tools.sigma.corpus):
each modifier, condition forms, log source scoping, both event layouts, skipped rules,
fetching a release archive with its checksum, and which compiled corpus a rules directory runs."""

from __future__ import annotations

import hashlib
import http.server
import io
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from core.errors import ValidationFailed
from tools.sigma.corpus import (
    DATA_DIR,
    default_engine,
    fetch_rules,
    manifest,
    read_archive,
    sha256_of,
)
from tools.sigma.engine import SigmaEngine, command_event


def rule(detection: str, logsource: str = "category: process_creation", **extra: str) -> str:
    more = "".join(f"{k}: {v}\n" for k, v in extra.items())
    return (
        "title: t\nid: 11111111-2222-3333-4444-555555555555\nstatus: test\nlevel: high\n"
        "tags:\n  - attack.execution\n  - attack.t1059.001\n"
        f"logsource:\n  product: windows\n  {logsource}\n{more}detection:\n{detection}"
    )


def sysmon1(**fields: Any) -> dict[str, Any]:
    return {"EventID": 1, "Channel": "Microsoft-Windows-Sysmon/Operational", **fields}


def fires(text: str, event: dict[str, Any]) -> bool:
    engine = SigmaEngine.load([text])
    assert engine.stats.loaded == 1, engine.stats.skipped
    return bool(engine.match([event]))


@pytest.mark.parametrize(
    ("selection", "yes", "no"),
    [
        ("Image|endswith: '\\\\cmd.exe'", "C:\\Windows\\CMD.EXE", "C:\\cmd.exe.bak"),
        ("Image|startswith: 'C:\\\\Temp\\\\'", "c:\\temp\\x.exe", "D:\\Temp\\x.exe"),
        ("Image|contains: 'Temp'", "C:\\TEMP\\x.exe", "C:\\Tmp\\x.exe"),
        ("Image: 'C:\\\\a?c\\\\*.exe'", "C:\\abc\\d.exe", "C:\\abbc\\d.exe"),
        ("Image|cased: 'X.exe'", "X.exe", "x.exe"),
        ("Image|re: '^[A-Z]:.x[0-9]+'", "C:\\x12", "c:\\x12"),
        ("Image|re|i: '^[A-Z]:.x[0-9]+'", "c:\\x12", "c:\\y12"),
        ("Image|base64offset|contains: 'iex'", "aWV4", "iex"),
        ("Image|windash|contains: ' -enc '", "p /enc x", "p enc x"),
    ],
)
def test_string_modifiers(selection: str, yes: str, no: str) -> None:
    text = rule(f"  selection:\n    {selection}\n  condition: selection")
    assert fires(text, sysmon1(Image=yes))
    assert not fires(text, sysmon1(Image=no))


def test_numbers_cidr_compare_fieldref_exists_null() -> None:
    def check(selection: str, yes: dict[str, Any], no: dict[str, Any]) -> None:
        text = rule(f"  selection:\n    {selection}\n  condition: selection")
        assert fires(text, sysmon1(**yes)), selection
        assert not fires(text, sysmon1(**no)), selection

    check("ProcessId: 42", {"ProcessId": "42"}, {"ProcessId": "43"})
    check(
        "DestinationIp|cidr: '10.0.0.0/8'",
        {"DestinationIp": "10.1.2.3"},
        {"DestinationIp": "11.0.0.1"},
    )
    check("ProcessId|gte: 100", {"ProcessId": "100"}, {"ProcessId": "99"})
    check(
        "Image|fieldref: ParentImage",
        {"Image": "a", "ParentImage": "A"},
        {"Image": "a", "ParentImage": "b"},
    )
    check("Hashes|exists: true", {"Hashes": "x"}, {"Image": "x"})
    check("Hashes: null", {"Image": "x"}, {"Hashes": "x"})
    check("Image|contains|all: ['a', 'b']", {"Image": "ab"}, {"Image": "a"})


def test_condition_forms_and_keywords() -> None:
    detection = (
        "  sel_a:\n    Image|endswith: '\\\\a.exe'\n  sel_b:\n    Image|endswith: '\\\\b.exe'\n"
        "  filter_x:\n    CommandLine|contains: 'safe'\n"
        "  condition: 1 of sel_* and not 1 of filter_*\n"
    )
    assert fires(rule(detection), sysmon1(Image="C:\\b.exe", CommandLine="run"))
    assert not fires(rule(detection), sysmon1(Image="C:\\b.exe", CommandLine="safe run"))
    both = detection.replace("1 of sel_*", "all of sel_*")
    assert not fires(rule(both), sysmon1(Image="C:\\b.exe", CommandLine="run"))
    keywords = rule("  keywords:\n    - 'mimikatz'\n  condition: keywords")
    assert fires(keywords, sysmon1(CommandLine="C:\\x\\MimiKatz.exe"))
    assert not fires(keywords, sysmon1(CommandLine="C:\\x\\notepad.exe"))


def test_logsource_scoping_and_security_4688_names() -> None:
    text = rule("  selection:\n    Image|endswith: '\\\\cmd.exe'\n  condition: selection")
    # A network connection by cmd.exe is not a process creation.
    network = {
        "EventID": 3,
        "Channel": "Microsoft-Windows-Sysmon/Operational",
        "Image": "C:\\cmd.exe",
    }
    assert not fires(text, network)
    security = {"EventID": 4688, "Channel": "Security", "NewProcessName": "C:\\Windows\\cmd.exe"}
    assert fires(text, security)
    parent = rule(
        "  selection:\n    ParentImage|endswith: '\\\\sqlservr.exe'\n  condition: selection"
    )
    assert fires(parent, {**security, "ParentProcessName": "D:\\sql\\sqlservr.exe"})
    service = rule("  selection:\n    EventID: 1102\n  condition: selection", "service: security")
    assert fires(service, {"EventID": 1102, "Channel": "Security"})
    assert not fires(service, {"EventID": 1102, "Channel": "Application"})


def test_nested_and_flat_layouts_match_alike() -> None:
    text = rule(
        "  selection:\n    CommandLine|contains: 'vssadmin delete shadows'\n  condition: selection"
    )
    flat = sysmon1(CommandLine="vssadmin delete shadows /all", Image="C:\\vssadmin.exe")
    nested = {
        "Event": {
            "System": {
                "EventID": 1,
                "Channel": "Microsoft-Windows-Sysmon/Operational",
                "Provider": {"#attributes": {"Name": "Microsoft-Windows-Sysmon"}},
            },
            "EventData": {
                "CommandLine": "vssadmin delete shadows /all",
                "Image": "C:\\vssadmin.exe",
            },
        }
    }
    engine = SigmaEngine.load([text])
    (first, second) = engine.match([flat, nested])
    assert (first.index, second.index) == (0, 1)
    assert first.techniques == ("T1059.001",)
    assert first.level == "high"
    assert first.fields == {"CommandLine": "vssadmin delete shadows /all"}


def test_system_fields_are_fields_in_both_layouts() -> None:
    # SigmaHQ's LsaRegisterLogonProcess rule names the System ``Keywords`` (audit failure).
    text = rule(
        "  selection:\n    EventID: 4673\n    Service: 'LsaRegisterLogonProcess()'\n"
        "    Keywords: '0x8010000000000000'\n  condition: selection",
        "service: security",
    )
    failure = {
        "EventID": 4673,
        "Channel": "Security",
        "Keywords": "0x8010000000000000",
        "Level": 0,
        "Service": "LsaRegisterLogonProcess()",
    }
    assert fires(text, failure)
    assert not fires(text, {**failure, "Keywords": "0x8020000000000000"})
    nested = {
        "Event": {
            "System": {
                "EventID": 4673,
                "Channel": "Security",
                "Keywords": "0x8010000000000000",
                "Level": 0,
            },
            "EventData": {"Service": "LsaRegisterLogonProcess()"},
        }
    }
    assert fires(text, nested)
    # A filter on the System ``Level`` (SigmaHQ's antivirus rule) now filters.
    level = rule(
        "  keywords:\n    - 'Mimikatz'\n  filter_info:\n    Level: 4\n"
        "  condition: keywords and not filter_info",
        "service: application",
    )
    alert = {"EventID": 1116, "Channel": "Application", "Data": "HackTool Mimikatz", "Level": 2}
    assert fires(level, alert)
    assert not fires(level, {**alert, "Level": 4})


def test_security_4688_account_as_sysmon_names_it() -> None:
    system_user = rule(
        "  selection:\n    User|contains: 'AUTHORI'\n    Image|endswith: '\\\\tscon.exe'\n"
        "  condition: selection"
    )
    creation = {
        "EventID": 4688,
        "Channel": "Security",
        "NewProcessName": "C:\\Windows\\System32\\tscon.exe",
        "SubjectUserSid": "S-1-5-18",
        "SubjectUserName": "FS01$",
        "SubjectDomainName": "OFFSEC",
        "SubjectLogonId": "0x3e7",
        "TargetUserSid": "S-1-0-0",
        "TargetUserName": "-",
        "TargetLogonId": "0x0",
    }
    # LocalSystem is written as the machine account; Sysmon says NT AUTHORITY\SYSTEM.
    assert fires(system_user, creation)
    person = {
        **creation,
        "SubjectUserSid": "S-1-5-21-1-2-3-1104",
        "SubjectUserName": "alice",
        "SubjectLogonId": "0x1304385",
    }
    assert not fires(system_user, person)
    logon = rule("  selection:\n    LogonId: '0x3e7'\n  condition: selection")
    assert fires(logon, creation)
    assert not fires(logon, person)
    # The new process's own account (Target*), when given, is the one Sysmon reports.
    as_alice = {
        **creation,
        "TargetUserSid": "S-1-5-21-1-2-3-1104",
        "TargetUserName": "alice",
        "TargetDomainName": "CORP",
        "TargetLogonId": "0x5a5a",
    }
    named = rule(
        "  selection:\n    User: 'CORP\\\\alice'\n    LogonId: '0x5a5a'\n  condition: selection"
    )
    assert fires(named, as_alice)
    assert not fires(system_user, as_alice)
    # SigmaHQ's WmiPrvSE rule drops events without a LogonId: 4688 events now have one.
    wmi = rule(
        "  selection:\n    ParentImage|endswith: '\\\\WmiPrvSe.exe'\n"
        "  filter_logonid:\n    LogonId: '0x3e7'\n  filter_null:\n    LogonId: null\n"
        "  condition: selection and not 1 of filter_*"
    )
    spawned = {**person, "ParentProcessName": "C:\\Windows\\System32\\wbem\\WmiPrvSE.exe"}
    assert fires(wmi, spawned)
    assert not fires(wmi, {**spawned, **{k: creation[k] for k in ("SubjectLogonId",)}})


def test_services_pysigma_does_not_map() -> None:
    text = rule(
        "  selection:\n    EventID: 4000\n    ShareName|contains: 'ADMIN$'\n  condition: selection",
        "service: smbserver-connectivity",
    )
    share = {
        "EventID": 4000,
        "Channel": "Microsoft-Windows-SMBServer/Connectivity",
        "ShareName": "\\\\*\\ADMIN$",
    }
    assert fires(text, share)
    assert not fires(text, {**share, "Channel": "Security"})


def test_unsupported_rules_are_skipped_with_a_reason() -> None:
    engine = SigmaEngine.load(
        [
            rule("  selection:\n    CommandLine|expand: '%x%'\n  condition: selection"),
            rule("  selection:\n    Image: x\n  condition: selection", "category: nothing_known"),
            rule("  selection:\n    Image: x\n  condition: selection", "service: nothing_known"),
            "title: broken\nlogsource: {}\n",
        ]
    )
    assert engine.stats.loaded == 0
    assert engine.stats.skipped["placeholder (expand modifier)"] == 1
    assert engine.stats.skipped["unmapped category"] == 1
    assert engine.stats.skipped["unmapped service"] == 1
    assert engine.stats.skipped_total == 4


def test_command_event_and_without() -> None:
    text = rule(
        "  selection:\n    Image|endswith: '\\\\certutil.exe'\n"
        "    CommandLine|contains: 'urlcache'\n  condition: selection"
    )
    engine = SigmaEngine.load([text])
    assert engine.match([command_event('"C:\\Windows\\certutil.exe" -urlcache -f http://x/a a')])
    assert not engine.without(lambda info: info.title == "t").match(
        [command_event("certutil.exe -urlcache")]
    )


def test_shipped_corpus_matches_its_manifest() -> None:
    facts = manifest()
    archive = DATA_DIR / facts["archive"]
    assert sha256_of(archive) == facts["sha256"]
    with tarfile.open(archive) as tar:
        assert len([m for m in tar.getmembers() if m.isfile()]) == facts["files"]
    assert len(read_archive(archive)) > 2000
    assert (DATA_DIR / "LICENSE").read_text().count("Detection Rule License") == 1


def _archive() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        data = rule("  selection:\n    Image: x\n  condition: selection").encode()
        info = tarfile.TarInfo("rules/windows/process_creation/r.yml")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


@pytest.fixture
def served() -> Iterator[str]:
    body = _archive()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            return

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/sigma_windows.tar.gz"
    finally:
        server.shutdown()
        server.server_close()


def test_fetch_verifies_the_checksum(served: str, tmp_path: Path) -> None:
    good = hashlib.sha256(_archive()).hexdigest()
    with pytest.raises(ValidationFailed) as refused:
        fetch_rules(served, "0" * 64, tmp_path / "rules")
    assert "checksum mismatch" in str(refused.value.detail)
    assert not (tmp_path / "rules").exists()
    path = fetch_rules(served, good, tmp_path / "rules")
    assert path.name == "sigma_windows.tar.gz"
    assert [name for name, _ in read_archive(path)] == ["rules/windows/process_creation/r.yml"]


def test_a_rules_directory_without_an_archive_runs_the_shipped_compile(tmp_path: Path) -> None:
    fetched = tmp_path / "fetched"
    fetched.mkdir()
    (fetched / "sigma_windows.tar.gz").write_bytes(_archive())
    (tmp_path / "empty").mkdir()
    shipped = default_engine()
    # compiled once for every directory that holds no archive of its own
    assert default_engine(tmp_path / "empty") is shipped
    assert default_engine(tmp_path / "absent") is shipped
    own = default_engine(fetched)
    assert own is not shipped
    assert "t" in {r.info.title for r in own.rules}
    assert "t" not in {r.info.title for r in shipped.rules}
