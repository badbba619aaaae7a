"""Windows events for the endpoint specialist: host context and event rules.

Events are read by :func:`tools.logs.windows.normalise_event` (flat or nested layout, one
:class:`~tools.logs.windows.WinEvent`). Event ids mean different things in different logs
(Sysmon 10 is process access; Setup 10 is a servicing step), so every rule checks the log an
event came from (:attr:`WinEvent.log`).

Single-event detections are Sigma rules run by :mod:`tools.sigma.engine`; the rules here
count over many events (bursts of failed logons, ticket requests) and use the same
:class:`Rule` shape and scoring as :mod:`tools.behaviour`.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Final

from core.schemas import Severity
from tools.behaviour import (
    ProcessView,
    Rule,
    RuleHit,
    Stage,
    base_name,
)
from tools.logs.common import to_int
from tools.logs.windows import WinEvent

SERVICE_ACCOUNTS: Final[frozenset[str]] = frozenset(
    {
        "system",
        "local service",
        "network service",
        "anonymous logon",
        "nt authority\\system",
        "nt authority\\local service",
        "nt authority\\network service",
        "nt authority\\anonymous logon",
        "s-1-5-18",
        "s-1-5-19",
        "s-1-5-20",
        "s-1-5-7",
        "dwm-1",
        "umfd-0",
        "umfd-1",
    }
)
LOGON_TYPES: Final[dict[str, str]] = {
    "2": "interactive",
    "3": "network",
    "4": "batch",
    "5": "service",
    "7": "unlock",
    "8": "network cleartext",
    "9": "new credentials",
    "10": "remote interactive",
    "11": "cached interactive",
}
ACCOUNT_EVENTS: Final[dict[int, str]] = {
    4720: "account created",
    4722: "account enabled",
    4724: "password reset",
    4726: "account deleted",
    4728: "member added to a global group",
    4732: "member added to a local group",
    4738: "account changed",
    4756: "member added to a universal group",
    4765: "SID history added",
    4766: "SID history add failed",
    4781: "account renamed",
}
FILE_NAME_RULES: Final[frozenset[str]] = frozenset(
    {"masquerade_location", "masquerade_lookalike", "double_extension", "rtlo_name"}
)
FAILED_LOGON_BURST: Final[int] = 10
"""Failed logons (4625, 4771) for one account, or from one source, that make a burst."""
SPRAY_ACCOUNTS: Final[int] = 5
"""Distinct accounts failing from one source that make a password spray."""
TGS_BURST: Final[int] = 15
"""Distinct services one account asks tickets for that make an enumeration."""
KERBEROAST_SERVICES: Final[int] = 3
"""Distinct services asked for with RC4 tickets (0x17) that make Kerberoasting."""


# -- what an event says about processes, users and texts ---------------------------------------


def _number(text: str) -> int | None:
    """A process id or access mask as events write it (decimal, or ``0x`` hex)."""
    return to_int(text, bits=32, hex_text=True)


def account(event: WinEvent, prefix: str) -> str:
    """``DOMAIN\\user`` from ``<prefix>DomainName`` and ``<prefix>UserName``, or ""."""
    user = event.get(f"{prefix}UserName")
    if not user:
        return ""
    domain = event.get(f"{prefix}DomainName")
    return f"{domain}\\{user}" if domain else user


def is_person(user: str) -> bool:
    """Whether ``user`` is an account a person or an attacker could use: not a built-in
    service identity and not a machine account (``HOST$``)."""
    name = user.strip().lower()
    short = name.rsplit("\\", 1)[-1]
    return (
        bool(short)
        and name not in SERVICE_ACCOUNTS
        and short not in SERVICE_ACCOUNTS
        and not short.endswith("$")
    )


@dataclass(frozen=True, slots=True)
class ProcessRecord:
    """A process an event shows (started, or acting)."""

    pid: int | None
    image: str
    user: str
    ref: str
    command_line: str = ""
    parent_image: str = ""
    original_file_name: str = ""
    sha256: str = ""

    def view(self) -> ProcessView:
        return ProcessView(
            image=self.image,
            command_line=self.command_line,
            parent_image=self.parent_image,
            original_file_name=self.original_file_name or None,
            pid=self.pid,
            user=self.user,
        )


def _sha256(hashes: str) -> str:
    match = re.search(r"SHA256=([0-9A-Fa-f]{64})", hashes)
    return match.group(1).lower() if match else ""


_STARTED: Final[dict[str, tuple[str, str, str]]] = {
    "sysmon": ("ProcessId", "Image", "ParentImage"),
    "security": ("NewProcessId", "NewProcessName", "ParentProcessName"),
}
"""Where a process-start event (Sysmon 1, Security 4688) names the pid, image and parent."""


def process_of(event: WinEvent) -> ProcessRecord | None:
    """The process an event is about: the one created (Sysmon 1, Security 4688) or the actor
    (other Sysmon events, PowerShell logs); None for events about no process."""
    if event.is_("sysmon", 1) or event.is_("security", 4688):
        pid, image, parent = _STARTED[event.log]
        return ProcessRecord(
            pid=_number(event.get(pid)),
            image=event.get(image),
            command_line=event.get("CommandLine"),
            parent_image=event.get(parent),
            # Sysmon names the user; Security 4688 its subject (the creator's account).
            user=event.get("User") or account(event, "Subject"),
            original_file_name=event.get("OriginalFileName"),
            sha256=_sha256(event.get("Hashes")),
            ref=event.ref,
        )
    if event.log == "sysmon" and event.event_id in (3, 7, 11, 12, 13, 14, 22):
        return ProcessRecord(
            pid=_number(event.get("ProcessId")),
            image=event.get("Image"),
            user=event.get("User"),
            ref=event.ref,
        )
    if event.is_("sysmon", 8, 10):
        return ProcessRecord(
            pid=_number(event.get("SourceProcessId")),
            image=event.get("SourceImage"),
            user=event.get("SourceUser"),
            ref=event.ref,
        )
    if event.log == "powershell" and event.event_id in (400, 403, 600, 800, 4103, 4104):
        details = event.get("ContextInfo", "Data")
        host = re.search(r"Host ?Application ?= ?([^\r\n]+)", details)
        user = re.search(r"\b(?:UserId|User) ?= ?([^\r\n\t]+)", details)
        return ProcessRecord(
            pid=event.execution_pid,
            image="powershell.exe" if host is None else host.group(1).split(" ")[0],
            user=user.group(1).strip() if user else "",
            ref=event.ref,
        )
    return None


_TASK_COMMAND = re.compile(r"<Command>(.*?)</Command>(?:\s*<Arguments>(.*?)</Arguments>)?", re.S)


def task_command(content: str) -> str:
    """The command (and arguments) of a scheduled task's XML definition."""
    return " ".join(
        " ".join(part for part in match.groups() if part).strip()
        for match in _TASK_COMMAND.finditer(content)
    )


