"""The specialist catalogue: which agents exist, where their code is, what each wants to be
given and how its call is built from an investigation's subject.

Both planners read it. The rule planner dispatches every planned specialist whose wanted
subjects the investigation has, with the params its entry builds from them; the LLM planner
offers the planned specialists' tools and tells the model what each wants. Adding a specialist
is an entry here and its own package: nothing in the orchestrator names one.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Final

from pydantic import BaseModel, ConfigDict, Field

from agents.acp.finding import FindingIoc

if TYPE_CHECKING:
    from agents.runtime.specialist import Specialist


class SubjectKind(StrEnum):
    """What an investigation's subject can hold, as a specialist wants it."""

    INDICATORS = "indicators"
    """Indicators of the types the specialist takes (:attr:`Entry.indicator_types`)."""
    HASHES = "hashes"
    COMMAND_LINES = "command_lines"
    HOSTS = "hosts"
    ACCOUNTS = "accounts"
    EVENTS = "events"
    """Windows (EVTX, Sysmon, PowerShell) events, flat or nested."""
    FLOWS = "flows"
    TEXT = "text"
    """Free text: the alert's, the case's or the caller's description."""


HOSTNAME: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._$-]{0,254}$")
"""A host name the endpoint agent takes (its ``HostIn.hostname``)."""
MAX_EVENTS: Final = 10_000
MAX_CONTEXT: Final = 100_000


class Subject(BaseModel):
    """What an investigation looks at, as the gateway snapshots it (its ``iocs`` normalised by
    the graph's intake). A specialist is given the part of it its entry takes."""

    model_config = ConfigDict(extra="ignore")

    title: str | None = None
    text: str | None = None
    iocs: list[FindingIoc] = Field(default_factory=list)
    command_lines: list[str] = Field(default_factory=list)
    hosts: list[str] = Field(default_factory=list)
    users: list[str] = Field(default_factory=list)
    """Accounts."""
    events: list[dict[str, Any]] = Field(default_factory=list)
    """Windows events (flat or nested EVTX JSON); anything else in it is ignored."""
    flows: list[dict[str, Any]] = Field(default_factory=list)
    """Network flow records, as the network agent takes them."""
    alert_id: str | None = None
    case_id: str | None = None
    corroborations: list[dict[str, Any]] = Field(default_factory=list)
    """Indicators the platform's own detections confirm (set by the gateway, never by a
    caller); see :func:`agents.acp.provenance.platform_corroborations`."""

    @property
    def context(self) -> str | None:
        """The free text a specialist is given as its context: the text, else the title."""
        return self.text or self.title or None

    def plain_iocs(self) -> list[dict[str, str]]:
        """The indicators as ``{type, value}``, the form the specialists' params take."""
        return [{"type": i.type, "value": i.value} for i in self.iocs]

    def windows_events(self) -> list[dict[str, Any]]:
        """The events that are Windows events (have an ``EventID``), as the endpoint agent
        takes them."""
        # Imported here: the log parsers cost ~70 ms to import, and every agent process and
        # CLI command imports the catalogue.
        from tools.logs.windows import event_id_of

        return [e for e in self.events if event_id_of(e) is not None]

    def kinds(self) -> frozenset[SubjectKind]:
        """The kinds this subject has."""
        present = {
            SubjectKind.INDICATORS: bool(self.iocs),
            SubjectKind.HASHES: any(i.type == "hash" for i in self.iocs),
            SubjectKind.COMMAND_LINES: bool(self.command_lines),
            SubjectKind.HOSTS: bool(self.hosts),
            SubjectKind.ACCOUNTS: bool(self.users),
            SubjectKind.EVENTS: bool(self.windows_events()),
            SubjectKind.FLOWS: bool(self.flows),
            SubjectKind.TEXT: bool(self.text),
        }
        return frozenset(kind for kind, has in present.items() if has)

    def taking(self, types: frozenset[str] | None) -> Subject:
        """This subject with only the indicators of ``types`` (None: all of them)."""
        if types is None:
            return self
        return self.model_copy(update={"iocs": [i for i in self.iocs if i.type in types]})


type ParamsBuilder = Callable[[Subject], dict[str, Any] | None]
"""A specialist's params from the part of the subject it takes; None: nothing it can use."""


