"""Detection rules over command lines, scripts, process trees and file paths.

Shared by the specialists that judge behaviour (malware, endpoint). Every rule is explicit: a
regular expression over a command line or script text (:data:`TEXT_RULES`), or a check of a
process or file (:data:`PROCESS_RULES`), each with the ATT&CK technique(s) it shows, the attack
stage, a severity and a weight (how specific it is). :func:`scan_text_deep` also runs the text
rules on what obfuscation hides (the layers :func:`tools.decode.unfold` recovers).

Scoring (:func:`assess`):

- severity: the highest severity of the rules that fired, raised one step (up to critical)
  when rules of severity medium or more fired in three or more phases of an intrusion
  (:data:`PHASES`: delivery, foothold, credential theft, lateral movement, impact), since an
  intrusion that runs, persists and steals is worse than any one step. Execution, command and
  control and defence evasion count as one phase, delivery: a hidden, encoded download cradle
  is one step however many stages it touches. Discovery does not count.
  ``informational`` when no rule fired;
- confidence: independent rules agreeing, ``1 - Π(1 - weight)`` over distinct rules (a rule
  firing twice counts once), capped at 0.95; with no hit, 0.4 when behaviour (command lines,
  processes, events) was examined and the rules found nothing, 0.2 when only identities
  (hashes, file names) were, since rules cannot judge a hash.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import PureWindowsPath
from typing import Final, Literal

from core.schemas import Severity
from tools.decode import MAX_UNFOLD_CHARS, Layer, unfold
from tools.sigma.engine import RuleInfo, SigmaEngine, SigmaMatch, level_rank

Stage = Literal[
    "execution",
    "persistence",
    "privilege_escalation",
    "defense_evasion",
    "credential_access",
    "discovery",
    "lateral_movement",
    "command_and_control",
    "impact",
]

PHASES: Final[dict[str, str]] = {
    "execution": "delivery",
    "command_and_control": "delivery",
    "defense_evasion": "delivery",
    "persistence": "foothold",
    "privilege_escalation": "foothold",
    "credential_access": "credential theft",
    "lateral_movement": "lateral movement",
    "impact": "impact",
    "discovery": "",
}
"""The intrusion phase of each stage, for the breadth escalation of :func:`assess`."""

MAX_SCAN_CHARS: Final[int] = MAX_UNFOLD_CHARS
"""Longest text scanned; the rest of a longer one is ignored (and said so by the caller)."""
EXCERPT_CHARS: Final[int] = 160
CONFIDENCE_CAP: Final[float] = 0.95
BREADTH_PHASES: Final[int] = 3


@dataclass(frozen=True, slots=True)
class Rule:
    """One detection: what it means (techniques, stage), how bad (severity), how specific
    (weight, the confidence one hit lends) and why (rationale). ``pattern`` is set for text
    rules; process, file and event rules are checked by code."""

    id: str
    title: str
    techniques: tuple[str, ...]
    stage: Stage
    severity: Severity
    weight: float
    rationale: str
    pattern: re.Pattern[str] | None = None


@dataclass(frozen=True, slots=True)
class RuleHit:
    """A rule that fired: where (``source``, e.g. ``command_lines[2]`` or ``process 4242``)
    and on what (``excerpt``, the matched text with a little context)."""

    rule: Rule
    source: str
    excerpt: str


@dataclass(frozen=True, slots=True)
class Assessment:
    """What a set of hits adds up to (see the module docstring for the method)."""

    severity: Severity
    confidence: float
    stages: tuple[str, ...]
    """The stages of the rules that fired."""
    phases: tuple[str, ...]
    """The intrusion phases of the medium-or-worse rules that fired."""
    escalated: bool


def _rx(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern, re.IGNORECASE)


# Executable names at the start of a command, possibly quoted, with or without a path and
# extension: "C:\Windows\system32\schtasks.exe", schtasks, "schtasks.exe".
def _exe(name: str) -> str:
    return rf"(?:^|[\s\"'\\/(;&|]){name}(?:\.exe)?[\"']?(?=[\s^,]|$)"


_USER_DIRS = (
    r"(?:\\appdata\\|\\temp\\|\\tmp\\|\\users\\public\\|\\downloads\\|\\programdata\\|\\perflogs\\)"
)
_DASH = "[-/\u2013\u2014\u2015]"

TEXT_RULES: Final[tuple[Rule, ...]] = (
    # -- execution ---------------------------------------------------------------------------
    Rule(
        "ps_download_execute",
        "PowerShell download-and-execute cradle",
        ("T1059.001",),
        "execution",
        Severity.HIGH,
        0.8,
        "Invoke-Expression over content fetched from the web runs remote code in memory.",
        _rx(
            r"(?:\biex\b|invoke-expression).{0,300}?(?:\.download(?:string|data)\b|invoke-webrequest"
            r"|\biwr\b|invoke-restmethod|\birm\b|net\.webclient)"
            r"|(?:\.download(?:string|data)\b|invoke-webrequest|\biwr\b|invoke-restmethod)"
            r".{0,300}?\|\s*(?:\biex\b|invoke-expression)"
        ),
    ),
    Rule(
        "wmic_process_create",
        "Process started through WMI (wmic process call create)",
        ("T1047",),
        "execution",
        Severity.MEDIUM,
        0.6,
        "wmic process call create starts a process outside the caller's process tree.",
        _rx(_exe("wmic") + r".{0,200}?\bprocess\s+call\s+create\b"),
    ),
    Rule(
        "script_from_user_path",
        "Script host running a script from a user-writable folder",
        ("T1059.005",),
        "execution",
        Severity.MEDIUM,
        0.6,
        "VBScript/JScript dropped in a temporary or user folder and run is a common stager.",
        _rx(
            r"(?:cscript|wscript)(?:\.exe)?[\"'\s].{0,80}?"
            + _USER_DIRS
            + r"[^\"'\s]*\.(?:vbs|vbe|js|jse|wsf|wsh)\b"
        ),
    ),
    Rule(
        "ps_policy_bypass",
        "PowerShell started with execution policy bypass",
        ("T1059.001",),
        "execution",
        Severity.LOW,
        0.3,
        "Bypassing the execution policy is common in attacks, and in some admin scripts.",
        _rx(
            r"(?:powershell|pwsh)(?:\.exe)?\b.{0,120}?"
            + _DASH
            + r"(?:ep|ex|exec|executionpolicy)\s+[\"']?(?:bypass|unrestricted)"
        ),
    ),
    Rule(
        "sql_xp_cmdshell",
        "SQL Server xp_cmdshell use",
        ("T1505.001",),
        "persistence",
        Severity.HIGH,
        0.7,
        "xp_cmdshell runs operating-system commands from SQL, a classic foothold.",
        _rx(r"\bxp_cmdshell\b"),
    ),
    # -- command and control / ingress --------------------------------------------------------
    Rule(
        "ps_web_download",
        "PowerShell web download",
        ("T1105",),
        "command_and_control",
        Severity.MEDIUM,
        0.5,
        "Net.WebClient / Invoke-WebRequest fetching content is how tools are brought in.",
        _rx(
            r"new-object\s+(?:system\.)?net\.webclient|\.download(?:string|file|data)(?:async)?\s*\("
            r"|invoke-webrequest\b|\biwr\s+[\"']?https?://|invoke-restmethod\b"
            r"|\birm\s+[\"']?https?://"
        ),
    ),
    Rule(
        "cli_web_download",
        "curl or wget fetching a URL",
        ("T1105",),
        "command_and_control",
        Severity.LOW,
        0.3,
        "Command-line downloads are routine for admins and a way attackers bring tools in.",
        _rx(
            r"(?:^|[\s\"'\\])(?:curl|wget)(?:\.exe)?\s+.{0,200}?https?://"
            r"|(?:^|[\s\"'\\])curl(?:\.exe)?\s+.{0,100}?(?:-o|--output|-O)\b.{0,200}?https?://"
        ),
    ),
    Rule(
        "certutil_download",
        "certutil used to download a file",
        ("T1105",),
        "command_and_control",
        Severity.HIGH,
        0.8,
        "certutil -urlcache/-verifyctl fetches files; legitimate use is rare.",
        _rx(_exe("certutil") + r".{0,200}?" + _DASH + r"(?:urlcache|verifyctl)\b"),
    ),
    Rule(
        "bits_transfer",
        "BITS job transferring a file",
        ("T1197",),
        "persistence",
        Severity.MEDIUM,
        0.6,
        "BITS jobs download in the background and survive reboots; abused to fetch payloads.",
        _rx(
            _exe("bitsadmin") + r".{0,200}?/(?:transfer|addfile|create|setnotifycmdline)\b"
            r"|start-bitstransfer\b(?![\"\',])"
        ),
    ),
    Rule(
        "netsh_portproxy",
        "netsh port forwarding (portproxy) added",
        ("T1090.001",),
        "command_and_control",
        Severity.HIGH,
        0.7,
        "A portproxy relays connections through the host, e.g. to reach RDP from outside.",
        _rx(
            _exe("netsh")
            + r"\s+(?:interface|int|i)\s+(?:portproxy|p)\s+(?:add|a|set)\s+(?:v4tov4|v4tov6"
            r"|v6tov4|v6tov6|v)\b"
        ),
    ),
    # -- defence evasion ---------------------------------------------------------------------
    Rule(
        "ps_encoded_command",
        "PowerShell with an encoded command",
        ("T1027.010",),
        "defense_evasion",
        Severity.MEDIUM,
        0.6,
        "-EncodedCommand hides the script from a casual reader and from naive detection.",
        _rx(
            r"(?:powershell|pwsh)(?:\.exe)?\b.{0,200}?"
            + _DASH
            + r"(?:e|ec|en[a-z]*)\s+[\"']?[A-Za-z0-9+/]{16,}={0,2}"
        ),
    ),
    Rule(
        "ps_hidden_window",
        "PowerShell with a hidden window",
        ("T1564.003",),
        "defense_evasion",
        Severity.MEDIUM,
        0.5,
        "-WindowStyle Hidden (or 1) keeps the console out of the user's sight.",
        _rx(
            r"(?:powershell|pwsh)(?:\.exe)?\b.{0,200}?"
            + _DASH
            + r"(?:w|wi|win|wind\w*)\s+[\"']?(?:h\w*|1)\b"
        ),
    ),
    Rule(
        "cmd_hidden_start",
        "cmd start /b /min of a script or binary",
        ("T1564.003",),
        "defense_evasion",
        Severity.LOW,
        0.4,
        "Starting minimised without a window hides what runs.",
        _rx(r"\bstart\s+/b\s+/min\b|\bstart\s+/min\s+/b\b"),
    ),
    Rule(
        "char_code_obfuscation",
        "Character-code or join obfuscation",
        ("T1027.010",),
        "defense_evasion",
        Severity.MEDIUM,
        0.6,
        "Building a script from character codes or fragments exists to evade inspection.",
        _rx(
            r"-join\s*\(?\s*\(?\s*[\"']?\s*\d{2,3}\s*[^\d\s]{1,3}\d{2,3}"
            r"|(?:\[char\]\s*\(?\s*\d{2,3}\s*\)?\s*[+,]\s*){3,}"
            r"|\$env:comspec\[\d+\s*,\s*\d+"
        ),
    ),
    Rule(
        "cmd_caret_obfuscation",
        "Caret-escaped command (p^o^w^e^r^s^h^e^l^l)",
        ("T1027.010",),
        "defense_evasion",
        Severity.LOW,
        0.4,
        "cmd ignores ^ before ordinary letters; scattering them breaks string matching.",
        _rx(r"(?:[a-z]\^){3,}[a-z]"),
    ),
    Rule(
        "embedded_pe_base64",
        "Base64 of a Windows executable (MZ header) in a command",
        ("T1027",),
        "defense_evasion",
        Severity.HIGH,
        0.75,
        "A program carried as base64 text inside a command line is being smuggled in.",
        re.compile(r"(?<![A-Za-z0-9+/])TV(?:qQ|pQ|oA|qA|ro)AA"),
    ),
    Rule(
        "echo_base64_staging",
        "Base64 written to a file piece by piece with echo",
        ("T1027",),
        "defense_evasion",
        Severity.MEDIUM,
        0.5,
        "Echoing base64 chunks into a file, then decoding it, stages a payload past filters.",
        _rx(r"\becho\s+[A-Za-z0-9+/=]{64,}\s*>{1,2}\s*\S+"),
    ),
    Rule(
        "certutil_decode",
        "certutil decoding base64 or hex to a file",
        ("T1140",),
        "defense_evasion",
        Severity.MEDIUM,
        0.6,
        "certutil -decode turns a staged text blob back into a binary.",
        _rx(_exe("certutil") + r".{0,120}?" + _DASH + r"decode(?:hex)?\b"),
    ),
    Rule(
        "rundll32_script",
        "rundll32 running script or remote content",
        ("T1218.011",),
        "defense_evasion",
        Severity.HIGH,
        0.8,
        "rundll32 with javascript:/mshtml or a URL proxies script through a signed binary.",
        _rx(
            _exe("rundll32")
            + r".{0,200}?(?:javascript:|vbscript:|mshtml\s*,\s*runhtmlapplication|https?://)"
        ),
    ),
    Rule(
        "rundll32_user_dll",
        "rundll32 loading a DLL from a user-writable folder",
        ("T1218.011",),
        "defense_evasion",
        Severity.MEDIUM,
        0.6,
        "Legitimate DLLs live in system or program folders, not in Temp or AppData.",
        _rx(_exe("rundll32") + r"[\s\"']+[^,\n]{0,200}?" + _USER_DIRS + r"[^,\n]*,"),
    ),
    Rule(
        "regsvr32_remote",
        "regsvr32 loading a remote scriptlet (Squiblydoo)",
        ("T1218.010",),
        "defense_evasion",
        Severity.HIGH,
        0.85,
        "regsvr32 /i:http... scrobj.dll runs a remote COM scriptlet through a signed binary.",
        _rx(_exe("regsvr32") + r".{0,200}?(?:[-/]i:\s*[\"']?https?://|scrobj\.dll)"),
    ),
    Rule(
        "mshta_remote",
        "mshta running remote or inline script",
        ("T1218.005",),
        "defense_evasion",
        Severity.HIGH,
        0.8,
        "mshta with a URL or javascript:/vbscript: runs HTA code outside the browser.",
        _rx(_exe("mshta") + r".{0,200}?(?:https?://|javascript:|vbscript:)"),
    ),
    Rule(
        "msiexec_remote",
        "msiexec installing a package from a URL",
        ("T1218.007",),
        "defense_evasion",
        Severity.HIGH,
        0.75,
        "msiexec fetching and installing a remote package runs code with installer rights.",
        _rx(_exe("msiexec") + r".{0,200}?https?://"),
    ),
    Rule(
        "defender_tamper",
        "Microsoft Defender disabled or excluded",
        ("T1562.001",),
        "defense_evasion",
        Severity.HIGH,
        0.8,
        "Turning off or carving exclusions out of the antivirus prepares for a payload.",
        _rx(
            r"(?:set|add)-mppreference\b.{0,200}?-(?:disable\w+|exclusion\w+)"
            r"|mpcmdrun(?:\.exe)?\b.{0,100}?-removedefinitions"
            r"|dism(?:\.exe)?\b.{0,200}?/disable-feature\b.{0,100}?windows-defender"
            r"|\bdisableantispyware\b|\bdisablerealtimemonitoring\b"
        ),
    ),
    Rule(
        "security_service_stop",
        "Security service stopped or disabled",
        ("T1562.001",),
        "defense_evasion",
        Severity.HIGH,
        0.7,
        "Stopping the antivirus, firewall, EDR or event log service blinds the defenders.",
        _rx(
            r"(?:^|[\s\"'\\])(?:sc|net1?)(?:\.exe)?\s+(?:\\\\\S+\s+)?(?:stop|delete|config)\s+"
            r"[\"']?(?:windefend|mpssvc|sense|wscsvc|wdnissvc|wdboot|wdfilter|eventlog|sysmon\w*)\b"
        ),
    ),
    Rule(
        "amsi_bypass",
        "AMSI bypass",
        ("T1562.001",),
        "defense_evasion",
        Severity.HIGH,
        0.85,
        "Patching AmsiUtils/amsiInitFailed disables script scanning for the session.",
        _rx(r"amsiutils|amsiinitfailed|amsiscanbuffer|amsicontext|\bamsienable\b"),
    ),
    Rule(
        "event_log_clear",
        "Event log cleared",
        ("T1070.001",),
        "defense_evasion",
        Severity.HIGH,
        0.8,
        "Clearing Windows event logs destroys the record of what happened.",
        _rx(
            _exe("wevtutil")
            + r"\s+(?:cl|clear-log)\b|clear-eventlog\b(?![\"\',])|remove-eventlog\b(?![\"\',])"
            r"|eventlogsession\]::globalsession\.clearlog"
        ),
    ),
    Rule(
        "firewall_disable",
        "Windows firewall turned off",
        ("T1562.004",),
        "defense_evasion",
        Severity.HIGH,
        0.75,
        "Disabling the host firewall opens it to inbound connections.",
        _rx(
            _exe("netsh")
            + r".{0,100}?(?:advfirewall\s+set\s+\w+\s+state\s+off|firewall\s+set\s+opmode\s+"
            r"(?:mode=)?disable)|set-netfirewallprofile\b.{0,100}?-enabled\s+[\"']?(?:false|0)"
        ),
    ),
    Rule(
        "audit_policy_tamper",
        "Audit policy cleared or disabled",
        ("T1562.002",),
        "defense_evasion",
        Severity.HIGH,
        0.7,
        "Switching auditing off stops Windows from logging what the attacker does next.",
        _rx(_exe("auditpol") + r".{0,100}?(?:/clear|/remove|:disable)"),
    ),
    Rule(
        "usn_journal_delete",
        "NTFS change journal deleted",
        ("T1070",),
        "defense_evasion",
        Severity.HIGH,
        0.7,
        "Deleting the USN journal erases the file-system history forensics relies on.",
        _rx(_exe("fsutil") + r"\s+usn\s+deletejournal\b"),
    ),
    Rule(
        "browser_extension_load",
        "Browser started with an extension loaded from disk",
        ("T1176.001",),
        "persistence",
        Severity.MEDIUM,
        0.6,
        "--load-extension side-loads an unpacked extension that can read every page.",
        _rx(r"(?:chrome|msedge|brave|opera)(?:\.exe)?[\"']?\s.{0,300}?--load-extension="),
    ),
    Rule(
        "reflective_load",
        "Assembly loaded from memory",
        ("T1620",),
        "defense_evasion",
        Severity.MEDIUM,
        0.6,
        "[Reflection.Assembly]::Load runs a .NET binary without writing it to disk.",
        _rx(r"reflection\.assembly\]::load(?:file|from)?\s*\("),
    ),
    # -- credential access -------------------------------------------------------------------
    Rule(
        "lsass_dump_procdump",
        "procdump of LSASS",
        ("T1003.001",),
        "credential_access",
        Severity.CRITICAL,
        0.9,
        "A memory dump of lsass.exe holds the credentials of everyone logged on.",
        _rx(r"procdump(?:64)?(?:\.exe)?\b.{0,200}?lsass"),
    ),
    Rule(
        "lsass_dump_comsvcs",
        "comsvcs.dll MiniDump (LSASS dump)",
        ("T1003.001",),
        "credential_access",
        Severity.CRITICAL,
        0.9,
        "rundll32 comsvcs.dll MiniDump is the living-off-the-land way to dump LSASS.",
        _rx(r"comsvcs(?:\.dll)?[\s\"',]+(?:#\s*\+?24\b|minidump)"),
    ),
    Rule(
        "lsass_dump_generic",
        "LSASS memory dump",
        ("T1003.001",),
        "credential_access",
        Severity.CRITICAL,
        0.8,
        "Dumping lsass.exe (Out-Minidump, .dmp of lsass) exposes credentials.",
        _rx(r"out-minidump|minidumpwritedump|lsass\S{0,40}\.dmp\b|\blsass\b.{0,120}?\.dmp\b"),
    ),
    Rule(
        "mimikatz",
        "Mimikatz",
        ("T1003.001",),
        "credential_access",
        Severity.CRITICAL,
        0.9,
        "Mimikatz commands and modules exist to steal credentials and tickets.",
        _rx(
            r"sekurlsa::|lsadump::(?:sam|secrets|lsa|cache)|kerberos::(?:ptt|golden|list|ask)"
            r"|privilege::debug|invoke-mimikatz|\bmimikatz\b"
        ),
    ),
    Rule(
        "dcsync",
        "DCSync (replicating secrets from a domain controller)",
        ("T1003.006",),
        "credential_access",
        Severity.CRITICAL,
        0.9,
        "DCSync pulls password hashes of any account, krbtgt included, from a DC.",
        _rx(r"lsadump::dcsync|invoke-dcsync|\bsecretsdump(?:\.py)?\b.{0,100}?-just-dc"),
    ),
    Rule(
        "sam_hive_dump",
        "SAM/SYSTEM/SECURITY registry hive saved",
        ("T1003.002",),
        "credential_access",
        Severity.CRITICAL,
        0.85,
        "The SAM and SYSTEM hives together give the local password hashes.",
        _rx(
            _exe("reg")
            + r"\s+(?:save|export)\s+[\"']?(?:hklm|hkey_local_machine)\\(?:sam|system|security)\b"
        ),
    ),
    Rule(
        "hive_file_copy",
        "Copy of a registry hive file or NTDS.dit",
        ("T1003.002",),
        "credential_access",
        Severity.HIGH,
        0.7,
        "Reading config\\SAM, SYSTEM or SECURITY files (often from a shadow copy) steals hashes.",
        _rx(r"\\system32\\config\\(?:sam|system|security)\b(?!\w)"),
    ),
    Rule(
        "ntds_dump",
        "NTDS.dit extraction",
        ("T1003.003",),
        "credential_access",
        Severity.CRITICAL,
        0.85,
        "ntds.dit holds every domain account's password hash.",
        _rx(_exe("ntdsutil") + r".{0,200}?(?:\bifm\b|create\s+full)|\bntds\.dit\b"),
    ),
    Rule(
        "packet_capture",
        "Packet capture started",
        ("T1040",),
        "credential_access",
        Severity.MEDIUM,
        0.5,
        "Sniffing traffic on a host (pktmon, netsh trace) can capture credentials.",
        _rx(
            _exe("pktmon")
            + r"\s+(?:start|filter\s+add)\b|"
            + _exe("netsh")
            + r"\s+trace\s+start\b.{0,200}?capture=yes"
        ),
    ),
    # -- persistence / privilege -------------------------------------------------------------
    Rule(
        "schtasks_create",
        "Scheduled task created",
        ("T1053.005",),
        "persistence",
        Severity.MEDIUM,
        0.6,
        "A new scheduled task runs code again later or at logon.",
        _rx(
            _exe("schtasks")
            + r".{0,40}?"
            + _DASH
            + r"create\b|register-scheduledtask\b(?![\"\',])|new-scheduledtaskaction\b(?![\"\',])"
        ),
    ),
    Rule(
        "schtasks_system",
        "Scheduled task created to run as SYSTEM",
        ("T1053.005",),
        "privilege_escalation",
        Severity.HIGH,
        0.7,
        "A task that runs as SYSTEM gives its command the highest local privilege.",
        _rx(
            _exe("schtasks")
            + r".{0,300}?"
            + _DASH
            + r"create\b.{0,300}?"
            + _DASH
            + r"ru\s+[\"']?(?:system|nt authority\\system)\b"
        ),
    ),
    Rule(
        "run_key",
        "Registry Run key written",
        ("T1547.001",),
        "persistence",
        Severity.MEDIUM,
        0.65,
        "Run / RunOnce values start a program at every logon.",
        _rx(
            r"(?:"
            + _exe("reg")
            + r"\s+add|set-itemproperty|new-itemproperty|\bsp\b)\s.{0,80}?\\currentversion\\"
            r"(?:run|runonce|runonceex|runservices|policies\\explorer\\run)\b"
        ),
    ),
    Rule(
        "service_create",
        "Windows service created or repointed",
        ("T1543.003",),
        "persistence",
        Severity.MEDIUM,
        0.6,
        "A new service (or a changed binPath) runs a binary as SYSTEM at every boot.",
        _rx(
            r"(?:^|[\s\"'\\])sc(?:\.exe)?\s+(?:\\\\\S+\s+)?(?:create\b|config\b.{0,200}?binpath\s*=)"
            r"|\bnew-service\b(?![\"\',])"
        ),
    ),
    Rule(
        "wmi_subscription",
        "WMI event subscription",
        ("T1546.003",),
        "persistence",
        Severity.HIGH,
        0.8,
        "A WMI filter bound to a command consumer runs code on an event, invisibly.",
        _rx(
            r"__eventfilter|commandlineeventconsumer|activescripteventconsumer"
            r"|__filtertoconsumerbinding"
        ),
    ),
    Rule(
        "account_create",
        "Account created from the command line",
        ("T1136.001",),
        "persistence",
        Severity.HIGH,
        0.7,
        "An attacker adds an account to keep access.",
        _rx(
            r"(?:^|[\s\"'\\])net1?(?:\.exe)?\s+user\s+\S+.{0,120}?\s/add\b|\bnew-localuser\b(?![\"\',])"
        ),
    ),
    Rule(
        "admin_group_add",
        "Account added to a privileged group",
        ("T1098",),
        "persistence",
        Severity.HIGH,
        0.75,
        "Adding a member to Administrators / Domain Admins / RDP users grants access.",
        _rx(
            r"(?:^|[\s\"'\\])net1?(?:\.exe)?\s+(?:localgroup|group)\s+[\"']?(?:administrators"
            r"|domain admins|enterprise admins|remote desktop users)[\"']?\s+\S+.{0,80}?\s/add\b"
            r"|add-(?:localgroupmember|adgroupmember)\b.{0,120}?(?:administrators|admins)"
        ),
    ),
    Rule(
        "printer_port_file",
        "Printer port pointing at a file (PrintDemon, CVE-2020-1048)",
        ("T1068",),
        "privilege_escalation",
        Severity.HIGH,
        0.7,
        "A printer port named after a file lets the spooler write it as SYSTEM.",
        _rx(r"add-printerport\b.{0,80}?-name\s+[\"']?[^\"'\s]*\.(?:dll|exe|bat|ps1|sys)\b"),
    ),
    # -- lateral movement --------------------------------------------------------------------
    Rule(
        "rdp_hijack",
        "RDP session hijack with tscon",
        ("T1563.002",),
        "lateral_movement",
        Severity.HIGH,
        0.8,
        "tscon <id> /dest: takes over another user's session without their password.",
        _rx(_exe("tscon") + r"\s+\d+\s+/dest:"),
    ),
    Rule(
        "psexec",
        "Remote execution over admin shares (PsExec style)",
        ("T1021.002",),
        "lateral_movement",
        Severity.MEDIUM,
        0.6,
        "PsExec-style tools copy and start a service on a remote host through ADMIN$.",
        _rx(r"(?:psexec(?:64)?|paexec)(?:\.exe)?\s+.{0,40}?\\\\|\\\\[^\\\s]+\\admin\$"),
    ),
    Rule(
        "impacket_exec",
        "Impacket smbexec/wmiexec output redirection",
        ("T1021.002",),
        "lateral_movement",
        Severity.HIGH,
        0.85,
        "Output written to \\\\127.0.0.1\\ADMIN$ or C$ \\__... is the signature of impacket.",
        _rx(r"\\\\127\.0\.0\.1\\(?:admin|c)\$\\__"),
    ),
    Rule(
        "wmic_remote",
        "wmic against a remote node",
        ("T1047",),
        "lateral_movement",
        Severity.MEDIUM,
        0.5,
        "wmic /node: runs WMI operations on another host.",
        _rx(_exe("wmic") + r".{0,40}?/node:"),
    ),
    # -- impact ------------------------------------------------------------------------------
    Rule(
        "shadow_copy_delete",
        "Shadow copies or backups deleted / recovery disabled",
        ("T1490",),
        "impact",
        Severity.CRITICAL,
        0.9,
        "Deleting shadow copies and disabling recovery precedes ransomware encryption.",
        _rx(
            _exe("vssadmin")
            + r".{0,40}?(?:delete\s+shadows|resize\s+shadowstorage)|"
            + _exe("wmic")
            + r".{0,40}?shadowcopy\s+delete|"
            + _exe("wbadmin")
            + r".{0,40}?delete\s+(?:catalog|systemstatebackup|backup)|"
            + _exe("bcdedit")
            + r".{0,100}?(?:recoveryenabled\s+no|bootstatuspolicy\s+ignoreallfailures)"
            r"|win32_shadowcopy.{0,100}?\.delete\(|win32_shadowcopy.{0,100}?remove-(?:wmi|cim)"
        ),
    ),
    Rule(
        "cipher_wipe",
        "Free space wiped with cipher /w",
        ("T1485",),
        "impact",
        Severity.HIGH,
        0.6,
        "cipher /w overwrites deleted data so that it cannot be recovered.",
        _rx(_exe("cipher") + r"\s+/w:"),
    ),
    # -- discovery ---------------------------------------------------------------------------
    Rule(
        "account_discovery",
        "Account or group enumeration",
        ("T1087",),
        "discovery",
        Severity.LOW,
        0.3,
        "Listing users and groups is an early step of an intrusion, and routine for admins.",
        _rx(
            r"(?:^|[\s\"'\\])net1?(?:\.exe)?\s+(?:user|group|localgroup|accounts)\b(?![^\n]*\s/add\b)"
            r"|"
            + _exe("wmic")
            + r"\s+useraccount\b|\bget-(?:aduser|adgroupmember|localuser|localgroupmember)\b"
        ),
    ),
    Rule(
        "owner_discovery",
        "Current user discovery (whoami, quser)",
        ("T1033",),
        "discovery",
        Severity.LOW,
        0.25,
        "whoami and quser tell an intruder which account and sessions it has.",
        _rx(_exe("whoami") + "|" + _exe("quser")),
    ),
    Rule(
        "domain_trust_discovery",
        "Domain and forest trust discovery",
        ("T1482",),
        "discovery",
        Severity.LOW,
        0.4,
        "Mapping domain trusts shows an intruder where it can move next.",
        _rx(
            _exe("nltest") + r".{0,40}?/(?:domain_trusts|dclist|all_trusts)|getcurrentforest\(\)"
            r"|getalltrustrelationships\(\)|\bget-adtrust\b|adfind(?:\.exe)?\b.{0,60}?trustdmp"
        ),
    ),
    Rule(
        "system_discovery",
        "System information discovery",
        ("T1082",),
        "discovery",
        Severity.LOW,
        0.25,
        "systeminfo, hardware and disk queries, driver and task listings profile the host.",
        _rx(
            _exe("systeminfo")
            + "|"
            + _exe("driverquery")
            + "|"
            + _exe("wmic")
            + r"\s+(?:csproduct|logicaldisk|computersystem|os|bios|service)\b|"
            + _exe("schtasks")
            + r"\s+/query\b"
        ),
    ),
    Rule(
        "network_config_discovery",
        "Network configuration discovery",
        ("T1016",),
        "discovery",
        Severity.LOW,
        0.25,
        "ipconfig /all, route print and arp -a map the host's networks.",
        _rx(_exe("ipconfig") + r"\s+/all|" + _exe("route") + r"\s+print|" + _exe("arp") + r"\s+-a"),
    ),
    Rule(
        "process_discovery",
        "Process listing",
        ("T1057",),
        "discovery",
        Severity.LOW,
        0.2,
        "tasklist shows which security tools run.",
        _rx(_exe("tasklist")),
    ),
    Rule(
        "cached_credential_discovery",
        "Stored credentials listed (cmdkey /list)",
        ("T1003.005",),
        "discovery",
        Severity.LOW,
        0.4,
        "cmdkey /list shows which saved credentials an intruder could reuse.",
        _rx(_exe("cmdkey") + r"\s+/l(?:ist)?\b"),
    ),
)


# -- process and file checks -------------------------------------------------------------------

OFFICE_APPS: Final[frozenset[str]] = frozenset(
    {
        "winword.exe",
        "excel.exe",
        "powerpnt.exe",
        "outlook.exe",
        "msaccess.exe",
        "mspub.exe",
        "visio.exe",
        "onenote.exe",
        "eqnedt32.exe",
    }
)
SHELLS: Final[frozenset[str]] = frozenset(
    {
        "cmd.exe",
        "powershell.exe",
        "pwsh.exe",
        "wscript.exe",
        "cscript.exe",
        "mshta.exe",
        "rundll32.exe",
        "regsvr32.exe",
        "certutil.exe",
        "bitsadmin.exe",
        "msbuild.exe",
        "wmic.exe",
        "schtasks.exe",
        "bash.exe",
        "sh.exe",
    }
)
WEB_SERVERS: Final[frozenset[str]] = frozenset(
    {"w3wp.exe", "httpd.exe", "nginx.exe", "php-cgi.exe", "tomcat.exe", "umworkerprocess.exe"}
)
SQL_SERVERS: Final[frozenset[str]] = frozenset({"sqlservr.exe", "sqlagent.exe", "postgres.exe"})

# System binaries that live in one place, and the folders (lower case, no drive) they live in.
_SYSTEM32 = ("\\windows\\system32", "\\windows\\syswow64")
SYSTEM_LOCATIONS: Final[dict[str, tuple[str, ...]]] = {
    **dict.fromkeys(
        (
            "svchost.exe",
            "lsass.exe",
            "csrss.exe",
            "winlogon.exe",
            "wininit.exe",
            "services.exe",
            "smss.exe",
            "spoolsv.exe",
            "lsm.exe",
            "taskhost.exe",
            "taskhostw.exe",
            "dllhost.exe",
            "conhost.exe",
            "sihost.exe",
            "userinit.exe",
            "dwm.exe",
            "ctfmon.exe",
            "rundll32.exe",
            "regsvr32.exe",
            "cmd.exe",
            "mshta.exe",
            "certutil.exe",
            "schtasks.exe",
        ),
        _SYSTEM32,
    ),
    "explorer.exe": ("\\windows",),
    "wmiprvse.exe": ("\\windows\\system32\\wbem", "\\windows\\syswow64\\wbem"),
    "powershell.exe": (
        "\\windows\\system32\\windowspowershell\\v1.0",
        "\\windows\\syswow64\\windowspowershell\\v1.0",
    ),
}
# OriginalFileName (PE version info) of tools attackers rename to dodge name-based detection.
WATCHED_ORIGINAL_NAMES: Final[frozenset[str]] = frozenset(
    {
        "powershell.exe",
        "pwsh.dll",
        "cmd.exe",
        "wscript.exe",
        "cscript.exe",
        "mshta.exe",
        "rundll32.exe",
        "regsvr32.exe",
        "certutil.exe",
        "bitsadmin.exe",
        "wmic.exe",
        "msiexec.exe",
        "psexec.c",
        "psexesvc.exe",
        "procdump",
        "reg.exe",
        "schtasks.exe",
        "net.exe",
        "net1.exe",
        "rclone.exe",
        "7z.exe",
        "winrar.exe",
        "anydesk.exe",
        "adfind.exe",
    }
)
EXECUTABLE_EXTENSIONS: Final[frozenset[str]] = frozenset(
    {
        ".exe",
        ".scr",
        ".com",
        ".pif",
        ".cpl",
        ".dll",
        ".bat",
        ".cmd",
        ".ps1",
        ".vbs",
        ".js",
        ".hta",
        ".msi",
        ".lnk",
    }
)
DOCUMENT_EXTENSIONS: Final[frozenset[str]] = frozenset(
    {
        ".pdf",
        ".doc",
        ".docx",
        ".xls",
        ".xlsx",
        ".ppt",
        ".pptx",
        ".txt",
        ".jpg",
        ".jpeg",
        ".png",
        ".gif",
        ".rtf",
        ".zip",
        ".mp4",
    }
)
_TEMP_DIRS = re.compile(
    r"\\(?:temp|tmp)\\|\\users\\public\\|\\perflogs\\|\\\$recycle\.bin\\|\\windows\\tasks\\",
    re.IGNORECASE,
)
_USER_DIRS_RX = re.compile(r"\\appdata\\|\\downloads\\|\\desktop\\|\\documents\\", re.IGNORECASE)
_RTLO = "\u202e"


@dataclass(frozen=True, slots=True)
class ProcessView:
    """A process (or a file on disk, with only ``image`` set) as the checks see it."""

    image: str | None
    command_line: str | None = None
    parent_image: str | None = None
    original_file_name: str | None = None
    pid: int | None = None
    user: str | None = None
    parent_user: str | None = None


def clean_path(path: str | None) -> str:
    """A Windows path as written in events, without quotes or the ``\\??\\`` prefix."""
    if not path:
        return ""
    text = path.strip().strip("\"'")
    return text[4:] if text.startswith("\\??\\") else text


def base_name(path: str | None) -> str:
    """The lower-case file name of a Windows path (``C:\\x\\Cmd.EXE`` → ``cmd.exe``)."""
    return PureWindowsPath(clean_path(path)).name.lower()


def _directory(path: str) -> str:
    parent = str(PureWindowsPath(clean_path(path)).parent).lower()
    # Drive letters, %SystemRoot% and device paths all end in the same folders.
    parent = re.sub(r"^(?:%systemroot%|%windir%|\\systemroot)(?=\\|$)", "\\\\windows", parent)
    parent = re.sub(r"^(?:[a-z]:|\\device\\harddiskvolume\d+)", "", parent)
    return parent.replace("\\windows\\sysnative", "\\windows\\system32")


def _near(name: str, target: str) -> bool:
    """Whether ``name`` is one edit (or one swap of neighbours) away from ``target``."""
    if name == target or abs(len(name) - len(target)) > 1:
        return False
    if len(name) == len(target):
        diffs = [i for i, (a, b) in enumerate(zip(name, target, strict=True)) if a != b]
        if len(diffs) == 1:
            return True
        return (
            len(diffs) == 2
            and diffs[1] == diffs[0] + 1
            and name[diffs[0]] == target[diffs[1]]
            and name[diffs[1]] == target[diffs[0]]
        )
    short, long_ = (name, target) if len(name) < len(target) else (target, name)
    return any(long_[:i] + long_[i + 1 :] == short for i in range(len(long_)))


PROCESS_RULES: Final[dict[str, Rule]] = {
    rule.id: rule
    for rule in (
        Rule(
            "office_spawns_shell",
            "Office application started a shell or script host",
            ("T1204.002",),
            "execution",
            Severity.HIGH,
            0.8,
            "Documents do not need cmd or PowerShell; a macro or exploit is running code.",
        ),
        Rule(
            "webserver_spawns_shell",
            "Web server process started a shell",
            ("T1505.003",),
            "persistence",
            Severity.HIGH,
            0.8,
            "A web server running cmd or PowerShell is the mark of a web shell or exploit.",
        ),
        Rule(
            "sqlserver_spawns_shell",
            "Database server started a shell",
            ("T1505.001",),
            "persistence",
            Severity.HIGH,
            0.75,
            "A database engine running cmd means xp_cmdshell or a stored-procedure foothold.",
        ),
        Rule(
            "wmi_spawns_shell",
            "WMI provider host started a shell",
            ("T1047",),
            "execution",
            Severity.MEDIUM,
            0.6,
            "WmiPrvSE starting cmd/PowerShell is how remote WMI execution shows on the target.",
        ),
        Rule(
            "temp_execution",
            "Executable running from a temporary or public folder",
            ("T1204.002",),
            "execution",
            Severity.MEDIUM,
            0.55,
            "Payloads are dropped and run from Temp, Users\\Public and similar world-writable"
            " folders; installed software is not.",
        ),
        Rule(
            "user_folder_execution",
            "Executable running from a user folder (AppData, Downloads, Desktop)",
            ("T1204.002",),
            "execution",
            Severity.LOW,
            0.3,
            "Some software installs per user, but so does most commodity malware.",
        ),
        Rule(
            "masquerade_location",
            "System binary name outside its system folder",
            ("T1036.005",),
            "defense_evasion",
            Severity.HIGH,
            0.8,
            "svchost.exe, lsass.exe and the like only ever run from System32; a copy elsewhere"
            " wears the name to blend in.",
        ),
        Rule(
            "masquerade_lookalike",
            "Name one letter away from a system binary",
            ("T1036.005",),
            "defense_evasion",
            Severity.HIGH,
            0.65,
            "scvhost.exe or lsasss.exe is picked to pass a glance at the process list.",
        ),
        Rule(
            "renamed_binary",
            "Renamed system or admin tool",
            ("T1036.003",),
            "defense_evasion",
            Severity.HIGH,
            0.75,
            "The PE's original name (e.g. wscript.exe) differs from its file name: renamed to"
            " dodge detections keyed on names.",
        ),
        Rule(
            "double_extension",
            "Executable with a document extension in front (invoice.pdf.exe)",
            ("T1036.007",),
            "defense_evasion",
            Severity.HIGH,
            0.75,
            "A document extension before the real one tricks users into running a program.",
        ),
        Rule(
            "rtlo_name",
            "Right-to-left override character in a file name",
            ("T1036.002",),
            "defense_evasion",
            Severity.HIGH,
            0.85,
            "U+202E reverses the displayed name so that an .exe looks like a document.",
        ),
    )
}


IMAGE_RULES: Final[frozenset[str]] = frozenset(
    {
        "temp_execution",
        "user_folder_execution",
        "masquerade_location",
        "masquerade_lookalike",
        "renamed_binary",
        "double_extension",
        "rtlo_name",
    }
)
"""Process rules that judge the image file itself (its folder or name), not what it ran."""
CRITICAL_PROCESSES: Final[frozenset[str]] = frozenset(
    {"lsass.exe", "csrss.exe", "wininit.exe", "smss.exe", "services.exe", "winlogon.exe", "system"}
)
"""Processes whose killing ends the session or crashes Windows: never proposed for the genuine
ones."""


def _process_hit(rule_id: str, source: str, excerpt: str) -> RuleHit:
    return RuleHit(PROCESS_RULES[rule_id], source, excerpt[:EXCERPT_CHARS])


def scan_process(view: ProcessView, source: str) -> list[RuleHit]:
    """The process and file rules that ``view`` triggers: parent/child pairs, the folder the
    image runs from, masquerading and renaming, deceptive file names."""
    hits: list[RuleHit] = []
    image = clean_path(view.image)
    name = base_name(image)
    parent = base_name(view.parent_image)
    pair = f"{parent} → {name}"
    if name in SHELLS:
        if parent in OFFICE_APPS:
            hits.append(_process_hit("office_spawns_shell", source, pair))
        elif parent in WEB_SERVERS:
            hits.append(_process_hit("webserver_spawns_shell", source, pair))
        elif parent in SQL_SERVERS:
            hits.append(_process_hit("sqlserver_spawns_shell", source, pair))
        elif parent == "wmiprvse.exe" and name in {"cmd.exe", "powershell.exe", "pwsh.exe"}:
            hits.append(_process_hit("wmi_spawns_shell", source, pair))
    if not name:
        return hits
    extension = PureWindowsPath(name).suffix
    if "\\" in image and extension in EXECUTABLE_EXTENSIONS:
        if _TEMP_DIRS.search(image):
            hits.append(_process_hit("temp_execution", source, image))
        elif _USER_DIRS_RX.search(image):
            hits.append(_process_hit("user_folder_execution", source, image))
    expected = SYSTEM_LOCATIONS.get(name)
    if expected and "\\" in image and _directory(image) not in expected:
        hits.append(_process_hit("masquerade_location", source, image))
    elif not expected and extension == ".exe":
        lookalike = next((s for s in SYSTEM_LOCATIONS if _near(name, s)), None)
        if lookalike:
            hits.append(_process_hit("masquerade_lookalike", source, f"{name} ~ {lookalike}"))
    original = (view.original_file_name or "").strip().lower()
    if original in WATCHED_ORIGINAL_NAMES and original != name:
        hits.append(_process_hit("renamed_binary", source, f"{name} (originally {original})"))
    stem_suffix = PureWindowsPath(PureWindowsPath(name).stem).suffix
    if extension in EXECUTABLE_EXTENSIONS and stem_suffix in DOCUMENT_EXTENSIONS:
        hits.append(_process_hit("double_extension", source, name))
    if _RTLO in image:
        hits.append(_process_hit("rtlo_name", source, image.replace(_RTLO, "<U+202E>")))
    return hits


# -- scanning ---------------------------------------------------------------------------------


def _excerpt(text: str, match: re.Match[str]) -> str:
    start = max(0, match.start() - 30)
    end = min(len(text), max(match.end(), start + 60) + 30)
    snippet = " ".join(text[start:end].split())
    if len(snippet) > EXCERPT_CHARS:
        snippet = snippet[: EXCERPT_CHARS - 1] + "…"
    return snippet


def scan_text(text: str, source: str, rules: Iterable[Rule] = TEXT_RULES) -> list[RuleHit]:
    """The text rules that fire on ``text`` (its first :data:`MAX_SCAN_CHARS` characters),
    one hit per rule, in rule order."""
    if not text:
        return []
    body = text[:MAX_SCAN_CHARS]
    hits: list[RuleHit] = []
    for rule in rules:
        if rule.pattern is None:
            continue
        match = rule.pattern.search(body)
        if match:
            hits.append(RuleHit(rule, source, _excerpt(body, match)))
    return hits


def scan_text_deep(text: str, source: str) -> tuple[list[RuleHit], list[Layer]]:
    """:func:`scan_text` over ``text`` and every layer :func:`unfold` recovers from it. A rule
    is reported once per text: on the outermost layer where it fires."""
    layers = unfold(text)
    return scan_layers(text, source, layers), layers


def scan_layers(
    text: str, source: str, layers: Iterable[Layer], rules: Iterable[Rule] = TEXT_RULES
) -> list[RuleHit]:
    """:func:`scan_text` over ``text`` and ``layers`` already recovered from it (sources of
    hits on a layer name the layer's method), one hit per rule, outermost first."""
    rules = tuple(rules)
    hits = scan_text(text, source, rules)
    fired = {hit.rule.id for hit in hits}
    for layer in layers:
        for hit in scan_text(layer.text, f"{source} ({layer.method})", rules):
            if hit.rule.id not in fired:
                fired.add(hit.rule.id)
                hits.append(hit)
    return hits


OBFUSCATION_RULE_IDS: Final[frozenset[str]] = frozenset(
    {
        "char_code_obfuscation",
        "cmd_caret_obfuscation",
        "embedded_pe_base64",
        "echo_base64_staging",
    }
)
"""Text rules that judge how a text is hidden rather than what it does: part of
deobfuscation, kept as code beside the Sigma rules the agents run on commands and events."""
OBFUSCATION_RULES: Final[tuple[Rule, ...]] = tuple(
    rule for rule in TEXT_RULES if rule.id in OBFUSCATION_RULE_IDS
)

# -- Sigma rules as rules ------------------------------------------------------------------------

SIGMA_STAGES: Final[dict[str, Stage]] = {
    "execution": "execution",
    "initial-access": "execution",
    "persistence": "persistence",
    "privilege-escalation": "privilege_escalation",
    "defense-evasion": "defense_evasion",
    "stealth": "defense_evasion",
    "defense-impairment": "defense_evasion",
    "credential-access": "credential_access",
    "discovery": "discovery",
    "collection": "discovery",
    "reconnaissance": "discovery",
    "resource-development": "discovery",
    "lateral-movement": "lateral_movement",
    "command-and-control": "command_and_control",
    "exfiltration": "command_and_control",
    "impact": "impact",
}
"""The stage of a Sigma rule from its first ATT&CK tactic tag; tactics outside the stages
take the nearest one, and a rule without any counts as discovery (no breadth)."""
SIGMA_LEVELS: Final[dict[str, tuple[Severity, float]]] = {
    "informational": (Severity.INFORMATIONAL, 0.1),
    "low": (Severity.LOW, 0.3),
    "medium": (Severity.MEDIUM, 0.5),
    "high": (Severity.HIGH, 0.7),
    "critical": (Severity.CRITICAL, 0.85),
}
"""A Sigma level's severity, and the weight (confidence one hit lends) it carries."""


def sigma_rule(info: RuleInfo) -> Rule:
    """A Sigma rule (as the engine compiled it) in the shape every behaviour rule has: its id,
    title, ATT&CK techniques, stage (:data:`SIGMA_STAGES`), and severity and weight from its
    level (:data:`SIGMA_LEVELS`)."""
    stage: Stage = next((SIGMA_STAGES[t] for t in info.tactics if t in SIGMA_STAGES), "discovery")
    severity, weight = SIGMA_LEVELS.get(info.level, SIGMA_LEVELS["medium"])
    return Rule(
        info.id,
        f"{info.title} (Sigma, {info.level})",
        info.techniques,
        stage,
        severity,
        weight,
        " ".join(info.description.split())[:500] or info.title,
    )


def sigma_hit(match: SigmaMatch, source: str) -> RuleHit:
    """An engine match as a rule hit at ``source``: the excerpt is the matched fields."""
    excerpt = "; ".join(f"{k}={' '.join(v.split())}" for k, v in match.fields.items())
    if len(excerpt) > EXCERPT_CHARS:
        excerpt = excerpt[: EXCERPT_CHARS - 1] + "…"
    return RuleHit(sigma_rule(match.rule), source, excerpt or match.title)


def sigma_scan_texts(
    engine: SigmaEngine,
    items: Iterable[tuple[str, Mapping[str, object]]],
    *,
    min_level: str = "low",
) -> list[RuleHit]:
    """Run ``engine`` over prepared events (each with the source its hits get: a command line
    as :func:`tools.sigma.engine.command_event`, a script as
    :func:`~tools.sigma.engine.script_event`), one hit per rule and source, rules below
    ``min_level`` left out."""
    floor = level_rank(min_level)
    chosen = list(items)
    hits: dict[tuple[str, str], RuleHit] = {}
    for match in engine.match([event for _, event in chosen]):
        if level_rank(match.level) < floor:
            continue
        source = chosen[match.index][0]
        hits.setdefault((match.rule_id, source), sigma_hit(match, source))
    return list(hits.values())


def rule_catalogue() -> list[Rule]:
    """Every rule of this module: text rules, then process and file rules."""
    return [*TEXT_RULES, *PROCESS_RULES.values()]


# -- scoring ----------------------------------------------------------------------------------

_SCALE: Final[tuple[Severity, ...]] = tuple(Severity)


def assess(hits: Iterable[RuleHit], *, behaviour: bool) -> Assessment:
    """Severity and confidence of a set of hits (see the module docstring). ``behaviour`` says
    whether anything behavioural (command lines, processes, events) was examined."""
    distinct = {hit.rule.id: hit.rule for hit in hits}
    if not distinct:
        return Assessment(
            Severity.INFORMATIONAL, 0.4 if behaviour else 0.2, (), (), escalated=False
        )
    top = max(rule.severity for rule in distinct.values())
    phases = {
        PHASES[rule.stage]
        for rule in distinct.values()
        if rule.severity >= Severity.MEDIUM and PHASES[rule.stage]
    }
    escalated = len(phases) >= BREADTH_PHASES and top < Severity.CRITICAL
    severity = _SCALE[top.rank + 1] if escalated else top
    doubt = 1.0
    for rule in distinct.values():
        doubt *= 1 - min(max(rule.weight, 0.0), 0.99)
    confidence = min(CONFIDENCE_CAP, 1 - doubt)
    all_stages = tuple(sorted({rule.stage for rule in distinct.values()}))
    return Assessment(severity, round(confidence, 3), all_stages, tuple(sorted(phases)), escalated)


def techniques_of(hits: Iterable[RuleHit], canonical: Callable[[str], str | None]) -> list[str]:
    """The ATT&CK ids the hits show, in order of first appearance, each resolved through
    ``canonical`` (the knowledge base's :meth:`canonical_id`); unknown ids are dropped."""
    found: dict[str, None] = {}
    for hit in hits:
        for technique in hit.rule.techniques:
            resolved = canonical(technique)
            if resolved:
                found.setdefault(resolved, None)
    return list(found)