def texts_of(event: WinEvent) -> list[tuple[str, str]]:
    """The command lines and scripts an event carries, each with the field it came from."""
    texts: list[tuple[str, str]] = []
    if event.is_("sysmon", 1) or event.is_("security", 4688):
        texts.append(("CommandLine", event.get("CommandLine")))
    elif event.log == "powershell":
        if event.event_id == 4104:
            texts.append(("ScriptBlockText", event.get("ScriptBlockText")))
        elif event.event_id == 4103:
            texts.append(("Payload", event.get("Payload")))
        elif event.event_id == 800:
            texts.append(("Data", event.get("Data")))
        elif event.event_id in (400, 403, 600):
            host = re.search(r"HostApplication=([^\r\n]+)", event.get("Data"))
            texts.append(("HostApplication", host.group(1) if host else ""))
    elif event.is_("system", 7045):
        texts.append(("ImagePath", event.get("ImagePath")))
    elif event.is_("security", 4697):
        texts.append(("ServiceFileName", event.get("ServiceFileName")))
    elif event.is_("security", 4698, 4702):
        texts.append(("TaskContent", task_command(event.get("TaskContent", "TaskContentNew"))))
    elif event.is_("sysmon", 13):
        texts.append(("Details", event.get("Details")))
    return [(name, text) for name, text in texts if text.strip()]


