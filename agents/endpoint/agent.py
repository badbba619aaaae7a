"""endpoint: what happened on a host, from its Windows, Sysmon and PowerShell events.

Built-in analysis: normalise the events (flat or nested layout), build the host's context
(users, processes, connections, logons, services, tasks, account changes, log clearing), run
the rules (the command-line and process rules of :mod:`tools.behaviour`, event and registry
rules of :mod:`agents.endpoint.events`, bursts of failed logons and ticket requests), score
them the same way (:func:`tools.behaviour.assess`) and propose EDR containment. The finding's
techniques are the rules' (those the context text describes are ``context_techniques``
evidence, never observations of the host):

- ``isolate_host`` (impact high) when the severity is high or critical; on a host rated high or
  critical the reason says so, for the guardrails to put it before a human;
- ``kill_process`` for the processes (by host and pid) behind medium-or-worse hits, never for a
  genuine LSASS, CSRSS and the like;
- ``disable_account`` for accounts behind high-or-worse hits (or created / promoted by them)
  when the finding is high or worse;
- ``quarantine_file`` for images and dropped files the rules judged;
- ``collect_triage`` (impact low) whenever any rule fired.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from agents.acp.finding import (
    Finding,
    RecommendedAction,
    TargetSource,
)
from agents.endpoint.events import (
    FILE_NAME_RULES,
    HostContext,
    account,
    is_person,
    process_of,
    scan_bursts,
    texts_of,
)
from agents.endpoint.schemas import AnalyzeEndpointRequest
from agents.runtime.analysis import analysis_tools, hit_rows, ioc_summary
from agents.runtime.evidence import rule_verdict, verdict_sentences
from agents.runtime.specialist import Specialist, ToolTrace, finding_iocs, string_tool
from core.errors import ValidationFailed
from core.llm.types import Tool
from core.schemas import Severity
from tools.behaviour import (
    CRITICAL_PROCESSES,
    IMAGE_RULES,
    OBFUSCATION_RULES,
    Assessment,
    ProcessView,
    RuleHit,
    base_name,
    clean_path,
    layer_events,
    scan_layers,
    scan_process,
    sigma_hit,
    sigma_scan_texts,
)
from tools.decode import Layer, unfold
from tools.ioc import Ioc, indicators_in, names_a_machine, normalise_ioc
from tools.logs.windows import WinEvent, normalise_event
from tools.sigma.corpus import default_engine, rules_engine
from tools.sigma.engine import SigmaEngine, level_rank

MAX_KILLS: Final[int] = 10
MAX_LAYER_EVIDENCE: Final[int] = 10
MAX_ACTIONS: Final[int] = 30
MIN_LEVEL: Final[str] = "low"
"""Sigma rules below this level (informational ones) are hunting aids, not findings."""
# Events whose hit names an account that should lose access besides the actor: the account an
# intruder created, promoted or gave another's SID history (Security 4720, 4728, 4732, 4756,
# 4765), and the account a new-credentials logon used (4624).
ACCOUNT_TARGET_EVENTS: Final[frozenset[int]] = frozenset({4720, 4728, 4732, 4756, 4765})


@dataclass(slots=True)
class EventScan:
    """The rules' verdict over a request's events."""

    hits: list[tuple[RuleHit, WinEvent]] = field(default_factory=list)
    layers: dict[str, list[Layer]] = field(default_factory=dict)
    texts: dict[str, str] = field(default_factory=dict)
    """Every command line or script scanned, by source."""

    @property
    def rule_hits(self) -> list[RuleHit]:
        return [hit for hit, _ in self.hits]


def scan_events(events: Sequence[WinEvent], engine: SigmaEngine | None = None) -> EventScan:
    """Run every rule over ``events`` (pure, no I/O): the Sigma rules of ``engine`` (default:
    :func:`tools.sigma.corpus.default_engine`) over the events and over the layers
    deobfuscation recovers from their command lines and scripts, the obfuscation, image and
    file-name rules, and the bursts."""
    engine = engine or default_engine()
    result = EventScan()
    floor = level_rank(MIN_LEVEL)
    by_index = {event.index: event for event in events}
    for match in engine.match(events):
        event = by_index[match.index]
        if level_rank(match.level) >= floor:
            result.hits.append((sigma_hit(match, event.ref), event))
    fired = {(hit.rule.id, event.index) for hit, event in result.hits}
    for event in events:
        found: list[RuleHit] = []
        process = process_of(event)
        for name, text in texts_of(event):
            source = f"{event.ref} {name}"
            result.texts[source] = text
            layers = unfold(text)
            found += scan_layers(text, source, layers, OBFUSCATION_RULES)
            if layers:
                result.layers[source] = layers
                derived = layer_events(source, layers, image=process.image if process else "")
                found += [
                    hit
                    for hit in sigma_scan_texts(engine, derived, min_level=MIN_LEVEL)
                    if (hit.rule.id, event.index) not in fired
                ]
        if process and (event.is_("sysmon", 1) or event.is_("security", 4688)):
            found += [
                h for h in scan_process(process.view(), event.ref) if h.rule.id in IMAGE_RULES
            ]
        if event.is_("sysmon", 11):
            # The deceptive-name checks of images apply to a file as soon as it is written.
            target = ProcessView(image=clean_path(event.get("TargetFilename")))
            found += [h for h in scan_process(target, event.ref) if h.rule.id in FILE_NAME_RULES]
        for hit in found:
            if (hit.rule.id, event.index) not in fired:
                fired.add((hit.rule.id, event.index))
                result.hits.append((hit, event))
    result.hits += [(hit, by_index_ref) for hit, by_index_ref in _bursts(events)]
    return result


def _bursts(events: Sequence[WinEvent]) -> list[tuple[RuleHit, WinEvent]]:
    by_ref = {event.ref: event for event in events}
    return [(hit, by_ref[hit.source]) for hit in scan_bursts(events)]


def _serious(hit: RuleHit, level: Severity = Severity.MEDIUM) -> bool:
    return hit.rule.severity >= level


class Endpoint(Specialist, name="endpoint", method="analyze_endpoint"):
    """Endpoint analysis: Windows, Sysmon and PowerShell events of a host, its processes, logons,
    persistence and defence evasion, with EDR containment proposals."""

    method_description = (
        "Analyse a host's events (flat or nested EVTX JSON) and propose containment."
    )
    request_model = AnalyzeEndpointRequest

    async def start(self) -> None:
        """Compile the Sigma rules before serving (seconds, once per process), so that the
        first host analysed does not wait for them."""
        await asyncio.to_thread(rules_engine, self.deps.settings)

    async def _context(
        self, request: AnalyzeEndpointRequest, events: list[WinEvent], trace: ToolTrace
    ) -> HostContext:
        return await trace.compute(
            "host_context",
            {"hostname": request.host.hostname, "events": len(events)},
            lambda: HostContext.build(events),
            lambda context: context.summary(request.host.hostname),
            thread=True,
        )

    async def _scan(self, events: list[WinEvent], trace: ToolTrace) -> EventScan:
        return await trace.compute(
            "rule_scan",
            {"events": len(events)},
            lambda: scan_events(events, rules_engine(self.deps.settings)),
            lambda found: (
                (
                    f"{len({h.rule.id for h in found.rule_hits})} rule(s) fired on "
                    f"{len({e.index for _, e in found.hits})} event(s): "
                    + ", ".join(sorted({h.rule.id for h in found.rule_hits}))
                    if found.hits
                    else f"no rule fired on {len(events)} event(s)"
                )
                + (
                    f"; {sum(len(x) for x in found.layers.values())} obfuscated layer(s) decoded"
                    if found.layers
                    else ""
                )
            ),
            thread=True,
        )

    async def _indicators(
        self,
        request: AnalyzeEndpointRequest,
        events: list[WinEvent],
        scan: EventScan,
        trace: ToolTrace,
    ) -> list[Ioc]:
        """Indicators in the texts rules fired on (and their decoded layers), the sources of
        flagged logons, and where flagged processes connected to."""
        flagged = {hit.source.split(" (", 1)[0] for hit, _ in scan.hits}
        texts = [text for source, text in scan.texts.items() if source in flagged]
        # A decoded layer counts only when a rule fired on it: decoded binaries carry the
        # strings of the program they are (an embedded library's home page, say).
        fired_layers = {hit.source for hit, _ in scan.hits}
        texts += [
            layer.text
            for source, layers in scan.layers.items()
            for layer in layers
            if f"{source} ({layer.method})" in fired_layers
        ]
        if request.context:
            texts.append(request.context)
        addresses: list[str] = []
        pids = {
            (event.computer, pid)
            for hit, event in scan.hits
            if _serious(hit) and (pid := _pid(event)) is not None
        }
        for _, event in scan.hits:
            if event.get("IpAddress"):
                addresses.append(event.get("IpAddress"))
        for event in events:
            if event.is_("sysmon", 3) and (event.computer, _pid(event)) in pids:
                addresses.append(event.get("DestinationIp"))

        def run() -> list[Ioc]:
            found = indicators_in(texts)
            for address in addresses:
                try:
                    ioc = normalise_ioc("ip", address.removeprefix("::ffff:"))
                except ValidationFailed:
                    continue
                if names_a_machine(ioc):
                    found.append(ioc)
            return list(dict.fromkeys(found))

        return await trace.compute(
            "extract_iocs",
            {"texts": len(texts), "addresses": len(addresses)},
            run,
            ioc_summary,
            thread=True,
        )

    async def builtin(self, request: AnalyzeEndpointRequest, trace: ToolTrace) -> Finding:
        events = [normalise_event(raw, index) for index, raw in enumerate(request.events)]
        host = request.host
        await trace.thought(
            "intake",
            f"{len(events)} event(s) from {host.hostname} (criticality {host.criticality})",
        )
        context = await self._context(request, events, trace) if events else HostContext()
        scan = await self._scan(events, trace) if events else EventScan()
        iocs = await self._indicators(request, events, scan, trace)
        from_context = await self.map_context(request.context, trace)
        flagged = {hit.source.split(" (", 1)[0] for hit in scan.rule_hits}
        decoded = [(s, layers) for s, layers in scan.layers.items() if s in flagged]
        verdict = await rule_verdict(
            trace,
            self.deps.attack,
            scan.rule_hits,
            behaviour=bool(events),
            from_context=from_context,
            layers=decoded[:MAX_LAYER_EVIDENCE],
        )
        assessment = verdict.assessment
        actions = _actions(request, scan, assessment)
        return Finding(
            agent=self.name,
            summary=_summary(
                request, events, context, scan, assessment, actions, verdict.techniques
            ),
            severity=assessment.severity,
            confidence=assessment.confidence,
            mitre_techniques=verdict.techniques,
            iocs=finding_iocs([i for i in iocs if not _own(i, request)]),
            evidence=verdict.evidence,
            recommended_actions=actions,
        )

    # -- the LLM path ------------------------------------------------------------------------

    def llm_tools(self, request: AnalyzeEndpointRequest, trace: ToolTrace) -> list[Tool]:
        events = [normalise_event(raw, index) for index, raw in enumerate(request.events)]

        async def context(arguments: dict[str, Any]) -> object:
            built = await self._context(request, events, trace)
            return built.as_dict()

        async def scan(arguments: dict[str, Any]) -> object:
            wanted = arguments.get("event_ids")
            chosen = (
                [e for e in events if e.event_id in set(wanted)]
                if isinstance(wanted, list) and wanted
                else events
            )
            found = await self._scan(chosen, trace)
            shown = found.hits[:200]
            rows = hit_rows([hit for hit, _ in shown])
            return [
                {**row, "event": event.ref} for row, (_, event) in zip(rows, shown, strict=True)
            ]

        async def get_events(arguments: dict[str, Any]) -> object:
            event_id = arguments.get("event_id")
            needle = str(arguments.get("contains") or "").lower()
            limit = arguments.get("limit", 20)
            limit = min(max(limit, 1), 50) if isinstance(limit, int) else 20

            async def run() -> list[WinEvent]:
                return [
                    e
                    for e in events
                    if (event_id is None or e.event_id == event_id)
                    and (not needle or needle in " ".join(e.data.values()).lower())
                ][:limit]

            found = await trace.call(
                "get_events",
                {"event_id": event_id, "contains": needle[:100], "limit": limit},
                run,
                lambda result: f"{len(result)} event(s)",
            )
            return [
                {
                    "ref": e.ref,
                    "event_id": e.event_id,
                    "log": e.log,
                    "computer": e.computer,
                    "time": e.time,
                    "data": {k: v[:2000] for k, v in e.data.items()},
                }
                for e in found
            ]

        return [
            *analysis_tools(self.deps.attack, trace, rules_engine(self.deps.settings)),
            string_tool(
                "host_context",
                "What the events say about the host: users, processes, network"
                " connections, logons, services, tasks, account changes, cleared logs.",
                context,
            ),
            Tool(
                name="scan_events",
                description="Run the detection rules (command lines, process tree, event and"
                " registry rules, logon bursts) over the events, optionally only some ids.",
                parameters={
                    "type": "object",
                    "properties": {"event_ids": {"type": "array", "items": {"type": "integer"}}},
                },
                handler=scan,
            ),
            Tool(
                name="get_events",
                description="Read events, filtered by id and/or a substring of their fields.",
                parameters={
                    "type": "object",
                    "properties": {
                        "event_id": {"type": "integer"},
                        "contains": {"type": "string"},
                        "limit": {"type": "integer", "minimum": 1, "maximum": 50},
                    },
                },
                handler=get_events,
            ),
        ]


# -- containment ------------------------------------------------------------------------------


def _pid(event: WinEvent) -> int | None:
    process = process_of(event)
    return process.pid if process else None


def _own(ioc: Ioc, request: AnalyzeEndpointRequest) -> bool:
    """Whether ``ioc`` is the analysed host itself (its address), not an indicator."""
    return ioc.type == "ip" and request.host.ip is not None and ioc.value == request.host.ip


def _rules(hits: list[RuleHit]) -> str:
    return "; ".join(
        f"{h.rule.title} [{', '.join(h.rule.techniques)}]"
        for h in {h.rule.id: h for h in hits}.values()
    )


def _accounts(hit: RuleHit, event: WinEvent) -> list[str]:
    """The accounts a hit implicates: the actor, and the account created or promoted."""
    process = process_of(event)
    names = [account(event, "Subject"), process.user if process else ""]
    if event.log == "security" and event.event_id in ACCOUNT_TARGET_EVENTS:
        names.append(account(event, "Target") if event.event_id in (4720, 4765) else "")
        member = event.get("MemberName")
        if member.upper().startswith("CN="):
            member = member[3:].split(",", 1)[0]
        names.append(member)
    if event.is_("security", 4624) and event.get("LogonType") == "9":
        names.append(account(event, "Target"))
    return [name for name in dict.fromkeys(names) if name and is_person(name)]


_FROM_HOST = [TargetSource(kind="alert_field", ref="host")]
_FROM_EVENTS = [TargetSource(kind="log_field", ref="events")]


def _actions(
    request: AnalyzeEndpointRequest, scan: EventScan, assessment: Assessment
) -> list[RecommendedAction]:
    """The recommended actions; the host comes from the request, processes, accounts and
    files from the events' fields (none of them independent of the attacker)."""
    host = request.host
    actions: list[RecommendedAction] = []
    if not scan.hits:
        return actions
    worst = _rules(
        [h for h in scan.rule_hits if _serious(h, assessment.severity)] or scan.rule_hits
    )
    if assessment.severity >= Severity.HIGH:
        reason = f"{assessment.severity} activity on the host: {worst}"
        if host.criticality in ("high", "critical"):
            reason += (
                f". The host is rated {host.criticality}: isolating it disrupts the business, "
                "so a human should approve it"
            )
        actions.append(
            RecommendedAction.of("isolate_host", host.hostname, reason, "high", _FROM_HOST)
        )

    processes: dict[tuple[str, int], tuple[str, list[RuleHit]]] = {}
    files: dict[str, list[RuleHit]] = defaultdict(list)
    accounts: dict[str, list[RuleHit]] = defaultdict(list)
    for hit, event in scan.hits:
        process = process_of(event)
        if _serious(hit) and process and process.pid is not None:
            computer = (event.computer or host.hostname).split(".")[0]
            entry = processes.setdefault((computer, process.pid), (process.image, []))
            entry[1].append(hit)
        if _serious(hit) and hit.rule.id in IMAGE_RULES and process and process.image:
            files[process.sha256 or clean_path(process.image)].append(hit)
        if _serious(hit) and (event.is_("sysmon", 7) or event.is_("sysmon", 11)):
            files[clean_path(event.get("TargetFilename", "ImageLoaded"))].append(hit)
        if _serious(hit, Severity.HIGH) or (
            event.log == "security" and event.event_id in ACCOUNT_TARGET_EVENTS
        ):
            for name in _accounts(hit, event):
                accounts[name].append(hit)

    kills = 0
    for (computer, pid), (image, hits) in processes.items():
        name = base_name(image)
        masquerading = any(h.rule.id.startswith("masquerade") for h in hits)
        if (name in CRITICAL_PROCESSES and not masquerading) or kills >= MAX_KILLS:
            continue
        kills += 1
        actions.append(
            RecommendedAction.of(
                "kill_process",
                f"{computer}:{pid}",
                f"{clean_path(image) or 'process'} (pid {pid}): {_rules(hits)}",
                "low",
                _FROM_EVENTS,
            )
        )
    if assessment.severity >= Severity.HIGH:
        for name, hits in accounts.items():
            actions.append(
                RecommendedAction.of(
                    "disable_account",
                    name,
                    f"account behind: {_rules(hits)}",
                    "medium",
                    _FROM_EVENTS,
                )
            )
    for target, hits in files.items():
        if target:
            actions.append(
                RecommendedAction.of(
                    "quarantine_file", target, _rules(hits), "medium", _FROM_EVENTS
                )
            )
    actions.append(
        RecommendedAction.of(
            "collect_triage",
            host.hostname,
            "collect process list, autoruns, event logs and memory to confirm and scope: " + worst,
            "low",
            _FROM_HOST,
        )
    )
    unique: dict[tuple[str, str], RecommendedAction] = {}
    for action in actions:
        unique.setdefault((action.action, action.target), action)
    return list(unique.values())[:MAX_ACTIONS]