@dataclass(frozen=True, slots=True)
class Entry:
    """One specialist: its code, its method, what it wants and how its params are built."""

    name: str
    target: str
    """``module:Class`` of its :class:`~agents.runtime.specialist.Specialist`."""
    method: str
    wants: frozenset[SubjectKind] = frozenset()
    """It is dispatched when the subject has any of these."""
    indicator_types: frozenset[str] | None = None
    """The indicator types it takes (None: every type); the others are never sent to it."""
    params: ParamsBuilder | None = None
    """None: the planners never dispatch it (the responder, which the graph consults itself
    once the findings are in)."""
    follow_up: bool = False
    """Dispatched again, in the one extra round, on the indicators the first round found."""

    @property
    def planned(self) -> bool:
        return self.params is not None

    def call_params(self, subject: Subject) -> dict[str, Any] | None:
        """Its params for ``subject``, or None when it is not wanted there: the subject has
        none of :attr:`wants` (among the indicators it takes), or nothing its builder can use."""
        if self.params is None:
            return None
        taken = subject.taking(self.indicator_types)
        if not self.wants & taken.kinds():
            return None
        return self.params(taken)

    def describe(self) -> str:
        """What it wants, in a sentence for the LLM planner."""
        wants = []
        for kind in sorted(self.wants):
            if kind is SubjectKind.INDICATORS and self.indicator_types is not None:
                wants.append(f"indicators ({', '.join(sorted(self.indicator_types))})")
            else:
                wants.append(kind.value.replace("_", " "))
        return f"Give it: {', '.join(wants)}." if wants else ""


def _threat_intel(subject: Subject) -> dict[str, Any]:
    return {"iocs": subject.plain_iocs(), "context": subject.context}


def _malware(subject: Subject) -> dict[str, Any]:
    return {
        "hashes": [{"value": i.value} for i in subject.iocs if i.type == "hash"],
        "command_lines": list(subject.command_lines),
        "context": subject.context,
    }


def _network(subject: Subject) -> dict[str, Any]:
    params: dict[str, Any] = {"iocs": subject.plain_iocs(), "context": subject.context}
    if subject.flows:
        params["flows"] = list(subject.flows)
    return params


def _hunter(subject: Subject) -> dict[str, Any]:
    return {
        "iocs": subject.plain_iocs(),
        "hosts": subject.hosts[:50],
        "users": subject.users[:50],
        "context": subject.context,
    }


def _endpoint(subject: Subject) -> dict[str, Any] | None:
    """The first named host the endpoint agent can take (else the computer the first event
    came from) with the subject's Windows events."""
    from tools.logs.windows import normalise_event  # see Subject.windows_events

    events = subject.windows_events()[:MAX_EVENTS]
    named = [*subject.hosts, *(normalise_event(e, 0).computer for e in events[:1])]
    host = next((h for h in named if HOSTNAME.fullmatch(h)), None)
    context = (subject.context or "")[:MAX_CONTEXT] or None
    if host is None or not (events or (context and context.strip())):
        return None
    params: dict[str, Any] = {"host": {"hostname": host}, "events": events, "context": context}
    if subject.alert_id:
        params["alert_id"] = subject.alert_id
    return params


NETWORK_TYPES: Final = frozenset({"ip", "domain", "url"})
HUNTABLE_TYPES: Final = frozenset({"ip", "domain", "url", "hash", "email"})

CATALOGUE: Final[tuple[Entry, ...]] = (
    Entry(
        "threat_intel",
        "agents.threat_intel.agent:ThreatIntel",
        "analyze_threat",
        wants=frozenset({SubjectKind.INDICATORS, SubjectKind.TEXT}),
        params=_threat_intel,
        follow_up=True,
    ),
    Entry(
        "malware",
        "agents.malware.agent:Malware",
        "analyze_malware",
        wants=frozenset({SubjectKind.HASHES, SubjectKind.COMMAND_LINES}),
        indicator_types=frozenset({"hash"}),
        params=_malware,
    ),
    Entry(
        "network",
        "agents.network.agent:Network",
        "analyze_network",
        wants=frozenset({SubjectKind.INDICATORS, SubjectKind.FLOWS}),
        indicator_types=NETWORK_TYPES,
        params=_network,
    ),
    Entry(
        "endpoint",
        "agents.endpoint.agent:Endpoint",
        "analyze_endpoint",
        wants=frozenset({SubjectKind.HOSTS, SubjectKind.EVENTS}),
        indicator_types=frozenset(),
        params=_endpoint,
    ),
    Entry("responder", "agents.responder.agent:Responder", "plan_response"),
    Entry(
        "hunter",
        "agents.hunter.agent:Hunter",
        "hunt_threats",
        wants=frozenset({SubjectKind.HOSTS, SubjectKind.ACCOUNTS}),
        indicator_types=HUNTABLE_TYPES,
        params=_hunter,
    ),
)
"""Every specialist, in port order (``agent_base_port`` + position) and in the order a plan
dispatches them."""

SPECIALISTS: Final[dict[str, Entry]] = {entry.name: entry for entry in CATALOGUE}
"""Agent name → its entry."""


def load_specialist(name: str) -> type[Specialist]:
    """The class of specialist ``name``; KeyError for one not in the catalogue."""
    module, _, attribute = SPECIALISTS[name].target.partition(":")
    cls: type[Specialist] = getattr(importlib.import_module(module), attribute)
    return cls