# -- host context ------------------------------------------------------------------------------


@dataclass(slots=True)
class HostContext:
    """What the events say about the host: who, what ran, what it talked to, what changed."""

    events: int = 0
    computers: Counter[str] = field(default_factory=Counter)
    logs: Counter[str] = field(default_factory=Counter)
    first: str = ""
    last: str = ""
    users: Counter[str] = field(default_factory=Counter)
    processes: list[ProcessRecord] = field(default_factory=list)
    connections: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    """(image, destination address, port) → count."""
    logons: Counter[tuple[str, str]] = field(default_factory=Counter)
    """(outcome, logon type) → count."""
    logon_sources: Counter[str] = field(default_factory=Counter)
    services: list[tuple[str, str]] = field(default_factory=list)
    tasks: list[tuple[str, str]] = field(default_factory=list)
    account_changes: list[str] = field(default_factory=list)
    log_clears: list[str] = field(default_factory=list)
    sysmon: Counter[int] = field(default_factory=Counter)

    @classmethod
    def build(cls, events: Iterable[WinEvent]) -> HostContext:
        context = cls()
        for event in events:
            context.add(event)
        return context

    def add(self, event: WinEvent) -> None:
        self.events += 1
        if event.computer:
            self.computers[event.computer.lower()] += 1
        self.logs[event.log] += 1
        if event.time:
            self.first = min(self.first or event.time, event.time)
            self.last = max(self.last, event.time)
        for user in (
            account(event, "Subject"),
            account(event, "Target"),
            event.get("User"),
            event.get("SourceUser"),
        ):
            if user and is_person(user):
                self.users[user] += 1
        process = process_of(event)
        if process and (event.is_("sysmon", 1) or event.is_("security", 4688)):
            self.processes.append(process)
        if event.log == "sysmon":
            self.sysmon[event.event_id] += 1
        if event.is_("sysmon", 3):
            self.connections[
                (
                    base_name(event.get("Image")),
                    event.get("DestinationIp", "DestinationHostname"),
                    event.get("DestinationPort"),
                )
            ] += 1
        elif event.is_("security", 4624, 4625):
            outcome = "success" if event.event_id == 4624 else "failure"
            kind = LOGON_TYPES.get(event.get("LogonType"), event.get("LogonType") or "?")
            self.logons[(outcome, kind)] += 1
            source = event.get("IpAddress")
            if source:
                self.logon_sources[source] += 1
        elif event.is_("system", 7045):
            self.services.append((event.get("ServiceName"), event.get("ImagePath")))
        elif event.is_("security", 4697):
            self.services.append((event.get("ServiceName"), event.get("ServiceFileName")))
        elif event.is_("security", 4698):
            self.tasks.append((event.get("TaskName"), task_command(event.get("TaskContent"))))
        elif event.log == "security" and event.event_id in ACCOUNT_EVENTS:
            target = account(event, "Target") or event.get("MemberName")
            by = account(event, "Subject")
            self.account_changes.append(
                f"{ACCOUNT_EVENTS[event.event_id]}: {target or '?'}"
                + (f" (member {event.get('MemberName')})" if event.get("MemberName") else "")
                + (f" by {by}" if by else "")
            )
        elif (
            event.is_("security", 1102)
            or (event.is_("system", 104))
            or (event.event_id == 1102 and "eventlog" in event.provider.lower())
        ):
            self.log_clears.append(
                f"{event.channel or 'log'} cleared by {account(event, 'Subject') or '?'}"
            )

    def summary(self, hostname: str) -> str:
        """A few lines an analyst can read (and the evidence entry of the context)."""
        span = f" from {self.first} to {self.last}" if self.first else ""
        parts = [f"{self.events} event(s){span}"]
        others = sorted(
            c for c in self.computers if c.split(".")[0] != hostname.lower().split(".")[0]
        )
        if others:
            parts.append(f"{len(others)} other computer(s) in the events: {', '.join(others[:5])}")
        if self.users:
            parts.append("users: " + ", ".join(u for u, _ in self.users.most_common(6)))
        if self.processes:
            names = Counter(base_name(p.image) for p in self.processes)
            parts.append(
                f"{len(self.processes)} process start(s): "
                + ", ".join(f"{n} x{c}" for n, c in names.most_common(6))
            )
        if self.connections:
            parts.append(
                "connections: "
                + ", ".join(f"{i}→{d}:{p}" for (i, d, p), _ in self.connections.most_common(5))
            )
        if self.logons:
            parts.append(
                "logons: " + ", ".join(f"{o} {k} x{c}" for (o, k), c in self.logons.most_common(6))
            )
        if self.services:
            parts.append("services installed: " + ", ".join(n for n, _ in self.services[:5]))
        if self.tasks:
            parts.append("tasks created: " + ", ".join(n for n, _ in self.tasks[:5]))
        if self.account_changes:
            parts.append(f"{len(self.account_changes)} account change(s)")
        if self.log_clears:
            parts.append("; ".join(self.log_clears[:3]))
        if self.sysmon:
            parts.append(
                "Sysmon: " + ", ".join(f"id {i} x{c}" for i, c in sorted(self.sysmon.items()))
            )
        return "; ".join(parts)[:4000]

    def as_dict(self) -> dict[str, Any]:
        """The context as JSON for the model."""
        return {
            "events": self.events,
            "computers": dict(self.computers),
            "time_range": [self.first, self.last],
            "users": dict(self.users.most_common(20)),
            "processes": [
                {
                    "pid": p.pid,
                    "image": p.image,
                    "parent": p.parent_image,
                    "user": p.user,
                    "command_line": p.command_line[:500],
                    "ref": p.ref,
                }
                for p in self.processes[:50]
            ],
            "connections": [
                {"image": i, "destination": d, "port": p, "count": c}
                for (i, d, p), c in self.connections.most_common(20)
            ],
            "logons": [
                {"outcome": o, "type": k, "count": c} for (o, k), c in self.logons.most_common()
            ],
            "logon_sources": dict(self.logon_sources.most_common(10)),
            "services": [{"name": n, "image": i} for n, i in self.services[:20]],
            "tasks": [{"name": n, "command": c} for n, c in self.tasks[:20]],
            "account_changes": self.account_changes[:20],
            "log_clears": self.log_clears[:10],
        }