def _summary(
    request: AnalyzeEndpointRequest,
    events: list[WinEvent],
    context: HostContext,
    scan: EventScan,
    assessment: Assessment,
    actions: list[RecommendedAction],
    techniques: list[str],
) -> str:
    host = request.host
    where = f"{host.hostname} (criticality {host.criticality})"
    if not events:
        return (
            f"No events for {where}: only the context text was read, so the severity rests on no "
            "telemetry."
        )
    if not scan.hits:
        return (
            f"No detection rule fired on {len(events)} event(s) from {where}; this lowers but "
            f"does not rule out suspicion. Context: {context.summary(host.hostname)}"
        )[:4000]
    distinct = {hit.rule.id: (hit, event) for hit, event in scan.hits}
    worst_hit, worst_event = max(distinct.values(), key=lambda pair: pair[0].rule.severity)
    parts = [
        f"{len(distinct)} detection rule(s) fired on {len({e.index for _, e in scan.hits})} of "
        f"{len(events)} event(s) from {where}.",
        f"Worst: {worst_hit.rule.title} [{', '.join(worst_hit.rule.techniques)}] at "
        f"{worst_event.ref} ({worst_hit.excerpt[:100]}).",
        *verdict_sentences(assessment, len(distinct), techniques),
    ]
    proposed = sorted({a.action for a in actions})
    if proposed:
        parts.append(f"Proposed: {', '.join(proposed)}.")
    if any(a.action == "isolate_host" for a in actions) and host.criticality in (
        "high",
        "critical",
    ):
        parts.append("Isolation of this high-criticality host needs a human approval.")
    return " ".join(parts)[:4000]