# -- rules over many events ---------------------------------------------------------------------


def _rule(
    id: str,
    title: str,
    technique: str,
    stage: Stage,
    severity: Severity,
    weight: float,
    rationale: str,
) -> Rule:
    return Rule(id, title, (technique,), stage, severity, weight, rationale)


BURST_RULES: Final[dict[str, Rule]] = {
    rule.id: rule
    for rule in (
        _rule(
            "password_guessing",
            "Burst of failed logons for one account",
            "T1110.001",
            "credential_access",
            Severity.MEDIUM,
            0.6,
            f"{FAILED_LOGON_BURST}+ failures for one account point to password guessing.",
        ),
        _rule(
            "password_spraying",
            "Failed logons for many accounts from one source",
            "T1110.003",
            "credential_access",
            Severity.HIGH,
            0.7,
            f"{SPRAY_ACCOUNTS}+ accounts failing from one source is a password spray.",
        ),
        _rule(
            "kerberoasting",
            "RC4 service tickets for several services",
            "T1558.003",
            "credential_access",
            Severity.HIGH,
            0.7,
            "Asking RC4-encrypted tickets for many services is how Kerberoasting cracks them.",
        ),
        _rule(
            "tgs_enumeration",
            "Service tickets for many hosts from one account",
            "T1087.002",
            "discovery",
            Severity.LOW,
            0.4,
            f"Tickets for {TGS_BURST}+ services from one account is how BloodHound-style"
            " collectors enumerate sessions and admins.",
        ),
    )
}
"""Counting rules (a threshold over many events): code, since a Sigma rule judges one event.
Single-event rules are Sigma rules (:mod:`tools.sigma.corpus`)."""

BURST_INFORMED_BY: Final[dict[str, tuple[str, ...]]] = {
    "password_guessing": ("T1110.xxx-Brut force",),
    "tgs_enumeration": ("T1087-Account discovery",),
}
"""The shared labelled log folders whose events these rules were first written against (their
thresholds were not tuned on any), so that a leave-one-source-out evaluation can set them
aside on those folders."""


def _hit(rule_id: str, event: WinEvent, excerpt: str) -> RuleHit:
    return RuleHit(BURST_RULES[rule_id], event.ref, excerpt[:160])


_BURSTS: Final[dict[str, tuple[int, str]]] = {
    "password_spraying": (SPRAY_ACCOUNTS, "{n} accounts failed from {by}"),
    "kerberoasting": (KERBEROAST_SERVICES, "{by} asked RC4 tickets for {n} services"),
    "tgs_enumeration": (TGS_BURST, "{by} asked tickets for {n} services"),
}
"""Rules over things counted per account or source: how many make a burst, and the excerpt."""


def scan_bursts(events: Iterable[WinEvent]) -> list[RuleHit]:
    """Rules over many events: failed-logon bursts and sprays, service-ticket bursts."""
    failures_by_user: dict[str, list[WinEvent]] = defaultdict(list)
    users_by_source: dict[str, set[str]] = defaultdict(set)
    first_by_source: dict[str, WinEvent] = {}
    tickets: dict[str, set[str]] = defaultdict(set)
    rc4: dict[str, set[str]] = defaultdict(set)
    first_ticket: dict[str, WinEvent] = {}
    for event in events:
        if event.is_("security", 4625) or (
            event.is_("security", 4771) and event.get("Status").lower() in {"0x18", "0x17"}
        ):
            user = event.get("TargetUserName").lower()
            failures_by_user[user].append(event)
            source = event.get("IpAddress", "WorkstationName")
            if source:
                users_by_source[source].add(user)
                first_by_source.setdefault(source, event)
        elif event.is_("security", 4769) and event.get("Status", "0x0").lower() == "0x0":
            user = event.get("TargetUserName").lower()
            service = event.get("ServiceName").lower()
            if not user or service.startswith("krbtgt"):
                continue
            tickets[user].add(service)
            first_ticket.setdefault(user, event)
            if event.get("TicketEncryptionType").lower() == "0x17" and not service.endswith("$"):
                rc4[user].add(service)
    hits: list[RuleHit] = []
    for user, failures in failures_by_user.items():
        if len(failures) >= FAILED_LOGON_BURST:
            sources = sorted({e.get("IpAddress", "WorkstationName") for e in failures} - {""})
            hits.append(
                _hit(
                    "password_guessing",
                    failures[0],
                    f"{len(failures)} failed logons for {user}"
                    + (f" from {', '.join(sources[:3])}" if sources else ""),
                )
            )
    for rule_id, groups, first in (
        ("password_spraying", users_by_source, first_by_source),
        ("kerberoasting", rc4, first_ticket),
        ("tgs_enumeration", tickets, first_ticket),
    ):
        threshold, excerpt = _BURSTS[rule_id]
        hits += [
            _hit(rule_id, first[by], excerpt.format(by=by, n=len(members)))
            for by, members in groups.items()
            if len(members) >= threshold
        ]
    return hits


def event_rule_catalogue() -> list[Rule]:
    """Every rule of this module (the counting rules)."""
    return list(BURST_RULES.values())
